"""The public API: fake_quantize == quantize().dequantize(), stochastic rounding, padding, bad input, GEMM."""

import pytest
import torch

import averis

FORMATS = [("nvfp4", {}), ("nvfp4", {"block_shape": (16, 16)}), ("mxfp4", {}), ("mxfp4", {"scale_rule": "ceil"})]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fmt, opts", FORMATS)
def test_fake_quantize_equals_quantize_dequantize(fmt, opts, dtype):
    x = (torch.randn(64, 96) * 3 + torch.randn(1, 96)).to(dtype)
    fq = averis.fake_quantize(x, fmt, **opts)
    assert fq.dtype == dtype and fq.shape == x.shape
    assert torch.equal(fq, averis.quantize(x, fmt, **opts).dequantize().to(dtype))


def test_quantized_tensor_metadata_and_size():
    q = averis.quantize(torch.randn(32, 64), "nvfp4")
    assert q.codes.dtype == torch.uint8 and q.codes.shape == (32, 32)
    assert q.scales.dtype == torch.float8_e4m3fn and q.scales.shape == (32, 4)
    assert q.tensor_scale.dtype == torch.float32 and q.fmt == "nvfp4" and q.block_shape == (16,)
    assert q.nbytes == 32 * 32 + 32 * 4 + 4
    assert q.float4().dtype == torch.float4_e2m1fn_x2
    m = averis.quantize(torch.randn(32, 64), "mxfp4")
    assert m.scales.dtype == torch.float8_e8m0fnu and m.nbytes == 32 * 32 + 32 * 2


# --------------------------------------------------------------------------- stochastic rounding
def _sr(x, seed, fmt="nvfp4"):
    return averis.fake_quantize(x, fmt, rounding="stochastic", generator=torch.Generator().manual_seed(seed))


def test_sr_same_seed_same_result_other_seed_differs():
    x = torch.randn(64, 128)
    assert torch.equal(_sr(x, 7), _sr(x, 7))
    assert not torch.equal(_sr(x, 7), _sr(x, 8))


def test_sr_generator_advances_between_calls():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 64)
    a = averis.fake_quantize(x, "nvfp4", rounding="stochastic", generator=g)
    b = averis.fake_quantize(x, "nvfp4", rounding="stochastic", generator=g)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
def test_sr_mean_converges_to_the_input_and_beats_nearest(fmt):
    # one block whose amax is exactly representable, so nothing is clipped by scale rounding
    x = torch.cat([torch.tensor([4.0]), torch.rand(31, generator=torch.Generator().manual_seed(5)) * 4]).reshape(1, 32)
    draws = torch.stack([_sr(x, s, fmt) for s in range(3000)])
    err_sr = (draws.mean(0) - x).abs().max().item()
    err_rne = (averis.fake_quantize(x, fmt) - x).abs().max().item()
    assert err_sr < 0.05 and err_sr < err_rne / 3  # 3000 draws: std of the mean <= 0.012


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
def test_sr_never_exceeds_the_block_maximum_representable(fmt):
    x = torch.randn(256, 64) * 5
    q = averis.quantize(x, fmt, rounding="stochastic", generator=torch.Generator().manual_seed(0))
    from averis.formats import e2m1, scales

    assert e2m1.decode(e2m1.unpack(q.codes)).abs().max().item() <= 6.0
    block = 16 if fmt == "nvfp4" else 32
    if fmt == "nvfp4":
        block_max = 6.0 * q.scales.float() * q.tensor_scale
    else:
        block_max = 6.0 * scales.e8m0_to_float(q.scales)
    deq = q.dequantize().reshape(256, -1, block).abs().amax(-1)
    assert torch.all(deq <= block_max)


# --------------------------------------------------------------------------- padding and bad input
def test_pad_equals_quantizing_the_zero_padded_tensor():
    x = torch.randn(8, 40)
    padded = torch.nn.functional.pad(x, (0, 8))
    assert torch.equal(averis.fake_quantize(x, "nvfp4", pad=True), averis.fake_quantize(padded, "nvfp4")[:, :40])
    q = averis.quantize(x, "nvfp4", pad=True)
    assert q.shape == x.shape and q.dequantize().shape == x.shape


