"""metis layer at 512 / 1000 tokens (GPU): Triton path vs Triton path, torch vs torch, Triton vs torch (differing
elements of Y, dX, dW), then a profile of ten rank-16 splits of 8192 x 512.

    source benchmarks/gpu/env.sh && python3 benchmarks/gpu/diag/metis_paths.py
"""
import torch
from _layer import layer_grads, same_small_svd_everywhere
from bench_step import naive_path  # benchmarks/ is on PYTHONPATH (env.sh)
from torch.profiler import ProfilerActivity, profile

from averis import qgemm

same_small_svd_everywhere()


def run(tokens, name, slow):
    with naive_path(slow):
        return layer_grads(tokens, name)


def cmp(tag, a3, b3):
    out = []
    for what, a, b in zip(("Y", "dX", "dW"), a3, b3):
        out.append(f"{what}:{int((a.float() != b.float()).sum())}")
    print(f"  {tag}: " + " ".join(out), flush=True)

for tokens in (512, 1000):
    f1, f2 = run(tokens, "metis", False), run(tokens, "metis", False)
    s1, s2 = run(tokens, "metis", True), run(tokens, "metis", True)
    print(f"metis {tokens} tokens (differing elements)")
    cmp("fast vs fast", f1, f2)
    cmp("slow vs slow", s1, s2)
    cmp("fast vs slow", f1, s1)

# where does a rank-16 split of 8192 x 512 spend its time?
x = torch.randn(8192, 512, device="cuda") + 1
g = torch.Generator(device="cuda").manual_seed(0)
for _ in range(3):
    qgemm.lowrank_split(x, 16, 2, g)
torch.cuda.synchronize()

with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
    for _ in range(10):
        qgemm.lowrank_split(x, 16, 2, g)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))
