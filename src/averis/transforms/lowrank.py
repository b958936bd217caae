"""Metis low-rank split: X = U diag(S) V^T + R with a rank-r randomized SVD (Halko et al.).

Built for the GPU, where it runs once per operand per GEMM per step: no Householder QR and no
full SVD (cuSOLVER is slow on tall-skinny matrices and its error checks synchronize the device
with the host), only matrix products, ``cholesky_ex`` and ``solve_triangular`` on small (r x r)
factors, and an r x r SVD.  That SVD is ``small_svd``, a function the caller passes: by default
``torch_small_svd`` (``torch.linalg.svd``, whose cuSOLVER error check synchronizes the device with
the host); ``averis.qgemm.randomized_svd`` passes the one-sided Jacobi Triton kernel on CUDA (no host
sync at all), as the quantized layers use it.

- Orthonormalization: shifted CholeskyQR (Fukaya et al., SIAM J. Sci. Comput. 2020). The Gram
  matrix Y^T Y (r x r) is formed in FP64 from the FP32 Y (mixed-precision CholeskyQR), so the
  diagonal shift that guarantees the Cholesky factorization exists - rank-deficient or all-zero
  Y included - is ~1e-10 of trace(Y^T Y) (m = 16384, r = 16) instead of ~0.1 with an FP32 Gram
  matrix: only directions below ~2e-5 of ||Y||_F (FP32 rounding noise) are damped.  Two passes
  (CholeskyQR2) for the bases that must be orthonormal; one pass between power iterations, where
  the basis only needs to be well conditioned (Halko et al. sec. 4.5).
- Rayleigh-Ritz: B = Q^T X (r x n) is factored as B^T = Qb Rb by CholeskyQR2, and only the
  r x r Rb^T = Us diag(.) Ws^T is decomposed: U = Q Us, V = Qb Ws.
- S = diag(U^T X V) (the Rayleigh quotients), clamped at 0 and sorted: exactly 0 for a zero
  input, and ~0 for the directions a rank-deficient input does not have (their U and V columns
  are then ~0 rather than unit vectors; U diag(S) V^T is right either way).
The large products (X Omega, X^T Q, X Q, Q^T X) stay FP32 and follow torch's float32 matmul
precision setting, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..formats import noise

_FLOOR = 1e-290              # added to every shift: an all-zero Gram matrix still factors (R = 1e-145 I)

SmallSVD = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Normal = Callable[[tuple[int, ...], object, torch.device], torch.Tensor]  # (shape, generator, device) -> noise


def randomized_svd(x: torch.Tensor, rank: int, power_iters: int = 2,
                   generator: torch.Generator | None = None, small_svd: SmallSVD | None = None,
                   normal: Normal | None = None):
    """(U (m x r), S (r), V (n x r)) approximating the top-r SVD of the 2D tensor x, in float32.

    A Gaussian sketch (drawn from ``generator``) refined by ``power_iters`` power iterations,
    re-orthonormalised after each product for stability.  r is capped at min(m, n).  U and V
    have orthonormal columns, S is descending and non-negative (see the module docstring for
    rank-deficient inputs).  small_svd: ``a -> (Us, Ws)`` with a = Us diag(sigma) Ws^T for the
    r x r FP64 factor (default ``torch_small_svd``); no host synchronization on CUDA other than
    its own.  normal: ``(shape, generator, device) -> float32 noise`` for the sketch (default
    ``noise.normal``; averis.qgemm passes its routed twin, the same bits from fewer kernels).
    """
    with torch.autocast(x.device.type, enabled=False):  # FP32 products, FP64 Gram matrices and factors
        return _randomized_svd_fp32(x.float(), rank, power_iters, generator, small_svd or torch_small_svd,
                                    normal or noise.normal)


def lowrank_split(x: torch.Tensor, rank: int, power_iters: int = 2, generator: torch.Generator | None = None,
                  small_svd: SmallSVD | None = None, normal: Normal | None = None):
    """(U, S, V, residual) with residual = x - U diag(S) V^T (float32)."""
    u, s, v = randomized_svd(x, rank, power_iters, generator, small_svd, normal)
    with torch.autocast(x.device.type, enabled=False):
        return u, s, v, x.float() - (u * s) @ v.T


def _cholesky_qr(y: torch.Tensor, passes: int):
    """(Q, R) with y = Q R, R upper triangular (r x r): ``passes`` shifted CholeskyQR passes, in FP64.

    Each pass factors Y^T Y + s I = R^T R with s = 11 (m r + r (r + 1)) u trace(Y^T Y) + tiny
    (Fukaya et al.'s shift, trace >= ||Y||_2^2), which makes the Cholesky factorization succeed
    for any finite Y, then Q = Y R^-1.  ``cholesky_ex`` does not check errors: no host sync.
    """
    m, r = y.shape
    c = 11.0 * (m * r + r * (r + 1)) * 2.0**-53
    q, rr = y, None
    for _ in range(passes):
        g = q.mT @ q
        d = g.diagonal()
        d.add_(d.sum().add_(_FLOOR / c), alpha=c)         # g + (c trace(g) + floor) I: 3 small kernels
        f = torch.linalg.cholesky_ex(g, upper=True).L   # g = f^T f
        q = torch.linalg.solve_triangular(f, q, upper=True, left=False)
        rr = f if rr is None else f @ rr
    return q, rr


def _randomized_svd_fp32(xf: torch.Tensor, rank: int, power_iters: int, generator, small_svd: SmallSVD,
                         normal: Normal):
    m, n = xf.shape
    r = min(rank, m, n)
    omega = normal((n, r), generator, xf.device)
    y = xf @ omega
    for _ in range(power_iters):
        q, _ = _cholesky_qr(y.double(), 1)
        q, _ = _cholesky_qr((xf.T @ q.float()).double(), 1)
        y = xf @ q.float()
    q, _ = _cholesky_qr(y.double(), 2)                # m x r, orthonormal columns
    bt = (xf.T @ q.float()).double()                  # B^T = (Q^T X)^T, n x r
    qb, rb = _cholesky_qr(bt, 2)                      # B^T = Qb Rb
    us, ws = small_svd(rb.mT)                         # Rb^T = Us diag(.) Ws^T, so B = Us diag(.) (Qb Ws)^T
    u = q @ us
    v = qb @ ws
    s = (us * (bt.mT @ v)).sum(0).clamp_min_(0)       # diag(U^T X V) = diag(Us^T B V)
    s, order = torch.sort(s, descending=True, stable=True)
    return u.float().index_select(1, order), s.float(), v.float().index_select(1, order)


def torch_small_svd(a: torch.Tensor):
    """(Us, Ws) with a = Us diag(sigma) Ws^T for a small square a, by ``torch.linalg.svd``.

    On CUDA this is a cuSOLVER call whose error check synchronizes the device with the host: one tiny
    (r x r) call per operand."""
    us, _, wh = torch.linalg.svd(a)
    return us, wh.mT


def rotation_factors(c: torch.Tensor, z: torch.Tensor):
    """(Us, Ws) from a one-sided rotation a z = c (z orthogonal, the columns of c orthogonal): the columns
    of c normalized (a zero column stays ~0), and z."""
    return c / torch.linalg.vector_norm(c, dim=0).clamp_min(_FLOOR), z
