"""Metis randomized SVD (averis.transforms.lowrank): CholeskyQR + r x r SVD, checked against torch.linalg.svd.
The r x r SVD routed to the Triton Jacobi kernel (averis.qgemm.randomized_svd / lowrank_split) on CUDA.

The CUDA-only tests (sync-free under set_sync_debug_mode("error"), Triton Jacobi vs cuSOLVER)
are skipped without a GPU; the Triton kernel itself is checked on CPU through the interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from averis import qgemm
from averis.transforms import lowrank_split, randomized_svd

ROOT = Path(__file__).resolve().parents[1]
FP32_ORTH = 2e-5          # |U^T U - I| entrywise, FP32 outputs


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _low_rank_plus_noise(m, n, k=16, noise=1e-2, seed=0, top=2.0, bottom=0.5):
    g = _gen(seed)
    spectrum = torch.logspace(top, bottom, k)
    a = torch.linalg.qr(torch.randn(m, k, generator=g)).Q
    b = torch.linalg.qr(torch.randn(n, k, generator=g)).Q
    return (a * spectrum) @ b.T + noise * torch.randn(m, n, generator=g)


def _eye_err(a):
    return (a.T @ a - torch.eye(a.shape[1], device=a.device)).abs().max().item()


def _exact_tail(x, r):
    """Relative Frobenius error of the exact rank-r truncated SVD."""
    sv = torch.linalg.svdvals(x.double())
    return (sv[r:].square().sum().sqrt() / sv.square().sum().sqrt()).item()


def _rel_err(x, u, s, v):
    return ((x - (u * s) @ v.T).norm() / x.norm()).item()


SHAPES = [(256, 96), (96, 256), (300, 300), (1024, 48)]


@pytest.mark.parametrize("shape", SHAPES)
def test_u_and_v_have_orthonormal_columns(shape):
    x = _low_rank_plus_noise(*shape, noise=0.3)
    u, s, v = randomized_svd(x, 16, 2, _gen(1))
    assert u.shape == (shape[0], 16) and s.shape == (16,) and v.shape == (shape[1], 16)
    assert u.dtype == s.dtype == v.dtype == torch.float32
    assert _eye_err(u) < FP32_ORTH and _eye_err(v) < FP32_ORTH


@pytest.mark.parametrize("shape", SHAPES)
def test_singular_values_match_exact_top_r(shape):
    x = _low_rank_plus_noise(*shape, noise=1e-2, seed=3)
    _, s, _ = randomized_svd(x, 16, 2, _gen(2))
    exact = torch.linalg.svd(x.double(), full_matrices=False).S[:16].float()
    torch.testing.assert_close(s, exact, rtol=1e-4, atol=1e-5 * exact[0].item())
    assert (s[:-1] >= s[1:]).all() and (s >= 0).all()
    assert (s <= exact * (1 + 1e-5)).all(), "Ritz values never exceed the true singular values"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noise", [1e-2, 1.0])
def test_reconstruction_close_to_exact_truncated_svd(shape, noise):
    x = _low_rank_plus_noise(*shape, noise=noise, seed=4)
    u, s, v = randomized_svd(x, 16, 2, _gen(5))
    exact = _exact_tail(x, 16)
    assert _rel_err(x, u, s, v) <= 1.05 * exact + 1e-6


def test_reconstruction_of_a_flat_spectrum_and_a_mean_biased_matrix():
    g = _gen(6)
    flat = torch.randn(512, 384, generator=g)                       # no gap at all: the hardest case
    mean = torch.randn(512, 384, generator=g) + 50 * torch.randn(1, 384, generator=g)  # activation-like
    for x, factor in ((flat, 1.1), (mean, 1.02)):
        u, s, v = randomized_svd(x, 16, 2, _gen(7))
        assert _rel_err(x, u, s, v) <= factor * _exact_tail(x, 16)
        assert _eye_err(u) < FP32_ORTH and _eye_err(v) < FP32_ORTH


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_zero_input_gives_zero_s_and_exact_residual(dtype):
    x = torch.zeros(96, 64, dtype=dtype)
    u, s, v, r = lowrank_split(x, 16, 2, _gen(0))
    for t in (u, s, v, r):
        assert torch.isfinite(t).all()
    assert torch.equal(s, torch.zeros(16)) and torch.equal(r, x.float())


def test_rank_deficient_input():
    """Numerical rank 3 < r = 16: the 3 directions are found, the other 13 get S ~ 0 (their U, V columns
    are ~0 rather than unit vectors), everything is finite and x = U diag(S) V^T + residual."""
    g = _gen(8)
    x = torch.randn(200, 3, generator=g) @ torch.randn(3, 120, generator=g)
    x[150:] = 0                                                      # zero-padded token rows too
    u, s, v, r = lowrank_split(x, 16, 2, _gen(9))
    for t in (u, s, v, r):
        assert torch.isfinite(t).all()
    exact = torch.linalg.svdvals(x.double())[:3].float()
    torch.testing.assert_close(s[:3], exact, rtol=1e-5, atol=0)
    assert (s[3:] <= 1e-5 * s[0]).all() and (s >= 0).all()
    assert _eye_err(u[:, :3]) < FP32_ORTH and _eye_err(v[:, :3]) < FP32_ORTH
    assert (r.norm() / x.norm()).item() < 1e-5
    assert torch.equal(r, x - (u * s) @ v.T)
    assert (u[150:] == 0).all(), "U stays in the row space: zero rows of x are zero rows of U"


def test_tiny_and_huge_inputs_keep_their_scale():
    base = _low_rank_plus_noise(128, 64, noise=0.1, seed=10)
    _, s_ref, _ = randomized_svd(base, 16, 2, _gen(11))
    for scale in (1e-30, 1e30):
        u, s, v = randomized_svd(base * scale, 16, 2, _gen(11))
        torch.testing.assert_close(s / scale, s_ref, rtol=1e-4, atol=0)
        assert _eye_err(u) < FP32_ORTH and _eye_err(v) < FP32_ORTH


@pytest.mark.parametrize("shape", [(5, 40), (40, 5), (16, 16), (1, 30), (30, 1)])
def test_rank_is_capped_at_min_m_n(shape):
    x = torch.randn(*shape, generator=_gen(12))
    u, s, v, r = lowrank_split(x, 16, 2, _gen(13))
    k = min(shape)
    assert u.shape == (shape[0], k) and s.shape == (k,) and v.shape == (shape[1], k)
    assert _eye_err(u) < FP32_ORTH and _eye_err(v) < FP32_ORTH
    assert (r.norm() / x.norm()).item() < 1e-5, "full rank: nothing left over"
    torch.testing.assert_close(s, torch.linalg.svdvals(x), rtol=1e-5, atol=1e-6)


def test_deterministic_for_a_seed_and_draws_the_sketch_from_the_generator():
    x = _low_rank_plus_noise(200, 80, noise=1e-2, seed=14)
    a = lowrank_split(x, 16, 2, _gen(15))
    b = lowrank_split(x, 16, 2, _gen(15))
    for p, q in zip(a, b):
        assert torch.equal(p, q)
    c = randomized_svd(x, 16, 2, _gen(16))
    assert not torch.equal(a[0], c[0]), "another seed, another sketch"
    torch.testing.assert_close(c[1], a[1], rtol=1e-3, atol=0)
    g, ref = _gen(17), _gen(17)
    randomized_svd(x, 16, 2, g)
    torch.randn(80, 16, generator=ref)                               # the sketch: n x r standard normal
    assert torch.equal(g.get_state(), ref.get_state())


def test_bf16_input_under_autocast_equals_the_fp32_computation():
    x = _low_rank_plus_noise(160, 96, noise=0.2, seed=18).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u, s, v, r = lowrank_split(x, 16, 2, _gen(19))
    want = lowrank_split(x.float(), 16, 2, _gen(19))
    for got, w in zip((u, s, v, r), want):
        assert got.dtype == torch.float32 and torch.equal(got, w)
    assert _eye_err(u) < FP32_ORTH and _eye_err(v) < FP32_ORTH


def test_no_qr_and_only_an_r_by_r_svd(monkeypatch):
    """The tall-skinny Householder QRs and the r x n SVD (slow, host-syncing cuSOLVER calls) are gone."""
    def no_qr(*a, **k):
        raise AssertionError("torch.linalg.qr called")

    real_svd = torch.linalg.svd
    shapes = []

    def small_svd(a, *args, **kw):
        shapes.append(tuple(a.shape))
        return real_svd(a, *args, **kw)

    monkeypatch.setattr(torch.linalg, "qr", no_qr)
    monkeypatch.setattr(torch.linalg, "svd", small_svd)
    randomized_svd(torch.randn(512, 200, generator=_gen(20)), 16, 2, _gen(21))
    assert shapes == [(16, 16)]


def test_small_svd_method_is_checked():
    with pytest.raises(ValueError, match="small_svd"):
        qgemm.randomized_svd(torch.randn(8, 8), 4, 1, None, small_svd="eigh")


_INTERPRETED = r"""
import torch
from averis.kernels.jacobi import jacobi_svd
from averis.qgemm import randomized_svd
g = torch.Generator().manual_seed(0)
for n, gather in ((16, None), (16, False), (7, None), (1, None), (32, None), (20, False)):
    a = torch.randn(n, n, generator=g, dtype=torch.float64) * torch.logspace(0, -5, n, dtype=torch.float64)
    c, z = jacobi_svd(a, gather=gather)
    assert (z.T @ z - torch.eye(n, dtype=torch.float64)).abs().max() < 1e-13
    assert (a @ z - c).abs().max() < 1e-13 * a.abs().max()
    cn = c / c.norm(dim=0)
    assert (cn.T @ cn - torch.eye(n, dtype=torch.float64)).abs().max() < 1e-9
    s = c.norm(dim=0).sort(descending=True).values
    torch.testing.assert_close(s, torch.linalg.svdvals(a), rtol=1e-12, atol=1e-14)
