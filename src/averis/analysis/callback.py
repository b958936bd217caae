"""A training callback that records the mean-bias statistics every N optimizer steps.

    from averis.analysis import MeanBiasCallback
    Trainer(cfg, callbacks=[MeanBiasCallback(every=100)]).fit()

Every ``every`` steps it runs a fixed block of validation tokens (the same tokens each time, so steps
are comparable) through the model as it trains - quantized layers included, so the statistics are
those of the operands the recipe's quantizers see - and appends one JSON line per step to
``OUT/mean_bias.jsonl``.  It leaves training exactly as it found it: model mode, parameter gradients,
the global RNG and every quantizer's stochastic-rounding generator are restored, so a run with the
callback follows the same trajectory as one without.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from .analyze import analyze_model

SCALARS = ("mean_ratio", "sign_coherence", "cos_mean_v1", "energy_mean", "energy_spike", "energy_tail",
           "outlier_mean", "outlier_spike", "outlier_tail", "absmax")


class MeanBiasCallback:
    """Record per-layer mean-bias statistics during training (``on_step_end(trainer, step, metrics)``).

    every: steps between records (and one at the first step).  tokens / seq_len: the fixed block of
    tokens (seq_len defaults to the run's).  grads: also record output gradients (one extra backward).
    formats: FP4 formats of the quantization-damage measurement (empty: skip it, the cheap option).
    out: the JSONL file (default OUT/mean_bias.jsonl of the run).
    """

    def __init__(self, every: int = 100, *, tokens: int = 1024, seq_len: int | None = None,
                 max_tokens: int = 1024, grads: bool = False, formats: tuple[str, ...] = ("nvfp4",),
                 include: str | None = None, exclude: str | None = None, out: str | Path | None = None):
        if every < 1:
            raise ValueError(f"every={every}: record at least every step (every >= 1)")
        self.every, self.tokens, self.seq_len, self.max_tokens = every, tokens, seq_len, max_tokens
        self.grads, self.formats, self.include, self.exclude = grads, tuple(formats), include, exclude
        self.out_given = Path(out) if out is not None else None
        self.out = self.out_given
        self.batches: list[torch.Tensor] | None = None
        self.records: list[dict] = []

    # ---------------------------------------------------------------- trainer hooks
    def on_train_start(self, trainer) -> None:
        # per trainer, so one callback can serve several runs in turn (averis compare): each run's own
        # tokens and OUT/mean_bias.jsonl unless an out file was given
        self.batches = self._fixed_batches(trainer)
        self.out = self.out_given or Path(trainer.out) / "mean_bias.jsonl"

    def on_step_end(self, trainer, step: int, metrics: dict) -> None:
        if not (step == 1 or step % self.every == 0):
            return
        if self.batches is None:
            self.on_train_start(trainer)
        record = {"step": step, "loss": metrics.get("loss"), "layers": self.measure(trainer)}
        self.records.append(record)
        if getattr(getattr(trainer, "dist", None), "is_main", True):
            self.out.parent.mkdir(parents=True, exist_ok=True)
            with open(self.out, "a") as f:
                f.write(json.dumps(record) + "\n")

    # ---------------------------------------------------------------- measuring
    def measure(self, trainer) -> list[dict]:
        """Compact per-layer statistics of the model as it is now (side-effect free for training)."""
        from ..nn import rng_kept

        model = trainer.raw_model
        with rng_kept(model), _autocast(trainer):  # training's random streams are left as they were
            result = analyze_model(model, self.batches, grads=self.grads, max_tokens=self.max_tokens,
                                   include=self.include, exclude=self.exclude, formats=self.formats,
                                   quantize=bool(self.formats), min_tokens=2,
                                   device=trainer.device)
        return [compact(r) for r in result["layers"]]

    def _fixed_batches(self, trainer) -> list[torch.Tensor]:
        seq_len = self.seq_len or trainer.cfg.data.seq_len
        split = trainer.data.val if trainer.data.val is not None else trainer.data.train
        tokens = torch.as_tensor(split.tokens[: self.tokens].astype("int64"))
        if len(tokens) < seq_len:
            raise ValueError(f"MeanBiasCallback: the run has only {len(tokens)} tokens to analyze, fewer than one "
                             f"sequence of {seq_len}")
        rows = len(tokens) // seq_len
        return [tokens[: rows * seq_len].reshape(rows, seq_len)]


def compact(record: dict) -> dict:
    """The scalar statistics of a layer record, plus plain and mean-removed relative error per format."""
    out = {k: record[k] for k in ("name", "kind", "block", "site")}
    out.update({k: round(float(record[k]), 6) for k in SCALARS})
    for fmt, q in (record.get("quant") or {}).items():
        out[f"{fmt}_rel_error"] = round(q["plain"]["rel_error"], 6)
        out[f"{fmt}_rel_error_mean_removed"] = round(q["mean_bf16"]["rel_error"], 6)
    return out


def _autocast(trainer):
    dtype = getattr(trainer, "autocast_dtype", None)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(trainer.device.type, dtype=dtype)


def read_records(path: str | Path) -> list[dict]:
    """The records a MeanBiasCallback wrote (one per recorded step)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mean-bias records at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
