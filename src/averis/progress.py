"""Progress of long work (training steps, tokenized characters): a tqdm bar on a terminal, plain lines
anywhere else.

A bar redraws itself with carriage returns, which a log file (nohup, a cluster job, the train.log of
each `averis compare` child) keeps as one unreadable line; there a line at the first update and then
every ``every`` units (the trainer: every ``train.log_every`` steps, with the loss and the throughput)
says the same. The time left comes from the last WINDOW updates, not the average since the start
(which a slow first step, or a machine that got busier, would skew for the rest of the run).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO

WINDOW = 20  # updates (training steps) the rate behind the time left is measured over


def progress_bar(total: int | None, initial: int, desc: str, every: int, unit: str = "step",
                 tty: TextIO | None = None, log: TextIO | None = None):
    """tqdm on `tty` (default stderr) when it is a terminal, else a LineProgress writing to `log` (default stdout).
    total None: unknown (no percentage, no ETA)."""
    tty = sys.stderr if tty is None else tty
    if tty.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit=unit, unit_scale=unit != "step", desc=desc,
                    dynamic_ncols=True, file=tty)
    return LineProgress(total, initial, desc, every, sys.stdout if log is None else log, unit)


class LineProgress:
    """The part of tqdm's interface averis uses (update, set_postfix, close): a line at the first update (so a
    log shows within seconds that work has started), each time the count passes a multiple of `every` units,
    and at the end."""

    def __init__(self, total: int | None, initial: int, desc: str, every: int, stream: TextIO, unit: str = "step"):
        if every < 1:
            raise ValueError(f"progress lines need every >= 1 {unit}, got {every}")
        self.total, self.n, self.desc, self.every, self.stream = total, initial, desc, every, stream
        self.unit = unit
        self.start_n, self.start_time = initial, time.monotonic()
        self.recent = deque([(self.start_time, initial)], maxlen=WINDOW + 1)  # (time, count) of recent updates
        self.postfix: dict[str, str] = {}

    def set_postfix(self, postfix: dict[str, str], refresh: bool = False) -> None:
        self.postfix = dict(postfix)

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        self.recent.append((time.monotonic(), self.n))
        first = before == self.start_n
        if first or self.n // self.every > before // self.every or (
                self.total is not None and before < self.total <= self.n):
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        now = time.monotonic()
        elapsed = now - self.start_time
        if self.total is None:
            count, eta = f"{self.unit} {self.n:,}", ""
        else:
            (then, n_then) = self.recent[0]
            rate = (self.n - n_then) / (now - then) if self.n > n_then and now > then else float("nan")
            left = (self.total - self.n) / rate if self.n < self.total else 0.0
            count = f"{self.unit} {self.n:,}/{self.total:,} ({100 * self.n / max(1, self.total):.0f}%)"
            eta = f", ETA {clock(left)}"
        fields = [f"{self.desc}: {count}", *(f"{k} {v}" for k, v in self.postfix.items()),
                  f"{clock(elapsed)} elapsed{eta}"]
        return " | ".join(fields)

    def close(self) -> None:
        pass


def clock(seconds: float) -> str:
    """h:mm:ss or m:ss; '?' before the first step has a time."""
    if seconds != seconds:  # NaN
        return "?"
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"
