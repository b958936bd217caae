"""eval.json (per-task metrics with standard errors) and the Table-1-style markdown of one or several of them."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .harness import HEADLINE, TASKS

LABELS = {"arc_easy": "ARC-e", "arc_challenge": "ARC-c", "hellaswag": "HellaSwag", "piqa": "PIQA",
          "lambada_openai": "LAMBADA", "boolq": "BoolQ", "winogrande": "WinoGrande", "openbookqa": "OBQA",
          "sciq": "SciQ", "race": "RACE"}
METRICS = ("acc", "acc_norm", "perplexity")


def summarize(out: dict, meta: dict) -> dict:
    """eval.json's content from lm-eval's result dict: per task acc / acc_norm (/ perplexity) with their
    standard errors and n, the average of the headline metrics (HEADLINE) and ``meta`` (model, device, ...)."""
    tasks = {}
    for task in (t for t in TASKS if t in out["results"]):
        got = out["results"][task]
        row = {}
        for metric in METRICS:
            if f"{metric},none" in got:
                row[metric] = _number(got[f"{metric},none"])
                row[f"{metric}_stderr"] = _number(got.get(f"{metric}_stderr,none"))
        row["n"] = int(out["n-samples"][task]["effective"])
        row["headline"] = HEADLINE[task]
        tasks[task] = row
    heads = [tasks[t][HEADLINE[t]] for t in tasks]
    errors = [tasks[t].get(f"{HEADLINE[t]}_stderr") for t in tasks]
    average = sum(heads) / len(heads) if heads else None
    # the tasks are independent samples: the standard error of their mean is sqrt(sum se^2) / k
    avg_se = math.sqrt(sum(e * e for e in errors)) / len(errors) if errors and None not in errors else None
    return {**meta, "tasks": tasks, "average": average, "average_stderr": avg_se,
            "average_of": {t: HEADLINE[t] for t in tasks}, "seconds": round(out.get("seconds", 0.0), 1),
            "data": out.get("data"), "lm_eval_version": _lm_eval_version(),
            "per_doc": {t: d for t, d in out.get("per_doc", {}).items() if t in tasks}}


def markdown_table(results: list[dict], names: list[str] | None = None) -> str:
    """Tasks as columns and the average last, one row per eval.json content; accuracies in percent ± stderr."""
    tasks = [t for t in TASKS if any(t in r["tasks"] for r in results)]
    header = ["model", "recipe", *[f"{LABELS[t]} ({_short(HEADLINE[t])})" for t in tasks], "Avg"]
    lines = _header_lines(header)
    for i, r in enumerate(results):
        cells = [names[i] if names else _model_label(r), str(r.get("recipe", "?"))]
        for t in tasks:
            row = r["tasks"].get(t)
            cells.append(_pct(row[HEADLINE[t]], row.get(f"{HEADLINE[t]}_stderr")) if row else "-")
        same = [t for t in tasks if t in r["tasks"]] == tasks
        avg = _pct(r["average"], r.get("average_stderr")) if r.get("average") is not None else "-"
        cells.append(avg if same else avg + "*")
        lines.append("| " + " | ".join(cells) + " |")
    n = {t: sorted({r["tasks"][t]["n"] for r in results if t in r["tasks"]}) for t in tasks}
    lines.append("")
    lines.append("Zero-shot, lm-evaluation-harness; acc_n = acc_norm (length-normalized). Percent ± standard error. "
                 "Documents per task: " + ", ".join(f"{LABELS[t]} {'/'.join(map(str, n[t]))}" for t in tasks) + ".")
    if any("lambada_openai" in r["tasks"] for r in results):
        ppl = "; ".join(f"{names[i] if names else _model_label(r)} {r['tasks']['lambada_openai']['perplexity']:.2f}"
                        for i, r in enumerate(results) if "lambada_openai" in r["tasks"])
        lines.append(f"LAMBADA perplexity: {ppl}.")
    if any([t for t in tasks if t in r["tasks"]] != tasks for r in results):
        lines.append("* averaged over fewer tasks than the columns.")
    return "\n".join(lines)


def compare_table(paths: list[str | Path], paired_against: str | Path | None = None) -> str:
    """One table from several eval.json files (each row named by its model and checkpoint step); with
    paired_against (one more eval.json), a second table of each file's paired differences from it."""
    results = [read_eval(p) for p in paths]
    limits = {r.get("limit") for r in results}
    table = markdown_table(results)
    if len(limits) > 1:
        table += f"\nNote: the files were evaluated with different --limit values ({sorted(map(str, limits))})."
    if paired_against is not None:
        table += "\n\n" + paired_table(results, read_eval(paired_against))
    return table


