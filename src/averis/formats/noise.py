"""Counter-based uniform noise for stochastic rounding, identical in PyTorch and in Triton.

noise(i) = (lowbias32(i + seed * 0x9E3779B9) >> 8) * 2**-24, a float32 in [0, 1) for
the flat index i of an element in the blocked layout.  The seed is a device tensor, so no
host sync is needed and the same seed gives the same noise on the CPU reference and in the
kernels.  lowbias32 is Chris Wellons' 32-bit integer hash (good avalanche, two multiplies).

Seeds come from a ``torch.Generator`` (the public quantize API) or from a :class:`Stream`,
what the quantized layers use: a counter-based draw (TransformerEngine's philox (seed, offset)
idea) from a per-step seed tensor that the layer derives from its ``averis_rng`` buffer
(a (seed, counter) pair in its state_dict), so the stochastic-rounding state is checkpointed
with the model and a CUDA graph replays it without registering anything.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9
HASH_M1 = 0x7FEB352D
HASH_M2 = 0x846CA68B


_SEED_MASK = 0x7FFFFFFF


def _lowbias32_int(x: int) -> int:
    """lowbias32 on a Python int (for constants known at trace time)."""
    x &= _MASK32
    x ^= x >> 16
    x = (x * HASH_M1) & _MASK32
    x ^= x >> 15
    x = (x * HASH_M2) & _MASK32
    return x ^ (x >> 16)


def step_seed(rng: torch.Tensor) -> torch.Tensor:
    """The seed (int64 tensor of shape (1,), in [0, 2**31)) of one step of an ``averis_rng`` buffer
    [seed, counter]: a hash of both, computed on the buffer's device (no host sync)."""
    seed, counter = (rng & _MASK32).unbind()
    h = lowbias32((seed ^ GOLDEN32) & _MASK32)
    h = lowbias32((h ^ counter) & _MASK32)
    return (h & _SEED_MASK).reshape(1)


class Stream:
    """The draws of one GEMM operand family in one step: seed k = (base + hash(lane, k)) mod 2**31.

    ``base`` is a step seed (see :func:`step_seed`), ``lane`` tells the draw sites of a layer apart
    (fprop, dgrad, wgrad's X in the forward, wgrad's dY in the backward), ``k`` counts the draws in
    their fixed order.  Deterministic, free of host syncs, and two lanes never share a seed sequence.
    """

    def __init__(self, base: torch.Tensor, lane: int):
        self.base, self.lane, self.k = base, int(lane), 0

    @property
    def device(self) -> torch.device:
        return self.base.device

    def next_seed(self) -> torch.Tensor:
        offset = _lowbias32_int(_lowbias32_int(self.lane * GOLDEN32 + 1) + self.k)
        self.k += 1
        return (self.base + offset) & _SEED_MASK


def draw_seed(generator: torch.Generator | Stream | None, device: torch.device) -> torch.Tensor:
    """One int64 seed in [0, 2**31) drawn from the generator or stream, kept on the device."""
    if isinstance(generator, Stream):
        return generator.next_seed()
    return torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device, dtype=torch.int64)


def normal(shape: tuple[int, ...], generator: torch.Generator | Stream | None, device: torch.device) -> torch.Tensor:
    """Standard normal float32 noise: torch.randn for a generator; Box-Muller on two uniform draws
    for a stream (the same on CPU and GPU)."""
    if not isinstance(generator, Stream):
        return torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    n = 1
    for s in shape:
        n *= s
    u1 = 1.0 - uniform_noise((n,), generator.next_seed())  # (0, 1]: log is finite
    u2 = uniform_noise((n,), generator.next_seed())
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * torch.pi) * u2)).reshape(shape)


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
