"""Multi-GPU scaling of the trainer (issue 16): tokens/s of one GPU vs DDP vs FSDP2, and the loss check.

    python benchmarks/multigpu.py                      # every GPU of the machine (2 expected), ~8 minutes
    python benchmarks/multigpu.py --cpu-smoke --out /tmp/mg   # the plumbing on CPU: gloo, tiny model, 2 steps

Speed: for each preset (bench, qwen3-0.6b) and recipe (bf16, nvfp4, averis; averis_global = averis with
``mean_all_reduce`` under DDP only) the trainer's own step (``Trainer.train_step``: forward, backward,
clipping, AdamW), in these modes:
  one   one process, one GPU, ``train.cuda_graph=true``
  ddp   torchrun --standalone --nproc-per-node N, DDP, with the CUDA graph and without (the eager row
        shows what the graph buys; its losses must equal the graphed row's bit for bit)
  fsdp  the same under FSDP2 (eager: CUDA graphs do not run under FSDP2)
``--scaling weak`` (the default) gives every GPU ``--tokens-per-step`` tokens a step (N GPUs train N times the
tokens of one: the same speed per GPU is the target, as when more GPUs replace gradient accumulation);
``--scaling strong`` splits that many tokens over the GPUs.  torch.compile follows the trainer's default
(``--compile auto``: on for one GPU and DDP, off under FSDP2).  Each row: the median wall time of ``--steps``
steps after ``--warmup`` (which hold torch.compile, the capture and the DDP warm-up), on synthetic random tokens.
All the configurations of one mode share a process (one launch, one process-group start); a launch that dies is
retried on what it left undone.

Loss check: ``averis train`` on the from-scratch data (``.carry/tokens/scratch16k`` when present, else
the bundled text, byte tokens) for ``--loss-steps`` steps of the bench preset per recipe, on one GPU
(2 micro-batches of 16) and on 2 GPUs under graphed DDP (16 a rank): the same windows every step; and, as
the yardstick of seed noise, the first recipe on one GPU again with the next seed (``train.seed=1``).

Writes into --out: multigpu_<device>.json (top-level device, commit, command; rows {recipe, preset, mode,
world_size, graphed, tokens_per_s, step_ms, speedup_vs_one, ...}; loss_check), multigpu_<device>.md (the
table), multigpu_<device>.png (bars) and multigpu_<device>_loss.png (curves and their differences) when
matplotlib is installed; ``python benchmarks/multigpu.py plot RESULT.json`` draws them again (elsewhere, or after
a change to the table).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # a plain checkout runs it too
from averis import provenance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PRESETS_VOCAB = {"bench": 16384, "qwen3-0.6b": 151_936, "tiny": 256}
GLOBAL_MEAN = "averis_global"  # averis with recipe.mean_all_reduce=true (a recipe file written here)
SMOKE_MODEL = ("model.overrides={hidden_size: 64, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 32, "
               "intermediate_size: 128}")


def log(*a) -> None:
    print(*a, flush=True)


# ---- the worker: one mode, every (preset, recipe) it is given, in one process (or one torchrun) ---------
def worker(args) -> int:
    sys.path.insert(0, str(SRC))
    import torch

    from averis.train import Trainer, load_config
    from averis.train import distributed as dist_utils

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = "cpu" if args.cpu else "cuda"
    for job in args.jobs.split(","):
        preset, recipe = job.split(":")
        per_rank = args.tokens_per_step // args.seq_len // (world if args.scaling == "strong" else 1)
        sets = [f"recipe={recipe_arg(recipe, args.workdir)}", f"out={args.workdir}/speed/{args.mode}-"
                f"{int(args.graphed)}-{preset}-{recipe}", f"model.preset={preset}",
                f"data.train_tokens={tokens_file(args.workdir, preset)}", "data.val_tokens=",
                f"data.seq_len={args.seq_len}", f"train.batch_size={per_rank}",
                f"train.max_steps={args.warmup + args.steps}", f"train.device={device}",
                f"train.cuda_graph={str(args.graphed).lower()}", f"train.compile={args.compile}",
                f"train.distributed={'none' if args.mode == 'one' else args.mode}", "train.progress=false",
                "train.tensorboard=false", "train.eval_every=0", "train.ckpt_every=0", "optim.warmup_steps=2"]
        if preset == "tiny":
            sets.append(SMOKE_MODEL)
        if rank == 0:
            log(f"[{args.mode}{' graphed' if args.graphed else ''} x{world}] {preset} {recipe}: building")
        row = {"recipe": recipe, "preset": preset, "mode": args.mode, "world_size": world, "graphed": args.graphed,
               "scaling": args.scaling, "tokens_per_step": per_rank * args.seq_len * world}
        started = time.perf_counter()
        trainer = Trainer(load_config(overrides=sets))
        row["compile"] = trainer.fast.compile
        seconds, losses = [], []
        for _ in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            metrics = trainer.train_step()  # float(loss) inside: the step has finished on the device
            seconds.append(time.perf_counter() - t0)
            losses.append(metrics["loss"])
        timed = seconds[args.warmup:]
        step_s = statistics.median(timed)
        row.update(tokens_per_s=row["tokens_per_step"] / step_s, step_ms=1e3 * step_s, step_ms_min=1e3 * min(timed),
                   first_step_s=seconds[0], setup_s=time.perf_counter() - started - sum(seconds),
                   parameters=sum(p.numel() for p in trainer.raw_model.parameters()), losses=losses)
        if device == "cuda":
            row["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if rank == 0:
            with open(args.rows, "a") as f:
                f.write(json.dumps(row) + "\n")
            log(f"[{args.mode}{' graphed' if args.graphed else ''} x{world}] {preset} {recipe}: "
                f"{row['tokens_per_s']:,.0f} tok/s, {row['step_ms']:.1f} ms a step (first step "
                f"{seconds[0]:.1f} s)")
        trainer.logger.close()
        del trainer
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        if row["compile"]:
            torch._dynamo.reset()
    dist_utils.shutdown()
    return 0


def recipe_arg(recipe: str, workdir: str) -> str:
    return str(Path(workdir) / f"{GLOBAL_MEAN}.yaml") if recipe == GLOBAL_MEAN else recipe


def tokens_file(workdir: str, preset: str) -> str:
    return str(Path(workdir) / f"tokens_{PRESETS_VOCAB[preset]}" / "train.bin")


# ---- the driver ---------------------------------------------------------------------------------------
def write_inputs(workdir: Path, presets: list[str]) -> None:
    """Synthetic token files (one per vocabulary) and the averis_global recipe file."""
    import numpy as np

    from averis.data.tokens import write_tokens

    for preset in presets:
        vocab = PRESETS_VOCAB[preset]
        path = Path(tokens_file(str(workdir), preset))
        if not path.exists():
            tokens = np.random.default_rng(0).integers(0, vocab, size=2_000_000)
            write_tokens(path, tokens, {"vocab_size": vocab, "eot_id": 0, "source": "synthetic uniform"})
    (workdir / f"{GLOBAL_MEAN}.yaml").write_text(f"name: {GLOBAL_MEAN}\nbase: averis\nmean_all_reduce: true\n")


def launcher(world: int, cpu: bool) -> list[str]:
    if world == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}"]


def child_env(cpu: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p),
           "PYTHONUNBUFFERED": "1"}
    if cpu:
        env["OMP_NUM_THREADS"] = "1"
    return env


def run_mode(args, workdir: Path, mode: str, world: int, graphed: bool, jobs: list[str], rows: list[dict]) -> None:
    """Launch the worker for one mode over its jobs.  A launch that exits with an error is relaunched on the
    jobs after the one it died in (that one gets an error row); a launch that times out is not retried."""
    rows_file = workdir / f"rows-{mode}-{int(graphed)}.jsonl"
    failed_jobs: dict[str, str] = {}
    while True:
        have = {(r["preset"], r["recipe"]) for r in read_rows(rows_file)}
        todo = [j for j in jobs if tuple(j.split(":")) not in have and j not in failed_jobs]
        if not todo:
            break
        cmd = [*launcher(world, args.cpu_smoke), __file__, "worker", "--mode", mode, "--jobs", ",".join(todo),
               "--workdir", str(workdir), "--rows", str(rows_file), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--seq-len", str(args.seq_len),
               "--tokens-per-step", str(args.tokens_per_step), "--scaling", args.scaling, "--compile", args.compile]
        cmd += ["--graphed"] * graphed + ["--cpu"] * args.cpu_smoke
        log(f"== {mode}{' graphed' if graphed else ''} on {world} {'process' if world == 1 else 'processes'}: "
            f"{len(todo)} configuration(s)")
        try:
            done = subprocess.run(cmd, env=child_env(args.cpu_smoke), timeout=args.mode_timeout)
        except subprocess.TimeoutExpired:
            log(f"   timed out after {args.mode_timeout:.0f} s: the rest of this mode is skipped")
            failed_jobs.update({j: f"timed out after {args.mode_timeout:.0f} s" for j in todo})
            continue
        if done.returncode != 0:
            have = {(r["preset"], r["recipe"]) for r in read_rows(rows_file)}
            dead = next(j for j in todo if tuple(j.split(":")) not in have)
            log(f"   failed (exit status {done.returncode}) in {dead}: see the log above; going on without it")
            failed_jobs[dead] = f"worker failed (exit status {done.returncode}): see the log"
    got = read_rows(rows_file)
    rows += got
    for job, why in failed_jobs.items():
        preset, recipe = job.split(":")
        rows.append({"recipe": recipe, "preset": preset, "mode": mode, "world_size": world, "graphed": graphed,
                     "error": why})


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def loss_check(args, workdir: Path, recipes: list[str], world: int) -> dict:
    """The same windows on 1 GPU (2 micro-batches) and on `world` GPUs under graphed DDP: loss curves."""
    carried = REPO / ".carry" / "tokens" / "scratch16k"
    if (carried / "train.bin").exists():
        data = [f"data.train_tokens={carried / 'train.bin'}", f"data.val_tokens={carried / 'val.bin'}"]
        source = str(carried.relative_to(REPO))
    else:
        data = ["data.source=bundled", "data.tokenizer=byte", f"data.cache_dir={workdir / 'cache'}"]
        source = "bundled text, byte tokens"
    micro = 16 if not args.cpu_smoke else 2
    common = [*data, f"data.seq_len={args.seq_len}", f"train.batch_size={micro}", f"train.max_steps={args.loss_steps}",
              "train.eval_every=0", "train.ckpt_every=0", "train.tensorboard=false", "train.log_every=50",
              f"optim.warmup_steps={max(1, args.loss_steps // 10)}", f"train.compile={args.compile}"]
    if args.cpu_smoke:
        common += ["model.preset=tiny", SMOKE_MODEL, "train.device=cpu", "data.max_chars=60000"]
    else:
        common += ["model.preset=bench", "train.cuda_graph=true"]
    curves, runs = {}, []
    for recipe in recipes:
        plain_runs = [(1, 0), (world, 0)] + [(1, 1)] * (recipe == recipes[0])  # (GPUs, seed): seed 1 = noise
        for w, seed in (plain_runs if recipe != GLOBAL_MEAN else [(world, 0)]):
            name = f"{recipe}-x{w}" + (f"-seed{seed}" if seed else "")
            shutil.rmtree(workdir / "loss" / name, ignore_errors=True)  # a previous run in a reused --workdir
            sets = [*common, f"train.grad_accum={world // w}", f"train.seed={seed}"]
            cmd = [*launcher(w, args.cpu_smoke), "-m", "averis", "train", "--no-progress", "--recipe",
                   recipe_arg(recipe, str(workdir)), "--out", str(workdir / "loss" / name),
                   *(a for s in sets for a in ("--set", s))]
            log(f"== loss check {name}: {args.loss_steps} steps")
            t0 = time.time()
            try:
                done = subprocess.run(cmd, env=child_env(args.cpu_smoke), timeout=args.mode_timeout,
                                      capture_output=True, text=True)
                ok, tail = done.returncode == 0, (done.stdout + done.stderr)[-1500:]
            except subprocess.TimeoutExpired:
                ok, tail = False, f"timed out after {args.mode_timeout:.0f} s"
            metrics = workdir / "loss" / name / "metrics.jsonl"
            if not ok or not metrics.exists():
                log(f"   failed: {tail}")
                runs.append({"run": name, "error": tail[-400:]})
                continue
            curves[name], val = read_curve(metrics)
            runs.append({"run": name, "seconds": time.time() - t0, "final_loss": curves[name][-1],
                         "final_val_loss": val})
            log(f"   {len(curves[name])} steps in {time.time() - t0:.0f} s, final loss {curves[name][-1]:.4f}")
    return {"source": source, "steps": args.loss_steps, "world_size": world, "micro_batch": micro,
            "compile": args.compile, "runs": runs, "curves": curves, "summary": loss_summary(curves, world, runs)}


def read_curve(metrics: Path) -> tuple[list[float], float | None]:
    """(training loss per step, the last validation loss) of a run's metrics.jsonl."""
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    vals = [m["val_loss"] for m in lines if "val_loss" in m]
    return [m["loss"] for m in lines if "loss" in m], (vals[-1] if vals else None)


