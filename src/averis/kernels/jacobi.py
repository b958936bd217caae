"""SVD of a small square matrix by one-sided (Hestenes) Jacobi in one Triton program.

Used by ``averis.qgemm.lowrank`` for the r x r factor of the Metis randomized SVD on CUDA:
cuSOLVER's SVD checks its result on the host (a device sync per call); this kernel is one launch
and never synchronizes.  The whole matrix lives in registers (n <= 32, padded to 16 or 32).

Parallel cyclic Jacobi, round-robin ordering: in round k of a sweep, column j is paired with
partner_k(j) (the circle method: every pair meets once per sweep) and all n/2 disjoint pairs
are rotated at once so that their columns become orthogonal; the rotations are accumulated in
Z.  Sweeps stop when every pair is orthogonal to ``tol`` relative to the columns' norms
(quadratic convergence: ~6 sweeps for a 16 x 16 matrix in FP64, the last one a check), or after
``max_sweeps``.  On exit A Z = C with orthogonal columns: A = (C / |C|) diag(|C|) Z^T.  Both
columns of a pair compute their rotation from the same numbers, so Z stays orthogonal to rounding.
Compiles for sm_90 without register spills (checked with ptxas: 62 registers at n <= 16).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import available

_HAS_GATHER = hasattr(tl, "gather")   # Triton >= 3.3


@triton.jit
def _jacobi_kernel(a_ptr, c_ptr, z_ptr, n, TOL: tl.constexpr, MAX_SWEEPS: tl.constexpr, RB: tl.constexpr,
                   GATHER: tl.constexpr):
    idx = tl.arange(0, RB)
    rows = idx[:, None]
    cols = idx[None, :]
    inside = (rows < n) & (cols < n)
    a = tl.load(a_ptr + rows * n + cols, mask=inside, other=0.0)       # padded with zero columns
    z = tl.where(rows == cols, 1.0, 0.0).to(a.dtype)
    mid = idx[None, :, None]                                           # the summed axis of a column gather
    off = tl.max(tl.zeros([RB], dtype=a.dtype), axis=0) + 1.0          # largest |cos| between paired columns
    sweep = tl.program_id(0) * 0
    while (off > TOL) & (sweep < MAX_SWEEPS):
        off = off * 0.0
        for k in range(RB - 1):
            # circle method: RB - 1 stays, the others pair up around k
            partner = tl.where(idx == RB - 1, k, tl.where(idx == k, RB - 1, (2 * k - idx + 2 * (RB - 1)) % (RB - 1)))
            if GATHER:                                                  # ap[:, j] = a[:, partner(j)]
                index = tl.broadcast_to(partner[None, :], (RB, RB))
                ap = tl.gather(a, index, 1)
                zp = tl.gather(z, index, 1)
            else:                                                       # the same, exact, in O(RB^3)
                pick = mid == partner[None, None, :]                    # pick[., k', j]: k' == partner(j)
                ap = tl.sum(tl.where(pick, a[:, :, None], 0.0), axis=1)
                zp = tl.sum(tl.where(pick, z[:, :, None], 0.0), axis=1)
            alpha = tl.sum(a * a, axis=0)
            beta = tl.sum(ap * ap, axis=0)
            gamma = tl.sum(a * ap, axis=0)
            lo = idx < partner                                          # both columns of a pair compute the same c, s
            a_lo = tl.where(lo, alpha, beta)
            a_hi = tl.where(lo, beta, alpha)
            norm = tl.sqrt(alpha * beta)
            ratio = tl.where(norm > 0, tl.abs(gamma) / tl.where(norm > 0, norm, 1.0), 0.0)
            rot = ratio > TOL
            zeta = (a_hi - a_lo) / (2.0 * tl.where(rot, gamma, 1.0))
            t = tl.where(zeta >= 0, 1.0, -1.0) / (tl.abs(zeta) + tl.sqrt(1.0 + zeta * zeta))
            cs = 1.0 / tl.sqrt(1.0 + t * t)
            sn = tl.where(rot, cs * t, 0.0)
            cs = tl.where(rot, cs, 1.0)
            sn = tl.where(lo, -sn, sn)                                  # lo: c a_lo - s a_hi; hi: s a_lo + c a_hi
            a = a * cs[None, :] + ap * sn[None, :]
            z = z * cs[None, :] + zp * sn[None, :]
            off = tl.maximum(off, tl.max(ratio, axis=0))
        sweep += 1
    tl.store(c_ptr + rows * n + cols, a, mask=inside)
    tl.store(z_ptr + rows * n + cols, z, mask=inside)


def jacobi_svd(a: torch.Tensor, tol: float | None = None, max_sweeps: int = 30, gather: bool | None = None):
    """(C, Z) with a Z = C, Z orthogonal and the columns of C orthogonal, for a square a (n <= 32).

    Singular values: the column norms of C, in no particular order; left singular vectors: the
    normalized columns.  FP64 (default tol 1e-10) or FP32 (1e-6); CUDA, or CPU with TRITON_INTERPRET=1.
    ``gather``: fetch the partner columns with ``tl.gather`` (default where Triton has it, >= 3.3) or
    with an exact masked sum (O(n^3) per round, any Triton); both give the same bits.
    """
    if tol is None:
        tol = 1e-10 if a.dtype == torch.float64 else 1e-6
    n = a.shape[0]
    if a.dim() != 2 or a.shape[1] != n or n > 32:
        raise ValueError(f"jacobi_svd takes a square matrix of size <= 32, got {tuple(a.shape)}")
    if not available(a):
        raise RuntimeError("jacobi_svd needs a CUDA tensor (or TRITON_INTERPRET=1)")
    a = a.contiguous()
    c = torch.empty_like(a)
    z = torch.empty_like(a)
    rb = 16 if n <= 16 else 32
    gather = _HAS_GATHER if gather is None else gather
    _jacobi_kernel[(1,)](a, c, z, n, TOL=tol, MAX_SWEEPS=max_sweeps, RB=rb, GATHER=gather,
                         num_warps=4 if rb == 16 else 8)
    return c, z
