"""The split diagnostic on disk: split_diag.json (everything, with the run's meta), split_diag.md (the tables)
and split_diag.png (per layer, per site: errors with and without the split)."""

from __future__ import annotations

import json
from pathlib import Path

from ..recipes.sites import SITES
from .split_diag import SOURCES, site_summary

SOURCE_LABELS = {"x": "X (activation)", "dy": "dY (output gradient)"}
SITE_LABELS = {"attn_in": "q/k/v (attention input)", "o_proj": "o_proj", "mlp_in": "gate/up (MLP input)",
               "down_proj": "down_proj", "other": "other layers"}


def _f(v: float) -> str:
    return f"{v:.4f}"


def loss_table(result: dict) -> list[str]:
    lines = [f"Full-precision loss {result['fp_loss']:.4f}.", "",
             "| recipe (quantized forward) | loss | increase |", "|---|---|---|"]
    for name, r in result["losses"].items():
        lines.append(f"| {name} | {r['loss']:.4f} | {r['increase_pct']:+.2f}% |")
    return lines


def site_tables(result: dict) -> list[str]:
    summary = site_summary(result)
    thr = result["threshold"]
    lines = []
    for source in SOURCES:
        lines += ["", f"### {SOURCE_LABELS[source]}: median over the site's layers", "",
                  "| site | layers | mean ratio R | amax(res) / amax | block-scale inflation | NVFP4 error | "
                  f"error with split | calls the adaptive rule splits (R >= {thr}) |",
                  "|---|---|---|---|---|---|---|---|"]
        for site, s in summary.items():
            lines.append(f"| {SITE_LABELS[site]} | {s['layers']} | {_f(s[f'{source}_mean_ratio'])} | "
                         f"{_f(s[f'{source}_amax_ratio'])} | {_f(s[f'{source}_block_inflation'])} | "
                         f"{_f(s[f'{source}_qerr'])} | {_f(s[f'{source}_qerr_split'])} | "
                         f"{s[f'{source}_adaptive_splits']:.0%} |")
    lines += ["", "### GEMM outputs: median relative error, nvfp4 (no split) -> averis (split)", "",
              "| site | Y | Y centred | dX | dX centred | dW | dW / cov |", "|---|---|---|---|---|---|---|"]
    for site, s in summary.items():
        cells = [f"{_f(s['nvfp4_' + m])} -> {_f(s['averis_' + m])}"
                 for m in ("y", "y_centred", "dx", "dx_centred", "dw", "dw_centred")]
        lines.append(f"| {SITE_LABELS[site]} | " + " | ".join(cells) + " |")
    return lines


def layer_table(result: dict) -> list[str]:
    lines = ["| layer | site | X amax ratio | X inflation | X err -> split | dY amax ratio | dY err -> split | "
             "Y nvfp4 -> averis | dX | dW |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["layers"].items():
        x, d, a, b = r["x"], r["dy"], r["nvfp4"], r["averis"]
        lines.append(f"| {name} | {r['site']} | {_f(x['amax_ratio'])} | {_f(x['block_inflation'])} | "
                     f"{_f(x['qerr'])} -> {_f(x['qerr_split'])} | {_f(d['amax_ratio'])} | "
                     f"{_f(d['qerr'])} -> {_f(d['qerr_split'])} | {_f(a['y'])} -> {_f(b['y'])} | "
                     f"{_f(a['dx'])} -> {_f(b['dx'])} | {_f(a['dw'])} -> {_f(b['dw'])} |")
    return lines


PLOT_ROWS = (("x", "qerr", "X quantization error"), ("dy", "qerr", "dY quantization error"),
             ("y", None, "Y error"), ("dx", None, "dX error"), ("dw", None, "dW error"))


def plot_split(result: dict, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = [s for s in SITES if any(r["site"] == s for r in result["layers"].values())]
    fig, axes = plt.subplots(len(PLOT_ROWS), len(sites), figsize=(4.2 * len(sites), 2.4 * len(PLOT_ROWS)),
                             squeeze=False)
    for col, site in enumerate(sites):
        rows = [(n, r) for n, r in result["layers"].items() if r["site"] == site]
        xs = [r["block"] if r["block"] is not None else i for i, (_, r) in enumerate(rows)]
        for row, (key, qkey, title) in enumerate(PLOT_ROWS):
            ax = axes[row][col]
            if qkey:
                without = [r[key][qkey] for _, r in rows]
                with_split = [r[key][qkey + "_split"] for _, r in rows]
            else:
                without = [r["nvfp4"][key] for _, r in rows]
                with_split = [r["averis"][key] for _, r in rows]
            ax.plot(xs, without, "o", ms=3, label="no split (nvfp4)", color="tab:red")
            ax.plot(xs, with_split, "o", ms=3, label="split (averis)", color="tab:blue")
            ax.set_title(f"{SITE_LABELS[site]}: {title}", fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if row == len(PLOT_ROWS) - 1:
                ax.set_xlabel("block", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def write_split_diag(out: Path, meta: dict, result: dict, plots: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "summary": site_summary(result), "result": result}
    (out / "split_diag.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [f"# What the mean split changes: {meta.get('model')}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "model"]
    lines += ["", "Every layer is fed the full-precision X and dY captured from the full-precision model. Source "
              "measurements are per micro-batch, NVFP4 1x16 with nearest rounding along the fprop (X) and dgrad "
              "(dY) axes; 'with split': Q(X - mu) + mu in BF16. Block-scale inflation: geometric mean over blocks of "
              "block amax(X) / block amax(X - mu). GEMM errors: relative to full precision, nvfp4 -> averis.",
              "", "## Loss of each recipe's quantized forward", "", *loss_table(result),
              "", "## Per site", *site_tables(result)]
    if plots:
        lines += ["", f"![per layer]({plot_split(result, out / 'split_diag.png')})"]
    lines += ["", "## Per layer", "", *layer_table(result)]
    (out / "split_diag.md").write_text("\n".join(lines) + "\n")
    return out
