"""Counter-based uniform noise for stochastic rounding, identical in PyTorch and in Triton.

noise(i) = (lowbias32(i + seed * 0x9E3779B9) >> 8) * 2**-24, a float32 in [0, 1) for
the flat index i of an element in the blocked layout.  The seed is a device tensor, so no
host sync is needed and the same seed gives the same noise on the CPU reference and in the
kernels.  lowbias32 is Chris Wellons' 32-bit integer hash (good avalanche, two multiplies).

Seeds come from a ``torch.Generator`` (the public quantize API) or from a :class:`Stream`,
what the quantized layers use: a counter-based draw (TransformerEngine's philox (seed, offset)
idea) from a per-step seed table that the layer derives from its ``averis_rng`` buffer
(a (seed, counter) pair in its state_dict), so the stochastic-rounding state is checkpointed
with the model and a CUDA graph replays it without registering anything.  A seed is any int64:
the noise uses its low 32 bits.
"""

from __future__ import annotations

import functools

import torch

_MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9
HASH_M1 = 0x7FEB352D
HASH_M2 = 0x846CA68B


_MASK64 = (1 << 64) - 1
SEED_MASK = 0x7FFFFFFF  # seeds live in [0, 2**31): the CPU reference's int64 arithmetic cannot overflow
STRIDE = 0x4F1BBCDD  # odd: 2**31 consecutive counters give distinct seeds
LANES, DRAWS = 4, 8  # draw sites of a layer's step, and the draws per site that a table holds


def splitmix64(x: int) -> int:
    """A 64-bit integer hash (Steele et al.'s SplitMix64 finaliser), for constants made on the host."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@functools.cache
def _offsets(device: str) -> torch.Tensor:
    """(LANES, DRAWS) int64 constants: hash(lane, k), the spread between the draws of one step."""
    values = [[_offset(lane, k) for k in range(DRAWS)] for lane in range(LANES)]
    return torch.tensor(values, dtype=torch.int64, device=device)


def _offset(lane: int, k: int) -> int:
    return splitmix64(((lane + 1) << 40) + k) & SEED_MASK  # inputs no layer seed hashes (see nn.state)


def step_seeds(rng: torch.Tensor) -> torch.Tensor:
    """The (LANES, DRAWS) int64 seed table of one step of an ``averis_rng`` buffer [layer seed, counter]:
    (layer seed + counter * STRIDE + hash(lane, k)) mod 2**31 (three small kernels, no host sync).

    The noise passes a seed through its own hash (``uniform_noise``), so the seeds need only differ: the
    layer seed is a hash of (recipe seed, layer index), the odd stride keeps 2**31 steps apart, and the
    constants keep the draws of a step apart."""
    return (torch.add(rng[:1], rng[1:], alpha=STRIDE) + _offsets(str(rng.device))) & SEED_MASK


class Stream:
    """The draws of one site of a layer's step (fprop, dgrad, wgrad's X in the forward, wgrad's dY in the
    backward: ``lane``), in their fixed order ``k``: row ``lane`` of a step's seed table."""

    def __init__(self, table: torch.Tensor, lane: int):
        self.table, self.lane, self.k = table, int(lane), 0

    @property
    def device(self) -> torch.device:
        return self.table.device

    def next_seed(self) -> torch.Tensor:
        k, self.k = self.k, self.k + 1
        if k < DRAWS:
            return self.table[self.lane, k : k + 1]  # a view: no kernel
        return (self.table[self.lane, :1] + _offset(self.lane, k)) & SEED_MASK


def draw_seed(generator: torch.Generator | Stream | None, device: torch.device) -> torch.Tensor:
    """One int64 seed (a (1,) device tensor) from the generator (in [0, 2**31)) or the stream."""
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
    return box_muller(u1, u2).reshape(shape)


def box_muller(u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """Standard normal float32 values from u1 in (0, 1] and u2 in [0, 1) (the one formula every backend uses)."""
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * torch.pi) * u2)


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
