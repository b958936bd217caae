"""GPU benchmark of one training step under each recipe, eager vs CUDA-graphed; writes step_<device>_<preset>.json
(top-level device, preset, commit and command; a row per recipe with eager_ms and graph_ms).

For a Qwen3 preset (``--preset``: the ~40M ``bench`` by default, or ``qwen3-0.6b``'s shape; a 16k vocabulary;
torch.compile on, BF16 autocast, fused AdamW), per recipe:
  eager  forward + backward + AdamW as the trainer runs them without ``train.cuda_graph``
  graph  forward + backward replayed from a CUDA graph (averis.train.graph.GraphedStep, what
         ``train.cuda_graph=true`` runs), AdamW eager
Each step is timed on the wall clock with a device synchronisation (what a training run pays), median
over ``--steps`` steps after warm-up; the ratios come from the same run.  Also written:
  exact    the per-step losses of eager and graph are compared bit for bit (same initial weights,
           same generators, same batch): the graph must not change the numerics
  profile  (--profile) a torch.profiler trace of eager steps: GPU kernel time per step (the bound a
           graph can reach), kernels launched per step, and the kernels that take the most time
  trainer  (--tokens DIR) averis.train.Trainer (no compile, 2 micro-batches a step) for a few steps
           with and without train.cuda_graph on a token folder: the logged losses must be identical
"nvfp4-torch" is the naive path: every quantization through the PyTorch reference (kernels off).

Usage (GPU): python benchmarks/bench_step.py [--recipes bf16,nvfp4,...] [--profile] [--tokens DIR] [--out DIR]
A run cut short by a time limit can be finished by a second one on the missing recipes at the same commit; their
rows are then joined into one result, the ratios recomputed (no GPU needed):
       python benchmarks/bench_step.py --combine A.json B.json [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from averis import provenance, use_backend  # noqa: E402
from averis.models.qwen3 import build_qwen3  # noqa: E402
from averis.nn import quantize_model  # noqa: E402
from averis.train.graph import GraphedStep  # noqa: E402

VOCAB = 16384


def log(*a):
    print(*a, flush=True)


def naive_path(enabled: bool):
    """Route every quantization through the PyTorch reference ops (the path before the kernels)."""
    return use_backend("torch") if enabled else contextlib.nullcontext()


class Setup:
    """A fresh model (seed 0) under one recipe, its optimizer and one fixed batch."""

    def __init__(self, recipe: str, batch: int, seq: int, compile_model: bool, preset: str = "bench"):
        torch.manual_seed(0)
        self.model = build_qwen3(preset, vocab_size=VOCAB).cuda()
        if recipe != "bf16":
            quantize_model(self.model, recipe)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=True)
        self.fwd = torch.compile(self.model) if compile_model else self.model
        gen = torch.Generator(device="cuda").manual_seed(1)
        ids = torch.randint(0, VOCAB, (batch, seq + 1), device="cuda", generator=gen)
        self.x, self.y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    def loss(self, x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = self.fwd(x)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))

    def eager_step(self) -> torch.Tensor:
        loss = self.loss(self.x, self.y)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()

    def graph_step_fn(self):
        graphed = GraphedStep(self.model, self.loss, torch.device("cuda"))
        xs, ys = self.x[None], self.y[None]

        def step():
            loss = graphed(xs, ys).clone()
            self.opt.step()
            return loss

        return step


def time_steps(step, steps: int, warmup: int = 3) -> tuple[list[float], list[float], float]:
    """(wall ms per step, losses, warm-up seconds incl. compile/capture)."""
    losses, times = [], []
    t0 = time.perf_counter()
    for _ in range(warmup):
        losses.append(float(step()))
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    for _ in range(steps):
        t = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
        losses.append(float(loss))
    return times, losses, warm


def bench_recipe(name: str, modes: list[str], args) -> dict:
    recipe = name.removesuffix("-torch")
    row: dict = {"recipe": name}
    losses = {}
    with naive_path(name.endswith("-torch")):
        for mode in modes:
            try:
                # every Setup compiles a new model through the same code objects: without a reset their entries add
                # up over the recipes and past Dynamo's recompile limit the later recipes silently run uncompiled
                # (at 48b1419 the sixth recipe's graphed step was 1.7x its own GPU time)
                torch._dynamo.reset()
                setup = Setup(recipe, args.batch, args.seq, not args.no_compile, args.preset)
                row["params"] = sum(p.numel() for p in setup.model.parameters())
                step = setup.graph_step_fn() if mode == "graph" else setup.eager_step
                times, losses[mode], warm = time_steps(step, args.steps)
                row[f"{mode}_ms"] = statistics.median(times)
                row[f"{mode}_ms_min"] = min(times)
                row[f"{mode}_warmup_s"] = warm
                row[f"{mode}_losses"] = losses[mode]
                log(f"  {name:12s} {mode:5s} {row[f'{mode}_ms']:8.2f} ms/step (min {min(times):.2f}; "
                    f"warm-up {warm:.0f} s; loss {losses[mode][-1]:.4f})")
                if mode == "eager" and args.profile:
                    row["profile"] = profile_steps(setup.eager_step)
                    p = row["profile"]
                    log(f"  {name:12s} profile: GPU busy {p['gpu_ms_per_step']:.2f} ms/step, "
                        f"{p['kernels_per_step']:.0f} kernels/step")
                del setup, step
            except Exception as e:  # one recipe's failure must not lose the others' numbers
                row[f"{mode}_error"] = repr(e)
                log(f"  {name} {mode}: ERROR {e!r}")
                traceback.print_exc()
            torch.cuda.empty_cache()
    if "eager" in losses and "graph" in losses:
        row["graph_equals_eager"] = losses["eager"] == losses["graph"]
        log(f"  {name:12s} graph losses == eager losses, bit for bit: {row['graph_equals_eager']}")
    if "eager" in losses and "eager-again" in losses:  # is the eager step itself reproducible?
        row["eager_repeatable"] = losses["eager"] == losses["eager-again"]
        log(f"  {name:12s} two eager runs give the same losses, bit for bit: {row['eager_repeatable']}")
    return row


def profile_steps(step, steps: int = 3) -> dict:
    """GPU kernel time and kernel count per step from torch.profiler (eager mode)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    total_us = sum(e.time_range.elapsed_us() for e in kernels)
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name, []).append(e.time_range.elapsed_us())
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:40]
    return {
        "gpu_ms_per_step": total_us / 1e3 / steps,
        "kernels_per_step": len(kernels) / steps,
        "top_kernels": [{"name": n[:120], "ms_per_step": sum(t) / 1e3 / steps, "calls_per_step": len(t) / steps}
                        for n, t in top],
    }


