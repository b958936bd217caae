"""E2M1 (FP4) elements: rounding rules, 4-bit codes and two-codes-per-byte packing.

A code is ``sign << 3 | magnitude_index``; magnitude indices 0..7 stand for
{0, 0.5, 1, 1.5, 2, 3, 4, 6}.  The lowest bit of the index is the mantissa bit,
which is why "ties to even" means "ties to the even index".

Every function here works on float32 tensors whose magnitudes are already
clamped to [0, 6] (the callers clamp); comparisons are exact in float32, so the
same thresholds written in a Triton kernel give the same codes bit for bit.
"""

from __future__ import annotations

import functools

import torch

E2M1_MAX = 6.0
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

# Round-to-nearest-even thresholds between magnitude index k and k+1 (the midpoints).
# For even k a tie stays at k (round up only when strictly above); for odd k a tie
# goes up to the even k+1.  0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4.
RNE_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


@functools.cache
def _value_table(device: torch.device) -> torch.Tensor:
    """The 16 code values, index = code (codes 8..15 are the negatives, 8 is -0).  Made once per device: a
    copy from the host inside a CUDA-graph capture would fail (the first, eager step fills the cache)."""
    mags = torch.tensor(E2M1_MAGNITUDES, dtype=torch.float32, device=device)
    return torch.cat([mags, -mags])


def round_nearest_magnitude(mag: torch.Tensor) -> torch.Tensor:
    """Magnitude index (uint8, 0..7) of |v| rounded to nearest, ties to even. mag in [0, 6]."""
    idx = torch.zeros(mag.shape, dtype=torch.uint8, device=mag.device)
    for k, mid in enumerate(RNE_MIDPOINTS):
        up = mag > mid if k % 2 == 0 else mag >= mid
        idx += up.to(torch.uint8)
    return idx


def floor_magnitude(mag: torch.Tensor) -> torch.Tensor:
    """Index of the largest E2M1 magnitude <= mag (uint8, 0..7). mag in [0, 6]."""
    idx = torch.zeros(mag.shape, dtype=torch.uint8, device=mag.device)
    for m in E2M1_MAGNITUDES[1:]:
        idx += (mag >= m).to(torch.uint8)
    return idx


def round_stochastic_magnitude(mag: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Stochastic rounding of mag in [0, 6] with uniform noise in [0, 1).

    Rounds up to the next E2M1 magnitude with probability (mag - lo) / (hi - lo).
    The test ``uniform * (hi - lo) < mag - lo`` is exact in float32: hi - lo is a
    power of two and mag - lo is exact (Sterbenz), so kernels reproduce it bit for
    bit.  At 6 the step is 0, so no value beyond 6 can ever be produced.
    """
    table = _value_table(mag.device)
    lo_idx = floor_magnitude(mag)
    lo = table[lo_idx.long()]
    hi = table[torch.clamp(lo_idx.long() + 1, max=7)]
    up = uniform * (hi - lo) < (mag - lo)
    return lo_idx + up.to(torch.uint8)


def encode(scaled: torch.Tensor, rounding: str = "nearest", uniform: torch.Tensor | None = None) -> torch.Tensor:
    """4-bit codes (uint8 0..15) of float32 values already divided by their scale.

    Values are clamped to [-6, 6] (saturation).  The sign bit follows the input's
    sign bit, so a negative value that rounds to zero becomes -0 (code 8), as in
    ml_dtypes and the hardware conversion.  NaN becomes code 0; the callers make
    sure a NaN input yields a NaN scale, so it never dequantizes to a finite number.
    """
    mag = torch.clamp(scaled.abs(), max=E2M1_MAX)
    if rounding == "nearest":
        idx = round_nearest_magnitude(mag)
    elif rounding == "stochastic":
        if uniform is None:
            raise ValueError("stochastic rounding needs uniform noise in [0, 1)")
        idx = round_stochastic_magnitude(mag, uniform)
    else:
        raise ValueError(f"unknown rounding {rounding!r}: use 'nearest' or 'stochastic'")
    sign = torch.signbit(scaled).to(torch.uint8) << 3
    return idx | sign


def decode(codes: torch.Tensor) -> torch.Tensor:
    """float32 values of 4-bit codes (uint8 0..15)."""
    return _value_table(codes.device)[codes.long()]


def pack(codes: torch.Tensor) -> torch.Tensor:
    """Pack codes two per byte along the last dim, low nibble first (float4_e2m1fn_x2 layout)."""
    if codes.shape[-1] % 2:
        raise ValueError(f"packing needs an even last dimension, got {codes.shape[-1]}")
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack`: uint8 (..., n) -> codes (..., 2n)."""
    if packed.dtype != torch.uint8:
        packed = packed.view(torch.uint8)
    low = packed & 0x0F
    high = packed >> 4
    return torch.stack([low, high], dim=-1).flatten(-2)


def as_float4x2(packed: torch.Tensor) -> torch.Tensor:
    """View packed uint8 codes as torch.float4_e2m1fn_x2 (the dtype FP4 GEMM kernels consume)."""
    return packed.view(torch.float4_e2m1fn_x2)
