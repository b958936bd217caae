"""``qgemm(a, b, out_dtype)``: A @ B^T of two quantized operands, with the Averis rank-one mean terms.

What an FP4 tensor core computes, and what every backend here equals up to FP32 accumulation order:
exact products of code x block scale (at most 6 significant bits: exact in BF16), accumulated in FP32,
the two NVFP4 tensor scales applied to the FP32 accumulator in the epilogue, the mean terms added in
FP32, one rounding to ``out_dtype``.

Backends (``backend=``):
- "emulated" (default, the training path).  Under ``use_backend(exact_gemm=True)``: one GEMM of the BF16
  values with an FP32 result (cuBLAS ``mm(..., out_dtype=float32)`` on CUDA, an FP32 matmul on the CPU,
  where BF16 values convert exactly), then the epilogue; operands without tensor scales and mean terms
  (BF16, MXFP4) take the plain GEMM, whose one rounding is the same.  By default (exact_gemm=False) the
  operands come with their tensor scales folded in (``prepare``), and the GEMM rounds to ``out_dtype``
  with the mean terms added by ``addmm`` (rounded to ``out_dtype`` first): the emulation before the
  exact epilogue, which measured faster on the GPU (docs/architecture.md).
- "exact": the reference of the hardware, ``averis.formats.fp4_matmul(exact=True)`` on the packed
  operands (``prepare(..., packed=True)``): block dots in K order.
Designed, not built (docs/architecture.md): "grouped" (MoE: ``offs`` over the rows of A, one weight per
group, torch._grouped_mm) and "native" (torch._scaled_mm on FP4 tensor cores, Blackwell), which take the
packed operands and the same epilogue.
"""

from __future__ import annotations

import torch

from ..formats import fp4_matmul
from ..transforms.hadamard import BLOCK as HADAMARD_BLOCK
from ..transforms.hadamard import hadamard_matrix
from ..transforms.mean import token_sum as mean_token_sum
from .backend import exact_gemm_setting
from .operand import QOperand
from .ops import mean_terms

GEMM_BACKENDS = ("emulated", "exact")


def qgemm(a: QOperand, b: QOperand, out_dtype: torch.dtype, *, backend: str = "emulated") -> torch.Tensor:
    """A @ B^T (P_a x P_b) in ``out_dtype`` plus the rank-one mean terms of either operand."""
    if backend not in GEMM_BACKENDS:
        raise ValueError(f"unknown GEMM backend {backend!r}: use one of {', '.join(GEMM_BACKENDS)}")
    av, bv = a.values.to(out_dtype), b.values.to(out_dtype)
    scale = _scale_product(a.scale, b.scale)
    exact = scale is not None or backend == "exact" or exact_gemm_setting()
    terms = _mean_terms(a, b, av, bv, exact)
    if not exact:  # the folded emulation: one GEMM that rounds to out_dtype, the terms in its epilogue
        return av @ bv.T if terms is None else torch.addmm(_epilogue_bias(terms.to(out_dtype)), av, bv.T)
    if backend == "exact":
        if a.packed is None or b.packed is None:
            raise ValueError("the exact GEMM needs packed operands: prepare them with packed=True")
        acc = fp4_matmul(a.packed, b.packed, exact=True)  # the tensor scales are in its epilogue
    elif scale is None and terms is None:
        return av @ bv.T  # FP32 accumulation, one rounding: nothing to add in the epilogue
    else:
        acc = mm_fp32(av, bv.T)
        if terms is None:  # acc x scale in FP32, rounded once as it is written: one pass
            return torch.mul(acc, scale, out=torch.empty_like(acc, dtype=out_dtype))
        if scale is not None:
            acc = acc.mul_(scale)
    if terms is None:
        return acc.to(out_dtype)
    return torch.add(acc, terms, out=torch.empty_like(acc, dtype=out_dtype))


def _epilogue_bias(terms: torch.Tensor) -> torch.Tensor:
    """The terms as addmm's ``input``: a row broadcast over the tokens (fprop, dgrad: 1 x N) as a 1-D vector, which
    cuBLASLt adds in the GEMM's epilogue; given as 1 x N, addmm on CUDA first copies it, expanded, into the whole
    M x N result (one extra write and read of the output per GEMM: 2 x 196 strided copies, 8.8 ms of a 136 ms
    averis step at the qwen3-0.6b shape on the H200).  The same sum either way: the accumulator plus the term."""
    return terms.reshape(-1) if terms.shape[0] == 1 else terms


