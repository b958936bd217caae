"""Averis mean-residual split (method.md section 4): X = 1 mu + X_R, mu the mean over tokens."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..formats import fake_quantize

_E4M3_MAX = 448.0


def mean_split(x: torch.Tensor, dim: int = 0, *, all_reduce: bool = False):
    """(mu, residual) with mu = mean of x over ``dim`` (kept as a size-1 dim), residual = x - mu.

    Both are float32 (the mean is accumulated in FP32).  all_reduce: average mu over the ranks
    of the default torch.distributed group (every rank must hold the same number of tokens).
    """
    xf = x.float()
    if x.ndim == 2:  # [kernels] the fixed-order column mean of averis.kernels (same bits on CPU and GPU)
        from ..kernels import column_stats

        rows = dim % 2 == 0
        mu = column_stats(x if rows else x.T).mean.reshape((1, -1) if rows else (-1, 1))
    else:
        mu = xf.mean(dim=dim, keepdim=True)
    if all_reduce and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(mu, op=dist.ReduceOp.SUM)
        mu = mu / dist.get_world_size()
    return mu, xf - mu


def quantize_mean(mu: torch.Tensor, mean_format: str, *, fmt: str | None = None, axis: int = -1,
                  generator: torch.Generator | None = None, **fp4_options) -> torch.Tensor:
    """The mean vector in its recipe precision, dequantized to float32.

    "bf16" / "fp32": a cast.  "fp8": float8_e4m3fn with a per-tensor scale amax/448, so that
    small gradient means do not flush to zero.  "fp4": the operand's own FP4 quantizer
    (``fmt`` with ``fp4_options``) along ``axis``, zero-padded to whole blocks.
    """
    if mean_format == "fp32":
        return mu.float()
    if mean_format == "bf16":
        return mu.to(torch.bfloat16).float()
    if mean_format == "fp8":
        amax = mu.abs().amax().float()
        # divide by a tensor: CUDA computes x / python_scalar as x * (1 / scalar), which can differ from the CPU
        scale = torch.where(amax > 0, amax / torch.full_like(amax, _E4M3_MAX), torch.ones_like(amax))
        return (mu.float() / scale).to(torch.float8_e4m3fn).float() * scale
    if mean_format == "fp4":
        if fmt not in ("nvfp4", "mxfp4"):
            return mu.float()  # identity quantizers (the test hook) leave the mean exact
        return fake_quantize(mu.float(), fmt, axis=axis, generator=generator, pad=True, check_finite=False,
                             **fp4_options)
    raise ValueError(f"unknown mean_format {mean_format!r}: use 'bf16', 'fp8', 'fp4' or 'fp32'")