def trainer_check(tokens: Path, recipes: list[str], steps: int) -> list[dict]:
    """averis.train.Trainer with and without train.cuda_graph: identical logged losses, and their speed."""
    from averis.train.config import load_config
    from averis.train.trainer import Trainer

    rows = []
    for recipe in recipes:
        row = {"recipe": recipe}
        for graph in (False, True):
            with tempfile.TemporaryDirectory() as out:
                cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "scratch_bench.yaml"), [
                    f"recipe={recipe}", f"out={out}", f"data.train_tokens={tokens / 'train.bin'}",
                    f"data.val_tokens={tokens / 'val.bin'}", f"train.max_steps={steps}", "train.eval_every=0",
                    "train.ckpt_every=0", "train.progress=false", "train.tensorboard=false", "train.compile=false",
                    f"train.cuda_graph={str(graph).lower()}", "train.batch_size=16", "train.grad_accum=2"])
                try:
                    summary = Trainer(cfg).fit()
                    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
                    losses = [json.loads(x)["loss"] for x in lines if '"loss"' in x]
                    key = "graph" if graph else "eager"
                    row[f"{key}_losses"] = losses
                    row[f"{key}_seconds"] = summary["seconds"]
                    row[f"{key}_val_loss"] = summary["val_loss"]
                except Exception as e:
                    row[f"{'graph' if graph else 'eager'}_error"] = repr(e)
                    traceback.print_exc()
        if "eager_losses" in row and "graph_losses" in row:
            row["identical"] = row["eager_losses"] == row["graph_losses"]
        log(f"  trainer {recipe:10s} cuda_graph identical: {row.get('identical')}; seconds eager "
            f"{row.get('eager_seconds', float('nan')):.1f} graph {row.get('graph_seconds', float('nan')):.1f}")
        rows.append(row)
    return rows


