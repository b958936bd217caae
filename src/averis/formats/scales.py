"""Block and tensor scales: NVFP4 (E4M3 block scale + FP32 tensor scale) and MXFP4 (E8M0).

All arithmetic is float32, in the order of Transformer Engine's reference NVFP4
quantizer (docs/formats.md gives the formulas and every choice made here).
"""

from __future__ import annotations

import torch

FP32_MAX = torch.finfo(torch.float32).max
E4M3_MAX = 448.0
E2M1_MAX = 6.0
E8M0_MIN_EXP = -127
E8M0_MAX_EXP = 127
E8M0_NAN_BYTE = 0xFF

# fp32(1/6): the reference multiplies by the rounded reciprocal, it does not divide by 6.
_INV_E2M1_MAX = torch.tensor(1.0 / 6.0, dtype=torch.float32).item()


# --------------------------------------------------------------------------- NVFP4
def nvfp4_tensor_encode_scale(amax: torch.Tensor) -> torch.Tensor:
    """S_enc = (448 * 6) / amax in float32, capped at FP32 max; 1 where amax == 0.

    A non-finite amax (NaN or Inf in the tensor) gives NaN, so that every value of
    the tensor dequantizes to NaN instead of a finite number.
    """
    amax = amax.float()
    s_enc = torch.clamp(torch.full_like(amax, E4M3_MAX * E2M1_MAX) / amax, max=FP32_MAX)  # no host copy
    s_enc = torch.where(amax == 0, torch.ones_like(s_enc), s_enc)
    return torch.where(torch.isfinite(amax), s_enc, torch.full_like(s_enc, float("nan")))


def nvfp4_tensor_decode_scale(s_enc: torch.Tensor) -> torch.Tensor:
    """S_dec = 1 / S_enc (float32): the FP32 tensor scale stored with the codes."""
    return 1.0 / s_enc


def nvfp4_block_scale(block_amax: torch.Tensor, s_enc: torch.Tensor) -> torch.Tensor:
    """s_b = e4m3_rne(min(block_amax * (S_enc * fp32(1/6)), 448)) as float8_e4m3fn.

    One rounding to E4M3; a zero block gets a zero scale (no lower clamp).
    """
    factor = s_enc * _INV_E2M1_MAX
    return torch.clamp(block_amax.float() * factor, max=E4M3_MAX).to(torch.float8_e4m3fn)


def nvfp4_element_encode_factor(block_scale: torch.Tensor, s_dec: torch.Tensor) -> torch.Tensor:
    """e_b = 1 / (fp32(s_b) * S_dec), capped at FP32 max (a zero scale gives FP32 max)."""
    return torch.clamp(1.0 / (block_scale.float() * s_dec), max=FP32_MAX)


# --------------------------------------------------------------------------- MXFP4
def exp2_int(e: torch.Tensor) -> torch.Tensor:
    """2**e as float32, exactly, for integer e in [-149, 127] (built from the bits, no exp2 call)."""
    e = e.to(torch.int32)
    normal = (torch.clamp(e + 127, min=0) << 23).view(torch.float32)
    subnormal = (torch.ones_like(e) << torch.clamp(e + 149, min=0, max=22)).view(torch.float32)
    return torch.where(e >= -126, normal, subnormal)


def mxfp4_scale_exponent(block_amax: torch.Tensor, rule: str = "floor") -> torch.Tensor:
    """Shared exponent (int32) of each MXFP4 block, clamped to the E8M0 range [-127, 127].

    ``floor`` (OCP): floor(log2(amax)) - 2; values in [6, 8) * 2**e saturate to 6.
    ``ceil`` (round-up, cuBLAS "RCEIL", torchao's ``_to_mx_rceil``): ceil(log2(q)) of the
    FP32 quotient q = amax * fp32(1/6) (rounded to nearest, subnormal q included).  That is the
    smallest e with amax <= 6 * 2**e for every FP32 amax but one: 0x01400001 (6 * 2**-127 + 1 ULP),
    whose quotient rounds down to 2**-127, so it gets -127 and saturates, as in RCEIL.
    An all-zero block gets -127.
    """
    amax = block_amax.float()
    _, frexp_exp = torch.frexp(amax)  # amax = m * 2**x, m in [0.5, 1): floor(log2 amax) = x - 1
    e = frexp_exp.to(torch.int32) - 1 - 2
    if rule == "ceil":
        # amax / 6 lies in [2**(e-1), 2**(e+1)), so ceil(log2(q)) is e + 1 exactly when q > 2**e
        q = amax * _INV_E2M1_MAX
        e = e + (q > exp2_int(torch.clamp(e, min=-149, max=127))).to(torch.int32)
    elif rule != "floor":
        raise ValueError(f"unknown MXFP4 scale rule {rule!r}: use 'floor' (OCP) or 'ceil' (round-up)")
    e = torch.where(amax == 0, torch.full_like(e, E8M0_MIN_EXP), e)
    return torch.clamp(e, E8M0_MIN_EXP, E8M0_MAX_EXP)


def e8m0_from_exponent(e: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """Store exponents as float8_e8m0fnu (biased byte e + 127; 0xFF = NaN where not finite)."""
    byte = (e + 127).to(torch.uint8)
    byte = torch.where(finite, byte, torch.full_like(byte, E8M0_NAN_BYTE))
    return byte.view(torch.float8_e8m0fnu)


def e8m0_to_float(scale: torch.Tensor) -> torch.Tensor:
    """float32 value of E8M0 scales (2**(byte - 127), NaN for 0xFF), exact."""
    byte = scale.view(torch.uint8).to(torch.int32)
    value = exp2_int(byte - 127)
    return torch.where(byte == E8M0_NAN_BYTE, torch.full_like(value, float("nan")), value)
