"""Averis mean-residual split (method.md section 4): X = 1 mu + X_R, mu the mean over tokens.

The 2D mean comes from ``column_stats``, whose floating-point order is fixed so that the Triton kernel
(``averis.kernels.dispatch.column_stats``) reproduces it bit for bit:

- column sums of a 2D tensor in float32 (``column_sum``): each chunk of ``CHUNK`` rows (zero-padded) summed by a fixed
  pairwise tree (rows 2i + 2i+1, level by level), the chunk sums likewise inside groups of ``GROUP``
  chunks (zero-padded), then the group sums one after the other from +0;
- mean = sum / rows (a true float32 division: a tensor divisor, since PyTorch on CUDA multiplies by the
  reciprocal of a Python-number divisor);
- the exact residual amax ``max_j max(colmax_j - mu_j, mu_j - colmin_j)``, which equals
  ``amax(|x.float() - mu|)`` bit for bit (rounding is monotonic, so the extreme of each column's
  ``x - mu`` comes from its max or min).

``column_sum`` also defines the wgrad token sums that the columnwise quantize kernel emits as a by-product
(``token_sum``: the sums over the tokens of the quantized residual values, chunks of ``TOKEN_CHUNK``, the
kernel's token tile).  ``mean_terms`` (the rank-one terms that restore the mean in wgrad) is elementwise with
one fixed rounding; ``split_decision`` (the adaptive split's rule) sums over channels in a fixed order too.

``mean_split``, ``quantize_mean`` and ``mean_terms`` are the PyTorch reference; ``averis.qgemm`` passes them the routed
statistics and quantizer (``stats=``, ``quantizer=``), which give the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.distributed as dist

from ..formats import fake_quantize

_E4M3_MAX = 448.0
CHUNK = 128
GROUP = 64
TOKEN_CHUNK = 64  # the wgrad token sums' chunk: the columnwise quantize kernel's token tile (pinned, not its config)


def _tree(t: torch.Tensor) -> torch.Tensor:
    """(n, G, m) -> (n, m): pairwise tree sum over dim 1 (G a power of two)."""
    while t.shape[1] > 1:
        t = t[:, 0::2] + t[:, 1::2]
    return t[:, 0]


def _blocked_sum(t: torch.Tensor, block: int) -> torch.Tensor:
    """(n, m) -> (m,): the rows in blocks of ``block`` (zero-padded), a pairwise tree inside each block, the
    block sums one after the other from +0 (the kernels' order)."""
    nb = max(1, -(-t.shape[0] // block))
    blocks = _tree(torch.nn.functional.pad(t, (0, 0, 0, nb * block - t.shape[0])).view(nb, block, t.shape[1]))
    total = torch.zeros(t.shape[1], dtype=torch.float32, device=t.device)
    for k in range(nb):
        total = total + blocks[k]
    return total


class ColumnStats(NamedTuple):
    sum: torch.Tensor  # (m,) float32
    max: torch.Tensor  # (m,) float32
    min: torch.Tensor  # (m,) float32
    mean: torch.Tensor  # (m,) float32
    residual_amax: torch.Tensor  # () float32: amax(|x - mean|)


def column_sum(x: torch.Tensor, chunk: int = CHUNK, group: int = GROUP) -> torch.Tensor:
    """(m,) float32: the column sums of a 2D tensor (l rows x m columns) in the kernels' one order.

    +0.0 first (-0 becomes +0, so the sums never see a -0, whatever identity a reduction uses), zero-padding to
    whole chunks of ``chunk`` rows, a pairwise tree inside each chunk, the chunk sums likewise inside groups of
    ``group`` chunks, the group sums one after the other from +0 (``_blocked_sum``)."""
    xf = x.float()
    rows, cols = xf.shape
    nch = max(1, -(-rows // chunk))
    padded = torch.nn.functional.pad(xf + 0.0, (0, 0, 0, nch * chunk - rows)).view(nch, chunk, cols)
    return _blocked_sum(_tree(padded), group)


def column_stats(x: torch.Tensor, chunk: int = CHUNK) -> ColumnStats:
    """Column statistics of a 2D tensor (l tokens x m channels) in the kernels' summation order.

    ``chunk``: rows per sequential chunk (tests use small chunks to exercise many of them)."""
    if x.ndim != 2:
        raise ValueError(f"column_stats takes a 2D (tokens x channels) tensor, got shape {tuple(x.shape)}")
    xf = x.float()
    rows = xf.shape[0]
    total = column_sum(xf, chunk)
    mean = total / torch.full_like(total, float(rows))
    cmax, cmin = xf.amax(0), xf.amin(0)
    ramax = torch.maximum(cmax - mean, mean - cmin).amax()
    return ColumnStats(total, cmax, cmin, mean, ramax)


def token_sum(values: torch.Tensor, folded: bool) -> torch.Tensor:
    """(m,) float32: the sums over the tokens of a quantized wgrad operand, tokens-major (l tokens x m channels),
    as the GEMM's mean terms use them: ``column_sum`` in chunks of ``TOKEN_CHUNK`` of the values as stored (their
    dtype's bits), rounded once to that dtype where the NVFP4 tensor scale is folded into the values (``folded``:
    the folded GEMM's rounding), else exact in float32 (the caller scales it in the epilogue).  The columnwise
    quantize kernel emits the same bits as a by-product (``averis.kernels.dispatch.fake_quantize(token_sum=)``)."""
    total = column_sum(values, TOKEN_CHUNK)
    return total.to(values.dtype).float() if folded else total


def mean_split(x: torch.Tensor, dim: int = 0, *, all_reduce: bool = False,
               stats: Callable[[torch.Tensor], ColumnStats] | None = None):
    """(mu, residual) with mu = mean of x over ``dim`` (kept as a size-1 dim), residual = x - mu.

    Both are float32 (the mean is accumulated in FP32).  all_reduce: mu is the mean over the tokens of
    every rank of the default torch.distributed group (each must hold the same number): the ranks'
    sums are all-reduced, then divided by the global count, so every rank gets the same mu.  With two
    ranks of 2**k whole chunks of ``CHUNK`` rows each, at most one group (GROUP x CHUNK = 8192 rows), it
    is the 2D mean of the concatenated batch bit for bit: the concatenation's fixed-order sum is then
    rank 0's sum + rank 1's sum, the one addition the all-reduce makes.  Otherwise (more ranks, other
    sizes) the order of the float sum differs: equal to rounding, not to the bit.
    A 2D mean is ``column_stats``' (fixed summation order); ``stats`` replaces that function by one
    with the same result (the Triton kernel, through averis.qgemm).
    """
    xf = x.float()
    world = dist.get_world_size() if all_reduce and dist.is_available() and dist.is_initialized() else 1
    if x.ndim == 2:
        rows = dim % 2 == 0
        st = (stats or column_stats)(x if rows else x.T)
        shape = (1, -1) if rows else (-1, 1)
        mu = (st.mean if world == 1 else _global_mean(st.sum, x.shape[dim % 2], world)).reshape(shape)
    elif world == 1:
        mu = xf.mean(dim=dim, keepdim=True)
    else:
        mu = _global_mean(xf.sum(dim=dim, keepdim=True), x.shape[dim], world)
    return mu, xf - mu


def _global_mean(local_sum: torch.Tensor, count: int, world: int) -> torch.Tensor:
    """The sum over every rank divided by world x count (a tensor divisor, as column_stats divides)."""
    total = local_sum.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / torch.full_like(total, float(count * world))


def mean_dtype(mean_format: str) -> torch.dtype:
    """The dtype quantize_mean returns for a mean format: bfloat16 for "bf16" (kept as it is: every consumer
    promotes it to float32 exactly or multiplies it in bfloat16, so a float32 copy would cost a cast kernel and
    change no bit), float32 for the others."""
    return torch.bfloat16 if mean_format == "bf16" else torch.float32


def quantize_mean(mu: torch.Tensor, mean_format: str, *, fmt: str | None = None, axis: int = -1,
                  generator: torch.Generator | None = None, quantizer: Callable | None = None,
                  **fp4_options) -> torch.Tensor:
    """The mean vector in its recipe precision, in ``mean_dtype(mean_format)`` (the value dequantized).

    "bf16" / "fp32": a cast.  "fp8": float8_e4m3fn with a per-tensor scale amax/448, so that
    small gradient means do not flush to zero.  "fp4": the operand's own FP4 quantizer
    (``fmt`` with ``fp4_options``) along ``axis``, zero-padded to whole blocks; ``quantizer``: a
    function with fake_quantize's signature and results to use instead of the reference.
    """
    if mean_format in ("fp32", "bf16"):
        return mu.to(mean_dtype(mean_format))
    if mean_format == "fp8":
        amax = mu.abs().amax().float()
        # divide by a tensor: CUDA computes x / python_scalar as x * (1 / scalar), which can differ from the CPU
        scale = torch.where(amax > 0, amax / torch.full_like(amax, _E4M3_MAX), torch.ones_like(amax))
        return (mu.float() / scale).to(torch.float8_e4m3fn).float() * scale
    if mean_format == "fp4":
        if fmt not in ("nvfp4", "mxfp4"):
            return mu.float()  # identity quantizers (the test hook) leave the mean exact
        quantize = quantizer or fake_quantize
        return quantize(mu.float(), fmt, axis=axis, generator=generator, pad=True, check_finite=False, **fp4_options)
    raise ValueError(f"unknown mean_format {mean_format!r}: use 'bf16', 'fp8', 'fp4' or 'fp32'")


def mean_terms(u0: torch.Tensor, v0: torch.Tensor, u1: torch.Tensor | None = None, v1: torch.Tensor | None = None,
               out_dtype: torch.dtype = torch.float32, length: int = 0) -> torch.Tensor:
    """The wgrad mean restoration terms u0 v0'^T (+ u1 v1^T), P x Q, for vectors u (P) and v (Q) of any float
    dtype, read as float32: v0' = v0 + length x v1 (each step rounded; wgrad's l mu_A mu_B folded into the first
    product, length 0: v0' = v0), each product rounded, then one add (no fused multiply-add), then rounded to
    ``out_dtype``.  Elementwise with a fixed rounding, so the kernel (``averis.kernels.dispatch.mean_terms``),
    this reference on the CPU and on CUDA give the same bits (a rank-2 GEMM's result would depend on the BLAS)."""
    v0 = v0.reshape(1, -1).float()
    if length:
        v0 = v0 + v1.reshape(1, -1).float() * length
    t = u0.reshape(-1, 1).float() * v0
    if u1 is not None:
        t = t + u1.reshape(-1, 1).float() * v1.reshape(1, -1).float()
    return t.to(out_dtype)


DECIDE_BLOCK = 256  # the adaptive split's sums over channels: blocks of this many, a pairwise tree inside each


class SplitDecision(NamedTuple):
    split: torch.Tensor  # () bool: split this source's mean off
    mean: torch.Tensor  # (m,) float32: the mean where split, else zeros
    residual_amax: torch.Tensor  # () float32: the residual's amax where split, else amax(|x|)
    counts: torch.Tensor  # (2,) int64: [1, split], what the layer adds to its averis_splits counters
    energies: torch.Tensor  # (2,) float32: [sum mean_c^2, sum sigma_c^2], R^2 = the first over their sum


def range_to_sigma(rows: int) -> float:
    """The expected range of ``rows`` normal draws in standard deviations, 2 sqrt(2 ln rows): the adaptive split
    estimates a channel's spread as its (max - min) over this."""
    return 2.0 * math.sqrt(2.0 * math.log(max(rows, 2)))


def split_decision(stats: ColumnStats, rows: int, threshold: float) -> SplitDecision:
    """The adaptive split of one source from its column statistics (qgemm.operand.decide_split says why):
    R^2 = sum mean_c^2 / (sum mean_c^2 + sum sigma_c^2), sigma_c = (max_c - min_c) / range_to_sigma(rows),
    split = R >= threshold.  Float32 throughout, true divisions, the channel sums in blocks of DECIDE_BLOCK
    (_blocked_sum's order): the one kernel (``averis.kernels.dispatch.split_decision``) gives the same bits."""
    mean_energy = _blocked_sum(stats.mean.float().square().reshape(-1, 1), DECIDE_BLOCK).reshape(())
    spread = (stats.max - stats.min).float() / torch.full_like(stats.max, range_to_sigma(rows), dtype=torch.float32)
    spread_energy = _blocked_sum(spread.square().reshape(-1, 1), DECIDE_BLOCK).reshape(())
    split = (mean_energy >= threshold * threshold * (mean_energy + spread_energy)) & (mean_energy > 0)
    amax = torch.maximum(stats.max.amax(), -stats.min.amin()).float()  # = amax(|x|) exactly
    counts = torch.stack([torch.ones_like(split, dtype=torch.int64), split.to(torch.int64)])
    mean = stats.mean.float()
    return SplitDecision(split, torch.where(split, mean, torch.zeros_like(mean)),
                         torch.where(split, stats.residual_amax.float(), amax), counts,
                         torch.stack([mean_energy, spread_energy]))
