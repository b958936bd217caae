"""Train several recipes (and seeds) on the same data, seed and schedule, then report the loss gaps.

Sub-runs go to OUT/<recipe>/ (one seed) or OUT/<recipe>/seed<k>/ (several seeds).  Finished
sub-runs are skipped and unfinished ones resumed, so an interrupted comparison (or one cut into
pieces by train.time_limit_s) is completed by running the same command again.  With jobs > 1 the
sub-runs are separate processes running side by side (several small runs fill one GPU better
than one at a time).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..data.prepare import prepare
from .config import RunConfig, save_config
from .quant import resolve_recipe


def run_dir(out: Path, recipe: str, seed: int, several_seeds: bool) -> Path:
    label = Path(recipe).stem if recipe.endswith((".yaml", ".yml", ".toml")) else recipe
    return out / label / f"seed{seed}" if several_seeds else out / label


def plan(base: RunConfig, recipes: list[str], seeds: list[int], out: Path) -> list[RunConfig]:
    """One config per (recipe, seed): everything else identical."""
    if not recipes:
        raise ValueError("--recipes needs at least one recipe (e.g. --recipes bf16,nvfp4,averis)")
    for name in recipes:
        resolve_recipe(name, 0)  # an unknown recipe fails here, before any training
    several = len(seeds) > 1
    # seed-major order: a comparison cut short by a time budget has every recipe of the first seed(s)
    return [dataclasses.replace(base, recipe=r, out=str(run_dir(out, r, s, several)),
                                train=dataclasses.replace(base.train, seed=s))
            for s in seeds for r in recipes]


def is_finished(cfg: RunConfig) -> bool:
    summary = Path(cfg.out) / "summary.json"
    if not summary.is_file():
        return False
    info = json.loads(summary.read_text())
    done = info.get("status") == "done" and info.get("step") == cfg.train.max_steps
    return done or info.get("status") == "diverged"


def compare(base: RunConfig, recipes: list[str], seeds: list[int], out: str | Path, jobs: int = 1,
            callbacks=(), time_budget_s: float = 0, child_args: list[str] | tuple = ()) -> list[dict]:
    """Run every (recipe, seed) that is not finished; returns the summaries of the runs it trained.

    callbacks go to each Trainer of this process (jobs=1); with jobs > 1 every run is a child
    ``averis train`` process, which gets child_args instead (e.g. ``["--analyze-every", "50"]``).

    time_budget_s > 0: every run checkpoints and stops by then (runs not started are left for the
    next call), so a comparison can be cut into pieces that each fit a time-limited session.
    """
    deadline = time.time() + time_budget_s if time_budget_s > 0 else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = plan(base, recipes, seeds, out)
    prepare(base.data, base.data.cache_dir or None, base.train.progress)  # tokenize once, before any run
    (out / "compare.json").write_text(json.dumps({"recipes": recipes, "seeds": seeds,
                                                  "runs": [c.out for c in configs]}, indent=1))
    todo = [c for c in configs if not is_finished(c)]
    for c in configs:
        if c not in todo:
            print(f"averis compare: {c.out} is finished, skipped")
    if jobs > 1:
        return _run_parallel(todo, jobs, deadline, child_args)
    from .trainer import Trainer

    results = []
    for c in todo:
        c = _within(c, deadline)
        if c is None:
            break
        print(f"averis compare: training {c.recipe} seed {c.train.seed} -> {c.out}")
        results.append(Trainer(c, callbacks=callbacks, resume="auto").fit())
    return results


# a run started with less time than this left is not started at all (startup would eat the budget)
MIN_RUN_SECONDS = 60.0
STARTUP_MARGIN_S = 45.0  # process start, CUDA init, model build and the final checkpoint


def _within(cfg: RunConfig, deadline: float | None) -> RunConfig | None:
    """cfg with train.time_limit_s cut to the time left before deadline; None when too little is left."""
    if deadline is None:
        return cfg
    left = deadline - time.time() - STARTUP_MARGIN_S
    if left < MIN_RUN_SECONDS:
        print(f"averis compare: time budget spent; {cfg.out} is left for the next call")
        return None
    limit = min(left, cfg.train.time_limit_s) if cfg.train.time_limit_s > 0 else left
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, time_limit_s=limit))


def _run_parallel(configs: list[RunConfig], jobs: int, deadline: float | None = None,
                  child_args: list[str] | tuple = ()) -> list[dict]:
    """Each run as `python -m averis train --config OUT/run/config.yaml --resume`, `jobs` at a time."""
    pending, running, results = list(configs), [], []
    while pending or running:
        while pending and len(running) < jobs:
            cfg = _within(pending.pop(0), deadline)
            if cfg is None:
                pending.clear()
                break
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
            cfg_path = Path(cfg.out) / "config.yaml"
            save_config(cfg, cfg_path)  # the child's stdout is train.log: progress comes as plain lines
            log = open(Path(cfg.out) / "train.log", "a")
            cmd = [sys.executable, "-m", "averis", "train", "--config", str(cfg_path), "--resume",
                   *child_args]
            running.append((cfg, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_child_env()), log))
            print(f"averis compare: started {cfg.recipe} seed {cfg.train.seed} -> {cfg.out} (log: train.log)")
        time.sleep(1.0)
        for item in list(running):
            cfg, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"averis compare: {cfg.out} finished with exit code {proc.returncode}")
                summary = Path(cfg.out) / "summary.json"
                results.append(json.loads(summary.read_text()) if summary.is_file() else
                               {"status": "failed", "out": cfg.out, "exit_code": proc.returncode})
    return results


def _child_env() -> dict:
    env = dict(os.environ)
    # several processes share the cores: one or two threads each avoids oversubscription
    env.setdefault("OMP_NUM_THREADS", "2" if _has_cuda() else "1")
    return env


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
