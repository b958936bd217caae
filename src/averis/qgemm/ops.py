"""The routed quantization ops: each runs the Triton kernel or the PyTorch reference, as ``resolve`` says.

The same bits either way (tests/test_kernels.py); ``backend=`` ("auto", "torch", "triton") overrides the
switch (``averis.use_backend``) for one call.  The references: averis.formats (quantize, fake_quantize),
averis.transforms (column statistics, Hadamard, mean split, mean quantization); the kernels:
averis.kernels.dispatch.
"""

from __future__ import annotations

import functools
import math

import torch

from ..formats import fake_quantize as reference_fake_quantize
from ..formats import noise
from ..formats.quantize import (
    QuantizedTensor,
    check_input,
    check_out_dtype,
    fake_quantize_spec,
    fake_quantize_unscaled_spec,
    quantize_spec,
)
from ..formats.spec import FormatSpec, make_spec
from ..transforms import hadamard16
from ..transforms import mean as _mean
from .backend import dispatch, resolve


def quantize(
    x: torch.Tensor,
    fmt: str,
    *,
    axis: int = -1,
    block_shape: tuple[int, ...] | None = None,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
    scale_rule: str | None = None,
    backend: str | None = None,
    pad: bool = False,
    check_finite: bool = True,
    tensor_amax: torch.Tensor | None = None,
) -> QuantizedTensor:
    """Quantize ``x`` to NVFP4 or MXFP4 in blocks along ``axis``.

    fmt: "nvfp4" (1x16 blocks, or block_shape=(16, 16) tiles; E4M3 scales + FP32
    tensor scale) or "mxfp4" (1x32 blocks, E8M0 scales; scale_rule "floor" (OCP,
    default) or "ceil").  rounding: "nearest" (ties to even) or "stochastic"
    (seeded through ``generator``).  pad: zero-pad the block axis up to a whole
    block instead of raising.  check_finite: raise on NaN/Inf (costs one host
    sync); with False a non-finite input dequantizes to NaN (the training path).
    tensor_amax: the NVFP4 tensor amax when the caller already has it (it must
    equal amax(|x|); the Averis residual gets it from one statistics pass).
    backend: "auto", "torch" or "triton" for this call (default: ``averis.use_backend``'s).
    """
    spec = make_spec(fmt, block_shape, rounding, scale_rule)
    axis = check_input(x, spec, axis, pad, check_finite, generator)
    impl = dispatch().quantize if resolve(x, backend) else quantize_spec
    return impl(x, spec, axis, generator, pad, tensor_amax)


