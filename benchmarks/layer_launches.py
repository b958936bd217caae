"""GPU kernel launches of one QuantLinear forward + backward on the Triton path, per recipe and place in the code,
counted on the CPU: TRITON_INTERPRET=1 runs the dispatch code the GPU runs, and every ATen op that does work
(views and allocations excluded) or Triton kernel it launches is one kernel on the GPU.  The custom ops are opaque
to torch.compile, so inside them nothing fuses: under a CUDA graph each launch still costs a few microseconds of
GPU time however small its tensor, which is what makes many-kernel paths slow for small models.

    python benchmarks/layer_launches.py nvfp4 averis [--tokens 128 --shape 256x512] [--detail] [--json F]

Prints, per recipe: launches per layer (forward / backward), then with --detail every launch grouped by
(op, where in averis).  Host synchronisations (.item(), nonzero, ...) are listed apart: they break CUDA graphs.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import sys
import traceback
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import torch  # noqa: E402
from torch._library.custom_ops import OPDEFS  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode, _pop_mode_temporarily  # noqa: E402

import averis  # noqa: E402
from averis import provenance  # noqa: E402

# ATen ops that move no data on the device (metadata, allocation without a fill)
FREE = {"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "detach", "alias", "lift_fresh",
        "set_", "resize_", "is_same_size", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset"}
HOST_SYNC = {"_local_scalar_dense", "item", "nonzero", "equal", "is_nonzero", "masked_select", "unique"}


def where() -> str:
    frames = [f for f in traceback.extract_stack()[:-3] if "/averis/" in f.filename]
    return " < ".join(f"{f.filename.split('/averis/')[-1]}:{f.lineno}" for f in frames[-2:][::-1])


class Launches(TorchDispatchMode):
    """Counts what would launch a kernel by (op, where): ATen ops that do work, and (patch_triton) Triton kernels.
    The averis custom ops are entered (their Python bodies run under this mode): their insides are the kernels."""

    active: Launches | None = None

    def __init__(self):
        super().__init__()
        self.kernels: collections.Counter = collections.Counter()
        self.syncs: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        qualname = func._schema.name
        if qualname in OPDEFS:  # an averis custom op: count what its body launches
            with self:
                return OPDEFS[qualname]._init_fn(*args, **kwargs)
        out = func(*args, **kwargs)
        name = qualname.split("::")[-1]
        if not (func.is_view or name in FREE):
            (self.syncs if name in HOST_SYNC else self.kernels)[(name, where())] += 1
        return out

    def __enter__(self):
        Launches.active = self
        return super().__enter__()


def patch_triton() -> None:
    """Count every interpreted Triton launch in the active Launches; the ops the interpreter runs are not kernels."""
    from triton.runtime.interpreter import InterpretedFunction

    if getattr(InterpretedFunction.run, "counted", False):
        return
    run = InterpretedFunction.run

    def counted(self, *args, grid, warmup, **kwargs):
        if Launches.active is None:
            return run(self, *args, grid=grid, warmup=warmup, **kwargs)
        Launches.active.kernels[(f"triton:{self.fn.__name__}", where())] += 1
        with _pop_mode_temporarily():
            return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    counted.counted = True
    InterpretedFunction.run = counted


def count(recipe: str, tokens: int, k: int, n: int) -> dict:
    torch.manual_seed(0)
    layer = averis.quantize_model(torch.nn.Sequential(torch.nn.Linear(k, n, bias=False)), recipe)
    x = (torch.randn(tokens, k) + 1).requires_grad_()
    patch_triton()
    with averis.use_backend("triton"), torch.autocast("cpu", torch.bfloat16):
        layer(x).float().sum().backward()  # warm-up (lazy state, first-call paths)
        with Launches() as fwd:
            y = layer(x)
        loss = y.float().sum()
        with Launches() as bwd:
            loss.backward()
        Launches.active = None
    return {"forward": fwd.kernels, "backward": bwd.kernels, "syncs": fwd.syncs + bwd.syncs}


def triton_launches(kernels: collections.Counter) -> int:
    return sum(c for (op, _), c in kernels.items() if op.startswith("triton:"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="*", default=["nvfp4", "averis"])
    ap.add_argument("--tokens", type=int, default=128, help="the counts do not depend on the sizes")
    ap.add_argument("--shape", default="256x512", help="in x out features")
    ap.add_argument("--detail", action="store_true", help="every launch by (op, where)")
    ap.add_argument("--json", help="also write the launch totals per recipe (JSON) to this file")
    args = ap.parse_args()
    k, n = map(int, args.shape.split("x"))
    print(f"commit {provenance.commit()}; device cpu (Triton interpreter: the GPU's dispatch path); command python "
          f"{shlex.join(sys.argv)}")
    print(f"one QuantLinear {k} -> {n}, {args.tokens} tokens, BF16 autocast; kernel launches per call "
          f"(ATen ops that do work + Triton kernels). The backward also counts 5 launches outside the layer for "
          f"every FP4 recipe: the loss's gradient and the accumulation into .grad\n")
    print("| recipe | forward | backward | total | host syncs |\n|---|---:|---:|---:|---:|")
    results = {}
    for recipe in args.recipes:
        r = results[recipe] = count(recipe, args.tokens, k, n)
        fwd, bwd = sum(r["forward"].values()), sum(r["backward"].values())
        print(f"| {recipe} | {fwd} | {bwd} | {fwd + bwd} | {sum(r['syncs'].values())} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "commit": provenance.commit(), "device": "cpu (Triton interpreter)", "command": shlex.join(sys.argv),
            "recipes": {name: {"forward": sum(r["forward"].values()), "backward": sum(r["backward"].values()),
                               "triton_forward": triton_launches(r["forward"]),
                               "triton_backward": triton_launches(r["backward"]),
                               "host_syncs": sum(r["syncs"].values())} for name, r in results.items()}}, indent=1))
    if args.detail:
        for recipe, r in results.items():
            for part in ("forward", "backward"):
                print(f"\n{recipe} {part}: {sum(r[part].values())} launches (count, op, where)")
                for (op, at), c in sorted(r[part].items(), key=lambda kv: kv[0][1]):
                    print(f"  {c} {op} {at}")
            for (op, at), c in r["syncs"].items():
                print(f"  HOST SYNC {c} {op} {at}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
