"""Train several recipes (and seeds) on the same data, seed and schedule, then report the loss gaps.

Sub-runs go to OUT/<recipe>/seed<k>/ (several seeds, or seeds added later), else OUT/<recipe>/.  Finished
sub-runs are skipped and unfinished ones resumed, so an interrupted comparison (or one cut into
pieces by train.time_limit_s) is completed by running the same command again.  With jobs > 1 the
sub-runs are separate processes running side by side, each writing OUT/<run>/train.log, whose lines
this process passes on.  By default (auto_jobs) a CPU runs every run at once, sharing all cores but
one (one thread each on two cores: OpenMP threads that wait for a core another process holds spin,
and a run slows to a crawl), and a GPU a few at a time (several small runs fill it better than one); a
run that runs out of GPU memory beside others runs again, with fewer side by side from then on.
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
from . import checkpoint as ckpt
from .config import RunConfig, save_config
from .quant import resolve_recipe
from .trainer import Trainer, available_cores, cpu_threads, pick_device


def _label(recipe: str) -> str:
    return Path(recipe).stem if recipe.endswith((".yaml", ".yml", ".toml")) else recipe


def run_dir(out: Path, recipe: str, seed: int, several_seeds: bool) -> Path:
    return out / _label(recipe) / f"seed{seed}" if several_seeds else out / _label(recipe)


def seed_folders(out: Path, recipes: list[str], seeds: list[int]) -> bool:
    """Whether the runs go to OUT/<recipe>/seed<k>/: for several seeds, and for one seed where an earlier
    comparison in OUT used seed folders (``--seeds 2`` after ``--seeds 0,1`` lands beside the earlier seeds, not
    in OUT/<recipe>/, where it would mix with them)."""
    return len(seeds) > 1 or any(any((out / _label(r)).glob("seed*")) for r in recipes)


def plan(base: RunConfig, recipes: list[str], seeds: list[int], out: Path) -> list[RunConfig]:
    """One config per (recipe, seed): everything else identical."""
    if not recipes:
        raise ValueError("--recipes needs at least one recipe (e.g. --recipes bf16,nvfp4,averis)")
    for name in recipes:
        resolve_recipe(name, 0)  # an unknown recipe fails here, before any training
    several = seed_folders(out, recipes, seeds)
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


def auto_jobs(n_runs: int, cuda: bool, cores: int | None = None) -> int:
    """Runs side by side when --jobs is not given: a GPU up to 4 (small runs leave it mostly idle); a CPU
    every run at once while there is at most one run more than cores (bf16 finishes early and leaves
    its core to the FP4 runs), else one a core.  Each CPU run gets trainer.cpu_threads(0, jobs) threads."""
    if cuda:
        return max(1, min(n_runs, 4))
    cores = cores or available_cores()
    return max(1, n_runs if n_runs <= cores + 1 else cores)


def compare(base: RunConfig, recipes: list[str], seeds: list[int], out: str | Path, jobs: int = 1,
            callbacks=(), time_budget_s: float = 0, child_args: list[str] | tuple = ()) -> list[dict]:
    """Run every (recipe, seed) that is not finished; returns the summaries of the runs it trained.

    jobs 0: auto_jobs.  callbacks go to each Trainer of this process (jobs=1); with jobs > 1 every run
    is a child ``averis train`` process, which gets child_args instead (e.g. ``["--analyze-every", "50"]``).

    time_budget_s > 0: every run checkpoints and stops by then (runs not started are left for the
    next call), so a comparison can be cut into pieces that each fit a time-limited session.
    """
    deadline = time.time() + time_budget_s if time_budget_s > 0 else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = plan(base, recipes, seeds, out)
    todo = [c for c in configs if not is_finished(c)]
    cuda = _uses_cuda(base)
    jobs = jobs if jobs > 0 else auto_jobs(len(todo), cuda)
    threads = 0 if cuda else cpu_threads(base.train.threads, min(jobs, max(1, len(todo))))
    _say_plan(base, recipes, seeds, len(todo), jobs, threads, cuda)
    prepare(base.data, base.data.cache_dir or None, base.train.progress)  # tokenize once, before any run
    (out / "compare.json").write_text(json.dumps({"recipes": recipes, "seeds": seeds,
                                                  "runs": [c.out for c in configs]}, indent=1))
    for c in configs:
        if c not in todo:
            print(f"averis compare: {c.out} is finished, skipped")
    if threads:  # written into each run's config: every process, child or not, uses exactly this many
        todo = [dataclasses.replace(c, train=dataclasses.replace(c.train, threads=threads)) for c in todo]
    if jobs > 1:
        return _run_parallel(todo, jobs, deadline, child_args, relay_prefix=len(seeds) > 1, out=out)
    results = []
    for c in todo:
        c = _within(c, deadline)
        if c is None:
            break
        print(f"averis compare: training {c.recipe} seed {c.train.seed} -> {c.out}")
        results.append(Trainer(c, callbacks=callbacks, resume="auto" if _has_checkpoint(c) else None).fit())
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


# what a run that ran out of GPU memory writes (PyTorch's allocator, or cuBLAS failing to allocate its workspace)
GPU_OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED")
MAX_OOM_RETRIES = 3


def _run_parallel(configs: list[RunConfig], jobs: int, deadline: float | None = None,
                  child_args: list[str] | tuple = (), relay_prefix: bool = False,
                  out: Path | None = None) -> list[dict]:
    """Each run as `python -m averis train --config OUT/run/config.yaml [--resume]`, `jobs` at a time; the
    lines each writes to its train.log are passed on here as they come (prefixed by the run's folder with
    several seeds, where the recipe alone does not say which run a line is from).

    A run that runs out of GPU memory while others share the GPU is not lost: it goes back to the front of
    the queue (resuming from its checkpoint, if it wrote one) and from then on at most as many runs as were
    left running share the GPU (how many fit depends on the model, which `jobs` cannot know)."""
    pending, running, results = list(configs), [], []
    oom_retries: dict[str, int] = {}
    while pending or running:
        while pending and len(running) < jobs:
            cfg = _within(pending.pop(0), deadline)
            if cfg is None:
                pending.clear()
                break
            running.append(_start_child(cfg, child_args, relay_prefix, out))
        time.sleep(0.5)
        for item in list(running):
            cfg, proc, log, relay = item
            done = proc.poll() is not None
            relay.pass_on(final=done)
            if not done:
                continue
            log.close()
            running.remove(item)
            print(f"averis compare: {cfg.out} finished with exit code {proc.returncode}", flush=True)
            if (proc.returncode != 0 and running and oom_retries.get(cfg.out, 0) < MAX_OOM_RETRIES
                    and _ran_out_of_gpu_memory(relay)):
                oom_retries[cfg.out] = oom_retries.get(cfg.out, 0) + 1
                jobs = min(jobs, len(running))
                pending.insert(0, cfg)
                print(f"averis compare: {cfg.recipe} seed {cfg.train.seed} ran out of GPU memory beside "
                      f"{len(running)} other run(s): it runs again, and at most {jobs} side by side from now on",
                      flush=True)
                continue
            summary = Path(cfg.out) / "summary.json"
            results.append(json.loads(summary.read_text()) if summary.is_file() else
                           {"status": "failed", "out": cfg.out, "exit_code": proc.returncode})
    return results


def _start_child(cfg: RunConfig, child_args, relay_prefix: bool, out: Path | None) -> tuple:
    """Start one run as a child process writing its train.log; returns (cfg, process, log file, relay)."""
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    cfg_path = Path(cfg.out) / "config.yaml"
    save_config(cfg, cfg_path)  # the child's stdout is train.log: progress comes as plain lines
    log = open(Path(cfg.out) / "train.log", "a")
    prefix = f"[{Path(cfg.out).relative_to(out) if out else cfg.out}] " if relay_prefix else ""
    relay = _Relay(Path(cfg.out) / "train.log", log.tell(), prefix)
    resume = ["--resume"] if _has_checkpoint(cfg) else []
    proc = subprocess.Popen(_child_command(cfg_path, [*resume, *child_args]), stdout=log, stderr=subprocess.STDOUT,
                            env=_child_env(cfg))
    print(f"averis compare: started {cfg.recipe} seed {cfg.train.seed} -> {cfg.out} (log: train.log)", flush=True)
    return cfg, proc, log, relay


def _child_command(cfg_path: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "averis", "train", "--config", str(cfg_path), *args]


def _ran_out_of_gpu_memory(relay: _Relay) -> bool:
    """Whether this attempt's part of the run's train.log shows the GPU running out of memory."""
    with open(relay.path, encoding="utf-8", errors="replace") as f:
        f.seek(relay.start)
        return any(marker in f.read() for marker in GPU_OOM_MARKERS)


class _Relay:
    """Passes on the new complete lines of a child's log (not its closing summary, which the report gives)."""

    QUIET = ('{"status"', "averis train: run in ")

    def __init__(self, path: Path, start: int, prefix: str):
        self.path, self.start, self.pos, self.prefix, self.partial = path, start, start, prefix, ""

    def pass_on(self, final: bool = False) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            f.seek(self.pos)
            text = f.read()
            self.pos = f.tell()
        lines = (self.partial + text).split("\n")
        self.partial = "" if final else lines.pop()
        for line in lines:
            if line.strip() and not line.startswith(self.QUIET):
                print(self.prefix + line, flush=True)