def test_pad_for_tiles_pads_both_dims():
    w = torch.randn(20, 40)
    ref = averis.fake_quantize(torch.nn.functional.pad(w, (0, 8, 0, 12)), "nvfp4", block_shape=(16, 16))
    assert torch.equal(averis.fake_quantize(w, "nvfp4", block_shape=(16, 16), pad=True), ref[:20, :40])


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        (torch.randn(4, 40), {}, ValueError, "pad=True"),
        (torch.randn(20, 32), {"block_shape": (16, 16)}, ValueError, "does not divide"),
        (torch.ones(4, 32, dtype=torch.int32), {}, TypeError, "float32"),
        (torch.ones(4, 32, dtype=torch.bool), {}, TypeError, "float32"),
        (torch.ones(4, 32, dtype=torch.float64), {}, TypeError, "x.float"),
        (torch.empty(0, 32), {}, ValueError, "empty"),
        (torch.tensor(1.0), {}, ValueError, "0-d"),
        (torch.randn(4, 32), {"axis": 2}, ValueError, "out of range"),
        (torch.randn(4, 32), {"rounding": "up"}, ValueError, "nearest"),
        (torch.randn(4, 32), {"block_shape": (32,)}, ValueError, "block_shape"),
        (torch.randn(4, 32), {"scale_rule": "ceil"}, ValueError, "scale_rule"),
        (torch.randn(4, 32), {"backend": "cuda"}, ValueError, "backend"),
    ],
)
def test_bad_input_gets_a_clear_error(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        averis.quantize(x, "nvfp4", **kwargs)


def test_unknown_format():
    with pytest.raises(ValueError, match="nvfp4, mxfp4"):
        averis.quantize(torch.randn(4, 32), "fp4")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
def test_non_finite_raises_when_checked_and_propagates_nan_otherwise(bad, fmt):
    x = torch.randn(4, 64)
    x[1, 3] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        averis.quantize(x, fmt)
    out = averis.fake_quantize(x, fmt, check_finite=False)
    assert torch.isnan(out[1, 3])  # never a finite number where the input was not finite
    if fmt == "nvfp4":
        assert torch.isnan(out).all()  # the tensor scale is NaN: the whole tensor is poisoned
    else:
        assert torch.isnan(out[1, :32]).all() and torch.isfinite(out[0]).all()  # only its block


# --------------------------------------------------------------------------- GEMM
@pytest.mark.parametrize("fmt, opts_b", [("nvfp4", {}), ("nvfp4", {"block_shape": (16, 16)}), ("mxfp4", {})])
def test_fast_gemm_equals_exact_tensor_core_reference(fmt, opts_b):
    a = averis.quantize(torch.randn(48, 256) + 2, fmt)
    b = averis.quantize(torch.randn(32, 256), fmt, **opts_b)
    exact = averis.fp4_matmul(a, b, exact=True)
    fast = averis.fp4_matmul(a, b)
    truth = a.dequantize().double() @ b.dequantize().double().T
    scale = (a.dequantize().abs().double() @ b.dequantize().abs().double().T)
    assert ((exact.double() - truth).abs() <= scale * 256 * 2**-24).all()
    assert ((fast.double() - truth).abs() <= scale * 256 * 2**-24).all()


def test_exact_gemm_on_one_block_only_rounds_in_the_epilogue():
    torch.manual_seed(30)  # a seed whose dots cancel to zero: the old float64 truth was 2e-16 there, not 0
    a = averis.quantize(torch.randn(8, 16), "nvfp4")
    b = averis.quantize(torch.randn(4, 16), "nvfp4")
    from averis.formats import e2m1

    def codes(q):
        return e2m1.decode(e2m1.unpack(q.codes)).double()

    # the block dot of the codes is exact in float64; scaling it there rounds far below float32's 2**-24
    # (scaling each value first would not: a dot that cancels to 0 would leave float64 noise)
    scales = a.scales.double().reshape(-1, 1) * b.scales.double().reshape(1, -1)
    truth = (codes(a) @ codes(b).T) * scales * (a.tensor_scale.double() * b.tensor_scale.double())
    exact = averis.fp4_matmul(a, b, exact=True).double()
    # exact block dot, then four float32 roundings: the block scales' product, the partial times it, the tensor
    # scales' product, the accumulator times it
    assert ((exact - truth).abs() <= truth.abs() * 4 * 2**-24).all()


def test_gemm_refuses_mismatched_operands():
    a = averis.quantize(torch.randn(8, 64), "nvfp4")
    with pytest.raises(ValueError, match="inner dims"):
        averis.fp4_matmul(a, averis.quantize(torch.randn(8, 32), "nvfp4"))
    with pytest.raises(ValueError, match="format"):
        averis.fp4_matmul(a, averis.quantize(torch.randn(8, 64), "mxfp4"))
    with pytest.raises(ValueError, match="last dim"):
        averis.fp4_matmul(a, averis.quantize(torch.randn(64, 8), "nvfp4", axis=0))


def test_generator_on_the_same_device_type_is_accepted():
    from averis.formats.quantize import _same_device

    assert _same_device(torch.device("cuda"), torch.device("cuda:0"))
    assert not _same_device(torch.device("cuda:1"), torch.device("cuda:0"))
    assert not _same_device(torch.device("cpu"), torch.device("cuda:0"))


def test_out_dtype_is_one_rounding_of_the_fp32_result():
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0)) * 3
    want = averis.fake_quantize(x, "nvfp4").to(torch.bfloat16)
    got = averis.fake_quantize(x, "nvfp4", out_dtype=torch.bfloat16)
    assert torch.equal(got.view(torch.int16), want.view(torch.int16))
    with pytest.raises(TypeError, match="out_dtype must be"):
        averis.fake_quantize(x, "nvfp4", out_dtype=torch.int8)