def loss_pairs(curves: dict[str, list[float]], world: int) -> dict[str, tuple[str, str]]:
    """{label: (reference run, compared run)}: each recipe's N-GPU run against its 1-GPU run (averis_global
    against averis's), and "seed noise": a recipe's 1-GPU run against the same with the next seed (the yardstick)."""
    pairs = {}
    for name, many in curves.items():
        if (m := re.fullmatch(rf"(.+)-x{world}", name)) and world > 1:
            one = f"{'averis' if m[1] == GLOBAL_MEAN else m[1]}-x1"
            if len(curves.get(one) or []) == len(many):
                pairs[m[1]] = (one, name)
        elif (m := re.fullmatch(r"(.+)-x1-seed1", name)) and len(curves.get(f"{m[1]}-x1") or []) == len(many):
            pairs["seed noise"] = (f"{m[1]}-x1", name)
    return pairs


def loss_summary(curves: dict[str, list[float]], world: int, runs: list[dict] = ()) -> dict:
    """Per pair of loss_pairs: the final and last-fifth training losses and (from runs) the final validation
    losses of the two runs, and their differences."""
    vals = {r["run"]: r.get("final_val_loss") for r in runs}
    summary = {}
    for label, (one, many) in loss_pairs(curves, world).items():
        s = compare_curves(curves[one], curves[many])
        if vals.get(one) is not None and vals.get(many) is not None:
            s |= {"val_one": vals[one], "val_many": vals[many], "val_diff": vals[many] - vals[one]}
        summary[label] = s | ({"recipe": one.removesuffix("-x1")} if label == "seed noise" else
                              {"identical": curves[one] == curves[many]})
    return summary