RATIOS = ("eager_vs_bf16", "eager_vs_nvfp4", "graph_vs_bf16", "graph_vs_nvfp4", "graph_speedup")


def add_ratios(rows: list[dict]) -> None:
    """Each row's ratios, from these rows alone (any ratio a row already holds is recomputed or dropped)."""
    base = {r["recipe"]: r for r in rows}
    for r in rows:
        for key in RATIOS:
            r.pop(key, None)
        for mode in ("eager", "graph"):
            ms = r.get(f"{mode}_ms")
            for ref in ("bf16", "nvfp4"):
                ref_ms = base.get(ref, {}).get(f"{mode}_ms")
                if ms and ref_ms:
                    r[f"{mode}_vs_{ref}"] = ms / ref_ms
        if r.get("eager_ms") and r.get("graph_ms"):
            r["graph_speedup"] = r["eager_ms"] / r["graph_ms"]


# what two runs must share for their rows to stand in one table
SAME_SETUP = ("device", "preset", "commit", "torch", "triton", "model", "batch", "seq", "compile", "steps",
              "exact_gemm")


def combine(results: list[dict], names: list[str]) -> dict:
    """One result from several runs of the same setup (device, commit, preset, ...): their rows in order, each
    recipe once, the ratios recomputed from the joined rows; ``command`` lists each run's command."""
    first = results[0]
    for res, name in zip(results[1:], names[1:], strict=True):
        differ = [k for k in SAME_SETUP if res.get(k) != first.get(k)]
        if differ:
            raise SystemExit(f"--combine: {name} differs from {names[0]} in {', '.join(differ)} "
                             f"({res.get(differ[0])!r} vs {first.get(differ[0])!r}); combine only runs of one setup")
    rows: list[dict] = []
    for res, name in zip(results, names, strict=True):
        for row in res["rows"]:
            if any(r["recipe"] == row["recipe"] for r in rows):
                raise SystemExit(f"--combine: recipe {row['recipe']!r} is in more than one file ({name} again); "
                                 "keep one run of each recipe")
            rows.append(dict(row))
    add_ratios(rows)
    out = {k: first[k] for k in SAME_SETUP if k in first}
    out["command"] = [res["command"] for res in results]
    out["combined_from"] = names
    out["rows"] = rows
    return out


def _cell(row: dict, key: str, spec: str) -> str:
    value = row.get(key)
    return spec.format(value) if isinstance(value, float) else "-"


