"""Does any kernel read memory it did not write?  The graphed averis trainer once gave different losses
from step 5 on in a second identical run (trainer_repeat.txt); a read of stale memory (padding, an
empty() buffer) would do that, since a graph's memory pool holds other bytes than the eager allocator's.

Each case runs twice on the GPU, once after the caching allocator's free memory was filled with zeros
and once with NaN bytes; a kernel that reads stale memory gives different bits (or NaN) the second time.
Cases: one Linear layer forward + backward per recipe at token counts that are and are not a multiple
of the block, and three steps of bench_step's `bench`-preset model (eager and CUDA-graphed) per recipe.

    source benchmarks/gpu/env.sh && python3 benchmarks/gpu/diag/stale_memory.py
"""
import sys
from functools import partial

import torch
from _layer import layer_grads
from bench_step import Setup  # benchmarks/ is on PYTHONPATH (env.sh)

RECIPES = sys.argv[1].split(",") if len(sys.argv) > 1 else ["nvfp4", "averis", "averis_rht", "nvidia", "metis"]


def poison(byte: int, gib: int = 8) -> None:
    """Fill GPU memory with one byte value and give it back to the driver: the next allocations (the
    caching allocator's and a CUDA graph's pool alike) get these stale bytes."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    blocks = [torch.full((2**30,), byte, dtype=torch.uint8, device="cuda") for _ in range(gib)]
    torch.cuda.synchronize()
    del blocks
    torch.cuda.empty_cache()


def bits_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """torch.equal is False where a NaN is (NaN != NaN): a NaN from the poison counts as different."""
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def model_step(recipe: str, graphed: bool, steps: int = 3) -> list[torch.Tensor]:
    """Losses of three AdamW steps (bench_step's model and batch, no compile) and the parameters after them."""
    setup = Setup(recipe, batch=4, seq=512, compile_model=False)
    step = setup.graph_step_fn() if graphed else setup.eager_step
    losses = [step().detach().clone() for _ in range(steps)]
    return losses + [p.detach().clone() for p in setup.model.parameters()]


def run_twice(name: str, fn) -> None:
    poison(0)
    first = [t.detach().clone() for t in fn()]
    poison(0xFF)  # 0xFFFFFFFF is a NaN in FP32 and BF16
    second = [t.detach().clone() for t in fn()]
    print(f"  {name}: {'same bits' if bits_equal(first, second) else 'DIFFERENT'}", flush=True)


print(torch.cuda.get_device_name(), torch.__version__, flush=True)
for recipe in RECIPES:
    for tokens in (1000, 2048):
        run_twice(f"layer {recipe} tokens={tokens}", partial(layer_grads, tokens, recipe))
for recipe in RECIPES:
    for graphed in (False, True):
        run_twice(f"model step {recipe} {'graphed' if graphed else 'eager'}", partial(model_step, recipe, graphed))
