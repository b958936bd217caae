"""metis layer at 512 / 1000 tokens (GPU): Triton path vs Triton path, torch vs torch, Triton vs torch (differing
elements of Y, dX, dW), then a profile of ten rank-16 splits of 8192 x 512.

    source benchmarks/gpu/env.sh && python3 benchmarks/gpu/diag/metis_paths.py
"""
import copy

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import averis
import averis.kernels as kernels
from averis.kernels import fused
from averis.transforms import lowrank

lowrank._jacobi_usable = lambda a: a.shape[0] <= 32

def grads(layer, x, dy):
    x = x.clone().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = layer(x)
    y.backward(dy)
    return y, x.grad, layer[0].weight.grad

def run(tokens, name, slow):
    saved = kernels.available, fused._on_device
    if slow:
        kernels.available = lambda t: False
        fused._on_device = lambda t: False
    try:
        torch.manual_seed(0)
        base = nn.Sequential(nn.Linear(256, 384, bias=False)).cuda()
        g = torch.Generator(device="cuda").manual_seed(1)
        x = torch.randn(tokens, 256, device="cuda", generator=g) + 2 * torch.linspace(-1, 2, 256, device="cuda")
        dy = (torch.randn(tokens, 384, device="cuda", generator=g) * 1e-3 + 1e-3).to(torch.bfloat16)
        return grads(averis.quantize_model(copy.deepcopy(base), name), x, dy)
    finally:
        kernels.available, fused._on_device = saved

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
    lowrank.lowrank_split(x, 16, 2, g)
torch.cuda.synchronize()

with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
    for _ in range(10):
        lowrank.lowrank_split(x, 16, 2, g)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))