def markdown(res: dict) -> str:
    out = [f"Device: {res['device']}; torch {res['torch']}, triton {res['triton']}; {res['model']}, batch "
           f"{res['batch']} x {res['seq']}, torch.compile={res['compile']}; median of {res['steps']} steps.\n",
           "| recipe | eager ms | graph ms | graph speed-up | graph vs bf16 | graph vs nvfp4 | GPU busy in eager "
           "(profile) ms | kernels / step | graph == eager |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in res["rows"]:
        p = r.get("profile", {})
        cells = [r["recipe"], _cell(r, "eager_ms", "{:.1f}"), _cell(r, "graph_ms", "{:.1f}"),
                 _cell(r, "graph_speedup", "{:.2f}x"), _cell(r, "graph_vs_bf16", "{:.2f}"),
                 _cell(r, "graph_vs_nvfp4", "{:.3f}"), _cell(p, "gpu_ms_per_step", "{:.1f}"),
                 _cell(p, "kernels_per_step", "{:.0f}"), str(r.get("graph_equals_eager", "-"))]
        errors = [f"{k}: {v[:60]}" for k, v in r.items() if k.endswith("_error")]
        out.append("| " + " | ".join(cells) + " |" + (" " + "; ".join(errors) if errors else ""))
    for t in res.get("trainer", []):
        out.append(f"\nTrainer, {t['recipe']}: logged losses with and without train.cuda_graph identical: "
                   f"{t.get('identical')}; {_cell(t, 'eager_seconds', '{:.1f}')} s eager vs "
                   f"{_cell(t, 'graph_seconds', '{:.1f}')} s graphed")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", default="bf16,nvfp4,nvidia,averis,averis_rht,metis,nvfp4-torch")
    ap.add_argument("--modes", default="eager,graph",
                    help="eager, graph, and eager-again (a second eager run: is the eager step reproducible?)")
    ap.add_argument("--preset", default="bench", help="the Qwen3 preset whose shape is timed (bench, qwen3-0.6b, ...), "
                                                        f"always with a {VOCAB:,}-token vocabulary")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--exact-gemm", action="store_true",
                    help="averis.use_backend(exact_gemm=True): the tensor scales in the GEMM's FP32 epilogue")
    ap.add_argument("--profile", action="store_true", help="torch.profiler summary of the eager steps")
    ap.add_argument("--tokens", type=Path, help="token folder (train.bin, val.bin) for the trainer check")
    ap.add_argument("--trainer-recipes", default="nvfp4,averis")
    ap.add_argument("--trainer-steps", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--markdown", type=Path, metavar="JSON", help="print the table of a results JSON and exit")
    ap.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                    help="join the rows of runs of one setup (device, commit, preset, ...) into "
                         "--out/step_<device>_<preset>.json and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    if args.combine:
        missing = [str(f) for f in args.combine if not f.is_file()]
        if missing:
            sys.exit(f"--combine: no such file {missing[0]}; give bench_step.py result JSON files")
        res = combine([json.loads(f.read_text()) for f in args.combine], [str(f) for f in args.combine])
        path = args.out / f"step_{provenance.slug(res['device'])}_{res['preset']}.json"
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1))
        log(markdown(res))
        log(f"wrote {path}")
        return 0
    if args.exact_gemm:
        import averis

        averis.use_backend("auto", exact_gemm=True)
    if not torch.cuda.is_available():
        sys.exit("bench_step.py needs a CUDA GPU (use --markdown JSON to print an existing result)")
    import triton

    dev = torch.cuda.get_device_name()
    res = {"device": dev, "preset": args.preset, "commit": provenance.commit(), "command": shlex.join(sys.argv),
           "torch": torch.__version__, "triton": triton.__version__, "model": f"qwen3 '{args.preset}' preset",
           "batch": args.batch, "seq": args.seq, "compile": not args.no_compile, "steps": args.steps,
           "exact_gemm": args.exact_gemm, "rows": []}
    path = args.out / f"step_{provenance.slug(dev)}_{args.preset}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - {"eager", "graph", "eager-again"})
    if unknown:
        sys.exit(f"--modes: unknown mode(s) {', '.join(unknown)}; use eager, graph, eager-again")
    for name in args.recipes.split(","):
        res["rows"].append(bench_recipe(name, modes, args))
        add_ratios(res["rows"])
        path.write_text(json.dumps(res, indent=1))  # partial results survive a time-out
    if args.tokens:
        res["trainer"] = trainer_check(args.tokens, args.trainer_recipes.split(","), args.trainer_steps)
        path.write_text(json.dumps(res, indent=1))
    log(markdown(res))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