def mm_fp32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b with an FP32 accumulator and an FP32 result (no rounding to the inputs' dtype)."""
    if a.dtype == torch.float32:
        return a @ b
    if a.is_cuda:
        return torch.mm(a, b, out_dtype=torch.float32)
    return a.float() @ b.float()  # BF16 / FP16 values convert to FP32 exactly


def _scale_product(sa: torch.Tensor | None, sb: torch.Tensor | None) -> torch.Tensor | None:
    if sa is None:
        return sb
    return sa if sb is None else sa * sb


def _mm(a: torch.Tensor, b: torch.Tensor, exact: bool) -> torch.Tensor:
    """a @ b with an FP32 accumulator: an FP32 result (exact), or rounded to the inputs' dtype (the folded
    emulation: the cheaper GEMV).  The rounded result stays in that dtype: a sum or concatenation with an FP32
    term promotes it exactly, so an FP32 copy would change no bit and cost a kernel."""
    return mm_fp32(a, b) if exact else a @ b


def _mean_terms(a: QOperand, b: QOperand, av: torch.Tensor, bv: torch.Tensor, exact: bool) -> torch.Tensor | None:
    """The rank-one mean terms (None without a mean), each with the tensor scale of the quantized operand it
    multiplies: in FP32, or in the values' dtype where the folded emulation has only row terms to add, or only
    the wgrad terms (rounded once from FP32 as they are written)."""
    terms = None
    if a.row_mean is not None:  # fprop / dgrad: + 1 (mu Q(B)^T), a row broadcast over the tokens
        terms = _scaled(_mm(a.row_mean.to(av.dtype), bv.T, exact), b.scale)
    if b.row_mean is not None:
        t = _scaled(_mm(av, b.row_mean.to(bv.dtype).T, exact), a.scale)
        terms = t if terms is None else terms + t
    if a.red_mean is not None or b.red_mean is not None:
        t = _reduction_mean_terms(a, b, av, bv, exact, torch.float32 if exact or terms is not None else av.dtype)
        terms = t if terms is None else terms + t
    return terms


def _scaled(t: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    return t if scale is None else t * scale


def _reduction_mean_terms(a: QOperand, b: QOperand, av: torch.Tensor, bv: torch.Tensor, exact: bool,
                          dtype: torch.dtype) -> torch.Tensor:
    """The wgrad rank-one terms mu_A colsum(Q(B_R)) + colsum(Q(A_R)) mu_B + l mu_A mu_B, as the rank-2 sum
    mu_A (colsum(Q(B_R)) + l mu_B)^T + colsum(Q(A_R)) mu_B^T in FP32 with one fixed rounding
    (transforms.mean.mean_terms), written in ``dtype``.  The token sums are of the values the GEMM
    multiplies, times their tensor scales."""
    if b.red_mean is None:
        return mean_terms(a.red_mean, token_sum(b, bv, exact), out_dtype=dtype)
    if a.red_mean is None:
        return mean_terms(token_sum(a, av, exact), b.red_mean, out_dtype=dtype)
    return mean_terms(a.red_mean, token_sum(b, bv, exact), token_sum(a, av, exact), b.red_mean, out_dtype=dtype,
                      length=a.length)  # + l mu_A mu_B, folded into the first product


def token_sum(op: QOperand, values: torch.Tensor, exact: bool = True) -> torch.Tensor:
    """Sum of the operand over its tokens (the reduction axis), in the original domain, FP32 (P x 1), with an FP32
    result where ``exact``, else rounded to the values' dtype first, in transforms.mean.token_sum's fixed order
    (so every path gives the kernels' bits): the sums the fused quantize pass emitted (``op.token_sum``: no second
    read of the operand), else that reference over the values.  In the Hadamard domain a GEMV with lane weights."""
    if op.token_sum is not None and op.values.dtype == values.dtype:
        # rounded to the values' dtype iff prepared with the tensor scale folded in (scale None, not exact_gemm),
        # which is what ``exact`` says for operands prepared under one setting; FP32 values need no rounding
        return _scaled(op.token_sum.reshape(-1, 1), op.scale)
    if op.signs is None:
        sums = mean_token_sum(values[:, : op.length].T, folded=not exact)
        return _scaled(sums.reshape(-1, 1), op.scale)
    # Hadamard domain, y = x M per block of 16: the sum of x is y (M^T 1), so weight the lanes by M's column sums
    # (exact in BF16: multiples of 1/4); the zero padding is summed, as the GEMM does
    lanes = hadamard_matrix(op.signs).sum(dim=0)
    weights = lanes.repeat(values.shape[-1] // HADAMARD_BLOCK).reshape(-1, 1).to(values.dtype)
    return _scaled(_mm(values, weights, exact), op.scale).float()
