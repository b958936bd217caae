"""Metis low-rank split: X = U diag(S) V^T + R with a rank-r randomized SVD (Halko et al.)."""

from __future__ import annotations

import torch


def randomized_svd(x: torch.Tensor, rank: int, power_iters: int = 2,
                   generator: torch.Generator | None = None):
    """(U (m x r), S (r), V (n x r)) approximating the top-r SVD of the 2D tensor x, in float32.

    A Gaussian sketch (drawn from ``generator``) refined by ``power_iters`` power iterations,
    re-orthonormalised after each product for stability.  r is capped at min(m, n).
    """
    with torch.autocast(x.device.type, enabled=False):  # QR has no BF16 kernel on CUDA; the sketch is FP32
        return _randomized_svd_fp32(x.float(), rank, power_iters, generator)


def _randomized_svd_fp32(xf: torch.Tensor, rank: int, power_iters: int, generator):
    m, n = xf.shape
    r = min(rank, m, n)
    omega = torch.randn(n, r, generator=generator, device=xf.device, dtype=torch.float32)
    q = torch.linalg.qr(xf @ omega).Q
    for _ in range(power_iters):
        q = torch.linalg.qr(xf.T @ q).Q
        q = torch.linalg.qr(xf @ q).Q
    u_small, s, vh = torch.linalg.svd(q.T @ xf, full_matrices=False)
    return q @ u_small, s, vh.T


def lowrank_split(x: torch.Tensor, rank: int, power_iters: int = 2, generator: torch.Generator | None = None):
    """(U, S, V, residual) with residual = x - U diag(S) V^T (float32)."""
    u, s, v = randomized_svd(x, rank, power_iters, generator)
    with torch.autocast(x.device.type, enabled=False):
        return u, s, v, x.float() - (u * s) @ v.T