def _has_checkpoint(cfg: RunConfig) -> bool:
    """Resume only what has a checkpoint: a first run would be warned that there is nothing to resume."""
    return ckpt.latest(Path(cfg.out) / "checkpoints") is not None


def _child_env(cfg: RunConfig) -> dict:
    env = dict(os.environ)
    # several processes share the cores: few threads each (also for numpy and the tokenizers' pool)
    if cfg.train.threads:
        env["OMP_NUM_THREADS"] = str(cfg.train.threads)
    else:
        env.setdefault("OMP_NUM_THREADS", "2")  # a GPU run: the host side needs little
    return env


def _uses_cuda(cfg: RunConfig) -> bool:
    return pick_device(cfg.train.device).type == "cuda"


def _say_plan(base: RunConfig, recipes: list[str], seeds: list[int], n_todo: int, jobs: int, threads: int,
              cuda: bool) -> None:
    """The first line: what is compared, on what, and how the runs share the machine."""
    m, t, d = base.model, base.train, base.data
    model = m.name or f"{m.arch} {m.preset}"
    seeds_text = f", seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""
    each = f", {threads} CPU thread{'s' * (threads > 1)} each" if threads else ""
    how = f"{min(jobs, n_todo)} side by side{each}" if jobs > 1 else f"one after another{each}"
    print(f"averis compare: {', '.join(recipes)}{seeds_text} on the {model} model, {t.max_steps} steps of "
          f"{t.batch_size * t.grad_accum} x {d.seq_len} tokens, on {'cuda' if cuda else 'cpu'}: {n_todo} run"
          f"{'s' * (n_todo != 1)} to train, {how}", flush=True)
