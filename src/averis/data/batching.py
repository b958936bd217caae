"""Batches of random windows, a pure function of (seed, step, micro-batch index): resume is exact.

No iterator state: the batch of optimizer step s, micro-batch k on rank r is drawn from
``SeedSequence([seed, s, k * world + r])``.  With the global index ``k * world + r``, a
2-rank DDP run with 1 micro-batch sees the same data as 1 rank with 2 micro-batches.
"""

from __future__ import annotations

import numpy as np
import torch


class WindowSampler:
    def __init__(self, tokens: np.ndarray, seq_len: int, seed: int):
        if len(tokens) < seq_len + 2:
            raise ValueError(f"only {len(tokens)} tokens, fewer than one window of data.seq_len={seq_len} + 1: "
                             f"use more text or a shorter data.seq_len")
        self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
        self.offsets = np.arange(seq_len + 1, dtype=np.int64)

    def starts(self, step: int, index: int, batch_size: int) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step, index]))
        return rng.integers(0, len(self.tokens) - self.seq_len, size=batch_size, dtype=np.int64)

    def windows(self, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(self.tokens[starts[:, None] + self.offsets].astype(np.int64))
        return rows[:, :-1], rows[:, 1:]  # inputs, next-token targets: (batch, seq_len) each

    def batch(self, step: int, index: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows(self.starts(step, index, batch_size))


def eval_starts(num_tokens: int, seq_len: int, num_windows: int) -> np.ndarray:
    """Fixed, evenly spaced validation windows (the same for every recipe, seed and step)."""
    last = num_tokens - seq_len - 1
    if last < 0:
        return np.zeros(0, dtype=np.int64)
    count = min(num_windows, last // max(1, seq_len // 2) + 1)
    return np.linspace(0, last, count).astype(np.int64)
