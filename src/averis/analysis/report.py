"""Write an analysis to disk: JSON (everything), CSV (one row per layer), a markdown summary and PNG plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from statistics import median

from .analyze import select, sites

CSV_COLUMNS = ("name", "kind", "block", "site", "aliases", "tokens_seen", "tokens", "channels", "mean_ratio",
               "sign_coherence", "cos_mean_v1", "sigma1_energy_share", "energy_mean", "energy_spike",
               "energy_tail", "outlier_mean", "outlier_spike", "outlier_tail", "outlier_mean_signed",
               "outlier_mean_dominant", "absmax", "mean_absmax", "rms")
QUANT_COLUMNS = ("rel_error", "sqnr_db", "rel_error_centred", "flush_to_zero", "block_range_log2")
SITE_LABELS = {"self_attn.q_proj": "attention input (q/k/v)", "self_attn.o_proj": "attention output (o_proj in)",
               "mlp.gate_proj": "MLP input (gate/up)", "mlp.down_proj": "down_proj input (SwiGLU output)",
               "attn.q_proj": "attention input (q/k/v)", "attn.o_proj": "attention output (o_proj in)",
               "mlp.gate": "MLP input (gate/up)", "mlp.down": "down_proj input"}


# --------------------------------------------------------------------------- data files
def flat_row(record: dict) -> dict:
    """One CSV row: the scalar statistics plus <fmt>_<mode>_<metric> for every quantization result."""
    row = {k: record.get(k) for k in CSV_COLUMNS}
    row["aliases"] = " ".join(record.get("aliases") or [])
    for fmt, modes in (record.get("quant") or {}).items():
        row[f"{fmt}_error_explained_by_mean"] = modes["error_explained_by_mean"]
        for mode, values in modes.items():
            if isinstance(values, dict):
                for metric in QUANT_COLUMNS:
                    row[f"{fmt}_{mode}_{metric}"] = values[metric]
    return row


def write_data(result: dict, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "stats.json").write_text(json.dumps(finite_json({"meta": meta, **result}), indent=1) + "\n")
    rows = [flat_row(r) for r in result["layers"]]
    with open(out / "layers.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def finite_json(obj):
    """obj with non-finite floats (the SQNR of an exact quantization is inf) as strings: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- markdown
def site_label(site: str) -> str:
    return SITE_LABELS.get(site, site)


