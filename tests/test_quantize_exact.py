"""NVFP4 (1x16, 16x16) and MXFP4 codes, scales and dequantized values, bit-exact against reference_numpy."""

import ml_dtypes
import numpy as np
import pytest
import torch
from reference_numpy import mxfp4, nvfp4

import averis
from averis.formats import e2m1

E4M3 = ml_dtypes.float8_e4m3fn


def _tensor(kind: str, rows=64, cols=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        x = rng.standard_normal((rows, cols))
    elif kind == "heavy":
        x = rng.standard_t(1.5, (rows, cols)) * 3
    elif kind == "mean-shifted":
        x = rng.standard_normal((rows, cols)) + 20 * rng.standard_normal((1, cols))
    elif kind == "zero-block":
        x = rng.standard_normal((rows, cols))
        x[:, 16:48] = 0
    elif kind == "tiny-block":
        x = rng.standard_normal((rows, cols)) * 100
        x[:, 32:64] *= 1e-30  # block scales underflow to E4M3 zero / tiny E8M0 exponents
    elif kind == "zeros":
        x = np.zeros((rows, cols))
    elif kind == "huge":
        x = rng.standard_normal((rows, cols)) * 1e37
    else:
        raise AssertionError(kind)
    return x.astype(np.float32)


def _near_e4m3_ties(rows=32, cols=64, ulps=(-2, -1, 0, 1, 2)) -> np.ndarray:
    """Blocks whose maximum sits a few float32 ULPs from an E4M3 rounding tie of its scale."""
    x = np.zeros((rows, cols), dtype=np.float32)
    x[0, 0] = 6.0  # tensor amax 6 -> S_enc = 448, block scale = block_amax * 448 * fp32(1/6)
    factor = np.float32(np.float32(448.0) * np.float32(1.0 / 6.0))
    values = np.arange(1, 126, dtype=np.uint8).view(E4M3).astype(np.float64)
    ties = ((values[1:] + values[:-1]) / 2)[::4]
    rng = np.random.default_rng(1)
    k = 0
    for r in range(rows):
        for b in range(1 if r == 0 else 0, cols // 16):
            target = np.float32(ties[k % len(ties)] / factor)
            step = ulps[k % len(ulps)]
            for _ in range(abs(step)):
                target = np.nextafter(target, np.float32(np.inf if step > 0 else 0))
            block = (rng.uniform(-1, 1, 16) * target).astype(np.float32)
            block[rng.integers(16)] = target
            x[r, b * 16:(b + 1) * 16] = block
            k += 1
    return x


CASES = ["random", "heavy", "mean-shifted", "zero-block", "tiny-block", "zeros", "huge"]


def _check_nvfp4(x: np.ndarray, dtype, tile=(16,)):
    t = torch.from_numpy(x).to(dtype)
    ref_in = t.float().numpy()
    q = averis.quantize(t, "nvfp4", block_shape=tile)
    codes, sb, s_dec, deq = nvfp4(ref_in, tile)
    assert np.array_equal(e2m1.unpack(q.codes).numpy(), codes)
    assert np.array_equal(q.scales.view(torch.uint8).numpy(), sb.view(np.uint8))
    assert q.tensor_scale.item() == s_dec
    assert np.array_equal(q.dequantize().numpy().view(np.uint32), deq.view(np.uint32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", CASES)
def test_nvfp4_1x16_exact(kind, dtype):
    _check_nvfp4(_tensor(kind), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", CASES)
def test_nvfp4_16x16_exact(kind, dtype):
    _check_nvfp4(_tensor(kind), dtype, tile=(16, 16))


def test_nvfp4_blocks_near_e4m3_ties_exact():
    x = _near_e4m3_ties()
    _check_nvfp4(x, torch.float32)
    # the construction really hits both sides of the ties: many distinct scales, some rounded each way
    _, sb, _, _ = nvfp4(x)
    assert len(np.unique(sb.view(np.uint8))) > 15


@pytest.mark.parametrize("rule", ["floor", "ceil"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", CASES)
def test_mxfp4_exact(kind, dtype, rule):
    t = torch.from_numpy(_tensor(kind)).to(dtype)
    q = averis.quantize(t, "mxfp4", scale_rule=rule)
    codes, e, deq = mxfp4(t.float().numpy(), rule)
    assert q.tensor_scale is None
    assert np.array_equal(e2m1.unpack(q.codes).numpy(), codes)
    assert np.array_equal(q.scales.view(torch.uint8).numpy().astype(np.int64), e + 127)
    assert np.array_equal(q.dequantize().numpy().view(np.uint32), deq.view(np.uint32))


def test_mxfp4_floor_rule_clips_and_ceil_does_not():
    x = torch.tensor([[7.0] + [0.1] * 31])
    assert averis.fake_quantize(x, "mxfp4")[0, 0].item() == 6.0
    assert averis.fake_quantize(x, "mxfp4", scale_rule="ceil")[0, 0].item() == 8.0


def test_mxfp4_ceil_is_rceil_for_block_maxima_at_six_times_powers_of_two():
    """Blocks whose maximum is 6 * 2**k or a few FP32 ULPs away, subnormal to huge: codes, scales and values
    equal the reference's RCEIL; 0x01400001 (6 * 2**-127 + 1 ULP) keeps e = -127 and saturates."""
    six = np.ldexp(np.float32(6), np.arange(-132, 126)).astype(np.float32).view(np.uint32).astype(np.int64)
    amax = (six[:, None] + np.arange(-2, 3)).ravel().astype(np.uint32).view(np.float32)
    rng = np.random.default_rng(0)
    x = (rng.uniform(-1, 1, (len(amax), 32)) * amax[:, None]).astype(np.float32)
    x[np.arange(len(amax)), rng.integers(0, 32, len(amax))] = amax * rng.choice([-1, 1], len(amax))
    q = averis.quantize(torch.from_numpy(x), "mxfp4", scale_rule="ceil")
    codes, e, deq = mxfp4(x, "ceil")
    assert np.array_equal(e2m1.unpack(q.codes).numpy(), codes)
    assert np.array_equal(q.scales.view(torch.uint8).numpy().astype(np.int64)[:, 0], e[:, 0] + 127)
    assert np.array_equal(q.dequantize().numpy().view(np.uint32), deq.view(np.uint32))
    row = int(np.nonzero(amax.view(np.uint32) == 0x01400001)[0][0])
    assert e[row, 0] == -127 and np.abs(deq[row]).max() == np.float32(6 * 2.0**-127)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_any_axis_equals_moving_it_last(axis):
    x = torch.randn(32, 64, 96)
    moved = x.movedim(axis, -1).contiguous()
    for fmt in ("nvfp4", "mxfp4"):
        a = averis.fake_quantize(x, fmt, axis=axis)
        b = averis.fake_quantize(moved, fmt).movedim(-1, axis)
        assert torch.equal(a, b)


def test_columnwise_blocks_match_reference_on_transpose():
    x = _tensor("mean-shifted", 64, 32)
    q = averis.quantize(torch.from_numpy(x), "nvfp4", axis=0)
    _, _, _, deq = nvfp4(np.ascontiguousarray(x.T))
    assert np.array_equal(q.dequantize().numpy().T, deq)
