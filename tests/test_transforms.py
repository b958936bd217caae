"""Operand transforms: mean split, 16-point RHT, randomized SVD, mean precision."""

import pytest
import torch

from averis.transforms import (
    hadamard16,
    hadamard16_inverse,
    hadamard_matrix,
    lowrank_split,
    mean_split,
    pad_to_multiple,
    quantize_mean,
    random_signs,
    randomized_svd,
)


def test_mean_split_reconstructs_and_centres():
    x = torch.randn(50, 32) + torch.linspace(-5, 5, 32)
    mu, r = mean_split(x)
    assert mu.shape == (1, 32) and mu.dtype == torch.float32
    torch.testing.assert_close(mu + r, x)
    torch.testing.assert_close(r.mean(0), torch.zeros(32), atol=1e-5, rtol=0)


def test_mean_split_along_columns_accumulates_bf16_in_fp32():
    x = (torch.randn(8, 64) + 3).bfloat16()
    mu, r = mean_split(x, dim=1)
    assert mu.shape == (8, 1) and r.dtype == torch.float32
    torch.testing.assert_close(mu, x.float().mean(1, keepdim=True))


def test_mean_split_all_reduce_without_process_group_is_local():
    x = torch.randn(16, 16)
    torch.testing.assert_close(mean_split(x, all_reduce=True)[0], mean_split(x)[0])


def test_hadamard_matrix_is_orthogonal():
    m = hadamard_matrix(random_signs(3))
    torch.testing.assert_close(m @ m.T, torch.eye(16), atol=1e-6, rtol=0)


def test_hadamard_inverse_along_any_axis():
    s = random_signs(1)
    x = torch.randn(32, 48)
    for axis in (0, 1):
        torch.testing.assert_close(hadamard16_inverse(hadamard16(x, s, axis), s, axis), x, atol=1e-5, rtol=0)


def test_hadamard_preserves_a_gemm_along_its_reduction_axis():
    s = random_signs(7)
    a, b = torch.randn(8, 64), torch.randn(5, 64)
    torch.testing.assert_close(hadamard16(a, s) @ hadamard16(b, s).T, a @ b.T, atol=1e-4, rtol=1e-5)


def test_hadamard_spreads_an_outlier_over_its_block():
    x = torch.zeros(1, 16)
    x[0, 3] = 16.0
    y = hadamard16(x, random_signs(0))
    torch.testing.assert_close(y.abs(), torch.full((1, 16), 4.0))


def test_random_signs_fixed_by_seed():
    assert torch.equal(random_signs(5), random_signs(5))
    assert not torch.equal(random_signs(5), random_signs(6))
    assert set(random_signs(5).tolist()) <= {-1.0, 1.0}


def test_hadamard_rejects_ragged_axis_and_pad_fixes_it():
    x = torch.randn(3, 20)
    with pytest.raises(ValueError, match="multiple of 16"):
        hadamard16(x, random_signs(0))
    padded = pad_to_multiple(x, 16, -1)
    assert padded.shape == (3, 32) and torch.equal(padded[:, :20], x)
    assert pad_to_multiple(x, 16, 0).shape == (16, 20)


def test_randomized_svd_recovers_a_low_rank_matrix():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g) @ torch.randn(6, 40, generator=g)
    u, s, v, r = lowrank_split(x, 16, 2, torch.Generator().manual_seed(1))
    assert u.shape == (64, 16) and s.shape == (16,) and v.shape == (40, 16)
    assert r.norm() / x.norm() < 1e-4


def test_randomized_svd_matches_exact_singular_values():
    g = torch.Generator().manual_seed(0)
    signal = (torch.randn(96, 8, generator=g) * torch.logspace(1, 0, 8)) @ torch.randn(8, 48, generator=g)
    x = signal + 1e-2 * torch.randn(96, 48, generator=g)
    _, s, _ = randomized_svd(x, 8, 2, torch.Generator().manual_seed(2))
    torch.testing.assert_close(s, torch.linalg.svdvals(x)[:8], rtol=1e-4, atol=0)


def test_quantize_mean_precisions():
    mu = torch.tensor([[1e-7, -3.3e-6, 2e-6, 1e-7] * 4])  # a gradient mean: far below E4M3's smallest value
    assert torch.equal(quantize_mean(mu, "fp32"), mu)
    bf16 = quantize_mean(mu, "bf16")  # kept in bfloat16: its consumers promote it exactly
    assert bf16.dtype == torch.bfloat16 and torch.equal(bf16, mu.bfloat16())
    fp8 = quantize_mean(mu, "fp8")
    assert (fp8 != 0).all(), "the per-tensor scale keeps small means from flushing to zero"
    torch.testing.assert_close(fp8, mu, rtol=0.07, atol=0)
    assert (mu.to(torch.float8_e4m3fn).float() == 0).all()
    fp4 = quantize_mean(mu, "fp4", fmt="nvfp4")
    assert fp4.shape == mu.shape and not torch.equal(fp4, mu)
    with pytest.raises(ValueError, match="mean_format"):
        quantize_mean(mu, "int8")