def markdown_summary(result: dict, meta: dict, plots: list[str]) -> str:
    lines = [f"# Mean-bias analysis: {meta.get('model', 'model')}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "model"]
    lines += [f"- settings: {json.dumps(result['settings'])}", ""]
    if result.get("skipped"):
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in result["skipped"].items()), ""]
    for kind, title in (("input", "Linear-layer inputs"), ("grad_output", "Output gradients")):
        records = select(result["layers"], kind)
        if not records:
            continue
        lines += [f"## {title}", "", _overview(records), ""]
        for site in sites(result["layers"], kind) + ["(outside blocks)"]:
            rows = ([r for r in records if r["block"] is None] if site == "(outside blocks)"
                    else select(records, kind, site))
            if rows:
                lines += [f"### {site_label(site) if kind == 'input' else site}", "", *_layer_table(rows), ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _overview(records: list[dict]) -> str:
    def med(key, getter=None):
        vals = sorted(getter(r) if getter else r[key] for r in records)
        return vals[len(vals) // 2]

    parts = [f"{len(records)} layers; medians: R {med('mean_ratio'):.3f}, |cos(mu, v1)| {med('cos_mean_v1'):.3f}, "
             f"mean energy share {med('energy_mean'):.3f}, outlier share of the mean "
             f"{med('outlier_mean'):.3f}"]
    if records[0].get("quant", {}).get("nvfp4"):
        parts.append(f", NVFP4 rel. error {med(None, lambda r: r['quant']['nvfp4']['plain']['rel_error']):.4f} "
                     f"-> {med(None, lambda r: r['quant']['nvfp4']['mean_bf16']['rel_error']):.4f} with the "
                     f"mean removed")
    return "".join(parts) + "."


def _layer_table(rows: list[dict]) -> list[str]:
    quant = "nvfp4" in (rows[0].get("quant") or {})
    head = ["block", "R", "sign coh.", "cos(mu,v1)", "E mean", "E spike", "E tail", "outl. mean", "outl. spike",
            "outl. tail", "absmax"]
    if quant:
        head += ["NVFP4 err", "err -mean", "err -mean(FP4 mu)", "expl. by mean", "FTZ", "FTZ -mean"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["block"]) if r["block"] is not None else r["name"], f"{r['mean_ratio']:.3f}",
                 f"{r['sign_coherence']:.2f}", f"{r['cos_mean_v1']:.3f}", f"{r['energy_mean']:.3f}",
                 f"{r['energy_spike']:.3f}", f"{r['energy_tail']:.3f}", f"{r['outlier_mean']:.3f}",
                 f"{r['outlier_spike']:.3f}", f"{r['outlier_tail']:.3f}", f"{r['absmax']:.4g}"]
        if quant:
            q = r["quant"]["nvfp4"]
            cells += [f"{q['plain']['rel_error']:.4f}", f"{q['mean_bf16']['rel_error']:.4f}",
                      f"{q['mean_fp4']['rel_error']:.4f}", f"{q['error_explained_by_mean']:.3f}",
                      f"{q['plain']['flush_to_zero']:.3f}", f"{q['mean_bf16']['flush_to_zero']:.3f}"]
        out.append("| " + " | ".join(cells) + " |")
    return out


# --------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_profiles(result: dict, out: Path, kind: str = "input") -> list[str]:
    """Per-layer profiles, outlier attribution and quantization error; returns the PNG file names."""
    records = result["layers"]
    site_list = sites(records, kind)
    if not site_list:
        return []
    suffix = "" if kind == "input" else "_grad"
    names = [_plot_profile(records, site_list, kind, out / f"profile{suffix}.png"),
             _plot_outliers(records, site_list, kind, out / f"outliers{suffix}.png")]
    if records[0].get("quant"):
        names.append(_plot_quant(records, site_list, kind, out / f"quant_error{suffix}.png"))
    return names


def _plot_profile(records, site_list, kind, path: Path) -> str:
    plt = _pyplot()
    metrics = (("mean_ratio", "mean ratio R"), ("cos_mean_v1", "|cos(mu, v1)|"), ("energy_mean", "energy share: mean"),
               ("energy_spike", "energy share: spike"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], metrics):
        for site in site_list:
            rows = select(records, kind, site)
            ax.plot([r["block"] for r in rows], [r[key] for r in rows], marker="o", ms=3, label=_short(site, kind))
        ax.set_title(title)
        ax.set_xlabel("block")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def _plot_outliers(records, site_list, kind, path: Path) -> str:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(site_list), figsize=(4.2 * len(site_list), 3.4), squeeze=False)
    for ax, site in zip(axes[0], site_list):
        rows = select(records, kind, site)
        blocks = [r["block"] for r in rows]
        bottom = [0.0] * len(rows)
        for part, color in (("mean", "tab:red"), ("spike", "tab:blue"), ("tail", "tab:gray")):
            vals = [r[f"outlier_{part}"] for r in rows]
            ax.bar(blocks, vals, bottom=bottom, color=color, label=part, width=0.8)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_title(f"top-0.1% outliers: {_short(site, kind)}", fontsize=9)
        ax.set_xlabel("block")
        ax.set_ylabel("mean share part^2 / x^2")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def _plot_quant(records, site_list, kind, path: Path) -> str:
    plt = _pyplot()
    fmts = list(records[0]["quant"])
    fig, axes = plt.subplots(len(fmts), len(site_list), figsize=(4.2 * len(site_list), 3.2 * len(fmts)),
                             squeeze=False)
    for i, fmt in enumerate(fmts):
        for ax, site in zip(axes[i], site_list):
            rows = select(records, kind, site)
            blocks = [r["block"] for r in rows]
            for mode, style in (("plain", "-"), ("mean_bf16", "--"), ("mean_fp4", ":")):
                ax.plot(blocks, [r["quant"][fmt][mode]["rel_error"] for r in rows], style, marker="o", ms=2,
                        label=mode)
            ax.set_yscale("log")
            ax.set_title(f"{fmt}: {_short(site, kind)}", fontsize=9)
            ax.set_xlabel("block")
            ax.set_ylabel("||Q(X) - X|| / ||X||")
            ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_evolution(results: list[tuple[str, dict]], out: Path, kind: str = "input") -> str | None:
    """One line per checkpoint, per-layer R, cosine and NVFP4 error, per site."""
    site_list = sites(results[-1][1]["layers"], kind)
    if not site_list:
        return None
    plt = _pyplot()
    metrics = [("mean_ratio", "R", lambda r: r["mean_ratio"]), ("cos_mean_v1", "|cos(mu, v1)|",
                                                                lambda r: r["cos_mean_v1"])]
    if results[-1][1]["layers"][0].get("quant", {}).get("nvfp4"):
        metrics.append(("nvfp4", "NVFP4 rel. error", lambda r: r["quant"]["nvfp4"]["plain"]["rel_error"]))
    fig, axes = plt.subplots(len(metrics), len(site_list), figsize=(4.2 * len(site_list), 3.0 * len(metrics)),
                             squeeze=False)
    for i, (_, title, getter) in enumerate(metrics):
        for ax, site in zip(axes[i], site_list):
            for label, result in results:
                rows = select(result["layers"], kind, site)
                ax.plot([r["block"] for r in rows], [getter(r) for r in rows], marker="o", ms=2, label=label)
            ax.set_title(f"{title}: {_short(site, kind)}", fontsize=9)
            ax.set_xlabel("block")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _save(fig, out / f"evolution{'' if kind == 'input' else '_grad'}.png")