def fake_quantize(
    x: torch.Tensor,
    fmt: str,
    *,
    axis: int = -1,
    block_shape: tuple[int, ...] | None = None,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
    scale_rule: str | None = None,
    backend: str | None = None,
    pad: bool = False,
    check_finite: bool = True,
    tensor_amax: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """x's shape, holding the dequantized FP4 values (the path training uses), in x's dtype or ``out_dtype``;
    contiguous on every backend.

    Equals ``quantize(x, fmt, **options).dequantize().to(out_dtype or x.dtype)`` bit for bit.  out_dtype
    (e.g. the BF16 a GEMM consumes) saves the caller a cast pass over an FP32 input.
    """
    return _fake_quantize(x, fmt, False, axis=axis, block_shape=block_shape, rounding=rounding, generator=generator,
                          scale_rule=scale_rule, backend=backend, pad=pad, check_finite=check_finite,
                          tensor_amax=tensor_amax, out_dtype=out_dtype)


def fake_quantize_unscaled(x: torch.Tensor, fmt: str, **options) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(code x block scale in ``out_dtype``, NVFP4 tensor decode scale or None): ``fake_quantize`` (same
    options) with the tensor scale kept apart, for a GEMM that applies it to its FP32 accumulator (what FP4
    tensor cores do).  values.float() * scale equals ``fake_quantize(x, ..., out_dtype=torch.float32)`` bit
    for bit."""
    return _fake_quantize(x, fmt, True, **options)


def _fake_quantize(x: torch.Tensor, fmt: str, unscaled: bool, *, axis: int = -1, block_shape=None,
                   rounding: str = "nearest", generator=None, scale_rule: str | None = None,
                   backend: str | None = None, pad: bool = False, check_finite: bool = True,
                   tensor_amax: torch.Tensor | None = None, out_dtype: torch.dtype | None = None):
    out_dtype = check_out_dtype(out_dtype) or x.dtype
    spec = make_spec(fmt, block_shape, rounding, scale_rule)
    axis = check_input(x, spec, axis, pad, check_finite, generator)
    if resolve(x, backend):
        return dispatch().fake_quantize(x, spec, axis, generator, pad, tensor_amax, out_dtype, unscaled=unscaled)
    reference = fake_quantize_unscaled_spec if unscaled else fake_quantize_spec
    return reference(x, spec, axis, generator, pad, tensor_amax, out_dtype)


def tensor_amax(x: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """amax(|x|) as a 0-d float32 device tensor, without a host sync."""
    if resolve(x, backend):
        return dispatch().amax(x)
    return x.detach().abs().amax().float()


def normal_noise(shape: tuple[int, ...], generator, device: torch.device, *,
                 backend: str | None = None) -> torch.Tensor:
    """averis.formats.noise.normal with its two uniform draws from one kernel on the Triton path (the hash is
    integer arithmetic, so the same bits); the Box-Muller tail is the reference's own PyTorch."""
    if not isinstance(generator, noise.Stream) or not resolve(generator.table, backend):
        return noise.normal(shape, generator, device)
    n = math.prod(shape)
    u1, u2 = dispatch().uniform_pair(n, generator.next_seed(), generator.next_seed())
    return noise.box_muller(u1, u2).reshape(shape)


def column_stats(x: torch.Tensor, *, backend: str | None = None, chunk: int | None = None) -> _mean.ColumnStats:
    """(sum, max, min, mean, residual_amax) of the columns of a 2D tensor in one read.

    ``mean`` is the Averis mu (float32) and ``residual_amax`` equals amax(|x.float() - mean|) exactly.
    Summation order: averis.transforms.mean (the reference; the kernel gives the same bits).
    ``chunk``: rows per sequential chunk (tests use small chunks to exercise many of them).
    """
    chunk = chunk or _mean.CHUNK
    if resolve(x, backend):
        return _mean.ColumnStats(*dispatch().column_stats(x, chunk, _mean.GROUP))
    return _mean.column_stats(x, chunk)


def mean_split(x: torch.Tensor, dim: int = 0, *, all_reduce: bool = False, backend: str | None = None):
    """averis.transforms.mean_split with the routed ``column_stats`` (same bits)."""
    return _mean.mean_split(x, dim, all_reduce=all_reduce, stats=functools.partial(column_stats, backend=backend))


def split_decision(stats: _mean.ColumnStats, rows: int, threshold: float, *,
                   backend: str | None = None) -> _mean.SplitDecision:
    """averis.transforms.mean.split_decision routed: one kernel where PyTorch launches about twenty small ops (the
    same bits)."""
    if resolve(stats.mean, backend):
        return _mean.SplitDecision(*dispatch().split_decision(stats.mean, stats.max, stats.min, stats.residual_amax,
                                                              _mean.range_to_sigma(rows), threshold,
                                                              _mean.DECIDE_BLOCK))
    return _mean.split_decision(stats, rows, threshold)


def mean_terms(u0: torch.Tensor, v0: torch.Tensor, u1: torch.Tensor | None = None, v1: torch.Tensor | None = None,
               out_dtype: torch.dtype = torch.float32, length: int = 0, *, backend: str | None = None) -> torch.Tensor:
    """averis.transforms.mean.mean_terms (u0 (v0 + length v1)^T + u1 v1^T, one fixed rounding) routed: one kernel
    reads the vectors in their own dtypes and writes the terms in out_dtype, where PyTorch runs several passes
    (the same bits)."""
    if length and u1 is None:
        raise ValueError("mean_terms: length folds l x v1 into v0, so it needs u1 and v1")
    if resolve(u0, backend):
        return dispatch().mean_terms(u0, v0, u1, v1, out_dtype, length)
    return _mean.mean_terms(u0, v0, u1, v1, out_dtype, length)


def quantize_mean(mu: torch.Tensor, mean_format: str, *, fmt: str | None = None, axis: int = -1,
                  generator: torch.Generator | None = None, backend: str | None = None,
                  **fp4_options) -> torch.Tensor:
    """averis.transforms.quantize_mean with the routed ``fake_quantize`` (same bits)."""
    return _mean.quantize_mean(mu, mean_format, fmt=fmt, axis=axis, generator=generator,
                               quantizer=functools.partial(fake_quantize, backend=backend), **fp4_options)


# ------------------------------------------------------------------ fused ops
def _spec(spec, **options) -> FormatSpec:
    if isinstance(spec, FormatSpec):
        return spec
    return make_spec(
        spec, options.get("block_shape"), options.get("rounding", "nearest"), options.get("scale_rule")
    )


def _ref_options(spec: FormatSpec, generator, pad: bool) -> dict:
    return dict(
        block_shape=spec.block_shape,
        rounding=spec.rounding,
        scale_rule=spec.scale_rule,
        generator=generator,
        pad=pad,
        check_finite=False,
    )


def _reference_residual(x, mu, residual_amax, spec: FormatSpec, axis: int, out_dtype, options: dict):
    """fake_quantize(x.float() - mu) (mu broadcast over dim 0 of a 2D x), in ``out_dtype`` (default x's)."""
    out_dtype = out_dtype or x.dtype
    r = x.float() - mu.float().reshape(1, -1)
    if spec.fmt == "nvfp4" and residual_amax is not None:
        options = {**options, "tensor_amax": residual_amax}
    return reference_fake_quantize(r, spec.fmt, axis=axis, **options).to(out_dtype)


def fake_quantize_residual(
    x: torch.Tensor,
    mu: torch.Tensor,
    residual_amax: torch.Tensor | None,
    spec,
    axis: int = -1,
    generator: torch.Generator | None = None,
    *,
    pad: bool = False,
    out_dtype: torch.dtype | None = None,
    backend: str | None = None,
    **options,
):
    """fake_quantize(x.float() - mu, tensor_amax=residual_amax) fused: one read of x (2D, mu per column).

    ``spec``: a FormatSpec or a format name (then block_shape / rounding / scale_rule in options).
    Result in ``out_dtype`` (default x's dtype).
    """
    spec = _spec(spec, **options)
    if resolve(x, backend):
        return dispatch().fake_quantize_residual(x, mu, residual_amax, spec, axis, generator, pad, out_dtype)
    return _reference_residual(x, mu, residual_amax, spec, axis, out_dtype, _ref_options(spec, generator, pad))


def fake_quantize_hadamard(
    x: torch.Tensor,
    signs: torch.Tensor,
    spec,
    axis: int = -1,
    generator: torch.Generator | None = None,
    *,
    out_dtype: torch.dtype | None = None,
    backend: str | None = None,
    **options,
):
    """fake_quantize(hadamard16(x, signs, axis)) along ``axis``, fused (16-point RHT, NVIDIA wgrad)."""
    spec = _spec(spec, **options)
    if resolve(x, backend):
        return dispatch().fake_quantize_hadamard(x, signs, spec, axis, generator, out_dtype=out_dtype)
    ref = _ref_options(spec, generator, False)
    return reference_fake_quantize(hadamard16(x, signs, axis), spec.fmt, axis=axis, **ref).to(out_dtype or x.dtype)


def fake_quantize_dual(
    x: torch.Tensor,
    spec,
    generator: torch.Generator | None = None,
    *,
    mu: torch.Tensor | None = None,
    tensor_amax: torch.Tensor | None = None,
    pad: bool = False,
    out_dtype: torch.dtype | None = None,
    backend: str | None = None,
    **options,
):
    """(rowwise, columnwise) fake-quant of a 2D tensor (of x - mu when mu is given) from one read.

    Equals fake_quantize(., axis=1) then fake_quantize(., axis=0) with the same generator.
    """
    spec = _spec(spec, **options)
    if resolve(x, backend):
        return dispatch().fake_quantize_dual(x, spec, generator, tensor_amax, mu, pad, out_dtype)
    ref = _ref_options(spec, generator, pad)
    if mu is not None:
        return (
            _reference_residual(x, mu, tensor_amax, spec, 1, out_dtype, ref),
            _reference_residual(x, mu, tensor_amax, spec, 0, out_dtype, ref),
        )
    dt = out_dtype or x.dtype
    if tensor_amax is not None:
        ref["tensor_amax"] = tensor_amax
    return (
        reference_fake_quantize(x, spec.fmt, axis=1, **ref).to(dt),
        reference_fake_quantize(x, spec.fmt, axis=0, **ref).to(dt),
    )
