"""Fused operand preparation for averis.nn.functional.prepare on CUDA (mean split / RHT + quantize).

``fused_operand`` returns ``(main, mu)`` equal bit for bit to what the unfused path computes
(``mean_split`` -> ``hadamard16`` -> ``fake_quantize``), or None where it does not apply (then the
caller runs its unfused path).  Exactness rests on three shared definitions: ``mean_split`` takes its
2D mean from ``averis.kernels.column_stats`` (fixed summation order, same on CPU and GPU), the
transforms' ``hadamard16`` runs the butterflies the kernel runs, in the same order, and the residual
amax of the column statistics equals amax(|x - mu|) exactly.
"""

from __future__ import annotations

import torch

from . import available


def _on_device(a: torch.Tensor) -> bool:
    return a.is_cuda and available(a)


def fused_operand(a: torch.Tensor, spec, recipe, mean_axis: str | None, generator, signs, out_dtype=None):
    """(dequantized operand in out_dtype (float32), mean with keepdim or None) from one fused pass, or None."""
    if not (a.ndim == 2 and _on_device(a)) or spec.format not in ("nvfp4", "mxfp4"):
        return None
    has_mean, has_had = spec.has_mean, spec.has_hadamard  # the OperandSpec's own reading of its transform
    if not (has_mean or has_had):
        return None
    if has_mean and (recipe.mean_all_reduce or mean_axis not in ("rows", "reduction")):
        return None
    if has_had and (mean_axis == "rows" and has_mean or a.shape[-1] % 16 or signs is None):
        return None
    from ..formats.spec import make_spec
    from . import dispatch

    qspec = make_spec(spec.format, **spec.quantizer_options())
    # the kernels see the tokens-major tensor: a itself for a row mean, a^T (the original dY / X) for wgrad
    tokens_last = mean_axis == "reduction" or (mean_axis is None and has_had)
    src, axis = (a.T, 0) if tokens_last else (a, 1)
    mu = st = None
    if has_mean:
        st = dispatch.column_stats(src)
        mu = st.mean
    if has_had:
        main = dispatch._fq(
            src, qspec, axis, generator, False, None, mu=mu, signs=signs, out_dtype=out_dtype or torch.float32
        )
    else:
        main = dispatch._fq(
            src,
            qspec,
            axis,
            generator,
            True,
            st.residual_amax if qspec.fmt == "nvfp4" else None,
            mu=mu,
            out_dtype=out_dtype or torch.float32,
        )
    if tokens_last:
        main = main.T
    if mu is not None:
        mu = mu.reshape(1, -1) if mean_axis == "rows" else mu.reshape(-1, 1)
    return main, mu
