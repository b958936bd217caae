"""Compare runs: loss-gap tables (markdown + JSON) and PNG plots for a folder of runs.

A run is any folder below RUN_DIR holding ``metrics.jsonl`` and ``config.yaml`` (as ``averis train``
and ``averis compare`` write them).  Runs are grouped by recipe and paired with the baseline
(bf16) run of the same seed (or the mean of the baseline's seeds when that seed is missing).

    gap %  = 100 * (L_recipe - L_bf16) / L_bf16  at matched steps
    final  = gap of the validation loss at the last evaluation both runs have
             (the training loss at the last matched step when there is no validation)
    last10 = mean gap of the training loss over the last 10% of matched steps
Seeds give mean ± sample standard deviation (n shown).

Paired statistics: when two recipes ran the same seeds (same initial weights and batches), the
per-seed difference of their gaps (recipe minus a reference recipe, ``paired``, by default
nvfp4) removes most of the seed-to-seed spread.  For each recipe: the differences, their mean, a 95%
Student-t interval (exact quantile, no SciPy) and how many seeds are lower; a difference is
*resolved* only when the interval excludes 0.
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
    gpu_peak_gib: float | None = None  # summary.json of a GPU run: what it held of the GPU at its peak


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
    if summary.is_file():
        info = json.loads(summary.read_text())
        run.gpu_peak_gib = info.get("gpu_peak_gib")
        if run.status != "diverged":
            run.status = info.get("status", "unknown")
    # the median over the run: each record's speed is of its last 20 steps, and the last ones can be alone on the
    # machine (side by side, a run that finishes late had the cores to itself)
    run.tokens_per_s = statistics.median(speeds) if speeds else None
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
    return {"train_gap": train_gap, "val_gap": val_gap, "final": final, "last10": last10,
            "final_is_val": bool(val_gap)}


def stats(values: list[float]) -> dict:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": sum(values) / len(values), "std": std, "n": len(values)}


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution (df >= 1): bisection on its CDF, to ~1e-12."""
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df >= 1, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * max(1.0, high):
            break
    return 0.5 * (low + high)


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t) for t >= 0: 1 - I_x(df/2, 1/2) / 2 with x = df / (df + t^2)."""
    return 1.0 - 0.5 * _betainc(0.5 * df, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side only
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def paired_stats(diffs: dict[int, float], level: float = 0.95) -> dict:
    """Per-seed differences -> mean, sd, n, the t-interval, the sign count and a verdict."""
    by_seed = {s: d for s, d in sorted(diffs.items()) if d is not None and math.isfinite(d)}
    values = list(by_seed.values())
    n = len(values)
    out = {"by_seed": by_seed, "n": n, "mean": None, "std": None, "ci_low": None, "ci_high": None,
           "level": level, "lower": sum(v < 0 for v in values), "higher": sum(v > 0 for v in values),
           "resolved": False, "verdict": "no shared seeds"}
    if not n:
        return out
    mean = sum(values) / n
    out["mean"] = mean
    if n < 2:
        out["std"], out["verdict"] = 0.0, "not resolved (one seed)"
        return out
    std = statistics.stdev(values)
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    out.update(std=std, ci_low=mean - half, ci_high=mean + half)
    out["resolved"] = out["ci_low"] > 0 or out["ci_high"] < 0
    out["verdict"] = ("lower" if mean < 0 else "higher") if out["resolved"] else "not resolved"
    return out


def paired_against(rows: list[dict], against: str, baseline: str, level: float = 0.95) -> dict:
    """Every recipe's per-seed gaps minus those of recipe `against`, on the seeds both ran."""
    ref = next((r for r in rows if r["recipe"] == against), None)
    if ref is None or "gap_final_by_seed" not in ref:
        names = ", ".join(r["recipe"] for r in rows if r["recipe"] != baseline)
        raise ValueError(f"cannot pair against {against!r}: it is not among the runs' recipes with a gap "
                         f"to {baseline} ({names or 'none'})")
    out = []
    for row in rows:
        if row["recipe"] in (against, baseline) or "gap_final_by_seed" not in row:
            continue
        entry = {"recipe": row["recipe"]}
        for metric in ("final", "last10"):
            mine, theirs = row[f"gap_{metric}_by_seed"], ref[f"gap_{metric}_by_seed"]
            entry[metric] = paired_stats({s: mine[s] - theirs[s] for s in set(mine) & set(theirs)}, level)
        entry["seeds"] = sorted(entry["final"]["by_seed"])
        entry["curve"] = paired_curve(row.get("gap_val_curve_by_seed", {}), ref.get("gap_val_curve_by_seed", {}), level)
        out.append(entry)
    return {"against": against, "level": level, "rows": out}


