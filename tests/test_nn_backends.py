"""QuantLinear gives the same bits through the Triton kernels (interpreted on CPU) as the reference."""

import os
import subprocess
import sys

import pytest
import torch

SCRIPT = r"""
import sys, copy, os, torch, averis
from torch import nn
if os.environ.get("TRITON_INTERPRET") == "1":   # on CPU "auto" means the reference: force the kernels
    from averis.kernels import dispatch
    calls = []
    real = dispatch.fake_quantize
    dispatch.fake_quantize = lambda *a, **k: calls.append(1) or real(*a, **k)
    # each op through its kernel, unfused: the fused kernels give the same operands but write the wgrad ones
    # tokens-major, and a CPU GEMM rounds differently by layout (the fused path: tests/test_kernels.py)
    averis.use_backend("triton", fused=False)
torch.manual_seed(0)
out = {}
for name in ["nvfp4", "nvidia", "averis", "averis_rht", "mxfp4_averis", "averis_adaptive"]:
    ref = nn.Linear(64, 64)
    q = averis.quantize_model(nn.Sequential(copy.deepcopy(ref)), name)
    x = (torch.randn(40, 64) + 2).requires_grad_()   # 40 tokens: the wgrad operands are padded
    y = q(x)
    y.pow(2).mean().backward()
    out[name] = (y.detach(), x.grad, q[0].weight.grad)
if os.environ.get("TRITON_INTERPRET") == "1":
    assert len(calls) == 36, len(calls)  # 6 recipes x 6 quantized operands
torch.save(out, sys.argv[1])
"""


def _run(tmp_path, name, interpret):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    path = tmp_path / f"{name}.pt"
    subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, check=True, timeout=300)
    return torch.load(path)


@pytest.mark.slow
def test_triton_path_is_bit_identical_to_the_reference(tmp_path):
    pytest.importorskip("triton")
    from averis.kernels import kernels_present

    if not kernels_present():
        pytest.skip("averis.kernels.dispatch is not there")
    if torch.cuda.is_available():  # the interpreter of Triton 3.6 cannot run column_stats' loop on CPU tensors
        pytest.skip("a CPU check through TRITON_INTERPRET; on a GPU, tests/test_nn_gpu.py compares the real kernels")
    ref, tri = _run(tmp_path, "ref", False), _run(tmp_path, "triton", True)
    for name in ref:
        for a, b in zip(ref[name], tri[name]):
            assert torch.equal(a, b), name
