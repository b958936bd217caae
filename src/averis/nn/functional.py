"""The three emulated FP4 GEMMs of a linear layer: thin compositions of averis.qgemm.

Every GEMM is written as ``out = A @ B^T`` with both operands 2D and their reduction axis last:

- fprop: A = X (M x K),    B = W (N x K)      -> Y  (M x N)
- dgrad: A = dY (M x N),   B = W^T (K x N)    -> dX (M x K)
- wgrad: A = dY^T (N x M), B = X^T (K x M)    -> dW (N x K), reduced over the M tokens

Each operand is prepared (transformed and quantized, ``qgemm.prepare``) from its high-precision source
along that GEMM's reduction axis, never from another GEMM's quantized copy, and the two meet in
``qgemm.qgemm``: FP32 accumulation, the NVFP4 tensor scales and the Averis rank-one mean terms in the
epilogue, one rounding (what an FP4 tensor core computes, up to accumulation order).  Statistics of a
source (X, dY, W) are computed once per layer call and shared by the two GEMMs that read it
(``qgemm.LayerStats``).
"""

from __future__ import annotations

import torch

from ..qgemm import LayerStats, QOperand, emits_token_sum, fused_applies, prepare, qgemm
from ..qgemm.backend import exact_gemm_setting
from ..recipes.spec import Recipe
from ..transforms.hadamard import BLOCK as HADAMARD_BLOCK


# --------------------------------------------------------------------------- the three GEMMs
def fprop(x: torch.Tensor, w: torch.Tensor, recipe: Recipe, dtype: torch.dtype, generator=None,
          signs=None, stats: LayerStats | None = None, x_operand: QOperand | None = None) -> torch.Tensor:
    """Y = Q(X) Q(W)^T (M x N) for X (M x K) and W (N x K).  stats: the layer call's LayerStats; x_operand: X
    already prepared by :func:`fprop_x_operand` (then x is not read)."""
    stats = stats or LayerStats()
    a = x_operand if x_operand is not None else fprop_x_operand(x, recipe, dtype, generator, signs, stats)
    b = prepare(w, recipe.fprop_w, recipe, mean_axis=None, generator=generator, signs=signs, out_dtype=dtype,
                stats=stats.w)
    return qgemm(a, b, dtype)


def fprop_x_operand(x: torch.Tensor, recipe: Recipe, dtype: torch.dtype, generator=None, signs=None,
                    stats: LayerStats | None = None) -> QOperand:
    """fprop's X operand: X (M x K) transformed and quantized along K.  It does not depend on W: linears that
    read the same X (q, k, v; gate, up) can share it where :func:`shares_input` allows."""
    return prepare(x, recipe.fprop_x, recipe, mean_axis="rows", generator=generator, signs=signs, out_dtype=dtype,
                   stats=(stats or LayerStats()).x)


def shares_input(recipe: Recipe) -> bool:
    """Whether X's two operands (fprop's and wgrad's) are the same bits for every linear that reads X: neither
    draws random numbers (round to nearest, no low-rank sketch), so no layer's own stream enters them."""
    return all(spec.rounding == "nearest" and spec.transform != "lowrank" for spec in (recipe.fprop_x, recipe.wgrad_x))


def dgrad(dy: torch.Tensor, w: torch.Tensor, recipe: Recipe, dtype: torch.dtype, generator=None,
          signs=None, stats: LayerStats | None = None) -> torch.Tensor:
    """dX = Q(dY) Q(W) (M x K), both quantized along N."""
    stats = stats or LayerStats()
    a = prepare(dy, recipe.dgrad_dy, recipe, mean_axis="rows", generator=generator, signs=signs, out_dtype=dtype,
                stats=stats.dy)
    b = prepare(w.T, recipe.dgrad_w, recipe, mean_axis=None, generator=generator, signs=signs, out_dtype=dtype,
                stats=stats.w)
    return qgemm(a, b, dtype)


def wgrad(dy: torch.Tensor, x: torch.Tensor | None, recipe: Recipe, dtype: torch.dtype, generator=None,
          signs=None, stats: LayerStats | None = None, x_operand: QOperand | None = None) -> torch.Tensor:
    """dW = Q(dY^T) Q(X^T)^T (N x K), both quantized along the M tokens.  x_operand: X^T already
    prepared by :func:`wgrad_x_operand` (then x is not needed)."""
    stats = stats or LayerStats()
    a = prepare(dy.T, recipe.wgrad_dy, recipe, mean_axis="reduction", generator=generator, signs=signs,
                out_dtype=dtype, stats=stats.dy)
    b = x_operand if x_operand is not None else wgrad_x_operand(x, recipe, dtype, generator, signs, stats)
    return qgemm(a, b, dtype)


def wgrad_x_operand(x: torch.Tensor, recipe: Recipe, dtype: torch.dtype, generator=None, signs=None,
                    stats: LayerStats | None = None) -> QOperand:
    """wgrad's X operand: X^T (K x M, or K x M padded to 16 under a Hadamard transform) transformed and
    quantized along the tokens, ``values`` in ``dtype``.  QuantLinear makes it in the forward and keeps it
    for backward instead of X (in the compute dtype: half the memory of an FP32 X under autocast)."""
    op = prepare(x.T, recipe.wgrad_x, recipe, mean_axis="reduction", generator=generator, signs=signs,
                 out_dtype=dtype, stats=(stats or LayerStats()).x)
    op.values = op.values.to(dtype)  # unquantized and low-rank operands come back in their own dtype
    return op


def wgrad_x_layout(recipe: Recipe, tokens: int) -> tuple[int, bool, bool, bool]:
    """(length of wgrad_x_operand's values along the tokens, has a mean, is in the Hadamard domain, has a
    tensor scale apart: NVFP4 under ``use_backend(exact_gemm=True)``).  A compiled graph keeps the
    setting it was traced with."""
    spec = recipe.wgrad_x
    if spec.format == "none":
        return tokens, False, False, False
    padded = -(-tokens // HADAMARD_BLOCK) * HADAMARD_BLOCK if spec.has_hadamard else tokens
    has_scale = spec.format == "nvfp4" and spec.transform != "lowrank" and exact_gemm_setting()
    return padded, spec.has_mean, spec.has_hadamard, has_scale


def wgrad_x_tokens_major(x: torch.Tensor, recipe: Recipe) -> bool:
    """Whether wgrad_x_operand(x)'s values are laid out tokens-major (K x M with strides (1, K), the transposed
    view of what the fused kernels write along X's rows) rather than contiguous.  Reads only x's shape and
    device: a custom op's fake implementation declares the same layout its real one returns."""
    return fused_applies(x.T, recipe.wgrad_x, recipe, "reduction", has_signs=True)


def wgrad_x_has_token_sum(x: torch.Tensor, recipe: Recipe) -> bool:
    """Whether wgrad_x_operand(x) comes with its token sums (QOperand.token_sum): a mean without the RHT through
    the fused kernels.  Reads only x's shape and device (for the custom op's fake implementation)."""
    return emits_token_sum(recipe.wgrad_x, "reduction") and wgrad_x_tokens_major(x, recipe)


def in_wgrad_x_layout(main: torch.Tensor, tokens_major: bool) -> torch.Tensor:
    """main (K x M) in the layout wgrad_x_tokens_major names (a copy only where a path made the other one)."""
    if tokens_major:
        return main if main.stride() == (1, main.shape[0]) else main.T.contiguous().T
    return main.contiguous()