c, z = jacobi_svd(torch.zeros(16, 16, dtype=torch.float64))
assert torch.equal(c, torch.zeros(16, 16, dtype=torch.float64)) and torch.equal(z, torch.eye(16, dtype=torch.float64))
x = torch.randn(300, 16, generator=g) @ torch.randn(16, 120, generator=g) + 0.05 * torch.randn(300, 120, generator=g)
for rank in (16, 24):
    u, s, v = randomized_svd(x, rank, 2, torch.Generator().manual_seed(1), small_svd="jacobi")
    u2, s2, v2 = randomized_svd(x, rank, 2, torch.Generator().manual_seed(1), small_svd="svd")
    torch.testing.assert_close(s, s2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close((u * s) @ v.T, (u2 * s2) @ v2.T, rtol=0, atol=1e-4)
    assert (u.T @ u - torch.eye(rank)).abs().max() < 2e-5 and (v.T @ v - torch.eye(rank)).abs().max() < 2e-5
u, s, v = randomized_svd(torch.zeros(64, 40), 16, 2, None, small_svd="jacobi")
assert torch.equal(s, torch.zeros(16)) and torch.isfinite(u).all() and torch.isfinite(v).all()
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton (interpreted on CPU)")
def test_triton_jacobi_svd_interpreted():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", _INTERPRETED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_benchmark_runs_on_cpu(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_lowrank.py"), "--device", "cpu", "--shapes", "96x40,40x120",
           "--repeats", "2", "--warmup", "1", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| shape |" in out.stdout
    (path,) = tmp_path.glob("lowrank_*.json")
    rows = json.loads(path.read_text())["rows"]
    assert [r["shape"] for r in rows] == [[96, 40], [40, 120]]
    for r in rows:
        assert r["err_exact"] <= r["err_new"] <= 1.2 * r["err_exact"] and r["err_new"] <= 1.01 * r["err_old"]
        assert r["orth_new"] < FP32_ORTH


