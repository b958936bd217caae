"""Fidelity results on disk: JSON, a per-layer CSV, markdown tables and one plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .analyze import layer_block, layer_site
from .fidelity import METRICS, summarize

METRIC_LABELS = {"y": "Y", "y_centred": "Y centred", "dx": "dX", "dx_centred": "dX centred", "dw": "dW",
                 "dw_centred": "dW / cov"}


def anchor_table(anchor: dict) -> list[str]:
    lines = [f"Full-precision loss {anchor['fp_loss']:.4f}.", "",
             "| forward only: linear inputs and weights in NVFP4 | loss | increase |", "|---|---|---|"]
    for r in anchor["modes"].values():
        lines.append(f"| {r['label']} | {r['loss']:.4f} | +{r['increase_pct']:.2f}% |")
    return lines


def recipe_table(result: dict) -> list[str]:
    summary = summarize(result)
    head = ["recipe", "loss increase", "quantized layers"] + [METRIC_LABELS[m] for m in METRICS]
    lines = [f"Full-precision loss {result['fp_loss']:.4f}. Relative errors: median over the quantized layers.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        cells = [name, f"{s['loss_increase_pct']:+.2f}%", str(s["quantized_layers"])]
        cells += [f"{s[m]:.4f}" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def site_table(result: dict, metric: str) -> list[str]:
    """Median of one metric per recipe and in-block site (q/k/v, o, gate/up, down)."""
    site_names: dict[str, None] = {}
    for r in result["recipes"].values():
        for name in r["layers"]:
            if layer_block(name) is not None:
                site_names.setdefault(layer_site(name), None)
    head = ["recipe", *site_names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rname, r in result["recipes"].items():
        cells = [rname]
        for site in site_names:
            vals = sorted(v[metric] for n, v in r["layers"].items() if layer_site(n) == site and v["quantized"]
                          and layer_block(n) is not None)
            cells.append(f"{vals[len(vals) // 2]:.4f}" if vals else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_csv(result: dict, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recipe", "layer", "block", "site", "quantized", *METRICS])
        for rname, r in result["recipes"].items():
            for lname, v in r["layers"].items():
                writer.writerow([rname, lname, layer_block(lname), layer_site(lname), v["quantized"],
                                 *(f"{v[m]:.6g}" for m in METRICS)])


def plot_fidelity(result: dict, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(result)
    names = list(summary)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    axes[0].bar(names, [summary[n]["loss_increase_pct"] for n in names], color="tab:purple")
    axes[0].set_title("loss increase, quantized forward (%)")
    for ax, (whole, centred) in zip(axes[1:], (("y", "y_centred"), ("dx", "dx_centred"), ("dw", "dw_centred"))):
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [summary[n][whole] for n in names], width=0.4, label="whole")
        ax.bar([x + 0.2 for x in xs], [summary[n][centred] for n in names], width=0.4, label="token-centred")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names)
        ax.set_title(f"median relative error: {METRIC_LABELS[whole]}")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def write_fidelity(out: Path, meta: dict, anchor: dict | None, result: dict | None, plots: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "forward_anchor": anchor, "fidelity": result,
            "summary": summarize(result) if result else None}
    (out / "fidelity.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [f"# Recipe fidelity: {meta.get('model')}", ""] + [f"- {k}: {v}" for k, v in meta.items() if k != "model"]
    if anchor:
        lines += ["", "## Forward only (anchor)", "", *anchor_table(anchor)]
    if result:
        write_csv(result, out / "fidelity_layers.csv")
        lines += ["", "## W4A4G4 recipes", "",
                  "Each layer is fed the full-precision input X and output gradient D captured from the "
                  "full-precision model; errors are against X W^T, D W and D^T X. 'centred': the per-batch token "
                  "mean removed from both (for dW: error over the covariance part sum C(D)^T C(X)).", "",
                  *recipe_table(result)]
        for metric in ("y_centred", "dx_centred", "dw"):
            lines += ["", f"### Median {METRIC_LABELS[metric]} error per site", "", *site_table(result, metric)]
        if plots:
            lines += ["", f"![fidelity]({plot_fidelity(result, out / 'fidelity.png')})"]
    (out / "fidelity.md").write_text("\n".join(lines) + "\n")
    return out
