"""E2M1 elements: every code, every rounding boundary and tie, against ml_dtypes at zero tolerance."""

import ml_dtypes
import numpy as np
import pytest
import torch
from reference_numpy import e2m1_codes, e2m1_values

from averis.formats import e2m1

GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=np.float32)


def _encode(values) -> np.ndarray:
    return e2m1.encode(torch.as_tensor(np.asarray(values, dtype=np.float32))).numpy()


def test_all_16_codes_decode_like_ml_dtypes():
    codes = np.arange(16, dtype=np.uint8)
    ours = e2m1.decode(torch.from_numpy(codes)).numpy()
    theirs = e2m1_values(codes)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))  # -0 included


def test_every_code_value_encodes_to_itself():
    codes = np.arange(16, dtype=np.uint8)
    assert np.array_equal(_encode(e2m1_values(codes)), codes)


def _boundary_inputs() -> np.ndarray:
    """Every midpoint and grid value, each with its two float32 neighbours, both signs, plus beyond 6."""
    points = np.concatenate([GRID, (GRID[1:] + GRID[:-1]) / 2, [6.5, 7.0, 8.0, 1e30]])
    points = points.astype(np.float32)
    near = np.concatenate([points, np.nextafter(points, np.float32(np.inf)), np.nextafter(points, np.float32(0))])
    return np.concatenate([near, -near, [np.float32(1e-45), np.float32(-1e-45)]]).astype(np.float32)


def test_boundaries_and_ties_match_ml_dtypes():
    x = _boundary_inputs()
    assert np.array_equal(_encode(x), e2m1_codes(x))


def test_random_values_match_ml_dtypes():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(200_000) * rng.choice([0.1, 1, 3, 10], 200_000)).astype(np.float32)
    assert np.array_equal(_encode(x), e2m1_codes(x))


@pytest.mark.parametrize(
    "value, expected",
    [(0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0), (2.5, 2.0), (3.5, 4.0), (5.0, 4.0),
     (-0.25, -0.0), (-0.75, -1.0), (-5.0, -4.0), (6.0, 6.0), (7.0, 6.0), (-100.0, -6.0)],
)
def test_round_nearest_even_per_value(value, expected):
    got = e2m1.decode(e2m1.encode(torch.tensor([value]))).item()
    assert got == expected and np.signbit(got) == np.signbit(expected)


def test_ties_go_to_even_mantissa():
    mids = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    codes = e2m1.encode(mids)
    assert torch.all(codes % 2 == 0), "every tie lands on an even (mantissa 0) code"


def test_pack_is_low_nibble_first_and_round_trips():
    codes = torch.randint(0, 16, (8, 64), dtype=torch.uint8)
    packed = e2m1.pack(codes)
    assert packed.shape == (8, 32)
    assert torch.equal(packed[:, 0] & 0x0F, codes[:, 0]) and torch.equal(packed[:, 0] >> 4, codes[:, 1])
    assert torch.equal(e2m1.unpack(packed), codes)


def test_packed_view_matches_torch_float4x2_and_ml_dtypes():
    codes = torch.arange(16, dtype=torch.uint8).repeat(2)
    fp4x2 = e2m1.as_float4x2(e2m1.pack(codes))
    assert fp4x2.dtype == torch.float4_e2m1fn_x2 and fp4x2.shape == (16,)
    low = fp4x2.view(torch.uint8).numpy() & 0x0F
    assert np.array_equal(low.view(ml_dtypes.float4_e2m1fn).astype(np.float32)[:8],
                          e2m1_values(codes.numpy()[0:16:2])[:8])


def test_pack_rejects_odd_length():
    with pytest.raises(ValueError, match="even"):
        e2m1.pack(torch.zeros(3, dtype=torch.uint8))


def test_unknown_rounding_is_refused():
    with pytest.raises(ValueError, match="nearest"):
        e2m1.encode(torch.zeros(4), rounding="up")


# --------------------------------------------------------------------------- stochastic rounding
def _sr(values: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    return e2m1.decode(e2m1.encode(values, "stochastic", uniform))


def test_sr_rounds_to_the_two_neighbours_with_the_right_probability():
    x = torch.full((100_000,), 2.25)  # between 2 and 3: up with probability 0.25
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    out = _sr(x, u)
    assert set(out.unique().tolist()) == {2.0, 3.0}
    assert abs((out == 3.0).float().mean().item() - 0.25) < 0.01


def test_sr_threshold_is_exact_per_value():
    # 1.25 sits halfway between 1 and 1.5: up exactly when u * 0.5 < 0.25, i.e. u < 0.5.
    x = torch.full((3,), 1.25)
    u = torch.tensor([0.4999999, 0.5, 0.75])
    assert _sr(x, u).tolist() == [1.5, 1.0, 1.0]


def test_sr_keeps_grid_values_and_never_exceeds_6():
    grid = torch.tensor(np.concatenate([GRID, -GRID]))
    u = torch.rand(1000, grid.numel(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(_sr(grid.expand(1000, -1), u), grid.expand(1000, -1))
    big = torch.tensor([5.9, 6.0, 7.0, 1e6, -1e6])
    out = _sr(big.expand(1000, -1), torch.rand(1000, 5, generator=torch.Generator().manual_seed(2)))
    assert out.abs().max().item() == 6.0


def test_sr_is_unbiased_inside_the_range():
    x = torch.linspace(-5.99, 5.99, 997)
    u = torch.rand(4000, x.numel(), generator=torch.Generator().manual_seed(3))
    mean = _sr(x.expand(4000, -1), u).mean(0)
    assert (mean - x).abs().max().item() < 0.06  # 4000 draws: std of the mean <= 1/(2*sqrt(4000))*2
    assert (mean - x).abs().mean().item() < 0.01
