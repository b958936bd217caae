"""activation_stats on matrices whose answer is known."""

import math

import pytest
import torch

from averis.analysis import activation_stats, quantization_damage
from averis.analysis.stats import _top_right_singular


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def mean_plus_noise(tokens=512, channels=256, scale=30.0, seed=0):
    g = _gen(seed)
    mu = scale * (torch.rand(channels, generator=g) + 0.5)  # all positive, far above the noise
    return mu + torch.randn(tokens, channels, generator=g), mu


def mean_free_low_rank(tokens=512, channels=512, rank=3, seed=1):
    g = _gen(seed)
    x = torch.randn(tokens, rank, generator=g) @ (4.0 * torch.randn(rank, channels, generator=g))
    x = x - x.mean(dim=0)
    return x + 0.01 * torch.randn(tokens, channels, generator=g)


def test_pure_mean_plus_noise():
    x, _ = mean_plus_noise(tokens=256, channels=128)
    s = activation_stats(x)
    assert s["cos_mean_v1"] > 0.999
    assert s["sign_coherence"] == 1.0
    assert s["mean_ratio"] > 0.98
    assert s["energy_mean"] > 0.96
    # every top outlier is almost all mean
    assert s["outlier_mean"] > 0.8 and s["outlier_mean_signed"] > 0.9
    assert s["outlier_mean_dominant"] == 1.0
    assert s["outlier_spike"] < 0.05 and s["outlier_tail"] < 0.1
    nv = s["quant"]["nvfp4"]
    assert nv["mean_bf16"]["rel_error"] < 0.5 * nv["plain"]["rel_error"]
    assert nv["error_explained_by_mean"] > 0.7
    # the token-centred part is what plain FP4 crushes
    assert nv["plain"]["rel_error_centred"] > 2 * nv["mean_bf16"]["rel_error_centred"]


def test_mean_free_low_rank():
    x = mean_free_low_rank()
    s = activation_stats(x)
    assert s["mean_ratio"] < 0.01
    assert s["cos_mean_v1"] < 0.3
    assert s["energy_spike"] > 0.99  # rank 3 < k = floor(0.01 * 512) = 5 spike directions
    assert s["spike_rank"] == 5
    assert s["outlier_spike"] > 0.95 and s["outlier_mean"] < 1e-3
    assert s["sign_coherence"] == pytest.approx(0.5, abs=0.15)


