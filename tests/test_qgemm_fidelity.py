"""The emulated GEMM equals the FP4 tensor core: a quantized layer's BF16 output against the exact FP4 GEMM
(``fp4_matmul(..., exact=True)``: exact block dots, block scales, FP32 accumulation, tensor scales in the
epilogue) rounded once to BF16.  They may differ only by FP32 accumulation order."""

import pytest
import torch
from torch import nn

import averis
from averis.formats import fp4_matmul, quantize

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                   reason="needs a CUDA GPU"))]


def _agreement(y: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    equal = (y == want).float().mean().item()
    rel = ((y.float() - want.float()).norm() / want.float().norm()).item()
    return equal, rel


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("recipe", ["nvfp4", "mxfp4"])
@pytest.mark.parametrize("draw", range(4))
def test_emulated_layer_output_is_the_exact_fp4_gemm_rounded_once(device, recipe, draw):
    torch.manual_seed(draw)
    layer = averis.quantize_model(nn.Sequential(nn.Linear(512, 384, bias=False)), recipe)[0]
    layer = layer.to(device=device, dtype=torch.bfloat16)
    x = (torch.randn(256, 512, device=device) * 3 + 0.5).bfloat16()
    with torch.no_grad():
        y = layer(x)
    fmt = "nvfp4" if recipe == "nvfp4" else "mxfp4"
    qx = quantize(x, fmt, axis=-1)
    qw = quantize(layer.weight.detach(), fmt, axis=-1)
    want = fp4_matmul(qx, qw, exact=True).bfloat16()
    equal, rel = _agreement(y, want)
    assert equal >= 0.99 and rel <= 1e-4, f"{equal:.4f} of the outputs equal, relative error {rel:.2e}"