def read_eval(path: str | Path) -> dict:
    """An eval.json (or the folder holding one), checked to be averis eval's."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    if not path.is_file():
        raise FileNotFoundError(f"no eval.json at {path}")
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON ({err.msg} at line {err.lineno})") from None
    if "tasks" not in result:
        raise ValueError(f"{path} is not an eval.json written by averis eval (no 'tasks')")
    return result


Z95 = 1.959963984540054  # the normal 97.5% quantile: thousands of documents a task


def unpaired_difference(result: dict, reference: dict) -> dict:
    """result minus reference from the two eval.json summaries alone (for files without per-document scores):
    per task the difference of the headline metrics with the standard errors combined as independent, and the
    same of the averages when both cover the same tasks.  Evaluations of the same documents are positively
    correlated, so this interval is wider than the paired one: conservative, never optimistic."""
    tasks = {}
    for task in (t for t in TASKS if t in result["tasks"] and t in reference["tasks"]):
        a, b = result["tasks"][task], reference["tasks"][task]
        metric = HEADLINE[task]
        se_a, se_b = a.get(f"{metric}_stderr"), b.get(f"{metric}_stderr")
        if se_a is None or se_b is None:
            continue
        tasks[task] = _normal_interval(a[metric] - b[metric], math.hypot(se_a, se_b))
    same = set(result["tasks"]) == set(reference["tasks"])
    if not same or result.get("average_stderr") is None or reference.get("average_stderr") is None:
        return {"tasks": tasks, "average": None}
    average = _normal_interval(result["average"] - reference["average"],
                               math.hypot(result["average_stderr"], reference["average_stderr"]))
    return {"tasks": tasks, "average": average}


def _normal_interval(diff: float, se: float) -> dict:
    return {"diff": diff, "se": se, "low": diff - Z95 * se, "high": diff + Z95 * se}


def paired_difference(result: dict, reference: dict) -> dict:
    """result minus reference on the same documents, task by task: the mean difference of the headline metric, its
    standard error sd(d) / sqrt(n) and a 95% interval; and of the average over the tasks both scored per document
    (the tasks' standard errors combined as independent).  Pairing removes the documents' own difficulty, which
    the unpaired standard errors of two accuracies carry twice.  No tasks (average None) where a side has no
    per-document scores."""
    mine, theirs = result.get("per_doc") or {}, reference.get("per_doc") or {}
    tasks = {}
    for task in (t for t in TASKS if t in mine and t in theirs):
        a, b = mine[task], theirs[task]
        if len(a) != len(b):
            raise ValueError(f"{task}: {len(a)} documents against {len(b)}: pair only evaluations of the same "
                             f"documents (the same --limit)")
        d = [int(x) - int(y) for x, y in zip(a, b)]
        n = len(d)
        mean = sum(d) / n
        se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n) if n > 1 else float("nan")
        tasks[task] = {"n": n, **_normal_interval(mean, se)}
    if not tasks:
        return {"tasks": {}, "average": None}
    k = len(tasks)
    mean = sum(t["diff"] for t in tasks.values()) / k
    se = math.sqrt(sum(t["se"] ** 2 for t in tasks.values())) / k
    average = {**_normal_interval(mean, se), "tasks": k}
    return {"tasks": tasks, "average": average}


def paired_table(results: list[dict], reference: dict) -> str:
    """Each result's differences from reference (percentage points, 95% interval), tasks as columns: paired by
    document where both have per-document scores, otherwise unpaired (unpaired_difference) in a table of its own."""
    name = _model_label(reference)
    tasks = [t for t in TASKS if t in (reference.get("per_doc") or reference["tasks"])]
    header = ["model", *[LABELS[t] for t in tasks], "Avg"]
    paired, unpaired = [], []
    for r in results:
        if r.get("per_doc") == reference.get("per_doc") and r["tasks"] == reference["tasks"] \
                and _model_label(r) == name:
            continue  # the reference itself
        if r.get("per_doc") and reference.get("per_doc"):
            paired.append(_difference_row(r, paired_difference(r, reference), tasks))
        else:
            unpaired.append(_difference_row(r, unpaired_difference(r, reference), tasks))
    sections = []
    if paired:
        sections.append([f"**Paired against {name}**: accuracy minus its accuracy on the same documents, percentage "
                         "points, 95% interval (bold where it excludes 0).", "", *_header_lines(header), *paired])
    if unpaired:
        sections.append([f"**Unpaired against {name}** (one side without per-document scores): accuracy minus its "
                         "accuracy, the two standard errors combined as independent; wider than a paired interval, "
                         "since each document's difficulty counts twice.", "", *_header_lines(header), *unpaired])
    return "\n\n".join("\n".join(lines) for lines in sections)


def _header_lines(header: list[str]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]


def _difference_row(result: dict, diff: dict, tasks: list[str]) -> str:
    cells = [_model_label(result)] + [_interval(diff["tasks"].get(t)) for t in tasks] + [_interval(diff["average"])]
    return "| " + " | ".join(cells) + " |"


def _interval(d: dict | None) -> str:
    if d is None:
        return "-"
    text = f"{100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    return f"**{text}**" if d["low"] > 0 or d["high"] < 0 else text


def _model_label(r: dict) -> str:
    path = Path(str(r.get("run") or r.get("model_name") or r.get("model", "?")))
    # a multi-seed comparison's runs are RECIPE/seedN: the folder name alone would not say which recipe
    name = f"{path.parent.name}/{path.name}" if re.fullmatch(r"seed\d+", path.name) else path.name
    return f"{name} (step {r['step']})" if r.get("step") is not None else name


def _short(metric: str) -> str:
    return "acc_n" if metric == "acc_norm" else metric


def _pct(value: float, stderr: float | None) -> str:
    return f"{100 * value:.1f} ± {100 * stderr:.1f}" if stderr is not None else f"{100 * value:.1f}"


def _number(value):
    if value is None or isinstance(value, str):  # lm-eval writes "N/A" where it has no standard error
        return None
    return float(value)


def _lm_eval_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return None
