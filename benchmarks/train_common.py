"""Shared driver of benchmarks/train_scratch.py and benchmarks/train_smollm2.py.

Three steps, so the expensive CPU work happens once, here, and the GPU only trains:
  prep   --tokens-out DIR   tokenize the corpus into DIR/{train,val}.bin (uint16) + headers (+ tokenizer.json)
  run    --tokens DIR --out RESULTS   train every (recipe, seed) as parallel processes on one GPU, then report
  report RESULTS            the loss-gap table and plots (same as `averis report RESULTS`)
`run` is restartable: finished runs are skipped and stopped ones resumed, and --time-budget stops
everything (with checkpoints) in time for a session's per-command limit.  --export DIR writes the
report, the PNGs and runs.tar.gz (metrics, configs, summaries, logs; no checkpoints) into DIR.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPES = "bf16,nvfp4,nvidia,metis,averis,averis_rht"


def parser(description: str, config: str, default_jobs: int, default_seeds: str) -> argparse.ArgumentParser:
    from averis.cli._runargs import add_analyze_args

    p = argparse.ArgumentParser(description=description)
    sub = p.add_subparsers(dest="step", required=True)
    prep = sub.add_parser("prep", help="tokenize the corpus into uint16 token files (CPU)")
    prep.add_argument("--tokens-out", required=True)
    prep.add_argument("--max-chars", type=int, default=0, help="use only this much text (quick tests)")
    prep.add_argument("--max-train-tokens", type=int, default=0,
                      help="keep only this many training tokens, as evenly spaced blocks over the whole corpus "
                           "(smaller files to carry; validation is kept whole)")
    prep.add_argument("--force", action="store_true")
    run = sub.add_parser("run", help="train the recipes (GPU if present) and write the report")
    run.add_argument("--tokens", required=True, help="the folder `prep` wrote")
    run.add_argument("--out", required=True, help="results folder (runs, report.md/json, PNGs)")
    run.add_argument("--config", default=str(REPO / "configs" / config))
    run.add_argument("--recipes", default=RECIPES)
    run.add_argument("--seeds", default=default_seeds)
    run.add_argument("--jobs", type=int, default=default_jobs, help="runs trained side by side on the GPU")
    run.add_argument("--time-budget", type=float, default=0, metavar="S",
                     help="checkpoint and stop after S seconds; run again to continue")
    run.add_argument("--export", help="copy the small result files (no checkpoints) here at the end")
    run.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                     help="config overrides, e.g. --set train.max_steps=60 train.eval_every=30")
    add_analyze_args(run)  # --analyze-every N: per-layer mean-bias statistics of every run (mean_bias.jsonl)
    rep = sub.add_parser("report", help="loss-gap table and plots of a results folder")
    rep.add_argument("out")
    return p


def prep(args, data_overrides: list[str]) -> int:
    from averis.data.prepare import build
    from averis.train.config import load_config

    out = Path(args.tokens_out)
    if (out / "train.bin").exists() and not args.force:
        print(f"{out} already holds token files (use --force to rebuild)")
        return show_tokens(out)
    cfg = load_config(overrides=[*data_overrides, f"data.max_chars={args.max_chars}"]).data
    start = time.time()
    build(cfg, out, progress=True)
    print(f"tokenized in {time.time() - start:.0f} s")
    if args.max_train_tokens:
        thin_out(out / "train.bin", args.max_train_tokens)
    return show_tokens(out)


def thin_out(path: Path, keep: int, block: int = 8192) -> None:
    """Rewrite a token file with `keep` tokens: evenly spaced whole blocks, so every source stays represented."""
    import numpy as np

    from averis.data.tokens import TokenFile, write_tokens

    tf = TokenFile(path)
    blocks = len(tf) // block
    wanted = min(blocks, -(-keep // block))
    if wanted >= blocks:
        return
    chosen = np.linspace(0, blocks - 1, wanted).astype(np.int64)
    tokens = np.concatenate([np.asarray(tf.tokens[b * block:(b + 1) * block]) for b in chosen])
    meta = {k: v for k, v in tf.meta.items() if k not in ("format", "version", "dtype", "num_tokens")}
    del tf
    write_tokens(path, tokens, {**meta, "thinned_from_blocks": int(blocks)})


def show_tokens(folder: Path) -> int:
    from averis.data.tokens import TokenFile

    total = 0
    for name in ("train", "val"):
        tf = TokenFile(folder / f"{name}.bin")
        total += tf.path.stat().st_size
        print(f"{tf.path}: {len(tf):,} tokens, {tf.meta['dtype']}, vocab {tf.vocab_size}")
    print(f"{total / 2**20:.1f} MiB of token files in {folder}")
    return 0


def run(args, extra: list[str]) -> int:
    from averis.cli._runargs import callback_args, callbacks_from_args
    from averis.data.tokens import TokenFile
    from averis.train.compare import compare
    from averis.train.config import load_config
    from averis.train.report import write_report

    tokens = Path(args.tokens)
    train = TokenFile(tokens / "train.bin")  # a missing or truncated file fails here, before any GPU work
    overrides = [f"data.train_tokens={tokens / 'train.bin'}", f"data.val_tokens={tokens / 'val.bin'}",
                 *extra, *args.overrides]
    cfg = load_config(args.config, overrides)
    per_step = cfg.train.batch_size * cfg.data.seq_len * cfg.train.grad_accum
    print(f"{len(train):,} training tokens; {per_step:,} tokens a step; {cfg.train.max_steps} steps = "
          f"{cfg.train.max_steps * per_step / len(train):.2f} epochs")
    recipes = [r for r in args.recipes.split(",") if r]
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.time()
    results = compare(cfg, recipes, seeds, args.out, jobs=args.jobs, time_budget_s=args.time_budget,
                      callbacks=callbacks_from_args(args), child_args=callback_args(args))
    print(f"{len(results)} run(s) trained in {time.time() - start:.0f} s")
    summary = write_report(args.out)
    print(summary["markdown"])
    if args.export:
        export(Path(args.out), Path(args.export))
    unfinished = [r for r in summary["runs"] if r["status"] not in ("done", "diverged")]
    if unfinished:
        print(f"{len(unfinished)} run(s) unfinished: run the same command again to continue them")
    return 0


def export(results: Path, dest: Path) -> None:
    """A few files a GPU session can bring back (its $OUT takes at most 8, two folders deep):
    report.md, report.json, the PNGs, and runs.tar.gz with every run's metrics, config, summary and
    log (no checkpoints, no TensorBoard).  `tar xzf runs.tar.gz` then `averis report` rebuilds it all."""
    import tarfile

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json", "loss_curves.png", "gap_curves.png"):
        if (results / name).is_file():
            shutil.copy2(results / name, dest / name)
    with tarfile.open(dest / "runs.tar.gz", "w:gz") as tar:
        for path in sorted(results.rglob("*")):
            rel = path.relative_to(results)
            if path.is_file() and not {"checkpoints", "tensorboard"} & set(rel.parts) and len(rel.parts) > 1:
                tar.add(path, arcname=str(Path(results.name) / rel))
    print(f"exported report, plots and runs.tar.gz (no checkpoints) to {dest}")


def main(argv, description: str, config: str, data_overrides: list[str], run_overrides: list[str],
         default_jobs: int, default_seeds: str) -> int:
    # works from a plain checkout (no `pip install`): this process and the runs it starts import src/
    sys.path.insert(0, str(REPO / "src"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    args = parser(description, config, default_jobs, default_seeds).parse_args(argv)
    if args.step == "prep":
        return prep(args, data_overrides)
    if args.step == "run":
        return run(args, run_overrides)
    from averis.train.report import write_report

    print(write_report(args.out)["markdown"])
    return 0