def compare_curves(a: list[float], b: list[float]) -> dict:
    tail = max(1, len(a) // 5)
    return {"final_one": a[-1], "final_many": b[-1], "final_diff": b[-1] - a[-1],
            f"mean_diff_last_{tail}": statistics.fmean(y - x for x, y in zip(a[-tail:], b[-tail:]))}


def moving_mean(values: list[float], window: int) -> list[float]:
    """The trailing mean over up to ``window`` values (what the difference panel draws)."""
    return [statistics.fmean(values[max(0, i + 1 - window): i + 1]) for i in range(len(values))]


def device_name(cpu: bool) -> str:
    if cpu:
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0)


def add_speedups(rows: list[dict]) -> None:
    """speedup_vs_one: tokens/s over the one-GPU row of the same preset and recipe (averis_global: averis's)."""
    one = {(r["preset"], r["recipe"]): r["tokens_per_s"] for r in rows if r["mode"] == "one" and "tokens_per_s" in r}
    for r in rows:
        base = one.get((r["preset"], "averis" if r["recipe"] == GLOBAL_MEAN else r["recipe"]))
        if "tokens_per_s" in r and base:
            r["speedup_vs_one"] = r["tokens_per_s"] / base


def exactness(rows: list[dict]) -> list[dict]:
    """Graphed vs eager DDP over the same steps from the same start: the losses must be equal bit for bit."""
    out = []
    for g in rows:
        if g["mode"] == "ddp" and g["graphed"] and "losses" in g:
            e = next((r for r in rows if r["mode"] == "ddp" and not r["graphed"] and "losses" in r
                      and (r["preset"], r["recipe"]) == (g["preset"], g["recipe"])), None)
            if e is not None:
                out.append({"preset": g["preset"], "recipe": g["recipe"], "steps": len(g["losses"]),
                            "graph_equals_eager": g["losses"] == e["losses"],
                            "max_abs_diff": max(abs(a - b) for a, b in zip(g["losses"], e["losses"]))})
    return out


