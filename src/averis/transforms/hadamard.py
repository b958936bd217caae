"""16-point Random Hadamard Transform: blocks of 16 along one axis times (D H16) / 4.

D is a diagonal of random signs, fixed for the whole run (seeded), and H16 the Sylvester
Hadamard matrix.  M = diag(s) H16 / 4 is orthogonal, so applying it to both operands of a GEMM
along the reduction axis leaves the product unchanged: (A M)(B M)^T = A B^T.  The NVIDIA recipe
applies it to the two wgrad operands along the token axis; it spreads outliers over 16
neighbours before block quantization.  The sign vector is fixed rather than redrawn per step so
that the quantization error it induces does not change character from step to step.
"""

from __future__ import annotations

import functools

import torch

BLOCK = 16


@functools.cache
def _sylvester16(device: torch.device) -> torch.Tensor:
    """H16 / 4, made once per device: a copy from the CPU at every use would break CUDA-graph capture."""
    h = torch.ones(1, 1)
    while h.shape[0] < BLOCK:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return (h / 4.0).to(device)  # orthonormal and symmetric: H @ H = I


def hadamard_matrix(signs: torch.Tensor) -> torch.Tensor:
    """The 16x16 orthogonal matrix diag(signs) @ H16 / 4 (float32, on the signs' device)."""
    return signs.float()[:, None] * _sylvester16(signs.device)


def random_signs(seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """16 random +-1 values (float32) from ``seed``; the same on every device."""
    g = torch.Generator().manual_seed(int(seed))
    bits = torch.randint(0, 2, (BLOCK,), generator=g)
    return (bits * 2 - 1).float().to(device)


def hadamard16(x: torch.Tensor, signs: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """x with every block of 16 along ``axis`` multiplied by diag(signs) H16 / 4 (float32 result).

    Computed by butterflies h = 1, 2, 4, 8 and a final exact * 1/4, in the fixed order the fused
    Triton kernel runs, so CPU, GPU and kernel give the same bits (a matmul's order depends on the
    BLAS).  The size of ``axis`` must be a multiple of 16 (zero-pad first: the transform keeps the
    padded product exact because it is orthogonal).
    """
    moved = x.float().movedim(axis, -1)
    if moved.shape[-1] % BLOCK:
        raise ValueError(
            f"the 16-point Hadamard transform needs a multiple of 16 along axis {axis}, got {moved.shape[-1]}"
        )
    v = moved.unflatten(-1, (-1, BLOCK)) * signs.float().reshape(BLOCK)
    for h in (1, 2, 4, 8):
        t = v.unflatten(-1, (BLOCK // (2 * h), 2, h))
        a, b = t[..., 0, :], t[..., 1, :]
        v = torch.stack([a + b, a - b], dim=-2).flatten(-3)
    return (v.flatten(-2) * 0.25).movedim(-1, axis)


def hadamard16_inverse(y: torch.Tensor, signs: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """The inverse of :func:`hadamard16` (the transpose of its orthogonal matrix)."""
    return _apply(y, hadamard_matrix(signs).T, axis)


def _apply(x: torch.Tensor, m: torch.Tensor, axis: int) -> torch.Tensor:
    n = x.shape[axis]
    if n % BLOCK:
        raise ValueError(f"the Hadamard axis has size {n}, not a multiple of {BLOCK}: zero-pad it first")
    moved = x.float().movedim(axis, -1)
    out = (moved.unflatten(-1, (n // BLOCK, BLOCK)) @ m).flatten(-2)
    return out.movedim(-1, axis)


def pad_to_multiple(x: torch.Tensor, multiple: int, axis: int = -1) -> torch.Tensor:
    """x zero-padded along ``axis`` up to a multiple of ``multiple`` (x itself when it already is)."""
    extra = (-x.shape[axis]) % multiple
    if not extra:
        return x
    axis = axis % x.ndim
    pads = [0, 0] * (x.ndim - 1 - axis) + [0, extra]
    return torch.nn.functional.pad(x, pads)