def paired_curve(mine: dict[int, dict[int, float]], theirs: dict[int, dict[int, float]],
                 level: float = 0.95) -> list[dict]:
    """The paired difference over training: at every evaluation step that all shared seeds have, the per-seed
    validation gaps minus the reference's, as paired_stats (step, n, mean, ci_low, ci_high; no interval from
    one seed)."""
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return []
    steps = sorted(set.intersection(*(set(mine[s]) & set(theirs[s]) for s in seeds)))
    curve = []
    for step in steps:
        st = paired_stats({s: mine[s][step] - theirs[s][step] for s in seeds}, level)
        curve.append({"step": step, **{k: st[k] for k in ("n", "mean", "ci_low", "ci_high")}})
    return curve


def summarize(runs: list[Run], baseline: str = "bf16", paired: str | list[str] | None = None,
              meta: dict | None = None) -> dict:
    """The report's numbers.  paired: the reference recipe(s) of the paired statistics (None: nvfp4
    when it ran and shares seeds with another recipe; [] for none)."""
    by_recipe: dict[str, list[Run]] = {}
    for r in runs:
        by_recipe.setdefault(r.recipe, []).append(r)
    longest = max((max(r.train) for r in runs if r.train), default=0)
    every_base = by_recipe.get(baseline, [])
    bases = [r for r in every_base if r.train and max(r.train) == longest] or every_base
    rows = []
    for recipe, every in sorted(by_recipe.items(), key=lambda kv: (kv[0] != baseline, kv[0])):
        # a run cut short (stopped, still running) ends earlier than the others: its losses and gap would mix an
        # early-training reading into the seeds' statistics, so only full-length (or diverged) runs count
        group = [r for r in every if r.status == "diverged" or (r.train and max(r.train) == longest)] or every
        final_val = [r.val[max(r.val)] for r in group if r.val]
        tail_train = [_tail_mean(r.train) for r in group]
        row = {"recipe": recipe, "seeds": sorted(r.seed for r in group), "val_loss": stats(final_val),
               "train_loss_last10": stats(tail_train),
               "diverged": sum(r.status == "diverged" for r in group),
               "unfinished": sum(r.status not in ("done", "diverged") for r in every),
               "partial_excluded": len(every) - len(group),
               "steps": max(max(r.train) for r in group),
               "tokens_per_s": stats([r.tokens_per_s for r in group if r.tokens_per_s]),
               "gpu_peak_gib": max((r.gpu_peak_gib for r in group if r.gpu_peak_gib), default=None)}
        if bases and recipe != baseline:
            pairs = [pair_gaps(r, bases) for r in group]
            row["gap_final"] = stats([p["final"] for p in pairs])
            row["gap_last10"] = stats([p["last10"] for p in pairs])
            # seed by seed, for paired readings (same seed: same initial weights and batches)
            row["gap_final_by_seed"] = {r.seed: p["final"] for r, p in zip(group, pairs)}
            row["gap_last10_by_seed"] = {r.seed: p["last10"] for r, p in zip(group, pairs)}
            row["gap_final_on"] = "val" if all(p["final_is_val"] for p in pairs) else "train"
            # the validation gap at every evaluation, seed by seed: the paired curves over training
            row["gap_val_curve_by_seed"] = {r.seed: p["val_gap"] for r, p in zip(group, pairs) if p["val_gap"]}
        rows.append(row)
    if isinstance(paired, str):
        paired = [p for p in paired.split(",") if p]
    if paired is None:
        paired = ["nvfp4"] if bases and "nvfp4" in by_recipe and baseline != "nvfp4" else []
    if paired and not bases:
        raise ValueError(f"paired statistics compare gaps to the baseline {baseline!r}, and no run has that recipe")
    pairs = [paired_against(rows, ref, baseline) for ref in paired]
    return {"meta": dict(meta or {}), "baseline": baseline if bases else None, "rows": rows,
            "paired": [p for p in pairs if any(r["final"]["n"] for r in p["rows"])],
            # each run's own speed and peak memory: the rows pool runs that may have shared a GPU with others
            "runs": [{"recipe": r.recipe, "seed": r.seed, "path": str(r.path), "status": r.status,
                      "tokens_per_s": r.tokens_per_s, "gpu_peak_gib": r.gpu_peak_gib} for r in runs]}


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


