"""An independent NumPy + ml_dtypes reference for NVFP4 and MXFP4 (the tests' ground truth).

It shares no code with averis.formats: element and scale roundings are ml_dtypes'
casts (float4_e2m1fn, float8_e4m3fn), arithmetic is NumPy float32, blocks are cut
with plain reshapes.  Inputs are 2D float32 arrays quantized along the last axis.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

F32 = np.float32
FP32_MAX = np.finfo(np.float32).max


def e2m1_codes(values: np.ndarray) -> np.ndarray:
    """4-bit codes of values cast to E2M1 by ml_dtypes (RNE, saturating at 6)."""
    return values.astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & 0x0F


def e2m1_values(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.uint8).view(ml_dtypes.float4_e2m1fn).astype(F32)


def blocks(x: np.ndarray, tile: tuple[int, ...]) -> np.ndarray:
    """(rows, cols) -> (row_blocks, col_blocks, r, c) view; tile (16,) means 1x16."""
    r, c = (1, tile[0]) if len(tile) == 1 else tile
    m, n = x.shape
    return x.reshape(m // r, r, n // c, c).transpose(0, 2, 1, 3)


def unblocks(b: np.ndarray) -> np.ndarray:
    mb, nb, r, c = b.shape
    return b.transpose(0, 2, 1, 3).reshape(mb * r, nb * c)


def nvfp4(x: np.ndarray, tile=(16,)):
    """(codes, scales as float8_e4m3fn, s_dec, dequantized) by method.md section 2."""
    x = x.astype(F32)
    amax = F32(np.max(np.abs(x)))
    if amax == 0:
        s_enc = F32(1)
    else:
        with np.errstate(over="ignore", divide="ignore"):
            s_enc = F32(min(F32(448 * 6) / amax, FP32_MAX))
    s_dec = F32(F32(1) / s_enc)
    xb = blocks(x, tile)
    bamax = np.max(np.abs(xb), axis=(2, 3), keepdims=True)
    factor = F32(s_enc * F32(1.0 / 6.0))
    sb = np.minimum(bamax * factor, F32(448)).astype(ml_dtypes.float8_e4m3fn)
    with np.errstate(divide="ignore", over="ignore"):
        eb = np.minimum(F32(1) / (sb.astype(F32) * s_dec), FP32_MAX).astype(F32)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.clip(xb * eb, F32(-6), F32(6))
    codes = e2m1_codes(scaled)
    deq = (e2m1_values(codes) * sb.astype(F32)) * s_dec
    return unblocks(codes), sb[:, :, 0, 0], s_dec, unblocks(deq)


def mx_rceil_exponent(amax: np.ndarray) -> np.ndarray:
    """cuBLAS RCEIL (torchao ``_to_mx_rceil``) for finite amax >= 0: e = ceil(log2(q)) clamped to
    [-127, 127], q = amax * fp32(1/6) rounded to FP32; the ceiling is read off q's bits (a power of
    two keeps its exponent, anything above it goes to the next one; subnormal q too)."""
    with np.errstate(under="ignore"):
        q = (np.asarray(amax, dtype=F32) * F32(1.0 / 6.0)).astype(F32)
    bits = q.view(np.uint32).astype(np.int64)
    field, mant = bits >> 23, bits & 0x7FFFFF
    # subnormal q = mant * 2**-149: ceil(log2(mant)) is the bit length of mant - 1
    sub = np.frexp(np.maximum(mant - 1, 0).astype(np.float64))[1].astype(np.int64) - 149
    e = np.where(field == 0, sub, field - 127 + (mant != 0))
    return np.clip(np.where(q == 0, -127, e), -127, 127)


def mxfp4(x: np.ndarray, rule="floor"):
    """(codes, scale exponents, dequantized) by the OCP rule (or cuBLAS RCEIL for "ceil")."""
    x = x.astype(F32)
    xb = blocks(x, (32,))
    bamax = np.max(np.abs(xb), axis=(2, 3), keepdims=True)
    if rule == "ceil":
        e = mx_rceil_exponent(bamax)
    else:
        _, ex = np.frexp(bamax)
        e = np.where(bamax == 0, -127, ex.astype(np.int64) - 3)
    e = np.clip(e, -127, 127)
    scaled = np.clip(xb * np.ldexp(F32(1), -e).astype(F32), F32(-6), F32(6))
    codes = e2m1_codes(scaled)
    deq = e2m1_values(codes) * np.ldexp(F32(1), e).astype(F32)
    return unblocks(codes), e[:, :, 0, 0], unblocks(deq)
