"""Learning-rate schedule: linear warm-up, then cosine (or linear, or constant) decay to lr * min_lr_ratio.

A pure function of the step, so a resumed run gets exactly the learning rates of an uninterrupted one.
"""

from __future__ import annotations

import math


def lr_factor(step: int, optim, max_steps: int) -> float:
    """Multiplier of optim.lr for the update made at 0-based step `step`."""
    warmup = optim.warmup_steps
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if optim.schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = optim.min_lr_ratio
    if optim.schedule == "linear":
        return floor + (1 - floor) * (1 - progress)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