def markdown(result: dict) -> str:
    lines = [f"device {result['device']} x{result['gpus']}, commit {result['commit'][:12]}, "
             f"{result['tokens_per_step']:,} tokens a step "
             f"{'per GPU' if result.get('scaling', 'strong') == 'weak' else 'over all GPUs'} "
             f"({result.get('scaling', 'strong')} scaling), median of {result['steps']} steps",
             "", "| preset | recipe | mode | GPUs | graph | tokens/s | ms/step | vs one GPU |",
             "|---|---|---|---:|---|---:|---:|---:|"]
    for r in result["rows"]:
        if "tokens_per_s" in r:
            speed = f"{r['speedup_vs_one']:.2f}x" if "speedup_vs_one" in r else ""
            lines.append(f"| {r['preset']} | {r['recipe']} | {r['mode']} | {r['world_size']} | "
                         f"{'yes' if r['graphed'] else 'no'} | {r['tokens_per_s']:,.0f} | {r['step_ms']:.1f} | "
                         f"{speed} |")
        else:
            lines.append(f"| {r['preset']} | {r['recipe']} | {r['mode']} | {r['world_size']} | "
                         f"{'yes' if r['graphed'] else 'no'} | failed | | |")
    if result.get("exactness"):
        lines += ["", "DDP graphed vs eager losses: " + ", ".join(
            f"{e['preset']}/{e['recipe']} {'identical' if e['graph_equals_eager'] else 'DIFFER'}"
            for e in result["exactness"])]
    lc = result.get("loss_check") or {}
    if lc.get("summary"):
        noise = " (seed noise: a recipe on 1 GPU, seed 0 vs seed 1)" if "seed noise" in lc["summary"] else (
            " (no seed-noise run)")
        lines += ["", f"loss check ({lc['steps']} steps, {lc['source']}, train.compile={lc.get('compile', 'auto')}): "
                  f"final loss 1 GPU vs {lc['world_size']} GPUs"
                  + noise,
                  "", "| recipe | 1 GPU | N GPUs | diff | mean diff (last fifth) | val 1 GPU | val N GPUs | val diff |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for recipe, s in lc["summary"].items():
            mean_key = next(k for k in s if k.startswith("mean_diff"))
            val = (f"{s['val_one']:.4f} | {s['val_many']:.4f} | {s['val_diff']:+.4f}" if "val_diff" in s else " | | ")
            lines.append(f"| {recipe} | {s['final_one']:.4f} | {s['final_many']:.4f} | {s['final_diff']:+.4f} | "
                         f"{s[mean_key]:+.4f} | {val} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, out: Path, stem: str) -> None:
    """<stem>.png (tokens/s bars) and, with a loss check, <stem>_loss.png."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plots (run `python benchmarks/multigpu.py plot RESULT.json` elsewhere)")
        return
    rows = [r for r in result["rows"] if "tokens_per_s" in r]
    presets = sorted({r["preset"] for r in rows}, key=list(PRESETS_VOCAB).index)
    fig, axes = plt.subplots(1, len(presets), figsize=(7 * len(presets), 4.5), squeeze=False)
    for ax, preset in zip(axes[0], presets):
        mine = [r for r in rows if r["preset"] == preset]
        recipes = list(dict.fromkeys(r["recipe"] for r in mine))
        kinds = list(dict.fromkeys((r["mode"], r["world_size"], r["graphed"]) for r in mine))
        width = 0.8 / max(1, len(kinds))
        for k, kind in enumerate(kinds):
            values = [next((r["tokens_per_s"] for r in mine if (r["mode"], r["world_size"], r["graphed"]) == kind
                            and r["recipe"] == rec), 0) for rec in recipes]
            ax.bar([i + k * width for i in range(len(recipes))], values, width,
                   label=f"{kind[0]} x{kind[1]}{' graph' if kind[2] else ''}")
        ax.set_xticks([i + width * (len(kinds) - 1) / 2 for i in range(len(recipes))], recipes)
        ax.set_title(f"{preset}: tokens/s ({result['device']})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=110)
    curves = (result.get("loss_check") or {}).get("curves") or {}
    if curves:
        world = result["loss_check"]["world_size"]
        fig, (ax, dax) = plt.subplots(1, 2, figsize=(14, 5))
        for run, losses in curves.items():
            ax.plot(range(1, len(losses) + 1), losses, label=run, lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"1 GPU vs {world} GPUs, same tokens")
        ax.legend(fontsize=8)
        window = 20
        for label, (one, many) in loss_pairs(curves, world).items():
            diff = moving_mean([b - a for a, b in zip(curves[one], curves[many])], window)
            dax.plot(range(1, len(diff) + 1), diff, label=f"{many} - {one}", lw=2 if label == "seed noise" else 1,
                     ls="--" if label == "seed noise" else "-", color="k" if label == "seed noise" else None)
        dax.axhline(0, color="grey", lw=0.5)
        dax.set_xlabel("step")
        dax.set_ylabel(f"training loss difference ({window}-step trailing mean)")
        dax.set_title("difference to the 1-GPU run; dashed: another seed on 1 GPU")
        dax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{stem}_loss.png", dpi=110)


def drive(args) -> int:
    sys.path.insert(0, str(SRC))
    presets = args.presets.split(",")
    recipes = (args.recipes or f"bf16,nvfp4,averis,{GLOBAL_MEAN}").split(",")
    if args.cpu_smoke:
        gpus, args.steps, args.warmup, args.seq_len = 2, 2, 1, 32
        args.tokens_per_step, args.loss_steps, presets = 4 * 32 * (2 if args.scaling == "strong" else 1), 3, ["tiny"]
        recipes = (args.recipes or f"bf16,averis,{GLOBAL_MEAN}").split(",")
    else:
        import torch

        if not torch.cuda.is_available():
            log("multigpu.py: error: no CUDA GPU here; --cpu-smoke checks the plumbing on CPU (gloo, tiny model)")
            return 2
        gpus = torch.cuda.device_count() if args.gpus == 0 else args.gpus
    from averis.train.quant import NO_QUANT, recipe_names

    unknown = sorted(set(recipes) - {GLOBAL_MEAN, *NO_QUANT, *recipe_names()})
    if unknown or not set(presets) <= set(PRESETS_VOCAB):
        log(f"multigpu.py: error: unknown recipe(s) {unknown} or preset(s) {presets} (presets: "
            f"{', '.join(PRESETS_VOCAB)})")
        return 2
    world = 2 if args.cpu_smoke else min(gpus, 2)
    parts = set(args.parts.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="averis-multigpu-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"multigpu: {'2 CPU processes (gloo)' if args.cpu_smoke else f'{gpus} GPU(s)'}: 1 vs {world}; presets "
        f"{presets}; recipes {recipes}; parts {sorted(parts)}; work folder {workdir}")
    started = time.time()
    write_inputs(workdir, presets)
    plain = [r for r in recipes if r != GLOBAL_MEAN]
    jobs = [f"{p}:{r}" for p in presets for r in plain]
    name = provenance.slug(device_name(args.cpu_smoke))
    path = out / f"multigpu_{name}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}  # a part run alone keeps the other part
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/multigpu.py", *sys.argv[1:]])
    result = {"device": device_name(args.cpu_smoke), "gpus": gpus, "commit": provenance.commit(), "command": command,
              "tokens_per_step": args.tokens_per_step, "scaling": args.scaling, "seq_len": args.seq_len,
              "steps": args.steps,
              "warmup": args.warmup, "compile": args.compile, "part_commands": previous.get("part_commands", {})}
    if "speed" in parts:
        for stale in workdir.glob("rows-*.jsonl"):  # a previous run's rows in a reused --workdir
            stale.unlink()
        rows: list[dict] = []
        run_mode(args, workdir, "one", 1, not args.cpu_smoke, jobs, rows)
        if world > 1:
            many = jobs + [f"{p}:{GLOBAL_MEAN}" for p in presets if GLOBAL_MEAN in recipes]
            run_mode(args, workdir, "ddp", world, not args.cpu_smoke, many, rows)
            if not args.cpu_smoke and not args.no_eager_ddp:
                run_mode(args, workdir, "ddp", world, False, many, rows)
            run_mode(args, workdir, "fsdp", world, False, jobs, rows)
        add_speedups(rows)
        result.update(rows=rows, exactness=exactness(rows))
        result["part_commands"]["speed"] = {"command": command, "commit": result["commit"]}
    else:
        result.update(rows=previous.get("rows", []), exactness=previous.get("exactness", []))
    if "loss" in parts and world > 1:
        result["loss_check"] = loss_check(args, workdir, recipes, world)
        result["part_commands"]["loss"] = {"command": command, "commit": result["commit"]}
    elif "loss" in parts:
        log("loss check skipped: it needs 2 GPUs")
    elif "loss_check" in previous:
        result["loss_check"] = previous["loss_check"]
    result["seconds"] = time.time() - started
    write_result(result, out)
    log(f"multigpu: {result['seconds']:.0f} s; wrote {path}")
    return 0


def write_result(result: dict, out: Path, stem: str | None = None) -> None:
    """<stem>.json / .md (the table, also printed) / PNGs into out; stem: multigpu_<device> by default."""
    stem = stem or f"multigpu_{provenance.slug(result['device'])}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (out / f"{stem}.md").write_text(table)
    log(table)
    plot(result, out, stem)


def assemble(args) -> int:
    """The result of a run whose driver never wrote it (stopped by a time limit, or hung: see
    GraphedStep.release), from what its work folder holds: every finished row, every finished loss-check run.
    The provenance (the device, the commit and the command that made the folder) comes from --meta."""
    workdir, out = Path(args.workdir), Path(args.out)
    meta = dict(m.split("=", 1) for m in args.meta)
    missing = {"device", "commit", "command"} - set(meta)
    if missing:
        log(f"multigpu.py assemble: error: say where the folder comes from: --meta {'=... --meta '.join(missing)}=...")
        return 2
    order = {"one": 0, "ddp": 1, "fsdp": 2}
    rows = sorted((r for f in workdir.glob("rows-*.jsonl") for r in read_rows(f)),
                  key=lambda r: (order[r["mode"]], not r["graphed"]))
    if not rows:
        log(f"multigpu.py assemble: error: no rows-*.jsonl in {workdir}: is it a multigpu.py --workdir?")
        return 2
    add_speedups(rows)
    world = max(r["world_size"] for r in rows)
    curves, runs = {}, []
    for metrics in sorted(workdir.glob("loss/*/metrics.jsonl")):
        losses, val = read_curve(metrics)
        # a run that finished: its summary.json, or (a copy of metrics.jsonl alone) --meta loss_steps=N steps
        if (metrics.parent / "summary.json").exists() or len(losses) == int(meta.get("loss_steps", -1)):
            curves[metrics.parent.name] = losses
            runs.append({"run": metrics.parent.name, "final_loss": losses[-1], "final_val_loss": val})
    first = rows[0]
    result = {"device": meta["device"], "gpus": world, "commit": meta["commit"], "command": meta["command"],
              "assembled_by": "python benchmarks/multigpu.py assemble " + " ".join(map(shlex.quote, sys.argv[2:])),
              "tokens_per_step": first["tokens_per_step"] // (first["world_size"] if first.get("scaling") == "weak"
                                                              else 1),
              "scaling": first.get("scaling", "strong"), "steps": len(first["losses"]) - int(meta.get("warmup", 3)),
              "rows": rows, "exactness": exactness(rows), **{k: v for k, v in meta.items() if k not in
                                                             ("device", "commit", "command")}}
    made = {"command": meta["command"], "commit": meta["commit"]}
    result["part_commands"] = {"speed": made} | ({"loss": made} if curves else {})
    if curves:
        steps = {len(c) for c in curves.values()}
        result["loss_check"] = {"source": meta.get("loss_source", "see the command"), "steps": max(steps),
                                "world_size": world, "runs": runs, "curves": curves,
                                "summary": loss_summary(curves, world, runs)}
    out.mkdir(parents=True, exist_ok=True)
    write_result(result, out)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["assemble"]:
        p = argparse.ArgumentParser(prog="multigpu.py assemble", description=assemble.__doc__)
        p.add_argument("workdir", help="the --workdir of the run")
        p.add_argument("--out", required=True)
        p.add_argument("--meta", action="append", default=[], help="device=..., commit=..., command=... (key=value)")
        return assemble(p.parse_args(argv[1:]))
    if argv[:1] == ["worker"]:
        p = argparse.ArgumentParser(prog="multigpu.py worker")
        p.add_argument("--mode", required=True, choices=("one", "ddp", "fsdp"))
        p.add_argument("--jobs", required=True, help="preset:recipe,...")
        p.add_argument("--workdir", required=True)
        p.add_argument("--rows", required=True)
        for k in ("--steps", "--warmup", "--seq-len", "--tokens-per-step"):
            p.add_argument(k, type=int, required=True)
        p.add_argument("--scaling", choices=("weak", "strong"), required=True)
        p.add_argument("--compile", choices=("auto", "true", "false"), required=True)
        for k in ("--graphed", "--cpu"):
            p.add_argument(k, action="store_true")
        return worker(p.parse_args(argv[1:]))
    if argv[:1] == ["plot"]:  # the table, the loss check's summary and the plots again, from a result JSON
        result = json.loads(Path(argv[1]).read_text())
        if (lc := result.get("loss_check")) and lc.get("curves"):
            lc["summary"] = loss_summary(lc["curves"], lc["world_size"], lc.get("runs", []))
        write_result(result, Path(argv[1]).parent, Path(argv[1]).stem)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "multigpu"))
    p.add_argument("--workdir", help="token files and runs (default: a fresh temporary folder)")
    p.add_argument("--recipes", help=f"default bf16,nvfp4,averis,{GLOBAL_MEAN} (--cpu-smoke: bf16,averis,"
                                     f"{GLOBAL_MEAN})")
    p.add_argument("--presets", default="bench,qwen3-0.6b")
    p.add_argument("--parts", default="speed,loss", help="speed, loss or both")
    p.add_argument("--gpus", type=int, default=0, help="GPUs to use (default: all)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, capture, DDP warm-up)")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--tokens-per-step", type=int, default=16384,
                   help="tokens a step per GPU (--scaling weak) or over all GPUs (strong)")
    p.add_argument("--scaling", choices=("weak", "strong"), default="weak",
                   help="weak: every GPU gets --tokens-per-step (the same work per GPU); strong: they share it")
    p.add_argument("--loss-steps", type=int, default=200)
    p.add_argument("--compile", choices=("auto", "true", "false"), default="auto",
                   help="train.compile of every run, the loss check's too (auto, the trainer's default: on for one "
                        "GPU and DDP, off under FSDP2; false: the loss check's 1- and 2-GPU curves can be identical)")
    p.add_argument("--no-eager-ddp", action="store_true", help="skip the eager DDP rows (saves ~1 minute)")
    p.add_argument("--mode-timeout", type=float, default=300, help="seconds before a launch is killed")
    p.add_argument("--cpu-smoke", action="store_true", help="CPU plumbing check: gloo, 2 processes, tiny, 2 steps")
    return drive(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
