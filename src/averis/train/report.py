"""Compare runs: loss-gap tables (markdown + JSON) and PNG plots for a folder of runs.

A run is any folder below RUN_DIR holding ``metrics.jsonl`` and ``config.yaml`` (as ``averis train``
and ``averis compare`` write them).  Runs are grouped by recipe and paired with the baseline
(bf16) run of the same seed (or the mean of the baseline's seeds when that seed is missing).

    gap %  = 100 * (L_recipe - L_bf16) / L_bf16  at matched steps
    final  = gap of the validation loss at the last evaluation both runs have
             (the training loss at the last matched step when there is no validation)
    last10 = mean gap of the training loss over the last 10% of matched steps
Seeds give mean ± sample standard deviation (n shown).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .metrics import read_metrics


@dataclass
class Run:
    path: Path
    recipe: str
    seed: int
    train: dict[int, float] = field(default_factory=dict)  # step -> training loss
    val: dict[int, float] = field(default_factory=dict)    # step -> validation loss
    status: str = "unknown"
    tokens_per_s: float | None = None


def discover(root: str | Path) -> list[Run]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no run folder {root}")
    runs = [load_run(m.parent) for m in sorted(root.rglob("metrics.jsonl")) if (m.parent / "config.yaml").is_file()]
    runs = [r for r in runs if r.train]
    if not runs:
        raise FileNotFoundError(f"no runs under {root} (a run folder holds metrics.jsonl and config.yaml)")
    return runs


def load_run(folder: Path) -> Run:
    cfg = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    recipe = str(cfg.get("recipe", "?"))
    recipe = Path(recipe).stem if recipe.endswith((".yaml", ".yml", ".toml")) else recipe
    run = Run(folder, recipe, int(cfg.get("train", {}).get("seed", 0)))
    speeds = []
    for rec in read_metrics(folder / "metrics.jsonl"):
        step = rec.get("step")
        if isinstance(rec.get("loss"), int | float):
            run.train[step] = float(rec["loss"])
        if isinstance(rec.get("val_loss"), int | float):
            run.val[step] = float(rec["val_loss"])
        if isinstance(rec.get("tokens_per_s"), int | float):
            speeds.append(rec["tokens_per_s"])
        if rec.get("event") == "diverged":
            run.status = "diverged"
    summary = folder / "summary.json"
    if summary.is_file() and run.status != "diverged":
        run.status = json.loads(summary.read_text()).get("status", "unknown")
    run.tokens_per_s = speeds[-1] if speeds else None
    return run


def gap_percent(loss: dict[int, float], base: dict[int, float]) -> dict[int, float]:
    return {s: 100.0 * (loss[s] - base[s]) / base[s] for s in sorted(set(loss) & set(base)) if base[s]}


def mean_curve(curves: list[dict[int, float]]) -> dict[int, float]:
    steps = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {s: sum(c[s] for c in curves) / len(curves) for s in sorted(steps)}


def pair_gaps(run: Run, baselines: list[Run]) -> dict:
    """Gap curves and summary numbers of one run against its baseline (same seed, else the seeds' mean)."""
    same = [b for b in baselines if b.seed == run.seed]
    base_train = same[0].train if same else mean_curve([b.train for b in baselines])
    base_val = same[0].val if same else mean_curve([b.val for b in baselines])
    train_gap = gap_percent(run.train, base_train)
    val_gap = gap_percent(run.val, base_val)
    steps = sorted(train_gap)
    tail = steps[-max(1, len(steps) // 10):] if steps else []
    final = val_gap[max(val_gap)] if val_gap else (train_gap[steps[-1]] if steps else math.nan)
    last10 = sum(train_gap[s] for s in tail) / len(tail) if tail else math.nan
    return {"train_gap": train_gap, "final": final, "last10": last10, "final_is_val": bool(val_gap)}


def stats(values: list[float]) -> dict:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": sum(values) / len(values), "std": std, "n": len(values)}


def summarize(runs: list[Run], baseline: str = "bf16") -> dict:
    by_recipe: dict[str, list[Run]] = {}
    for r in runs:
        by_recipe.setdefault(r.recipe, []).append(r)
    bases = by_recipe.get(baseline, [])
    rows = []
    for recipe, group in sorted(by_recipe.items(), key=lambda kv: (kv[0] != baseline, kv[0])):
        final_val = [r.val[max(r.val)] for r in group if r.val]
        tail_train = [_tail_mean(r.train) for r in group]
        row = {"recipe": recipe, "seeds": sorted(r.seed for r in group), "val_loss": stats(final_val),
               "train_loss_last10": stats(tail_train),
               "diverged": sum(r.status == "diverged" for r in group),
               "unfinished": sum(r.status not in ("done", "diverged") for r in group),
               "steps": max(max(r.train) for r in group),
               "tokens_per_s": stats([r.tokens_per_s for r in group if r.tokens_per_s])}
        if bases and recipe != baseline:
            pairs = [pair_gaps(r, bases) for r in group]
            row["gap_final"] = stats([p["final"] for p in pairs])
            row["gap_last10"] = stats([p["last10"] for p in pairs])
            # seed by seed, for paired readings (same seed: same initial weights and batches)
            row["gap_final_by_seed"] = {r.seed: p["final"] for r, p in zip(group, pairs)}
            row["gap_last10_by_seed"] = {r.seed: p["last10"] for r, p in zip(group, pairs)}
            row["gap_final_on"] = "val" if all(p["final_is_val"] for p in pairs) else "train"
        rows.append(row)
    return {"baseline": baseline if bases else None, "rows": rows,
            "runs": [{"recipe": r.recipe, "seed": r.seed, "path": str(r.path), "status": r.status} for r in runs]}


def _tail_mean(curve: dict[int, float]) -> float:
    steps = sorted(curve)
    tail = steps[-max(1, len(steps) // 10):]
    return sum(curve[s] for s in tail) / len(tail)


def _fmt(s: dict, digits: int = 4, signed: bool = False) -> str:
    if not s or s.get("mean") is None:
        return "-"
    fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    text = fmt.format(s["mean"])
    if s["n"] > 1:
        text += f" ± {s['std']:.{digits}f}"
    return text


def markdown(summary: dict, title: str = "Recipe comparison") -> str:
    base = summary["baseline"]
    lines = [f"# {title}", ""]
    if base:
        lines += [f"Loss gap vs **{base}** in percent, (L_recipe - L_{base}) / L_{base} at matched steps: "
                  "*final* at the last common evaluation (validation loss), *last 10%* averaged over the last "
                  "10% of steps (training loss). Mean ± standard deviation over seeds (n = seeds).", ""]
    lines += ["| recipe | n | steps | val loss | train loss (last 10%) | gap % final | gap % last 10% | "
              "diverged | tokens/s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["rows"]:
        tps = row["tokens_per_s"]["mean"]
        lines.append(f"| {row['recipe']} | {len(row['seeds'])} | {row['steps']} | {_fmt(row['val_loss'])} | "
                     f"{_fmt(row['train_loss_last10'])} | {_fmt(row.get('gap_final'), 2, True)} | "
                     f"{_fmt(row.get('gap_last10'), 2, True)} | {row['diverged']} | "
                     f"{f'{tps:,.0f}' if tps else '-'} |")
    if any(r["unfinished"] for r in summary["rows"]):
        lines += ["", "Some runs are unfinished (stopped or still running): their numbers are for the steps done."]
    return "\n".join(lines) + "\n"


def smooth(values: list[float], fraction: float = 0.02) -> list[float]:
    """Centred moving average over `fraction` of the curve (no lag, unlike an EMA; shorter at the ends)."""
    half = max(0, int(len(values) * fraction) // 2)
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half): i + half + 1]
        out.append(sum(window) / len(window))
    return out


def plot(runs: list[Run], summary: dict, out: Path) -> list[Path]:
    """loss_curves.png (training loss, smoothed, mean over seeds; validation as markers) and gap_curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_recipe: dict[str, list[Run]] = {}
    for r in runs:
        by_recipe.setdefault(r.recipe, []).append(r)
    written = []
    fig, ax = plt.subplots(figsize=(8, 5))
    tails = []
    for k, (recipe, group) in enumerate(sorted(by_recipe.items())):
        color = f"C{k % 10}"
        curve = mean_curve([r.train for r in group])
        steps, smoothed = list(curve), smooth(list(curve.values()))
        ax.plot(steps, smoothed, color=color, label=f"{recipe} (n={len(group)})")
        tails += smoothed[len(smoothed) // 10:]
        val = mean_curve([r.val for r in group if r.val]) if all(r.val for r in group) else {}
        if val:
            ax.plot(list(val), list(val.values()), "o", color=color, markersize=3)
            cut = steps[len(steps) // 10] if steps else 0
            tails += [v for s, v in val.items() if s >= cut]  # the validation dots stay inside the zoom
    if tails:  # zoom past the first 10% of steps, where the recipes differ
        low, high = min(tails), max(tails)
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set(xlabel="step", ylabel="loss", title="training loss (smoothed; dots: validation)")
    ax.legend()
    ax.grid(alpha=0.3)
    written.append(_save(fig, out / "loss_curves.png"))
    base = summary["baseline"]
    if base:
        fig, ax = plt.subplots(figsize=(8, 5))
        for k, (recipe, group) in enumerate(sorted(by_recipe.items())):
            if recipe == base:
                continue
            curves = [pair_gaps(r, by_recipe[base])["train_gap"] for r in group]
            mean = mean_curve(curves)
            steps = list(mean)
            ax.plot(steps, smooth(list(mean.values()), 0.05), color=f"C{k % 10}", label=recipe)
            if len(curves) > 1:
                lo = smooth([min(c[s] for c in curves) for s in steps], 0.05)
                hi = smooth([max(c[s] for c in curves) for s in steps], 0.05)
                ax.fill_between(steps, lo, hi, color=f"C{k % 10}", alpha=0.15)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set(xlabel="step", ylabel=f"gap vs {base} (%)", title="training-loss gap (smoothed; band: seed range)")
        ax.legend()
        ax.grid(alpha=0.3)
        written.append(_save(fig, out / "gap_curves.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_report(root: str | Path, out: str | Path | None = None, baseline: str = "bf16",
                 plots: bool = True) -> dict:
    """Discover runs under root; write report.md, report.json and PNGs into out (default root)."""
    runs = discover(root)
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, baseline)
    text = markdown(summary)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    summary["files"] = [str(out / "report.md"), str(out / "report.json")]
    if plots:
        summary["files"] += [str(p) for p in plot(runs, summary, out)]
    summary["markdown"] = text
    return summary
