"""The training loop: AdamW, warm-up + cosine, clipping, accumulation, BF16 autocast over FP32 master
weights, periodic validation, atomic checkpoints, exact resume, divergence stop, DDP / FSDP2, callbacks.

    from averis.train import Trainer, load_config
    Trainer(load_config(overrides=["recipe=averis", "train.max_steps=100"])).fit()

Callbacks are plain objects; any of these methods is called when present:
``on_train_start(trainer)``, ``on_step_end(trainer, step, metrics)`` (step = optimizer steps done),
``on_eval(trainer, step, val_loss)``, ``on_train_end(trainer, summary)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections import deque
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import provenance
from ..data.batching import WindowSampler, eval_starts
from ..data.prepare import PreparedData, prepare
from ..nn import split_counts, split_fractions_by_site, spread_streams
from ..progress import WINDOW, progress_bar
from . import checkpoint as ckpt
from . import distributed as dist_utils
from .config import RunConfig, save_config, to_dict
from .fast import fast_path
from .graph import DDP_WARMUP, CaptureFailed, GraphedStep
from .metrics import MetricsLogger
from .model import build_model
from .quant import NO_QUANT, apply_recipe, resolve_recipe
from .schedule import lr_factor

# config sections that must match for a resume to continue the same run
_RESUME_MUST_MATCH = ("recipe", "model", "data")


class Diverged(RuntimeError):
    """Raised inside the loop when the loss is non-finite or blew up; fit() turns it into a clean stop."""


class Trainer:
    def __init__(self, cfg: RunConfig, callbacks: list | tuple = (), resume: str | bool | None = None,
                 data: PreparedData | None = None):
        self.cfg, self.callbacks = cfg, list(callbacks)
        self.out = Path(cfg.out)
        self.device = pick_device(cfg.train.device)
        self.commit = provenance.commit()  # the code that runs, read now: a long run outlives later checkouts
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(cfg.train.threads))
        # under torchrun, distributed=auto means DDP: what the process group needs to know before it starts
        will_graph = fast_path(cfg, self.device, "ddp" if cfg.train.distributed == "auto" else
                               cfg.train.distributed).cuda_graph
        self.dist = dist_utils.init(cfg.train.distributed, self.device.type, will_graph)
        if self.device.type == "cuda" and self.dist.world > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.fast = fast_path(cfg, self.device, self.dist.mode)  # train.compile / train.cuda_graph, "auto" resolved
        if self.fast.cuda_graph and dist_utils.graph_unsupported(self.dist):
            raise ValueError(dist_utils.graph_unsupported(self.dist))
        # the stream a graphed step warms up and captures on (DDP is built on it: see distributed.wrap)
        self.graph_stream = (torch.cuda.Stream(self.device) if self.fast.cuda_graph and self.device.type == "cuda"
                             else None)
        self.autocast_dtype = autocast_dtype(cfg.train.precision, self.device)
        resolve_recipe(cfg.recipe, cfg.train.seed)  # an unknown recipe fails now, not after tokenizing
        resume_from = self._read_checkpoint(self._resume_candidates(resume))  # refusals come before tokenizing
        self.data = data or self._prepare_data()
        self.model = self._build_model()
        self.optimizer = make_optimizer(self.model, cfg, fused=self.device.type == "cuda" and self.dist.mode != "fsdp")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg.optim,
                                                                                               cfg.train.max_steps))
        self.step, self.tokens_seen, self.tracker = 0, 0, DivergenceTracker(cfg)
        if resume_from is not None:
            self._load(resume_from)
        if self.dist.world > 1:  # each rank its share of the SR draws: together those of one process (after a load)
            spread_streams(self.raw_model, self.dist.rank, self.dist.world)
        self.sampler = WindowSampler(self.data.train.tokens, cfg.data.seq_len, cfg.train.seed)
        self.compiled = torch.compile(self.model) if self.fast.compile else self.model
        self.graphed = self._graphed_step() if self.fast.cuda_graph else None
        self.tokens_per_step = cfg.train.batch_size * cfg.data.seq_len * cfg.train.grad_accum * self.dist.world
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out / "config.yaml")
        self.logger = MetricsLogger(self.out, self.step if resume_from is not None else None,
                                    cfg.train.tensorboard, enabled=self.dist.is_main)

    # ---- setup -------------------------------------------------------------------------------------
    def _resume_candidates(self, resume) -> list[Path]:
        """The checkpoint folders to try, best first ([] = start fresh); refuses to overwrite a run silently."""
        root = self.out / "checkpoints"
        if resume in (None, False, ""):
            if ckpt.latest(root) is not None:
                raise ValueError(f"{self.out} already holds a run with checkpoints: pass --resume to continue it, "
                                 f"or choose another --out")
            return []
        if self.dist.is_main:
            ckpt.clean_leftovers(root)  # what a kill during a save or a pruning left behind
        if resume in (True, "auto", "latest"):
            found = ckpt.complete_checkpoints(root)
            if not found and self.dist.is_main:
                print(f"averis train: warning: no checkpoint in {root} to resume from: starting from step 1",
                      file=sys.stderr)
            return found
        folder = Path(resume)
        if (folder / "checkpoints").is_dir() and ckpt.complete_checkpoints(folder / "checkpoints"):
            return ckpt.complete_checkpoints(folder / "checkpoints")
        if not ckpt.is_complete(folder):
            raise FileNotFoundError(f"no complete checkpoint at {resume} (expected a step_* folder with "
                                    f"{ckpt.MODEL_FILE}, {ckpt.TRAINER_FILE} and '{ckpt.COMPLETE}')")
        return [folder]

    def _read_checkpoint(self, candidates: list[Path]) -> tuple | None:
        """(folder, trainer state, model state, RNG state) of the first candidate whose files all read.

        A damaged checkpoint is skipped with a warning that names it and the one used instead (all ranks
        agree); a checkpoint of another config or number of ranks is refused, not skipped."""
        damaged: list[tuple[Path, str]] = []
        for folder in candidates:
            try:
                state = ckpt.load_trainer_state(folder)
                self._check_resumable(state, folder)
                loaded = (folder, state, ckpt.load_model_file(folder / ckpt.MODEL_FILE),
                          ckpt.read_rng(folder / f"rng_rank{self.dist.rank}.pt"))
                error = None
            except ckpt.CorruptCheckpoint as err:
                loaded, error = None, str(err)
            failed = torch.tensor([float(error is not None)], device=self.device)
            if float(dist_utils.all_reduce_sum(failed, self.dist)[0]) == 0:
                if damaged and self.dist.is_main:
                    print(f"averis train: warning: {_damage(damaged)}; resuming from {folder} instead, the newest "
                          f"complete checkpoint that reads", file=sys.stderr)
                return loaded
            damaged.append((folder, error or f"checkpoint {folder} cannot be read on another rank"))
        if damaged:
            raise ValueError(f"cannot resume: {_damage(damaged)}, and there is no earlier complete checkpoint to "
                             f"fall back to: restore the file, or start a new --out")
        return None

    def _prepare_data(self) -> PreparedData:
        cache = self.cfg.data.cache_dir or None
        progress = self.cfg.train.progress
        if self.dist.is_main:
            data = prepare(self.cfg.data, cache, progress)
        dist_utils.barrier(self.dist)  # rank 0 tokenized (or found the cache); the others now read it
        if not self.dist.is_main:
            data = prepare(self.cfg.data, cache, progress=False)
        if data.val is None and self.dist.is_main:
            print("averis train: no validation tokens (data.val_fraction=0 or no data.val_tokens): "
                  "validation loss is skipped")
        return data

    def _build_model(self) -> nn.Module:
        torch.manual_seed(self.cfg.train.seed)  # same initial weights for every recipe of a seed
        model = build_model(self.cfg.model, self.data.vocab_size, self.cfg.data.seq_len)
        model = apply_recipe(model, self.cfg.recipe, self.cfg.train.seed)
        model.to(self.device)
        self.raw_model = model
        return dist_utils.wrap(model, self.dist, self.device, self.graph_stream)

    # ---- the loop ------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to train.max_steps (or the time limit); returns a summary (also written to summary.json)."""
        cfg = self.cfg.train
        self._call("on_train_start", self)
        bar = self._progress_bar()
        start_time, start_step = time.time(), self.step
        recent = deque([(start_time, start_step)], maxlen=WINDOW + 1)  # tokens/s of the last steps, not since the start
        status, reason = "done", ""
        last_val = None
        try:
            while self.step < cfg.max_steps:
                metrics = self.train_step()
                recent.append((time.time(), self.step))
                metrics["tokens_per_s"] = (self.step - recent[0][1]) * self.tokens_per_step / max(
                    1e-9, recent[-1][0] - recent[0][0])
                if self._due(cfg.eval_every) or self.step == cfg.max_steps:
                    last_val = self.evaluate()
                    if last_val is not None:
                        metrics["val_loss"] = last_val
                        self._call("on_eval", self, self.step, last_val)
                    metrics.update(self._split_metrics())
                self.logger.log(metrics)
                self._call("on_step_end", self, self.step, metrics)
                self._update_bar(bar, metrics)
                if self._due(cfg.ckpt_every) or self.step == cfg.max_steps:
                    self.save_checkpoint()
                if cfg.time_limit_s and self._out_of_time(start_time):
                    status, reason = "stopped", f"time limit of {cfg.time_limit_s:g} s"
                    if not ckpt.step_dir(self.out / "checkpoints", self.step).exists():
                        self.save_checkpoint()
                    break
        except Diverged as err:
            status, reason = "diverged", str(err)
            self.logger.log({"step": self.step + 1, "event": "diverged", "reason": reason})
        finally:
            if bar is not None:
                bar.close()
        summary = self._summary(status, reason, last_val, time.time() - start_time)
        self._call("on_train_end", self, summary)
        self.logger.close()
        if self.graphed is not None:  # before the caller ends the process group (a graph with NCCL in it hangs that)
            self.graphed.release()
        return summary

    def train_step(self) -> dict:
        """One optimizer step (grad_accum micro-batches on every rank); self.step is then advanced."""
        cfg = self.cfg.train
        self.model.train()
        batches = [self._micro_batch(micro) for micro in range(cfg.grad_accum)]
        loss_sum = None
        if self.graphed is not None:  # forward + backward of every micro-batch replayed from a CUDA graph
            try:
                loss_sum = self.graphed(torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches]))
            except CaptureFailed as err:
                if not self.fast.graph_is_auto:
                    raise
                self.graphed = None  # train.cuda_graph=auto: eager steps from here on, the same numbers
                if self.dist.is_main:
                    print(f"averis train: warning: {err}; training with eager steps", file=sys.stderr)
        if loss_sum is None:
            loss_sum = torch.zeros((), device=self.device)
            for micro, (x, y) in enumerate(batches):
                with dist_utils.grad_sync(self.model, self.dist, sync=micro == cfg.grad_accum - 1):
                    loss = self.loss(x, y)
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
        grad_norm = self._clip()
        mean_loss = dist_utils.all_reduce_sum(loss_sum / cfg.grad_accum, self.dist) / self.dist.world
        loss_value, norm_value = float(mean_loss), float(grad_norm)
        self.tracker.check(self.step + 1, loss_value, norm_value)  # raises Diverged before the update
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        if self.graphed is None:  # a graphed step overwrites the gradients it owns
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self.tokens_seen += self.tokens_per_step
        return {"step": self.step, "loss": loss_value, "lr": lr, "grad_norm": norm_value,
                "tokens": self.tokens_seen}

    def _micro_batch(self, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = micro * self.dist.world + self.dist.rank  # the global micro-batch index (see batching.py)
        x, y = self.sampler.batch(self.step, index, self.cfg.train.batch_size)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _graphed_step(self) -> GraphedStep:
        if self.dist.mode != "ddp":
            return GraphedStep(self.raw_model, self.loss, self.device, stream=self.graph_stream)
        return GraphedStep(self.raw_model, self.loss, self.device, warmup=DDP_WARMUP, stream=self.graph_stream,
                           sync=lambda last: dist_utils.grad_sync(self.model, self.dist, sync=last),
                           capture_error_mode="thread_local")

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            out = self.compiled(x)
            logits = out.logits if hasattr(out, "logits") else out  # HF models return an output object
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _clip(self) -> torch.Tensor:
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP2 returns a DTensor

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean loss over fixed validation windows, split across ranks; None without validation data."""
        if self.data.val is None:
            return None
        cfg = self.cfg
        starts = eval_starts(len(self.data.val), cfg.data.seq_len, cfg.train.eval_batches * cfg.train.batch_size)
        if len(starts) == 0:
            return None
        # equal shares, so every rank runs the same number of forwards (FSDP's all-gathers need it)
        starts = starts[:len(starts) - len(starts) % self.dist.world]
        if len(starts) == 0:
            return None
        sampler = WindowSampler(self.data.val.tokens, cfg.data.seq_len, 0)
        mine = starts[self.dist.rank::self.dist.world]
        self.model.eval()
        totals = torch.zeros(2, device=self.device, dtype=torch.float64)  # (loss sum, windows)
        with self._eval_precision():
            for chunk in (mine[i:i + cfg.train.batch_size] for i in range(0, len(mine), cfg.train.batch_size)):
                x, y = sampler.windows(chunk)
                totals[0] += self.loss(x.to(self.device), y.to(self.device)).double() * len(chunk)
                totals[1] += len(chunk)
        totals = dist_utils.all_reduce_sum(totals, self.dist)
        self.model.train()
        return float(totals[0] / totals[1])

    # ---- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write OUT/checkpoints/step_N atomically (all ranks must call it); returns the folder on rank 0."""
        root = self.out / "checkpoints"
        tmp = ckpt.tmp_dir(root, self.step)
        model_state, optim_state = self._full_states()
        if self.dist.is_main:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist_utils.barrier(self.dist)
        ckpt.save_rng(tmp / f"rng_rank{self.dist.rank}.pt")
        if self.dist.is_main:
            meta = {"step": self.step, "recipe": self.cfg.recipe}
            ckpt.save_model_file(model_state, tmp / ckpt.MODEL_FILE, meta)
            torch.save({"optimizer": optim_state, "scheduler": self.scheduler.state_dict(), "step": self.step,
                        "tokens_seen": self.tokens_seen, "tracker": self.tracker.state(),
                        "signature": ckpt.model_signature(model_state), "config": to_dict(self.cfg),
                        "world": self.dist.world}, tmp / ckpt.TRAINER_FILE)
        dist_utils.barrier(self.dist)
        folder = None
        if self.dist.is_main:
            folder = ckpt.finalize(root, self.step, self.cfg.train.keep_checkpoints)
        dist_utils.barrier(self.dist)
        return folder

    def _full_states(self) -> tuple[dict, dict]:
        if self.dist.mode == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
                get_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return (get_model_state_dict(self.model, options=opts),
                    get_optimizer_state_dict(self.model, self.optimizer, options=opts))
        return self.raw_model.state_dict(), self.optimizer.state_dict()

    def _load(self, loaded: tuple) -> None:
        folder, state, model_state, rng = loaded
        ckpt.check_signature(state["signature"], ckpt.model_signature(self.raw_model.state_dict()), folder)
        if self.dist.mode == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self.model, model_state, options=opts)
            set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=opts)
        else:
            self.raw_model.load_state_dict(model_state)
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]
        self.tracker.load(state["tracker"])
        ckpt.apply_rng(rng)
        if self.dist.is_main:
            print(f"averis train: resumed from {folder} (step {self.step})")

    def _check_resumable(self, state: dict, folder: Path) -> None:
        """One line that says what differs and what to do, for a checkpoint of another run or launch."""
        if state["world"] != self.dist.world:
            raise ValueError(f"checkpoint {folder} was written by {state['world']} rank(s), this run has "
                             f"{self.dist.world}: resume with the same number of processes")
        saved, now = state["config"], to_dict(self.cfg)
        for key in _RESUME_MUST_MATCH:
            if json.dumps(saved[key], sort_keys=True) != json.dumps(now[key], sort_keys=True):
                run_config = Path(folder).parent.parent / "config.yaml"
                raise ValueError(f"checkpoint {folder} was written with a different '{key}' config "
                                 f"({_diff(saved[key], now[key], key)}): resume with the run's own settings "
                                 f"(--config {run_config}, without changing {key}), or choose another --out")

    # ---- helpers -----------------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _out_of_time(self, start_time: float) -> bool:
        """Rank 0's clock decides for every rank (ranks that stopped at different steps would hang)."""
        return bool(dist_utils.broadcast_object(time.time() - start_time > self.cfg.train.time_limit_s, self.dist))

    def _eval_precision(self):
        if self.cfg.train.eval_quantized or self.cfg.recipe in NO_QUANT:
            return contextlib.nullcontext()
        from ..nn import quantization_disabled

        return quantization_disabled(self.raw_model)

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)

    def _progress_bar(self):
        if not (self.cfg.train.progress and self.dist.is_main):
            return None
        return progress_bar(self.cfg.train.max_steps, self.step, self.cfg.recipe, self.cfg.train.log_every)

    def _update_bar(self, bar, m: dict) -> None:
        if bar is None:
            return
        post = {"loss": f"{m['loss']:.4f}", "tok/s": f"{m['tokens_per_s']:,.0f}"}
        if "val_loss" in m:
            self._last_val = f"{m['val_loss']:.4f}"
        if getattr(self, "_last_val", None):
            post["val"] = self._last_val  # the latest validation, until the next one
        bar.set_postfix(post, refresh=False)
        bar.update(1)  # after the postfix: a plain progress line prints this step's numbers

    def _split_metrics(self) -> dict:
        """The adaptive split's fractions so far, per site ("split_x/attn_in": share of X decisions that split),
        for the metrics log at evaluation steps (empty unless the recipe has mean_threshold; this rank's counts)."""
        fractions = split_fractions_by_site(split_counts(self.raw_model))
        return {f"split_{src}/{site}": f[src] for site, f in fractions.items() for src in ("x", "dy")
                if f[src] is not None}

    def _summary(self, status: str, reason: str, val_loss, seconds: float) -> dict:
        summary = {"status": status, "reason": reason, "step": self.step, "max_steps": self.cfg.train.max_steps,
                   "recipe": self.cfg.recipe, "seed": self.cfg.train.seed, "tokens": self.tokens_seen,
                   "val_loss": val_loss, "last_loss": self.tracker.last, "seconds": seconds,
                   "parameters": sum(p.numel() for p in self.raw_model.parameters()),
                   "world": self.dist.world, "device": provenance.device_name(self.device),
                   "commit": self.commit, "command": " ".join(sys.argv)}
        if self.device.type == "cuda":  # what this run holds of the GPU at its peak: how many fit side by side
            summary["gpu_peak_gib"] = round(torch.cuda.max_memory_reserved(self.device) / 2**30, 2)
        counts = split_counts(self.raw_model)
        if counts:  # the adaptive split: how often each layer and site split X and dY
            summary["split_fractions"] = split_fractions_by_site(counts)
            summary["split_counts"] = counts
        if self.dist.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
            if status != "done":
                print(f"averis train: {status} at step {self.step}: {reason}")
        return summary


