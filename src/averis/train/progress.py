"""A training run's progress: a tqdm bar on a terminal, plain lines anywhere else.

A bar redraws itself with carriage returns, which a log file (nohup, a cluster job, the train.log of
each `averis compare` child) keeps as one unreadable line; there a line every ``log_every`` steps
with the loss, the throughput and the time left says the same.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def progress_bar(total: int, initial: int, desc: str, every: int, tty: TextIO | None = None,
                 log: TextIO | None = None):
    """tqdm on `tty` (default stderr) when it is a terminal, else a LineProgress writing to `log` (default stdout)."""
    tty = sys.stderr if tty is None else tty
    if tty.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="step", desc=desc, dynamic_ncols=True, file=tty)
    return LineProgress(total, initial, desc, every, sys.stdout if log is None else log)


class LineProgress:
    """The part of tqdm's interface the trainer uses (update, set_postfix, close), as one line per `every` steps."""

    def __init__(self, total: int, initial: int, desc: str, every: int, stream: TextIO):
        if every < 1:
            raise ValueError(f"progress lines need every >= 1 step, got {every}")
        self.total, self.n, self.desc, self.every, self.stream = total, initial, desc, every, stream
        self.start_n, self.start_time = initial, time.monotonic()
        self.postfix: dict[str, str] = {}

    def set_postfix(self, postfix: dict[str, str], refresh: bool = False) -> None:
        self.postfix = dict(postfix)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n % self.every == 0 or self.n >= self.total:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start_time
        done = self.n - self.start_n
        eta = (self.total - self.n) * elapsed / done if done > 0 else float("nan")
        fields = [f"{self.desc}: step {self.n}/{self.total} ({100 * self.n / max(1, self.total):.0f}%)",
                  *(f"{k} {v}" for k, v in self.postfix.items()),
                  f"{clock(elapsed)} elapsed, ETA {clock(eta)}"]
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
