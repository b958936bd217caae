"""Can seeds trained at different commits be pooled?  Splits each recipe's per-seed paired differences in a
report (`averis report --paired-against`) into two groups of seeds, gives each group's mean and 95% interval
(averis.train.report.paired_stats) and the Welch t of the difference between the groups.

    python benchmarks/seed_halves.py benchmarks/results/scratch_seeds/report.json --against nvfp4 \\
        --first 0,1,3,4,5 > benchmarks/results/scratch_seeds/seed_halves.txt
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys

from averis import provenance
from averis.train.report import paired_stats


def welch_t(a: list[float], b: list[float]) -> float:
    """(mean b - mean a) / sqrt(var a / n_a + var b / n_b), sample variances."""
    return (statistics.fmean(b) - statistics.fmean(a)) / math.sqrt(
        statistics.variance(a) / len(a) + statistics.variance(b) / len(b))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="a report.json with paired statistics")
    ap.add_argument("--against", default="nvfp4", help="the reference recipe of the pairing")
    ap.add_argument("--first", required=True, help="the seeds of the first group (the rest form the second)")
    ap.add_argument("--metric", default="final", choices=["final", "last10"])
    args = ap.parse_args(argv)
    summary = json.load(open(args.report))
    pair = next((p for p in summary["paired"] if p["against"] == args.against), None)
    if pair is None:
        print(f"seed_halves: {args.report} has no pairing against {args.against!r}", file=sys.stderr)
        return 2
    first = {int(s) for s in args.first.split(",")}
    print(f"commit {provenance.commit()}; the report's runs: {summary.get('meta', {})}")
    print(f"command python {shlex.join(['benchmarks/seed_halves.py', *argv])}")
    print(f"gap % {args.metric}, recipe - {args.against}, paired by seed; groups: seeds {sorted(first)} and the rest\n")
    print("| recipe | first group | mean [95% interval] | second group | mean [95% interval] | Welch t |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in pair["rows"]:
        by_seed = {int(s): v for s, v in row[args.metric]["by_seed"].items()}
        a = {s: v for s, v in by_seed.items() if s in first}
        b = {s: v for s, v in by_seed.items() if s not in first}
        if len(a) < 2 or len(b) < 2:
            continue
        sa, sb = paired_stats(a), paired_stats(b)
        print(f"| {row['recipe']} | {sorted(a)} | {sa['mean']:+.2f} [{sa['ci_low']:+.2f}, {sa['ci_high']:+.2f}] | "
              f"{sorted(b)} | {sb['mean']:+.2f} [{sb['ci_low']:+.2f}, {sb['ci_high']:+.2f}] | "
              f"{welch_t(list(a.values()), list(b.values())):+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