def _signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def paired_markdown(pair: dict) -> list[str]:
    ref, level = pair["against"], pair["level"]
    lines = [f"## Paired against {ref}", "",
             f"Per seed: the recipe's gap % minus {ref}'s gap % on the same seed (percentage points of the "
             f"baseline's loss; negative: closer to the baseline than {ref}). Mean and {level:.0%} Student-t "
             "interval over the shared seeds; *resolved* only when the interval excludes 0.", ""]
    if any(row.get("curve") for row in pair["rows"]):
        lines += [f"Over training: `paired_{ref}.png` draws the same difference of the validation gap at every "
                  "evaluation, with its interval (report.json: each row's `curve`).", ""]
    for metric, label in (("final", "gap % final"), ("last10", "gap % last 10%")):
        lines += [f"**{label}, recipe - {ref}**", "",
                  f"| recipe | n | per seed | mean | {level:.0%} interval | seeds lower | reading |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in pair["rows"]:
            st = row[metric]
            if not st["n"]:
                continue
            per_seed = ", ".join(f"{s}: {_signed(v)}" for s, v in st["by_seed"].items())
            interval = f"[{_signed(st['ci_low'])}, {_signed(st['ci_high'])}]" if st["ci_low"] is not None else "-"
            lines.append(f"| {row['recipe']} | {st['n']} | {per_seed} | {_signed(st['mean'])} | {interval} | "
                         f"{st['lower']}/{st['n']} lower | {st['verdict']} |")
        lines.append("")
    return lines


def markdown(summary: dict, title: str = "Recipe comparison") -> str:
    base = summary["baseline"]
    lines = [f"# {title}", ""]
    if summary.get("meta"):
        lines += [f"- {k}: {v}" for k, v in summary["meta"].items()] + [""]
    if base:
        lines += [f"Loss gap vs **{base}** in percent, (L_recipe - L_{base}) / L_{base} at matched steps: "
                  "*final* at the last common evaluation (validation loss), *last 10%* averaged over the last "
                  "10% of steps (training loss). Mean ± standard deviation over seeds (n = seeds).", ""]
    memory = any(row.get("gpu_peak_gib") for row in summary["rows"])  # GPU runs: the most one of them held
    lines += ["| recipe | n | steps | val loss | train loss (last 10%) | gap % final | gap % last 10% | "
              "diverged | tokens/s |" + (" GPU GiB (peak) |" if memory else ""),
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if memory else "")]
    for row in summary["rows"]:
        tps = row["tokens_per_s"]["mean"]
        peak = f" {row['gpu_peak_gib']:.1f} |" if row.get("gpu_peak_gib") else " - |"
        lines.append(f"| {row['recipe']} | {len(row['seeds'])} | {row['steps']} | {_fmt(row['val_loss'])} | "
                     f"{_fmt(row['train_loss_last10'])} | {_fmt(row.get('gap_final'), 2, True)} | "
                     f"{_fmt(row.get('gap_last10'), 2, True)} | {row['diverged']} | "
                     f"{f'{tps:,.0f}' if tps else '-'} |" + (peak if memory else ""))
    if any(r["unfinished"] for r in summary["rows"]):
        lines += ["", "Some runs are unfinished (stopped or still running): their numbers are for the steps done."]
    partial = sum(r.get("partial_excluded", 0) for r in summary["rows"])
    if partial:
        lines += [f"{partial} run(s) shorter than the longest run are left out of the gaps and paired statistics."]
    for pair in summary.get("paired", []):
        lines += ([""] if lines[-1] else []) + paired_markdown(pair)
    return "\n".join(lines).rstrip("\n") + "\n"


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
    tails, plotted = [], []
    for k, (recipe, group) in enumerate(sorted(by_recipe.items())):
        color = f"C{k % 10}"
        curve = mean_curve([r.train for r in group])
        steps, smoothed = list(curve), smooth(list(curve.values()))
        ax.plot(steps, smoothed, color=color, label=f"{recipe} (n={len(group)})")
        tails += smoothed[len(smoothed) // 10:]
        plotted += smoothed
        val = mean_curve([r.val for r in group if r.val]) if all(r.val for r in group) else {}
        if val:
            ax.plot(list(val), list(val.values()), "o", color=color, markersize=3)
            cut = steps[len(steps) // 10] if steps else 0
            tails += [v for s, v in val.items() if s >= cut]  # the validation dots stay inside the zoom
            plotted += list(val.values())
    title = "training loss (smoothed; dots: validation)"
    if tails:  # zoom past the first 10% of steps, where the recipes differ
        low, high = min(tails), max(tails)
        bottom, top = low - 0.05 * (high - low), high + 0.05 * (high - low)
        ax.set_ylim(bottom, top)
        if max(plotted) > top:  # say so: a reader must not take the top of the plot for the start of training
            title += f"\nzoomed in: the first steps (loss up to {max(plotted):.2f}) are above the top"
    ax.set(xlabel="step", ylabel="loss", title=title)
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
    for pair in summary.get("paired", []):
        curves = [(row["recipe"], row["curve"]) for row in pair["rows"] if row.get("curve")]
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        banded = False
        for k, (recipe, curve) in enumerate(curves):
            steps = [c["step"] for c in curve]
            ax.plot(steps, [c["mean"] for c in curve], "o-", markersize=3, color=f"C{k % 10}",
                    label=f"{recipe} (n={curve[-1]['n']})")
            if all(c["ci_low"] is not None for c in curve):
                ax.fill_between(steps, [c["ci_low"] for c in curve], [c["ci_high"] for c in curve],
                                color=f"C{k % 10}", alpha=0.15)
                banded = True
        band = f"band: {100 * pair['level']:.0f}% interval" if banded else "one seed: no interval"
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set(xlabel="step", ylabel=f"gap minus {pair['against']}'s (points of {base}'s loss)",
               title=f"validation gap minus {pair['against']}'s, paired by seed\n({band}; below 0: closer to "
                     f"{base} than {pair['against']})")
        ax.legend()
        ax.grid(alpha=0.3)
        written.append(_save(fig, out / f"paired_{pair['against']}.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_report(root: str | Path, out: str | Path | None = None, baseline: str = "bf16",
                 plots: bool = True, paired: str | list[str] | None = None, meta: dict | None = None) -> dict:
    """Discover runs under root; write report.md, report.json and PNGs into out (default root).

    paired: reference recipe(s) of the paired statistics (default nvfp4 when present); meta: notes
    (device, commit, ...) written at the top of report.md and under "meta" in report.json.
    """
    runs = discover(root)
    summary = summarize(runs, baseline, paired, meta)
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(summary)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    summary["files"] = [str(out / "report.md"), str(out / "report.json")]
    if plots:
        summary["files"] += [str(p) for p in plot(runs, summary, out)]
    summary["markdown"] = text
    return summary