def _short(site: str, kind: str) -> str:
    return (site_label(site) if kind == "input" else f"dL/dY {site}")


def _save(fig, path: Path) -> str:
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:  # every plot here has transformer blocks on its x axis
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path.name


# --------------------------------------------------------------------------- everything
def write_report(result: dict, out: str | Path, meta: dict, plots: bool = True) -> Path:
    """stats.json, layers.csv, report.md and the plots of one analysis, under ``out``."""
    out = Path(out)
    write_data(result, out, meta)
    names = []
    if plots:
        for kind in ("input", "grad_output"):
            names += plot_profiles(result, out, kind)
    (out / "report.md").write_text(markdown_summary(result, meta, names))
    return out


def evolution_summary(results: list[tuple[str, dict]]) -> dict:
    """Per checkpoint and site, the median over blocks of the headline statistics."""
    summary: dict = {}
    for label, result in results:
        per_site = {}
        for kind in ("input", "grad_output"):
            for site in sites(result["layers"], kind):
                rows = select(result["layers"], kind, site)
                per_site[f"{kind}:{site}"] = {key: median([r[key] for r in rows]) for key in
                                              ("mean_ratio", "cos_mean_v1", "energy_mean", "outlier_mean")}
                if rows[0].get("quant", {}).get("nvfp4"):
                    per_site[f"{kind}:{site}"]["nvfp4_rel_error"] = median(
                        [r["quant"]["nvfp4"]["plain"]["rel_error"] for r in rows])
                    per_site[f"{kind}:{site}"]["nvfp4_rel_error_mean_removed"] = median(
                        [r["quant"]["nvfp4"]["mean_bf16"]["rel_error"] for r in rows])
        summary[label] = per_site
    return summary


def write_evolution(results: list[tuple[str, dict]], out: str | Path, plots: bool = True) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = evolution_summary(results)
    (out / "evolution.json").write_text(json.dumps(summary, indent=1) + "\n")
    names = [n for kind in ("input", "grad_output") if plots and (n := plot_evolution(results, out, kind))]
    lines = ["# Mean bias across checkpoints", "", "Median over blocks, per site.", ""]
    keys = list(next(iter(next(iter(summary.values())).values())))
    for site in next(iter(summary.values())):
        lines += [f"## {site}", "", "| checkpoint | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for label, per_site in summary.items():
            vals = per_site.get(site, {})
            lines.append(f"| {label} | " + " | ".join(f"{vals[k]:.4f}" if k in vals else "-" for k in keys) + " |")
        lines.append("")
    lines += [f"![{n}]({n})" for n in names]
    (out / "evolution.md").write_text("\n".join(lines) + "\n")
    return out
