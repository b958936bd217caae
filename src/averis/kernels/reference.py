"""PyTorch references (and CPU fallbacks) for the fused kernels that have no counterpart in averis.formats.

Each function fixes its floating-point order so that the Triton kernel reproduces it bit for bit:

- ``column_stats``: column sums of a 2D tensor in float32: each chunk of ``CHUNK`` rows (zero-padded)
  summed by a fixed pairwise tree (rows 2i + 2i+1, level by level), the chunk sums likewise inside
  groups of ``GROUP`` chunks (zero-padded), then the group sums one after the other from +0;
  mean = sum / rows (a true float32 division: a tensor divisor, since PyTorch on CUDA multiplies
  by the reciprocal of a Python-number divisor); the exact residual amax
  ``max_j max(colmax_j - mu_j, mu_j - colmin_j)``, which equals ``amax(|x.float() - mu|)`` bit for bit
  (rounding is monotonic, so the extreme of each column's ``x - mu`` comes from its max or min).
- ``hadamard16`` (defined in ``averis.transforms.hadamard``): the 16-point Walsh-Hadamard transform of
  blocks of 16 along an axis, after an elementwise random-sign vector, by butterflies h = 1, 2, 4, 8 and
  a final exact * 1/4 (orthonormal).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..formats import fake_quantize
from ..transforms.hadamard import hadamard16  # the butterflies the kernel reproduces

CHUNK = 128
GROUP = 64


def _tree(t: torch.Tensor) -> torch.Tensor:
    """(n, G, m) -> (n, m): pairwise tree sum over dim 1 (G a power of two)."""
    while t.shape[1] > 1:
        t = t[:, 0::2] + t[:, 1::2]
    return t[:, 0]


class ColumnStats(NamedTuple):
    sum: torch.Tensor  # (m,) float32
    max: torch.Tensor  # (m,) float32
    min: torch.Tensor  # (m,) float32
    mean: torch.Tensor  # (m,) float32
    residual_amax: torch.Tensor  # () float32: amax(|x - mean|)


def column_stats(x: torch.Tensor, chunk: int = CHUNK) -> ColumnStats:
    """Column statistics of a 2D tensor (l tokens x m channels) in the kernels' summation order.

    ``chunk``: rows per sequential chunk (tests use small chunks to exercise many of them)."""
    if x.ndim != 2:
        raise ValueError(f"column_stats takes a 2D (tokens x channels) tensor, got shape {tuple(x.shape)}")
    xf = x.float()
    rows, cols = xf.shape
    nch = -(-rows // chunk)
    # + 0.0 turns -0 into +0 (the sums never see a -0, whatever order or identity a reduction uses)
    padded = torch.nn.functional.pad(xf + 0.0, (0, 0, 0, nch * chunk - rows)).view(nch, chunk, cols)
    part = _tree(padded)
    ngr = -(-nch // GROUP)
    groups = _tree(torch.nn.functional.pad(part, (0, 0, 0, ngr * GROUP - nch)).view(ngr, GROUP, cols))
    total = torch.zeros(cols, dtype=torch.float32, device=x.device)
    for k in range(ngr):
        total = total + groups[k]
    mean = total / torch.full_like(total, float(rows))
    cmax, cmin = xf.amax(0), xf.amin(0)
    ramax = torch.maximum(cmax - mean, mean - cmin).amax()
    return ColumnStats(total, cmax, cmin, mean, ramax)


def fake_quantize_residual(
    x: torch.Tensor, mu: torch.Tensor, residual_amax: torch.Tensor | None, fmt: str, **options
) -> torch.Tensor:
    """fake_quantize(x.float() - mu) (mu broadcast over dim 0 of a 2D x), in ``out_dtype`` (default x's)."""
    out_dtype = options.pop("out_dtype", None) or x.dtype
    r = x.float() - mu.float().reshape(1, -1)
    if fmt == "nvfp4" and residual_amax is not None:
        options["tensor_amax"] = residual_amax
    return fake_quantize(r, fmt, backend="torch", **options).to(out_dtype)


def fake_quantize_hadamard(
    x: torch.Tensor, signs: torch.Tensor, fmt: str, *, axis: int = -1, **options
) -> torch.Tensor:
    """fake_quantize(hadamard16(x, signs, axis)) along the same axis, in ``out_dtype`` (default x's)."""
    out_dtype = options.pop("out_dtype", None) or x.dtype
    return fake_quantize(hadamard16(x, signs, axis), fmt, axis=axis, backend="torch", **options).to(out_dtype)
