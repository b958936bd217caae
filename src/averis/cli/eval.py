"""``averis eval MODEL_OR_RUN``: zero-shot downstream accuracy through lm-evaluation-harness, offline."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from .. import provenance


def run(args) -> int:
    if args.compare:
        from ..eval.table import compare_table

        table = compare_table(args.compare, args.paired_against)
        print(table)
        if args.out:
            out = Path(args.out)
            if out.is_dir() or not out.suffix:  # a folder: the table goes in as downstream.md
                out = out / "downstream.md"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(table + "\n")
            print(f"averis eval: wrote {out}")
        return 0
    if args.paired_against:
        raise ValueError("--paired-against goes with --compare: averis eval --compare A B --paired-against A")
    if not args.target:
        raise ValueError("give a model or run to evaluate (MODEL_OR_RUN), or --compare EVAL_JSON ...")
    from ..eval.harness import data_folder, parse_tasks, require_lm_eval

    # every check that needs no model first: a wrong task name or a missing extra costs no model load
    tasks = parse_tasks(args.tasks)
    data = data_folder(args.data, tasks)
    require_lm_eval()
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give a positive number of documents per task (or leave it out)")
    from ..eval.harness import go_offline

    revision = provenance.commit()  # now: the code that runs, not whatever is checked out when a long evaluation ends
    go_offline()  # before transformers loads anything: a hub id must come from the cache, not the network
    import torch

    from ..eval import evaluate, load_target
    from ..eval.load import numerics
    from ..eval.table import markdown_table, summarize
    from ..train.trainer import cpu_threads, pick_device

    device = pick_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(args.threads))
    say(f"loading {args.target} on {device}")
    start = time.time()
    model, tokenizer, info = load_target(args.target, args.recipe, device)
    what = numerics(info["recipe"], device, args.precision)
    say(f"loaded in {time.time() - start:.0f} s; numerics: {what}")
    say(f"tasks {', '.join(tasks)}; {args.limit or 'all'} documents each; data {data}")
    out = evaluate(model, tokenizer, tasks, limit=args.limit, batch_size=args.batch_size, data=data,
                   precision=args.precision, bootstrap_iters=args.bootstrap_iters, quiet=not args.verbose)
    meta = {**info, "numerics": what, "precision": args.precision, "device": provenance.device_name(device),
            "limit": args.limit, "batch_size": args.batch_size, "commit": revision,
            "command": "averis " + " ".join(shlex.quote(a) for a in args.argv)}
    result = summarize(out, meta)
    dest = Path(args.out or default_out(args.target, info, args.recipe))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table([result])
    (dest / "eval.md").write_text(f"# Zero-shot evaluation: {info['model_name']}\n\n{header(result)}\n\n{table}\n")
    print(table)
    say(f"{result['seconds']:.0f} s of evaluation; wrote {dest / 'eval.json'} and {dest / 'eval.md'}")
    return 0


def say(text: str) -> None:
    print(f"averis eval: {text}", file=sys.stderr, flush=True)


def header(r: dict) -> str:
    lines = [f"- model: {r['model_name']}" + (f", run {r['run']}, checkpoint step {r['step']}" if r.get("run") else ""),
             f"- recipe: {r['recipe']} (trained with: {r.get('trained_recipe') or 'n/a'}); numerics: {r['numerics']}",
             f"- device: {r['device']}; limit: {r['limit'] or 'none (full splits)'}; lm-eval {r['lm_eval_version']}",
             f"- commit: {r['commit']}", f"- command: `{r['command']}`"]
    return "\n".join(lines)


def default_out(target: str, info: dict, recipe: str | None) -> Path:
    """RUN/eval (RUN/eval_<recipe> when --recipe overrides the trained one); evals/<model> for a model."""
    suffix = f"_{recipe}" if recipe else ""
    if info.get("run"):
        return Path(info["run"]) / f"eval{suffix}"
    return Path("evals") / (Path(target.rstrip("/")).name.removesuffix(".gguf") + suffix)


def register(sub) -> None:
    from ..eval.harness import TASKS

    p = sub.add_parser("eval", help="zero-shot downstream accuracy (lm-evaluation-harness, offline)",
                       description="Score a model or a training run's latest checkpoint on the zero-shot tasks that "
                                   "FP4-training papers report (lm-evaluation-harness with our task configs on the "
                                   "local JSONL files; no network). A run is evaluated in its trained numerics: its "
                                   "recipe's FP4 forward (--recipe bf16 for the same weights in high precision). "
                                   "Writes eval.json and eval.md (tasks as columns, their average). Needs "
                                   "pip install \"averis[eval]\".")
    p.add_argument("target", nargs="?", metavar="MODEL_OR_RUN",
                   help="a run folder (config.yaml + checkpoints/), a checkpoint folder (RUN/checkpoints/step_N), a "
                        "saved Hugging Face folder, smollm2-135m, or a .gguf file")
    p.add_argument("--tasks", default=",".join(TASKS),
                   help="comma-separated, from: " + ", ".join(TASKS) + " (default all)")
    p.add_argument("--limit", type=int, help="score only the first N documents of each task (default: all)")
    p.add_argument("--batch-size", type=int, default=8, help="requests per forward (default 8)")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (default $OMP_NUM_THREADS, else all cores but one)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="around the FP4 GEMMs: auto = as training (bf16 autocast on CUDA, fp32 on a CPU)")
    p.add_argument("--recipe", help="evaluate under this recipe instead of the trained/saved one (bf16: no FP4); "
                                    "on a plain model, apply it (default: none)")
    p.add_argument("--data", help="folder of the JSONL files (default $AVERIS_EVAL_DATA, else ../shared/data/eval)")
    p.add_argument("--out", help="folder for eval.json and eval.md (default RUN/eval, or evals/<model>); with "
                                 "--compare, a markdown file (or a folder: OUT/downstream.md)")
    p.add_argument("--bootstrap-iters", type=int, default=1000,
                   help="bootstrap resamples for LAMBADA perplexity's standard error (default 1000)")
    p.add_argument("--compare", nargs="+", metavar="EVAL_JSON",
                   help="print one table of these eval.json files (or folders holding one) instead of evaluating")
    p.add_argument("--paired-against", metavar="EVAL_JSON",
                   help="with --compare: also a table of each file's accuracy minus this one's on the same "
                        "documents, with 95%% intervals (files without per-document scores, written before this "
                        "version, are compared unpaired in a table of their own)")
    p.add_argument("--verbose", action="store_true", help="lm-eval's own log lines too")
    p.set_defaults(func=run)
