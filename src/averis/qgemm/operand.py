"""The quantized operand, the currency between quantization and GEMM, and the one function that makes it.

:class:`QOperand` holds what a GEMM needs of one operand: the values it multiplies (code x block scale,
exact in BF16, with the NVFP4 tensor scale kept apart for the accumulator; or the high-precision or
already-combined values of an unquantized or low-rank operand), the Averis mean term, the Hadamard signs,
the reduction length before padding, and, when asked, the packed codes and scales (for the exact backend
and for a native FP4 GEMM).  :class:`SourceStats` holds what one layer call knows about one source (X, dY
or W): computed at most once and read by both GEMMs that quantize that source.

Every operand is ``P x R`` with its reduction axis last (see averis.nn.functional for the three GEMMs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..formats import QuantizedTensor
from ..recipes.spec import OperandSpec, Recipe
from ..transforms import hadamard16, pad_to_multiple
from ..transforms.hadamard import BLOCK as HADAMARD_BLOCK
from .backend import exact_gemm_setting
from .fused import fused_operand
from .lowrank import lowrank_split
from .ops import (
    column_stats,
    fake_quantize,
    fake_quantize_unscaled,
    mean_split,
    quantize,
    quantize_mean,
    split_decision,
    tensor_amax,
)


@dataclass
class SourceStats:
    """Statistics of one source (X, dY or W) for one layer call, each computed at most once.

    amax: the tensor amax of a plain NVFP4 operand (the same in both GEMMs that read the source);
    mean / residual_amax: the column statistics over the tokens (the Averis mean, float32 per channel,
    and the exact amax of the residual), from one read of the tokens-major source;
    split: the adaptive split's decision (a 0-d bool device tensor; None where the recipe has no
    ``mean_threshold``), with mean and residual_amax then those of the source's decision (see ``decide_split``)."""

    amax: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    residual_amax: torch.Tensor | None = None
    split: torch.Tensor | None = None
    split_counts: torch.Tensor | None = None  # int64 [1, split]: what the layer adds to its averis_splits counters
    quantized_mean: torch.Tensor | None = None  # mean in the recipe's mean_format (a cast), flat: both GEMMs' copy


@dataclass
class LayerStats:
    """The statistics of a layer call's three sources (X and W in the forward, dY and W in the backward)."""

    x: SourceStats = field(default_factory=SourceStats)
    dy: SourceStats = field(default_factory=SourceStats)
    w: SourceStats = field(default_factory=SourceStats)


@dataclass
class QOperand:
    """A prepared GEMM operand, P x R' (R' = R, or R padded to 16 in the Hadamard domain).

    values: what the GEMM multiplies, in its compute dtype where quantized; scale: the FP32 NVFP4 tensor
    scale to apply to the accumulator (None: 1); row_mean (1 x R', a mean over the rows = tokens,
    fprop/dgrad) or red_mean (P x 1, a mean over the reduction axis = tokens, wgrad): the Averis mean in
    its recipe precision, restored by rank-one terms; signs: the Hadamard sign vector when ``values`` is in
    the Hadamard domain; packed: the codes and block scales (``prepare(..., packed=True)``); token_sum: (P,)
    float32, a reduction-mean operand's sums over the tokens of ``values`` (transforms.mean.token_sum: rounded to
    the values' dtype where no tensor scale is apart, else exact, to be scaled), from the fused quantize pass, or
    None (the GEMM then sums the values itself)."""

    values: torch.Tensor
    length: int
    scale: torch.Tensor | None = None
    signs: torch.Tensor | None = None
    row_mean: torch.Tensor | None = None
    red_mean: torch.Tensor | None = None
    packed: QuantizedTensor | None = None
    token_sum: torch.Tensor | None = None

    def dequantized(self) -> torch.Tensor:
        """values x scale in FP32 (the operand as a tensor, without its mean term)."""
        v = self.values.float()
        return v if self.scale is None else v * self.scale


