"""Counter-based uniform noise for stochastic rounding, identical in PyTorch and in Triton.

noise(i) = (lowbias32(i + seed * 0x9E3779B9) >> 8) * 2**-24, a float32 in [0, 1) for
the flat index i of an element in the blocked layout.  The seed is a device tensor
drawn from the caller's ``torch.Generator``, so no host sync is needed and the
same generator state gives the same noise, on the CPU reference and in the kernels.
lowbias32 is Chris Wellons' 32-bit integer hash (good avalanche, two multiplies).
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9
HASH_M1 = 0x7FEB352D
HASH_M2 = 0x846CA68B


def draw_seed(generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """One int64 seed in [0, 2**31) drawn from the generator, kept on the device."""
    return torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device, dtype=torch.int64)


def lowbias32(x: torch.Tensor) -> torch.Tensor:
    """The hash on int64 tensors holding uint32 values (masked after every multiply)."""
    x = x ^ (x >> 16)
    x = (x * HASH_M1) & _MASK32
    x = x ^ (x >> 15)
    x = (x * HASH_M2) & _MASK32
    return x ^ (x >> 16)


def uniform_noise(shape: torch.Size, seed: torch.Tensor) -> torch.Tensor:
    """float32 noise in [0, 1) for a tensor of ``shape``, indexed in row-major order."""
    n = 1
    for s in shape:
        n *= s
    idx = torch.arange(n, device=seed.device, dtype=torch.int64)
    h = lowbias32((idx + seed * GOLDEN32) & _MASK32)
    return ((h >> 8).to(torch.float32) * 2.0**-24).reshape(shape)