# ------------------------------------------------------------------ CUDA only
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("shape", [(8192, 512), (576, 8192)])
def test_cuda_runs_without_host_sync(shape):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(*shape, device="cuda", generator=g).bfloat16()
    qgemm.lowrank_split(x, 16, 2, g)                                 # warm-up: Triton compile, cuBLAS handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            u, s, v, r = qgemm.lowrank_split(x, 16, 2, g)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert not qgemm.lowrank.jacobi_broken()
    assert _eye_err(u) < FP32_ORTH and _eye_err(v) < FP32_ORTH


@cuda
def test_cuda_jacobi_matches_cusolver_and_the_cpu():
    # noise 1e-2 as in test_singular_values_match_exact_top_r: at 0.1 the noise floor reaches the top 16
    # and two power iterations leave the tail Ritz values up to 14% below the exact ones (any SVD method)
    x = _low_rank_plus_noise(2048, 384, noise=1e-2, seed=22)
    xc = x.cuda()
    results = {}
    for method in ("jacobi", "svd"):
        g = torch.Generator(device="cuda").manual_seed(1)
        results[method] = qgemm.randomized_svd(xc, 16, 2, g, small_svd=method)
    (u, s, v), (u2, s2, v2) = results["jacobi"], results["svd"]
    torch.testing.assert_close(s, s2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close((u * s) @ v.T, (u2 * s2) @ v2.T, rtol=0, atol=1e-4)
    exact = torch.linalg.svdvals(x.double())[:16].float()
    torch.testing.assert_close(s.cpu(), exact, rtol=1e-4, atol=1e-5 * exact[0].item())
    assert _eye_err(u.cpu()) < FP32_ORTH and _eye_err(v.cpu()) < FP32_ORTH
    z = qgemm.lowrank_split(torch.zeros(512, 64, device="cuda"), 16, 2, torch.Generator(device="cuda"))
    assert torch.equal(z[1], torch.zeros(16, device="cuda")) and torch.equal(z[3], torch.zeros(512, 64, device="cuda"))
