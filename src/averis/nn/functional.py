"""The three emulated FP4 GEMMs of a linear layer, each operand transformed and quantized on its own.

Every GEMM is written as ``out = A @ B^T`` with both operands 2D and their reduction axis last:

- fprop: A = X (M x K),    B = W (N x K)      -> Y  (M x N)
- dgrad: A = dY (M x N),   B = W^T (K x N)    -> dX (M x K)
- wgrad: A = dY^T (N x M), B = X^T (K x M)    -> dW (N x K), reduced over the M tokens

Each operand is quantized from its high-precision source along that GEMM's reduction axis
(``fake_quantize(..., axis=-1)`` on the 2D view), never from another GEMM's quantized copy.
Emulation: the dequantized operands are written in the compute dtype (BF16 under autocast) and
multiplied with torch.matmul.  The Averis mean enters as rank-one terms (never as a
materialised ``1 mu`` matrix) added in the GEMM's epilogue: for fprop/dgrad a GEMV broadcast over
tokens; for wgrad the four-term product of method.md section 4, its three rank-one terms as one
rank-2 product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..qgemm import fake_quantize, fused_applies, fused_operand, lowrank_split, mean_split, quantize_mean, tensor_amax
from ..recipes.spec import OperandSpec, Recipe
from ..transforms import hadamard16, pad_to_multiple
from ..transforms.hadamard import BLOCK as HADAMARD_BLOCK
from ..transforms.hadamard import hadamard_matrix


@dataclass
class Operand:
    """A prepared GEMM operand: ``main`` (P x R', dequantized, maybe padded along R and in the
    Hadamard domain) and an optional mean: ``row_mean`` (1 x R', a mean over the rows = tokens,
    fprop/dgrad) or ``red_mean`` (P x 1, a mean over the reduction axis = tokens, wgrad)."""

    main: torch.Tensor
    length: int                      # the reduction length before any padding
    signs: torch.Tensor | None = None  # the Hadamard sign vector when ``main`` is in the Hadamard domain
    row_mean: torch.Tensor | None = None
    red_mean: torch.Tensor | None = None


def quantize_operand(x: torch.Tensor, spec: OperandSpec, generator: torch.Generator | None,
                     axis: int = -1, out_dtype: torch.dtype | None = None,
                     tensor_amax: torch.Tensor | None = None) -> torch.Tensor:
    """Fake-quantize x along ``axis`` per ``spec`` (identity unless quantized); ragged blocks zero-padded."""
    if not spec.quantized:
        return x
    return fake_quantize(x, spec.format, axis=axis, generator=generator, pad=True, check_finite=False,
                         out_dtype=out_dtype, tensor_amax=tensor_amax, **spec.quantizer_options())


def shares_amax(spec: OperandSpec) -> bool:
    """A plain NVFP4 operand: its tensor amax is that of its source (X, dY or W), whichever GEMM reads it."""
    return spec.format == "nvfp4" and spec.transform == "none"


def _shared_amax(a: torch.Tensor, spec: OperandSpec, shared: dict | None, role: str) -> torch.Tensor | None:
    """The NVFP4 tensor amax of a plain operand, computed once per source and layer call (None: let the
    quantizer compute it).  X, dY and W each enter two GEMMs; their amax is the same in both."""
    if shared is None or not role or not shares_amax(spec):
        return None
    key = f"{role}_amax"
    if key not in shared:
        shared[key] = tensor_amax(a)
    return shared[key]


def prepare(a: torch.Tensor, spec: OperandSpec, recipe: Recipe, *, mean_axis: str | None,
            generator: torch.Generator | None, signs: torch.Tensor | None,
            out_dtype: torch.dtype | None = None, shared: dict | None = None, role: str = "") -> Operand:
    """Transform and quantize one operand (P x R, reduction axis last).

    mean_axis: where the tokens are, for the mean split: "rows" (fprop/dgrad activations and
    gradients), "reduction" (wgrad), or None (weights).  out_dtype: the dtype of the quantized
    ``main`` (the GEMM's compute dtype saves a cast pass; the values are the same, rounded once).
    shared / role: column statistics of X ("x") and dY ("dy"), and the tensor amax of plain NVFP4
    operands ("x_amax", "dy_amax", "w_amax"), computed once per layer call (see
    qgemm.fused_operand and _shared_amax).
    """
    length = a.shape[-1]
    if spec.format == "none":
        return Operand(a, length)
    mu = None
    # [kernels] on CUDA, mean split / RHT + quantize in one fused Triton pass, bit-identical to the else branch
    fused = fused_operand(a, spec, recipe, mean_axis, generator, signs, out_dtype, shared, role)
    if fused is not None:
        main, mu = fused
    else:
        if spec.has_mean:
            mu, a = mean_split(a, dim=0 if mean_axis == "rows" else 1, all_reduce=recipe.mean_all_reduce)
        if spec.has_hadamard:
            a = hadamard16(pad_to_multiple(a, HADAMARD_BLOCK, -1), signs, -1)
            if mu is not None and mean_axis == "rows":
                mu = hadamard16(pad_to_multiple(mu, HADAMARD_BLOCK, -1), signs, -1)
        if spec.transform == "lowrank":
            main = _lowrank_operand(a, spec, recipe, generator)
        else:
            amax = _shared_amax(a, spec, shared, role)
            main = quantize_operand(a, spec, generator, out_dtype=out_dtype, tensor_amax=amax)
    op = Operand(main, length, signs=signs if spec.has_hadamard else None)
    if mu is not None:
        # the mean vector runs along the rows' other axis: R for a row mean, P for a reduction mean
        q_mu = quantize_mean(mu, recipe.mean_format, fmt=spec.format, axis=-1 if mean_axis == "rows" else 0,
                             generator=generator, **spec.quantizer_options())
        if mean_axis == "rows":
            op.row_mean = q_mu
        else:
            op.red_mean = q_mu
    return op


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


def gemm(a: Operand, b: Operand, dtype: torch.dtype) -> torch.Tensor:
    """A @ B^T in ``dtype`` plus the rank-one mean terms, which enter the GEMM's epilogue (torch.addmm:
    added to the FP32 accumulator, one rounding, no extra pass over the output)."""
    a_main, b_main = a.main.to(dtype), b.main.to(dtype)
    terms = []
    if a.row_mean is not None:          # fprop / dgrad: + 1 (Q(mu) Q(B)^T), a row broadcast over tokens
        terms.append((a.row_mean.to(dtype) @ b_main.T).reshape(-1))
    if b.row_mean is not None:
        terms.append(a_main @ b.row_mean.to(dtype).T)
    if a.red_mean is not None or b.red_mean is not None:
        terms.append(_reduction_mean_terms(a, b, a_main, b_main).to(dtype))
    if not terms:
        return a_main @ b_main.T
    return torch.addmm(sum(terms[1:], terms[0]), a_main, b_main.T)


def _reduction_mean_terms(a: Operand, b: Operand, a_main: torch.Tensor, b_main: torch.Tensor) -> torch.Tensor:
    """The wgrad rank-one terms mu_A colsum(Q(B_R)) + colsum(Q(A_R)) mu_B + l mu_A mu_B, as one rank-2
    product in FP32: [mu_A, colsum(Q(A_R))] [colsum(Q(B_R)) + l mu_B, mu_B]^T.  The token sums are of
    the operands the GEMM multiplies (``a_main`` / ``b_main``, in its dtype)."""
    if b.red_mean is None:
        return a.red_mean.float() @ _token_sum(b, b_main).T
    if a.red_mean is None:
        return _token_sum(a, a_main) @ b.red_mean.float().T
    mu_a, mu_b = a.red_mean.float(), b.red_mean.float()
    left = torch.cat([mu_a, _token_sum(a, a_main)], dim=1)
    right = torch.cat([_token_sum(b, b_main) + a.length * mu_b, mu_b], dim=1)
    return left @ right.T


def _token_sum(op: Operand, main: torch.Tensor) -> torch.Tensor:
    """Sum of the dequantized operand over its tokens (the reduction axis), in the original domain, as a
    GEMV in the operand's dtype (FP32 accumulation; a column reduction over the transposed operand is
    several times slower).  Returned in FP32."""
    if op.signs is None:
        main, weights = main[:, : op.length], main.new_ones(op.length, 1)
    else:
        # Hadamard domain, y = x M per block of 16: the sum of x is y (M^T 1), so weight the lanes by
        # M's column sums (exact in BF16: multiples of 1/4); the zero padding is summed, as the GEMM does
        lanes = hadamard_matrix(op.signs).sum(dim=0)
        weights = lanes.repeat(main.shape[-1] // HADAMARD_BLOCK).reshape(-1, 1).to(main.dtype)
    return (main @ weights).float()


# --------------------------------------------------------------------------- the three GEMMs
def fprop(x: torch.Tensor, w: torch.Tensor, recipe: Recipe, dtype: torch.dtype, generator=None,
          signs=None, shared: dict | None = None) -> torch.Tensor:
    """Y = Q(X) Q(W)^T (M x N) for X (M x K) and W (N x K).  shared: see prepare."""
    a = prepare(x, recipe.fprop_x, recipe, mean_axis="rows", generator=generator, signs=signs, out_dtype=dtype,
                shared=shared, role="x")
    b = prepare(w, recipe.fprop_w, recipe, mean_axis=None, generator=generator, signs=signs, out_dtype=dtype,
                shared=shared, role="w")
    return gemm(a, b, dtype)


def dgrad(dy: torch.Tensor, w: torch.Tensor, recipe: Recipe, dtype: torch.dtype, generator=None,
          signs=None, shared: dict | None = None) -> torch.Tensor:
    """dX = Q(dY) Q(W) (M x K), both quantized along N."""
    a = prepare(dy, recipe.dgrad_dy, recipe, mean_axis="rows", generator=generator, signs=signs, out_dtype=dtype,
                shared=shared, role="dy")
    b = prepare(w.T, recipe.dgrad_w, recipe, mean_axis=None, generator=generator, signs=signs, out_dtype=dtype,
                shared=shared, role="w")
    return gemm(a, b, dtype)


def wgrad(dy: torch.Tensor, x: torch.Tensor | None, recipe: Recipe, dtype: torch.dtype, generator=None,
          signs=None, shared: dict | None = None, x_operand: Operand | None = None) -> torch.Tensor:
    """dW = Q(dY^T) Q(X^T)^T (N x K), both quantized along the M tokens.  x_operand: X^T already
    prepared by :func:`wgrad_x_operand` (then x is not needed)."""
    a = prepare(dy.T, recipe.wgrad_dy, recipe, mean_axis="reduction", generator=generator, signs=signs,
                out_dtype=dtype, shared=shared, role="dy")
    b = x_operand if x_operand is not None else wgrad_x_operand(x, recipe, dtype, generator, signs, shared)
    return gemm(a, b, dtype)


def wgrad_x_operand(x: torch.Tensor, recipe: Recipe, dtype: torch.dtype, generator=None, signs=None,
                    shared: dict | None = None) -> Operand:
    """wgrad's X operand: X^T (K x M, or K x M padded to 16 under a Hadamard transform) transformed and
    quantized along the tokens, ``main`` in ``dtype``.  QuantLinear makes it in the forward and keeps it
    for backward instead of X (in the compute dtype: half the memory of an FP32 X under autocast)."""
    op = prepare(x.T, recipe.wgrad_x, recipe, mean_axis="reduction", generator=generator, signs=signs,
                 out_dtype=dtype, shared=shared, role="x")
    op.main = op.main.to(dtype)  # unquantized and low-rank operands come back in their own dtype
    return op


def wgrad_x_layout(recipe: Recipe, tokens: int) -> tuple[int, bool, bool]:
    """(length of wgrad_x_operand's main along the tokens, has a mean, is in the Hadamard domain)."""
    spec = recipe.wgrad_x
    if spec.format == "none":
        return tokens, False, False
    padded = -(-tokens // HADAMARD_BLOCK) * HADAMARD_BLOCK if spec.has_hadamard else tokens
    return padded, spec.has_mean, spec.has_hadamard


def wgrad_x_tokens_major(x: torch.Tensor, recipe: Recipe) -> bool:
    """Whether wgrad_x_operand(x)'s main is laid out tokens-major (K x M with strides (1, K), the transposed
    view of what the fused kernels write along X's rows) rather than contiguous.  Reads only x's shape and
    device: a custom op's fake implementation declares the same layout its real one returns."""
    return fused_applies(x.T, recipe.wgrad_x, recipe, "reduction", has_signs=True)


def in_wgrad_x_layout(main: torch.Tensor, tokens_major: bool) -> torch.Tensor:
    """main (K x M) in the layout wgrad_x_tokens_major names (a copy only where a path made the other one)."""
    if tokens_major:
        return main if main.stride() == (1, main.shape[0]) else main.T.contiguous().T
    return main.contiguous()
