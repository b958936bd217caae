"""Fused operand preparation for averis.qgemm.prepare (mean split / RHT + quantize in one pass).

``fused_operand`` returns ``(main, mu)`` equal bit for bit to what the unfused path computes
(``mean_split`` -> ``hadamard16`` -> ``fake_quantize``), or None where it does not apply: where the
backend (``resolve``) says PyTorch, where the switch says ``fused=False``, or where the operand's
transform has no fused kernel (then the caller runs its unfused path).  Exactness rests on three shared
definitions: ``mean_split`` takes its 2D mean from ``averis.transforms.mean.column_stats`` (a fixed
summation order, which the kernel reproduces), the transforms' ``hadamard16`` runs the butterflies the
kernel runs, in the same order, and the residual amax of the column statistics equals amax(|x - mu|)
exactly.
"""

from __future__ import annotations

import torch

from ..formats.spec import make_spec
from ..transforms.mean import CHUNK, GROUP, TOKEN_CHUNK
from .backend import dispatch, fused_setting, resolve


def applies(a: torch.Tensor, spec, recipe, mean_axis: str | None, has_signs: bool) -> bool:
    """Whether fused_operand handles this operand (else the caller's unfused path runs).  Reads only a's
    shape and device, so it also answers for a fake (traced) tensor."""
    if a.ndim != 2 or spec.format not in ("nvfp4", "mxfp4"):
        return False
    has_mean, has_had = spec.has_mean, spec.has_hadamard
    if not (has_mean or has_had):
        return False
    if has_mean and (recipe.mean_all_reduce or mean_axis not in ("rows", "reduction")):
        return False
    if has_had and (mean_axis == "rows" and has_mean or a.shape[-1] % 16 or not has_signs):
        return False
    return fused_setting() and resolve(a)


def emits_token_sum(spec, mean_axis: str | None) -> bool:
    """Whether fused_operand also returns the operand's token sums (where it applies): a wgrad mean operand
    without the RHT."""
    return spec.has_mean and not spec.has_hadamard and mean_axis == "reduction"


def fused_operand(a: torch.Tensor, spec, recipe, mean_axis: str | None, generator, signs, out_dtype=None,
                  stats=None, unscaled: bool = True):
    """(code x block scale in out_dtype (float32), NVFP4 tensor scale or None, mean with keepdim or None, token
    sums or None) from one fused pass, or None.  unscaled=False: the values with the tensor scale applied, and None
    for it.

    The token sums (wgrad's mean operand without the RHT: mean_axis "reduction"): the (P,) float32 sums over the
    tokens of the values as stored, a by-product of the quantize pass (transforms.mean.token_sum's order and
    rounding: rounded to the values' dtype where the tensor scale is folded in), which the wgrad mean terms
    need (qgemm.gemm.token_sum) instead of a second read of the operand.  The RHT operand keeps the GEMV there.

    stats: the source's SourceStats (averis.qgemm.operand) for this layer call: X and dY each enter two
    GEMMs (fprop + wgrad, dgrad + wgrad) with the same mean over tokens, so their statistics pass runs
    once and is read the second time (same tensor, same values).
    """
    if not applies(a, spec, recipe, mean_axis, signs is not None):
        return None
    has_mean, has_had = spec.has_mean, spec.has_hadamard  # the OperandSpec's own reading of its transform
    launchers = dispatch()
    qspec = make_spec(spec.format, **spec.quantizer_options())
    # the kernels see the tokens-major tensor: a itself for a row mean, a^T (the original dY / X) for wgrad
    tokens_last = mean_axis == "reduction" or (mean_axis is None and has_had)
    src, axis = (a.T, 0) if tokens_last else (a, 1)
    mu = residual_amax = None
    if has_mean:
        if stats is None or stats.mean is None:
            *_, mean, res_amax = launchers.column_stats(src, CHUNK, GROUP)
            if stats is None:
                mu, residual_amax = mean, res_amax
            else:
                stats.mean, stats.residual_amax = mean, res_amax
        if stats is not None:
            mu, residual_amax = stats.mean, stats.residual_amax
    sums = None
    if has_had:
        main = launchers.fake_quantize(
            src, qspec, axis, generator, False, None, out_dtype or torch.float32, mu=mu, signs=signs,
            unscaled=unscaled,
        )
    else:
        token_sum = (TOKEN_CHUNK, GROUP, not unscaled) if emits_token_sum(spec, mean_axis) else None
        main = launchers.fake_quantize(
            src, qspec, axis, generator, True, residual_amax if qspec.fmt == "nvfp4" else None,
            out_dtype or torch.float32, mu=mu, unscaled=unscaled, token_sum=token_sum,
        )
        if token_sum is not None:
            main, sums = main
    main, scale = main if unscaled else (main, None)
    if tokens_last:
        main = main.T  # tokens-major: the kernels write along the source rows (nn.functional.wgrad_x_tokens_major)
    if mu is not None:
        mu = mu.reshape(1, -1) if mean_axis == "rows" else mu.reshape(-1, 1)
    return main, scale, mu, sums