def test_mean_with_stronger_orthogonal_spike_is_not_aligned():
    """When one zero-mean direction has more energy than the mean, v1 is that direction, not mu."""
    g = _gen(2)
    m = 256
    mu = torch.zeros(m)
    mu[: m // 2] = 1.0
    v = torch.zeros(m)
    v[m // 2:] = 1.0  # orthogonal to mu
    coeff = 3.0 * torch.randn(1024, 1, generator=g)
    x = mu + (coeff - coeff.mean()) * v + 0.05 * torch.randn(1024, m, generator=g)
    s = activation_stats(x, quantize=False)
    assert s["cos_mean_v1"] < 0.05
    assert s["energy_spike"] > s["energy_mean"] > 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_energy_shares_add_up_and_mean_share_is_r_squared(seed):
    g = _gen(seed)
    x = torch.randn(300, 96, generator=g) * torch.rand(96, generator=g) + torch.randn(96, generator=g)
    s = activation_stats(x, quantize=False)
    assert s["energy_mean"] + s["energy_spike"] + s["energy_tail"] == pytest.approx(1.0, abs=1e-9)
    assert s["energy_mean"] == pytest.approx(s["mean_ratio"] ** 2, rel=1e-9)
    assert s["outlier_mean_signed"] + s["outlier_spike_signed"] + s["outlier_tail_signed"] == pytest.approx(1.0)
    assert s["spike_rank"] == 1  # floor(0.01 * 96) = 0, at least one


def test_outlier_count_is_top_fraction():
    x, _ = mean_plus_noise(tokens=1000, channels=64)
    s = activation_stats(x, outlier_fraction=0.001, quantize=False)
    assert s["outlier_count"] == 64
    assert s["outlier_threshold"] == pytest.approx(float(x.abs().flatten().topk(64).values.min()))


def test_fp4_representable_matrix_has_no_error():
    """Blocks whose values lie on the E2M1 grid with a 6 in every block quantize exactly (NVFP4 and MXFP4)."""
    g = _gen(3)
    grid = torch.tensor([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    x = grid[torch.randint(0, 7, (64, 128), generator=g)] * torch.where(torch.rand(64, 128, generator=g) < 0.5, -1, 1)
    x[:, ::32] = 6.0
    x[:, 16::32] = -6.0
    mx = quantization_damage(x, "mxfp4")["plain"]
    assert mx["rel_error"] == 0.0 and math.isinf(mx["sqnr_db"]) and mx["flush_to_zero"] == 0.0
    # NVFP4 decodes through the FP32 tensor scale 1/448, itself rounded: exact up to one FP32 ulp
    nv = quantization_damage(x, "nvfp4")["plain"]
    assert nv["rel_error"] < 2e-7 and nv["sqnr_db"] > 130 and nv["flush_to_zero"] == 0.0


def test_flush_to_zero_counts_small_neighbours_of_a_huge_value():
    x = torch.full((32, 64), 1e-3)
    x[:, ::16] = 1000.0  # one huge value per 16-block: the other 15 fall below the smallest FP4 step
    plain = quantization_damage(x, "nvfp4")["plain"]
    assert plain["flush_to_zero"] == pytest.approx(15 / 16)
    assert plain["block_range_log2"] == pytest.approx(math.log2(1e6), rel=1e-4)


def test_fp4_mean_is_worse_than_bf16_mean_when_channels_are_massive():
    """The mean vector inherits the massive channels: FP4 blocks crush its other entries again."""
    g = _gen(4)
    mu = torch.rand(256, generator=g) + 0.5
    mu[::16] = 300.0
    x = mu + 0.1 * torch.randn(512, 256, generator=g)
    q = quantization_damage(x, "nvfp4")
    assert q["mean_fp4"]["rel_error"] > 2 * q["mean_bf16"]["rel_error"]


def test_svd_subsample_keeps_the_answer():
    x, _ = mean_plus_noise(tokens=2048, channels=128)
    s = activation_stats(x, max_svd_tokens=256, quantize=False)
    assert s["cos_mean_v1"] > 0.999


def test_subspace_iteration_matches_eigendecomposition():
    g = _gen(5)
    x = torch.randn(600, 512, generator=g, dtype=torch.float64)
    x[:, :8] *= torch.arange(30, 14, -2, dtype=torch.float64)  # 8 separated top directions
    v, s2 = _top_right_singular(x, 5)
    evals, evecs = torch.linalg.eigh(x.T @ x)
    assert torch.allclose(s2, evals.flip(0)[:5], rtol=1e-6)
    assert torch.allclose((v * evecs.flip(1)[:, :5]).sum(0).abs(), torch.ones(5, dtype=torch.float64), atol=1e-6)


def test_bfloat16_input_is_accepted():
    x, _ = mean_plus_noise(tokens=64, channels=32)
    s = activation_stats(x.bfloat16(), quantize=False)
    assert s["cos_mean_v1"] > 0.99


@pytest.mark.parametrize("bad, error, match", [
    (torch.zeros(8), ValueError, "2D"),
    (torch.zeros(2, 3, 4), ValueError, "2D"),
    (torch.zeros(1, 16), ValueError, "too few tokens"),
    (torch.zeros(4, 0), ValueError, "too few tokens"),
    (torch.ones(4, 16, dtype=torch.int64), TypeError, "floating-point"),
    ([[1.0, 2.0]], TypeError, "torch.Tensor"),
])
def test_bad_input_is_a_clear_error(bad, error, match):
    with pytest.raises(error, match=match):
        activation_stats(bad)


def test_non_finite_input_names_the_token():
    x = torch.ones(8, 16)
    x[5, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf.*token 5"):
        activation_stats(x)


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown FP4 format"):
        quantization_damage(torch.ones(4, 16), "fp8")