class DivergenceTracker:
    """Stops on a non-finite loss or gradient norm, or when the smoothed loss exceeds ratio x its best."""

    def __init__(self, cfg: RunConfig):
        self.ratio, self.warmup = cfg.train.divergence_ratio, cfg.optim.warmup_steps
        self.ema, self.best, self.last = None, math.inf, None

    def check(self, step: int, loss: float, grad_norm: float) -> None:
        if not math.isfinite(loss):
            raise Diverged(f"loss is {loss} at step {step}; the last good checkpoint is kept")
        if not math.isfinite(grad_norm):
            raise Diverged(f"gradient norm is {grad_norm} at step {step}; the last good checkpoint is kept")
        self.last = loss
        self.ema = loss if self.ema is None else 0.9 * self.ema + 0.1 * loss
        if step > self.warmup:
            if self.ratio > 0 and self.ema > self.ratio * self.best:
                raise Diverged(f"smoothed loss {self.ema:.3f} exceeds {self.ratio:g} x its best {self.best:.3f} "
                               f"at step {step}; the last good checkpoint is kept")
            self.best = min(self.best, self.ema)

    def state(self) -> dict:
        return {"ema": self.ema, "best": self.best, "last": self.last}

    def load(self, state: dict) -> None:
        self.ema, self.best, self.last = state["ema"], state["best"], state["last"]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name} but CUDA is not available: use train.device=cpu or auto")
    return device


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_threads(requested: int = 0, processes: int = 1) -> int:
    """Threads for each of `processes` CPU runs: `requested`, else $OMP_NUM_THREADS, else the cores but one
    shared out (at least one each). OpenMP threads that wait for a core another process holds spin instead of
    sleeping: with every core taken, a run on a shared machine slows to a crawl; a spare core prevents it."""
    if requested > 0:
        return requested
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return max(1, (available_cores() - 1) // max(1, processes))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """BF16 autocast (master weights stay FP32) on CUDA by default; FP32 on CPU unless asked."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def make_optimizer(model: nn.Module, cfg: RunConfig, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms, biases and other 1-D parameters (the usual choice).

    fused: one kernel for all parameters (CUDA, plain tensors; FSDP2's DTensors use the default path).
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                             fused=fused or None)


def _damage(damaged: list[tuple[Path, str]]) -> str:
    """Every damaged checkpoint's error, newest first, on one line."""
    return "; ".join(error for _, error in damaged)


def _diff(saved, now, prefix: str) -> str:
    """The first differing keys of two config sections, dotted as --set takes them ('recipe' is a string)."""
    a, b = _flatten(saved, prefix), _flatten(now, prefix)
    keys = sorted(k for k in a.keys() | b.keys()
                  if k not in a or k not in b or json.dumps(a[k], sort_keys=True) != json.dumps(b[k], sort_keys=True))

    def show(flat: dict, k: str) -> str:
        return repr(flat[k]) if k in flat else "(unset)"

    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    return ", ".join(f"{k}: {show(a, k)} -> {show(b, k)}" for k in keys[:4]) + more


def _flatten(value, prefix: str) -> dict:
    if isinstance(value, dict):
        flat = {}
        for k, v in value.items():
            flat.update(_flatten(v, f"{prefix}.{k}"))
        return flat
    return {prefix: value}
