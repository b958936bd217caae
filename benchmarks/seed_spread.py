"""Seed noise at one step: each recipe's validation loss at STEP in every seed of a runs folder (or a runs.tar.gz
export), their standard deviation and the median absolute difference between two seeds.  A yardstick for a
difference between two runs that differ in something other than the seed (e.g. 1 vs 2 GPUs).

    python benchmarks/seed_spread.py benchmarks/results/scratch_seeds/runs.tar.gz --step 200 --recipes nvfp4
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # a plain checkout runs it too
from averis import provenance  # noqa: E402


def val_at(metrics: Path, step: int) -> float | None:
    for line in metrics.read_text().splitlines():
        m = json.loads(line)
        if m.get("step") == step and "val_loss" in m:
            return m["val_loss"]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="a runs folder (RECIPE/seedN/metrics.jsonl below it) or a runs.tar.gz export")
    ap.add_argument("--step", type=int, required=True, help="a step with a validation loss (train.eval_every)")
    ap.add_argument("--recipes", help="comma-separated (default: every recipe found)")
    args = ap.parse_args()
    src = Path(args.runs)
    if not src.exists():
        sys.exit(f"seed_spread.py: error: {src} does not exist: give a runs folder or a runs.tar.gz")
    with tempfile.TemporaryDirectory() as tmp:
        if src.is_file():
            with tarfile.open(src) as tar:
                tar.extractall(tmp, filter="data")
            src = Path(tmp)
        found: dict[str, dict[str, float]] = {}
        for metrics in sorted(src.rglob("seed*/metrics.jsonl")):
            recipe, seed = metrics.parent.parent.name, metrics.parent.name
            value = val_at(metrics, args.step)
            if value is not None and (not args.recipes or recipe in args.recipes.split(",")):
                found.setdefault(recipe, {})[seed] = value
    print(f"commit {provenance.commit()}; computed on the CPU from the runs' metrics (their device and commit: the "
          f"runs' own README); command: python {shlex.join(sys.argv)}")
    print(f"validation loss at step {args.step}, per seed\n")
    print("| recipe | seeds | values | sd | median abs difference of two seeds |\n|---|---:|---|---:|---:|")
    for recipe, by_seed in found.items():
        v = list(by_seed.values())
        sd = f"{statistics.stdev(v):.4f}" if len(v) > 1 else "-"
        pairs = [abs(a - b) for a, b in itertools.combinations(v, 2)]
        med = f"{statistics.median(pairs):.4f}" if pairs else "-"
        values = ", ".join(f"{s} {x:.4f}" for s, x in by_seed.items())
        print(f"| {recipe} | {len(v)} | {values} | {sd} | {med} |")
    if not found:
        print(f"(no run has a validation loss at step {args.step})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
