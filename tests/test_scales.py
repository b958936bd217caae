"""Scale formats: E4M3 block scales, E8M0 exponents, exact powers of two, against ml_dtypes."""

import ml_dtypes
import numpy as np
import pytest
import torch
from reference_numpy import mx_rceil_exponent

from averis.formats import fake_quantize, scales

E4M3 = ml_dtypes.float8_e4m3fn


def _e4m3_ties_and_neighbours() -> np.ndarray:
    """Every positive finite E4M3 value, every midpoint between two, each with its float32 neighbours."""
    values = np.arange(0, 127, dtype=np.uint8).view(E4M3).astype(np.float32)  # 0..448
    mids = ((values[1:].astype(np.float64) + values[:-1]) / 2).astype(np.float32)
    pts = np.concatenate([values, mids])
    return np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)), np.nextafter(pts, np.float32(0))])


def test_e4m3_block_scale_rounding_matches_ml_dtypes():
    t = _e4m3_ties_and_neighbours()
    t = t[t <= 448]
    ours = torch.from_numpy(t).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    theirs = t.astype(E4M3).view(np.uint8)
    assert np.array_equal(ours, theirs)


def test_nvfp4_block_scale_clamps_at_448_and_keeps_zero():
    s_enc = scales.nvfp4_tensor_encode_scale(torch.tensor(6.0))  # 448
    block_amax = torch.tensor([0.0, 6.0, 6.01, 1e-9])
    got = scales.nvfp4_block_scale(block_amax, s_enc).float().tolist()
    assert got[0] == 0.0 and got[1] == 448.0 and got[2] == 448.0
    assert got[3] == 0.0  # below half the smallest E4M3 subnormal: no lower clamp


def test_nvfp4_tensor_scale_edge_cases():
    enc = scales.nvfp4_tensor_encode_scale(torch.tensor([0.0, 2688.0, 1e-45, float("nan"), float("inf")]))
    assert enc[0].item() == 1.0 and enc[1].item() == 1.0
    assert enc[2].item() == torch.finfo(torch.float32).max  # 2688 / 1e-45 overflows: capped
    assert torch.isnan(enc[3]) and torch.isnan(enc[4])


def test_e8m0_decodes_all_256_bytes_like_ml_dtypes():
    b = np.arange(256, dtype=np.uint8)
    ours = scales.e8m0_to_float(torch.from_numpy(b).view(torch.float8_e8m0fnu)).numpy()
    theirs = b.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    assert np.array_equal(ours, theirs, equal_nan=True)


def test_exp2_int_is_exact_over_the_whole_float32_range():
    e = np.arange(-149, 128)
    ours = scales.exp2_int(torch.from_numpy(e)).numpy()
    assert np.array_equal(ours, np.ldexp(np.float32(1), e).astype(np.float32))


def _amax_edges() -> np.ndarray:
    k = np.arange(-140, 126)
    p = np.ldexp(np.float32(1), k).astype(np.float32)
    six = np.ldexp(np.float32(6), k[k < 125]).astype(np.float32)
    pts = np.concatenate([p, six, np.float32([0.0, 1e-45, 3.0, 7.99, 8.0])])
    return np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)), np.nextafter(pts, np.float32(0))])


@pytest.mark.parametrize("rule", ["floor", "ceil"])
def test_mxfp4_exponent_rules_match_the_definition(rule):
    amax = _amax_edges()
    ours = scales.mxfp4_scale_exponent(torch.from_numpy(amax), rule).numpy()
    # definition, in float64 (exact for these): floor: floor(log2 a) - 2; ceil (RCEIL): ceil(log2 q) of the
    # float32 quotient q = a * fp32(1/6), the smallest e with a <= 6 * 2**e except at 0x01400001 (below)
    a = amax.astype(np.float64)
    with np.errstate(divide="ignore"):
        q = (amax * np.float32(1 / 6)).astype(np.float64)
        ref = np.floor(np.log2(a)) - 2 if rule == "floor" else np.ceil(np.log2(q))
    ref = np.where(a == 0, -127, np.clip(ref, -127, 127))
    assert np.array_equal(ours, ref.astype(np.int32))


def test_mxfp4_exponent_per_value():
    amax = torch.tensor([6.0, 7.0, 8.0, 4.0, 0.0])
    assert scales.mxfp4_scale_exponent(amax, "floor").tolist() == [0, 0, 1, 0, -127]
    assert scales.mxfp4_scale_exponent(amax, "ceil").tolist() == [0, 1, 1, 0, -127]


def _f32(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def test_mxfp4_ceil_is_cublas_rceil_where_the_quotient_is_subnormal():
    """amax = 6 * 2**-127 + 1 ULP: its quotient amax * fp32(1/6) rounds to 2**-127 (a subnormal, whose ULP
    is 2**-149), so RCEIL keeps e = -127 and the block maximum saturates to 6 * 2**-127; the exact
    'smallest e with amax <= 6 * 2**e' would give -126. The only FP32 amax where the two differ."""
    bits = [0x013FFFFF, 0x01400000, 0x01400001, 0x01400002, 0x01400003, 0x01BFFFFF, 0x01C00000, 0x01C00001]
    got = scales.mxfp4_scale_exponent(torch.from_numpy(_f32(bits)), "ceil").tolist()
    assert got == [-127, -127, -127, -126, -126, -126, -126, -125]
    assert got == mx_rceil_exponent(_f32(bits)).tolist()
    x = torch.zeros(1, 32)
    x[0, 0] = float(_f32(0x01400001))
    y = fake_quantize(x, "mxfp4", scale_rule="ceil")
    assert y[0, 0].item() == float(_f32(0x01400000))  # saturated to 6 * 2**-127, as cuBLAS RCEIL


def _sweep_bits() -> np.ndarray:
    """Every 61st amax whose quotient is subnormal (exponent fields 0..3), +-4096 ULPs around 2**k and 6 * 2**k
    there, +-64 around them everywhere else and below FP32 max, and random finite bit patterns."""
    k = np.arange(-149, 128)
    edges = np.concatenate([np.ldexp(np.float32(1), k), np.ldexp(np.float32(6), k[k < 126]),
                            np.float32([np.finfo(np.float32).max])]).astype(np.float32).view(np.uint32)
    low = edges[edges < 0x01C00000].astype(np.int64)
    low = np.concatenate([np.arange(0, 0x01C00000, 61), (low[:, None] + np.arange(-4096, 4097)).ravel()])
    near = np.concatenate([low, (edges.astype(np.int64)[:, None] + np.arange(-64, 65)).ravel()])
    near = near[(near >= 0) & (near < 0x7F800000)].astype(np.uint32)
    rand = np.random.default_rng(0).integers(0, 0x7F800000, 1 << 20, dtype=np.uint32)
    return np.concatenate([near, rand])


def test_mxfp4_ceil_matches_an_independent_rceil_over_a_sweep():
    amax = _f32(_sweep_bits())
    ours = scales.mxfp4_scale_exponent(torch.from_numpy(amax), "ceil").numpy()
    ref = mx_rceil_exponent(amax)
    bad = np.nonzero(ours != ref)[0]
    assert bad.size == 0, [(hex(int(amax[i:i + 1].view(np.uint32)[0])), int(ours[i]), int(ref[i])) for i in bad[:5]]


def test_unknown_scale_rule():
    with pytest.raises(ValueError, match="floor"):
        scales.mxfp4_scale_exponent(torch.ones(1), "nearest")
