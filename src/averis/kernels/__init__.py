"""Triton kernels for FP4 quantization; the PyTorch reference in averis.formats is the source of truth.

``available(x)`` says whether the Triton path can run for tensor ``x``: Triton must
import and the tensor must be on CUDA, or TRITON_INTERPRET=1 must be set (CPU tests).
"""

from __future__ import annotations

import importlib.util
import os

import torch


def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def kernels_present() -> bool:
    return importlib.util.find_spec("averis.kernels.dispatch") is not None


def available(x: torch.Tensor) -> bool:
    if not (triton_installed() and kernels_present()):
        return False
    return x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


# ------------------------------------------------------------------ fused ops (Triton, else reference)
def _spec(spec, **options):
    from ..formats.spec import FormatSpec, make_spec

    if isinstance(spec, FormatSpec):
        return spec
    return make_spec(
        spec, options.get("block_shape"), options.get("rounding", "nearest"), options.get("scale_rule")
    )


def _use(x: torch.Tensor, backend: str) -> bool:
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"unknown backend {backend!r}: use 'auto', 'torch' or 'triton'")
    if backend == "triton" and not available(x):
        raise RuntimeError("backend='triton' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1)")
    return backend == "triton" or (backend == "auto" and x.is_cuda and available(x))


def _ref_options(spec, generator, pad):
    return dict(
        block_shape=spec.block_shape,
        rounding=spec.rounding,
        scale_rule=spec.scale_rule,
        generator=generator,
        pad=pad,
        check_finite=False,
    )


def column_stats(x: torch.Tensor, *, backend: str = "auto", chunk: int | None = None):
    """(sum, max, min, mean, residual_amax) of the columns of a 2D tensor in one read.

    ``mean`` is the Averis mu (float32) and ``residual_amax`` equals amax(|x.float() - mean|) exactly.
    Summation order: see averis.kernels.reference (the CPU fallback, bit-identical).
    """
    from . import reference

    if _use(x, backend):
        from . import dispatch

        return dispatch.column_stats(x, chunk)
    return reference.column_stats(x, chunk or reference.CHUNK)


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
    backend: str = "auto",
    **options,
):
    """fake_quantize(x.float() - mu, tensor_amax=residual_amax) fused: one read of x (2D, mu per column).

    ``spec``: a FormatSpec or a format name (then block_shape / rounding / scale_rule in options).
    Result in ``out_dtype`` (default x's dtype).
    """
    from . import reference

    spec = _spec(spec, **options)
    if _use(x, backend):
        from . import dispatch

        return dispatch.fake_quantize_residual(x, mu, residual_amax, spec, axis, generator, pad, out_dtype)
    return reference.fake_quantize_residual(
        x, mu, residual_amax, spec.fmt, axis=axis, out_dtype=out_dtype, **_ref_options(spec, generator, pad)
    )


def fake_quantize_hadamard(
    x: torch.Tensor,
    signs: torch.Tensor,
    spec,
    axis: int = -1,
    generator: torch.Generator | None = None,
    *,
    out_dtype: torch.dtype | None = None,
    backend: str = "auto",
    **options,
):
    """fake_quantize(hadamard16(x, signs, axis)) along ``axis``, fused (16-point RHT, NVIDIA wgrad)."""
    from . import reference

    spec = _spec(spec, **options)
    if _use(x, backend):
        from . import dispatch

        return dispatch.fake_quantize_hadamard(x, signs, spec, axis, generator, out_dtype=out_dtype)
    return reference.fake_quantize_hadamard(
        x, signs, spec.fmt, axis=axis, out_dtype=out_dtype, **_ref_options(spec, generator, False)
    )


def fake_quantize_dual(
    x: torch.Tensor,
    spec,
    generator: torch.Generator | None = None,
    *,
    mu: torch.Tensor | None = None,
    tensor_amax: torch.Tensor | None = None,
    pad: bool = False,
    out_dtype: torch.dtype | None = None,
    backend: str = "auto",
    **options,
):
    """(rowwise, columnwise) fake-quant of a 2D tensor (of x - mu when mu is given) from one read.

    Equals fake_quantize(., axis=1) then fake_quantize(., axis=0) with the same generator.
    """
    from . import reference

    spec = _spec(spec, **options)
    if _use(x, backend):
        from . import dispatch

        return dispatch.fake_quantize_dual(x, spec, generator, tensor_amax, mu, pad, out_dtype)
    ref = _ref_options(spec, generator, pad)
    if mu is not None:
        return (
            reference.fake_quantize_residual(
                x, mu, tensor_amax, spec.fmt, axis=1, out_dtype=out_dtype, **ref
            ),
            reference.fake_quantize_residual(
                x, mu, tensor_amax, spec.fmt, axis=0, out_dtype=out_dtype, **ref
            ),
        )
    from ..formats import fake_quantize

    dt = out_dtype or x.dtype
    if tensor_amax is not None:
        ref["tensor_amax"] = tensor_amax
    return (
        fake_quantize(x, spec.fmt, axis=1, backend="torch", **ref).to(dt),
        fake_quantize(x, spec.fmt, axis=0, backend="torch", **ref).to(dt),
    )


def tensor_amax(x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """amax(|x|) as a 0-d float32 device tensor, without a host sync."""
    if _use(x, backend):
        from . import dispatch

        return dispatch.amax(x)
    return x.detach().abs().amax().float()
