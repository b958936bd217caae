"""Mean bias over training, from runs trained with --analyze-every (their OUT/mean_bias.jsonl), side by side.

Per run (labelled by its folder name) and recorded step, the median over layers of: the mean ratio R, |cos(mu, v1)|,
and the share of a layer operand's NVFP4 error energy that removing the mean takes away (error_explained_by_mean,
as `averis analyze` reports it), for the linear inputs and the output gradients separately.  Writes
mean_bias_runs.{md,json,png} into --out.

    python benchmarks/mean_bias_runs.py RUN_DIR [RUN_DIR ...] --out DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from averis.analysis.stats import error_explained_by_mean

KINDS = {"input": "linear inputs", "grad_output": "output gradients"}
METRICS = {
    "mean_ratio": ("R", lambda r: r["mean_ratio"]),
    "cos_mean_v1": ("|cos(mu, v1)|", lambda r: r["cos_mean_v1"]),
    "error_explained_by_mean": ("NVFP4 error energy explained by the mean",
                                lambda r: error_explained_by_mean(r["nvfp4_rel_error"],
                                                                  r["nvfp4_rel_error_mean_removed"])),
}


def load(run: Path) -> list[dict]:
    path = run / "mean_bias.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: train the run with --analyze-every N to record it")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(records: list[dict]) -> dict:
    """{kind: {metric: [(step, median over layers)]}, "last_by_site": {kind: {site: {metric: median}}}}:
    the whole run, and the last recorded step per site (the layers' role in the block)."""
    out: dict = {kind: {m: [] for m in METRICS} for kind in KINDS}
    for rec in records:
        for kind in KINDS:
            rows = [r for r in rec["layers"] if r["kind"] == kind]
            if rows:
                for m, value in _medians(rows).items():
                    out[kind][m].append((rec["step"], value))
    out["last_step"] = records[-1]["step"]
    out["last_by_site"] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        rows = [r for r in records[-1]["layers"] if r["kind"] == kind]
        for site in dict.fromkeys(r["site"] for r in rows):
            out["last_by_site"][kind][site] = _medians([r for r in rows if r["site"] == site])
    return out


def _medians(rows: list[dict]) -> dict:
    return {m: statistics.median(get(r) for r in rows) for m, (_, get) in METRICS.items()}


def markdown(summary: dict[str, dict]) -> str:
    lines = ["# Mean bias over training", "", "Median over layers at each recorded step (" +
             "; ".join(f"{k}: {label}" for k, (label, _) in METRICS.items()) + ").", ""]
    for kind, title in KINDS.items():
        header = "| run | step | " + " | ".join(METRICS) + " |"
        lines += [f"## {title}", "", header, "|---|---|" + "---|" * len(METRICS)]
        for run, s in summary.items():
            for i, (step, _) in enumerate(s[kind]["mean_ratio"]):
                vals = " | ".join(f"{s[kind][m][i][1]:.3f}" for m in METRICS)
                lines.append(f"| {run} | {step} | {vals} |")
        lines.append("")
        lines += [f"### {title} by site, at the last recorded step", "", "| run | step | site | " +
                  " | ".join(METRICS) + " |", "|---|---|---|" + "---|" * len(METRICS)]
        for run, s in summary.items():
            for site, vals in s["last_by_site"][kind].items():
                lines.append(f"| {run} | {s['last_step']} | {site} | " + " | ".join(f"{vals[m]:.3f}" for m in METRICS)
                             + " |")
        lines.append("")
    return "\n".join(lines) + "\n![mean_bias_runs.png](mean_bias_runs.png)\n"


def plot(summary: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(KINDS), len(METRICS), figsize=(4.2 * len(METRICS), 3.2 * len(KINDS)), squeeze=False)
    for i, (kind, title) in enumerate(KINDS.items()):
        for ax, (m, (label, _)) in zip(axes[i], METRICS.items()):
            for run, s in summary.items():
                pts = s[kind][m]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=run)
            ax.set_title(f"{label}\n({title}, median over layers)", fontsize=9)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    summary = {run.name: summarise(load(run)) for run in args.runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mean_bias_runs.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "mean_bias_runs.md").write_text(markdown(summary))
    plot(summary, args.out / "mean_bias_runs.png")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
