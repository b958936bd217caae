"""GEMM of two FP4 operands: ``fp4_matmul(a, b) = A @ B^T`` with both blocked along K.

``exact=False`` (the fast path, what Hopper emulation does): dequantize both and
run an FP32 matmul.  ``exact=True`` does what an FP4 tensor core does: per K
block an FP32 dot of the 4-bit values (exact: every product is a multiple of 1/4
and 16 or 32 of them sum exactly), times the two block scales, accumulated in
FP32 block by block in K order, with the tensor scales applied in the epilogue.
"""

from __future__ import annotations

import torch

from . import e2m1, scales
from .quantize import QuantizedTensor


def fp4_matmul(a: QuantizedTensor, b: QuantizedTensor, *, exact: bool = False) -> torch.Tensor:
    """FP32 result of A (M x K) @ B (N x K)^T for two operands quantized along K."""
    _check_operands(a, b)
    if not exact:
        return a.dequantize() @ b.dequantize().T
    block = a.spec.block_shape[-1]
    qa = e2m1.decode(e2m1.unpack(a.codes)).unflatten(-1, (-1, block))  # M x nb x B
    qb = e2m1.decode(e2m1.unpack(b.codes)).unflatten(-1, (-1, block))  # N x nb x B
    sa, sb = _row_block_scales(a), _row_block_scales(b)                # M x nb, N x nb
    acc = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float32, device=a.codes.device)
    for j in range(qa.shape[1]):
        partial = qa[:, j, :] @ qb[:, j, :].T                          # exact in FP32
        acc = acc + partial * (sa[:, j, None] * sb[None, :, j])
    if a.tensor_scale is not None:
        acc = acc * (a.tensor_scale * b.tensor_scale)
    return acc


def _row_block_scales(q: QuantizedTensor) -> torch.Tensor:
    """FP32 block scale of every (row, K block), expanding 16x16 tiles to their rows."""
    s = q.scales.float() if q.fmt == "nvfp4" else scales.e8m0_to_float(q.scales)
    if len(q.spec.block_shape) == 2:
        s = s.repeat_interleave(q.spec.block_shape[0], dim=0)[: q.shape[0]]
    return s


def _check_operands(a: QuantizedTensor, b: QuantizedTensor) -> None:
    for name, q in (("a", a), ("b", b)):
        if len(q.shape) != 2 or q.axis != 1:
            raise ValueError(f"fp4_matmul needs 2D operands quantized along their last dim (K); operand {name} "
                             f"has shape {tuple(q.shape)} quantized along axis {q.axis}")
        if q.codes.shape[-1] * 2 != q.shape[1]:
            raise ValueError(f"operand {name} was padded along K; fp4_matmul needs K divisible by the block")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"inner dims differ: A is {tuple(a.shape)}, B is {tuple(b.shape)} (computing A @ B^T)")
    if a.fmt != b.fmt or a.spec.block_shape[-1] != b.spec.block_shape[-1]:
        raise ValueError(f"operands must share format and K block size: {a.fmt}{a.spec.block_shape} vs "
                         f"{b.fmt}{b.spec.block_shape}")
