"""The emulated GEMM equals the FP4 tensor core (``use_backend(exact_gemm=True)``): a quantized layer's BF16
output against the exact FP4 GEMM (``fp4_matmul(..., exact=True)``: exact block dots, block scales, FP32
accumulation, tensor scales in the epilogue) rounded once to BF16.  They may differ only by FP32
accumulation order.  The default folds the tensor scales into the BF16 operands (faster; see
docs/architecture.md)."""

import pytest
import torch
from torch import nn

import averis
from averis import qgemm
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
    with torch.no_grad(), averis.use_backend("auto", exact_gemm=True):
        y = layer(x)
    fmt = "nvfp4" if recipe == "nvfp4" else "mxfp4"
    qx = quantize(x, fmt, axis=-1)
    qw = quantize(layer.weight.detach(), fmt, axis=-1)
    want = fp4_matmul(qx, qw, exact=True).bfloat16()
    equal, rel = _agreement(y, want)
    assert equal >= 0.99 and rel <= 1e-4, f"{equal:.4f} of the outputs equal, relative error {rel:.2e}"


def test_folding_the_tensor_scales_is_the_older_faster_emulation():
    """exact_gemm=False: each operand value with its tensor scale rounded to BF16 before the GEMM."""
    torch.manual_seed(0)
    layer = averis.quantize_model(nn.Sequential(nn.Linear(512, 384, bias=False)), "nvfp4")[0].bfloat16()
    x = (torch.randn(256, 512) * 3 + 0.5).bfloat16()
    with torch.no_grad(), averis.use_backend("auto", exact_gemm=False):
        y = layer(x)
    folded = averis.fake_quantize(x, "nvfp4") @ averis.fake_quantize(layer.weight.detach(), "nvfp4").T
    assert torch.equal(y, folded)
    want = fp4_matmul(quantize(x, "nvfp4"), quantize(layer.weight.detach(), "nvfp4"), exact=True).bfloat16()
    equal, _ = _agreement(y, want)
    assert equal < 0.9, "folding the scales rounds every operand once more"


@pytest.mark.parametrize("recipe", ["nvfp4", "averis"])
def test_qgemm_exact_backend_is_the_hardware_reference(recipe):
    """qgemm on packed operands: the "exact" backend is fp4_matmul(exact=True) plus the mean terms; the
    emulated one agrees with it to FP32 accumulation order."""
    r = averis.recipes.get(recipe)
    torch.manual_seed(1)
    x = (torch.randn(128, 256) * 2 + 1).bfloat16()
    w = torch.randn(192, 256).bfloat16()
    a = qgemm.prepare(x, r.fprop_x, r, mean_axis="rows", generator=None, signs=None, out_dtype=torch.bfloat16,
                      packed=True)
    b = qgemm.prepare(w, r.fprop_w, r, mean_axis=None, generator=None, signs=None, out_dtype=torch.bfloat16,
                      packed=True)
    exact = qgemm.qgemm(a, b, torch.bfloat16, backend="exact")
    core = fp4_matmul(a.packed, b.packed, exact=True)
    if a.row_mean is not None:
        core = core + (a.row_mean.float() @ b.dequantized().T)
    assert torch.equal(exact, core.bfloat16()) or _agreement(exact, core.bfloat16())[0] > 0.999
    equal, rel = _agreement(qgemm.qgemm(a, b, torch.bfloat16), exact)
    assert equal >= 0.99 and rel <= 1e-4
    with pytest.raises(ValueError, match="unknown GEMM backend"):
        qgemm.qgemm(a, b, torch.bfloat16, backend="tensorcore")
    plain = qgemm.prepare(x, r.fprop_x, r, mean_axis="rows", generator=None, signs=None)
    with pytest.raises(ValueError, match="packed=True"):
        qgemm.qgemm(plain, b, torch.bfloat16, backend="exact")


def test_seed_tables_differ_across_layers_steps_and_draws():
    """The layers' counter-based seeds: every (layer, step, site, draw) gets its own seed in [0, 2**31)."""
    from averis.formats import noise
    from averis.nn.state import layer_seed

    seeds = set()
    for index in range(8):
        rng = torch.tensor([layer_seed(0, index), 0])
        for _ in range(16):
            table = noise.step_seeds(rng)
            assert table.shape == (noise.LANES, noise.DRAWS) and int(table.min()) >= 0
            assert int(table.max()) <= noise.SEED_MASK
            seeds |= set(table.flatten().tolist())
            rng[1] += 1
    assert len(seeds) == 8 * 16 * noise.LANES * noise.DRAWS
    s = noise.Stream(noise.step_seeds(torch.tensor([5, 3])), lane=2)
    drawn = [int(s.next_seed()) for _ in range(noise.DRAWS + 3)]  # past the table: computed, still distinct
    assert len(set(drawn)) == len(drawn)


def test_row_mean_terms_reach_addmm_as_a_1d_bias():
    """The fprop/dgrad mean terms (a row broadcast over the tokens) go to addmm as a 1-D vector, the form cuBLASLt
    adds in its epilogue: as 1 x N, addmm on CUDA copies them expanded into the whole output first (a strided
    copy per GEMM, seen in the H200 profile).  The result is the same either way."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from averis.qgemm.operand import QOperand

    class Addmms(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.inputs = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.addmm.default:
                self.inputs.append(args[0].shape)
            return func(*args, **(kwargs or {}))

    g = torch.Generator().manual_seed(0)
    a = QOperand(torch.randn(8, 32, generator=g).bfloat16(), 32, row_mean=torch.randn(1, 32, generator=g).bfloat16())
    b = QOperand(torch.randn(16, 32, generator=g).bfloat16(), 32)
    with Addmms() as seen:
        y = qgemm.qgemm(a, b, torch.bfloat16)
    assert seen.inputs == [torch.Size([16])]
    terms = (a.row_mean @ b.values.T).to(torch.bfloat16)  # what the 1 x N form added
    assert torch.equal(y, torch.addmm(terms, a.values, b.values.T))
