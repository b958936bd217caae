"""QuantLinear on the GPU: the fused Triton path (shared statistics, out_dtype, fused transforms) equals
the PyTorch reference path bit for bit, for every recipe.  Skipped without CUDA (CI); run on the GPU
machine with `python -m pytest tests/test_nn_gpu.py`."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import averis
from averis import recipes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _grads(layer, x, dy):
    x = x.clone().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = layer(x)
    y.backward(dy)
    return y, x.grad, layer[0].weight.grad


@pytest.mark.parametrize("name", [n for n in recipes.list() if n != "bf16"])
@pytest.mark.parametrize("tokens", [512, 1000])
def test_fused_gpu_path_equals_the_reference_path(name, tokens):
    # Metis's r x r SVD: the same method on both paths (Triton Jacobi vs cuSOLVER is test_lowrank's
    # concern; here the quantization paths are compared, and the SVD's bits feed them)
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(256, 384, bias=False)).cuda()
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(tokens, 256, device="cuda", generator=g) + 2 * torch.linspace(-1, 2, 256, device="cuda")
    dy = (torch.randn(tokens, 384, device="cuda", generator=g) * 1e-3 + 1e-3).to(torch.bfloat16)
    with averis.use_backend("auto", small_svd="jacobi"):
        fast = _grads(averis.quantize_model(copy.deepcopy(base), name), x, dy)
    with averis.use_backend("torch", small_svd="jacobi"):
        slow = _grads(averis.quantize_model(copy.deepcopy(base), name), x, dy)
    for what, a, b in zip(("Y", "dX", "dW"), fast, slow):
        assert a.dtype == b.dtype and torch.equal(a.view(torch.int16) if a.element_size() == 2 else a.view(
            torch.int32), b.view(torch.int16) if b.element_size() == 2 else b.view(torch.int32)), f"{name} {what}"
