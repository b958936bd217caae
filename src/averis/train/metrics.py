"""Run logs: one JSON object a line in metrics.jsonl, mirrored to TensorBoard when it is installed."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl (a partial last line, from a killed run, is skipped)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLogger:
    """Append-only JSONL; on resume, records after the resumed step are dropped first (they will be redone)."""

    def __init__(self, out: Path, resume_step: int | None = None, tensorboard: bool = True, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(out) / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        else:
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a", buffering=1)
        if tensorboard and importlib.util.find_spec("torch.utils.tensorboard") and importlib.util.find_spec(
                "tensorboard"):
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out) / "tensorboard"), purge_step=resume_step)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        if self.writer is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                    self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def _clean(value):
    """JSON has no NaN/Inf: write them as strings so the file stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