def quantize_operand(x: torch.Tensor, spec: OperandSpec, generator, axis: int = -1,
                     out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Fake-quantize x along ``axis`` per ``spec`` (identity unless quantized), tensor scale applied; ragged
    blocks zero-padded.  For the parts of a low-rank operand, which are combined before the GEMM."""
    if not spec.quantized:
        return x
    return fake_quantize(x, spec.format, axis=axis, generator=generator, pad=True, check_finite=False,
                         out_dtype=out_dtype, **spec.quantizer_options())


def shares_amax(spec: OperandSpec) -> bool:
    """A plain NVFP4 operand: its tensor amax is that of its source (X, dY or W), whichever GEMM reads it."""
    return spec.format == "nvfp4" and spec.transform == "none"


def prepare(a: torch.Tensor, spec: OperandSpec, recipe: Recipe, *, mean_axis: str | None, generator,
            signs: torch.Tensor | None, out_dtype: torch.dtype | None = None, stats: SourceStats | None = None,
            packed: bool = False) -> QOperand:
    """Transform and quantize one operand (P x R, reduction axis last).

    mean_axis: where the tokens are, for the mean split: "rows" (fprop/dgrad activations and gradients),
    "reduction" (wgrad), or None (weights).  out_dtype: the dtype of the quantized values (the GEMM's
    compute dtype; exact for code x block scale).  stats: the source's statistics for this layer call,
    filled here where missing.  packed: also keep the codes and scales (the unfused path; for the exact
    backend).  On CUDA the mean split / RHT and the quantization run as one fused kernel where one applies,
    bit-identical to the unfused path.
    """
    length = a.shape[-1]
    if spec.format == "none":
        return QOperand(a, length)
    if spec.has_mean and recipe.mean_threshold is not None:
        stats = stats if stats is not None else SourceStats()
        if stats.split is None:
            decide_split(a.T if mean_axis == "reduction" else a, recipe.mean_threshold, stats)
    mu = scale = packed_q = sums = None
    unscaled = exact_gemm_setting() or packed
    fused = None if packed else fused_operand(a, spec, recipe, mean_axis, generator, signs, out_dtype, stats,
                                              unscaled=unscaled)
    if fused is not None:
        values, scale, mu, sums = fused
    else:
        if spec.has_mean and stats is not None and stats.split is not None:  # the adaptive split's mean (or 0)
            mu = stats.mean.reshape((1, -1) if mean_axis == "rows" else (-1, 1))
            a = a.float() - mu
        elif spec.has_mean:
            mu, a = mean_split(a, dim=0 if mean_axis == "rows" else 1, all_reduce=recipe.mean_all_reduce)
        if spec.has_hadamard:
            a = hadamard16(pad_to_multiple(a, HADAMARD_BLOCK, -1), signs, -1)
            if mu is not None and mean_axis == "rows":
                mu = hadamard16(pad_to_multiple(mu, HADAMARD_BLOCK, -1), signs, -1)
        if spec.transform == "lowrank":
            values = _lowrank_operand(a, spec, recipe, generator)
        elif not spec.quantized:  # "identity": the transforms' test hook
            values = a
        else:
            amax = _shared_amax(a, spec, stats)
            options = dict(axis=-1, generator=generator, pad=True, check_finite=False, tensor_amax=amax,
                           **spec.quantizer_options())
            if packed:
                packed_q = quantize(a, spec.format, **options)
                values, scale = packed_q.dequantize(out_dtype or a.dtype, tensor_scale=False), packed_q.tensor_scale
            elif unscaled:
                values, scale = fake_quantize_unscaled(a, spec.format, out_dtype=out_dtype, **options)
            else:
                values = fake_quantize(a, spec.format, out_dtype=out_dtype, **options)
    op = QOperand(values, length, scale=scale, signs=signs if spec.has_hadamard else None, packed=packed_q,
                  token_sum=sums)
    if mu is not None:
        # the mean vector runs along the rows' other axis: R for a row mean, P for a reduction mean
        shared = _shares_quantized_mean(mu, spec, recipe, stats)
        if shared and stats.quantized_mean is not None:
            q_mu = stats.quantized_mean.reshape(mu.shape)
        else:
            q_mu = quantize_mean(mu, recipe.mean_format, fmt=spec.format, axis=-1 if mean_axis == "rows" else 0,
                                 generator=generator, **spec.quantizer_options())
            if shared:
                stats.quantized_mean = q_mu.reshape(-1)
        if mean_axis == "rows":
            op.row_mean = q_mu
        else:
            op.red_mean = q_mu
    return op


def _shares_quantized_mean(mu: torch.Tensor, spec: OperandSpec, recipe: Recipe, stats: SourceStats | None) -> bool:
    """Whether this operand's mean is the source's statistics mean itself (the same storage: no transform of
    its own) in a cast format (bf16, fp32: the same values whichever GEMM asks), so that the two GEMMs reading
    the source can share one quantized copy: two small cast kernels fewer per source and layer call."""
    return (stats is not None and stats.mean is not None and recipe.mean_format in ("bf16", "fp32")
            and not spec.has_hadamard and mu.numel() == stats.mean.numel()
            and mu.data_ptr() == stats.mean.data_ptr())


def decide_split(tokens_major: torch.Tensor, threshold: float, stats: SourceStats) -> None:
    """The adaptive split of one source (tokens x channels) for this layer call, on the device, no host sync.

    The rule is the mean ratio R = ||mean|| / rms(token) (averis.analysis's; R^2 is the share of the source's
    energy in its token mean), estimated from the one ``column_stats`` read the split needs anyway (sum, max,
    min per channel): each channel's spread from its range, sigma_c = (max_c - min_c) / (2 sqrt(2 ln N)) (the
    expected range of N normal draws), and R^2 = sum mean_c^2 / (sum mean_c^2 + sum sigma_c^2).
    split = R >= threshold.  On SmolLM2-135M this estimate follows the exact R per site (medians: attention
    inputs 0.81 vs 0.78, MLP inputs 0.62 vs 0.59, o_proj 0.48 vs 0.55, down_proj 0.17 vs 0.27, output gradients
    0.02-0.04 vs 0.05-0.07; docs/recipes.md), where extreme-value statistics (the tensor or channel amax, set by
    a few massive tokens) barely move.

    Both outcomes run the same ops: the mean becomes where(split, mean, 0) and the residual amax where(split,
    residual amax, amax(X)), so a source that does not split is quantized as X - 0 = X with X's own amax (plain
    NVFP4's values), and its mean terms add zeros.  The rule after the statistics is one kernel on the GPU
    (transforms.mean.split_decision: the channel sums in a fixed order).  Fills stats.split, stats.mean
    (float32, per channel), stats.residual_amax and stats.split_counts."""
    decision = split_decision(column_stats(tokens_major), tokens_major.shape[0], threshold)
    stats.split, stats.mean, stats.residual_amax = decision.split, decision.mean, decision.residual_amax
    stats.split_counts = decision.counts


def _shared_amax(a: torch.Tensor, spec: OperandSpec, stats: SourceStats | None) -> torch.Tensor | None:
    """The NVFP4 tensor amax of a plain operand, computed once per source and layer call (None: let the
    quantizer compute it)."""
    if stats is None or not shares_amax(spec):
        return None
    if stats.amax is None:
        stats.amax = tensor_amax(a)
    return stats.amax


def _lowrank_operand(a: torch.Tensor, spec: OperandSpec, recipe: Recipe, generator) -> torch.Tensor:
    """Q(U) diag(S) Q(V)^T + Q(R): S in FP32, R quantized along the GEMM's reduction axis.

    U (P x r) and V (R x r) are quantized in blocks along their length, so each singular vector
    keeps its own scales (the paper does not say which axis; along the rank axis one block mixes
    16 singular vectors of very different weight and measured worse on Y in
    benchmarks/recipe_error.py: centred-Y error 0.54 vs 0.14 on the synthetic case).
    """
    u, s, v, residual = lowrank_split(a, recipe.lowrank_rank, recipe.lowrank_power_iters, generator)
    q_u = quantize_operand(u, spec, generator, axis=0)
    q_v = quantize_operand(v, spec, generator, axis=0)
    return (q_u * s) @ q_v.T + quantize_operand(residual, spec, generator)
