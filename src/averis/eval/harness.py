"""lm-evaluation-harness on our task configs and a model already in memory (HFLM), with the network off."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch

from .._shared_record import note

# lm-eval's task names, in the order of the table; the data file each reads (shared/data/eval/README.md)
TASKS = {
    "arc_easy": "arc_easy.jsonl",
    "arc_challenge": "arc_challenge.jsonl",
    "hellaswag": "hellaswag.jsonl.xz",
    "piqa": "piqa.jsonl",
    "lambada_openai": "lambada_openai.jsonl.xz",
    "boolq": "boolq.jsonl.xz",
    "winogrande": "winogrande.jsonl",
    "openbookqa": "openbookqa.jsonl",
    "sciq": "sciq.jsonl",
    "race": "race.jsonl.xz",
}
# The metric each task is quoted with in the table and the average: acc_norm where papers (and the data
# README) most often quote it, acc elsewhere.  eval.json keeps both.
HEADLINE = {task: "acc_norm" if task in ("hellaswag", "arc_challenge", "openbookqa") else "acc" for task in TASKS}
LM_EVAL_VERSION = "0.4.13"  # pinned by the eval extra (pyproject.toml): the version these configs were checked with
REPO = Path(__file__).resolve().parents[3]


def require_lm_eval() -> None:
    """MissingExtra (one line naming ``pip install "averis[eval]"``) unless lm-eval and HFLM's needs import."""
    from ..models.hf import require

    require({"lm_eval": LM_EVAL_VERSION, "datasets": ""}, "eval",
            "averis eval (lm-evaluation-harness)")


def parse_tasks(spec: str | list[str]) -> list[str]:
    names = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown task(s) {', '.join(unknown) or '(none given)'}; the tasks are: {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def data_folder(explicit: str | os.PathLike | None = None, tasks: list[str] | None = None) -> Path:
    """The folder of the JSONL files: ``explicit`` (--data), else $AVERIS_EVAL_DATA, else ../shared/data/eval
    beside the repository; checked to hold the files of ``tasks``."""
    if explicit:
        folder, how = Path(explicit), "--data"
    elif os.environ.get("AVERIS_EVAL_DATA"):
        folder, how = Path(os.environ["AVERIS_EVAL_DATA"]), "AVERIS_EVAL_DATA"
    else:
        note("eval data")
        folder, how = REPO.parent / "shared" / "data" / "eval", "the default"
    missing = [TASKS[t] for t in tasks or TASKS if not (folder / TASKS[t]).is_file()]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)} in {folder} ({how}): point --data or AVERIS_EVAL_DATA at "
                                f"the evaluation files (shared/data/eval, see its README)")
    return folder.resolve()


def render_tasks(data: Path, tasks: list[str], dest: Path) -> Path:
    """Write the task configs of ``tasks`` into dest with the data folder filled in; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        text = resources.files("averis.eval").joinpath("tasks", f"{task}.yaml").read_text(encoding="utf-8")
        # a JSON string is a valid YAML double-quoted scalar, whatever characters the path holds
        text = re.sub(r'"@DATA@/([^"]+)"', lambda m: json.dumps(str(data / m.group(1))), text)
        (dest / f"{task}.yaml").write_text(text, encoding="utf-8")
    return dest


def go_offline() -> None:
    """Every Hugging Face library reads its offline switch at import: set it now, and in a ``datasets`` or
    ``huggingface_hub`` already imported.  The task data are local files; nothing else is fetched."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    for module, names in (("datasets.config", ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")),
                          ("huggingface_hub.constants", ("HF_HUB_OFFLINE",))):
        loaded = sys.modules.get(module)
        for name in names:
            if loaded is not None and hasattr(loaded, name):
                setattr(loaded, name, True)


def autocast_for(device: torch.device, precision: str):
    """The training numerics around the FP4 GEMMs: bf16 autocast on CUDA (precision auto/bf16), fp32 on a CPU."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"--precision {precision!r}: choose auto, fp32 or bf16")
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(model, tokenizer, tasks: list[str], *, limit: int | None = None, batch_size: int = 8,
             data: str | os.PathLike | None = None, precision: str = "auto", bootstrap_iters: int = 1000,
             quiet: bool = True) -> dict:
    """Run lm-eval's ``simple_evaluate`` on ``tasks`` for a causal LM in memory (a transformers model, on its
    device, quantized or not) and its Hugging Face tokenizer.  Returns lm-eval's result dict plus ``seconds`` and
    ``per_doc`` (per_document; lm-eval's own per-sample records are dropped).

    limit: the first N documents of each task (None: all).  bootstrap_iters: for the perplexity's standard
    error only (acc's is the closed form); lm-eval's default of 100,000 takes minutes on LAMBADA.
    """
    tasks = parse_tasks(tasks)
    folder = data_folder(data, tasks)
    require_lm_eval()
    go_offline()
    if quiet:  # lm-eval warns about every model passed as an object and about --limit; our own lines say both
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    device = next(model.parameters()).device
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="averis-eval-tasks-") as tmp:
        manager = TaskManager(include_path=str(render_tasks(folder, tasks, Path(tmp))), include_defaults=False)
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        with torch.no_grad(), autocast_for(device, precision):
            out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                                          log_samples=True, bootstrap_iters=bootstrap_iters,
                                          verbosity="ERROR" if quiet else "INFO")
    out["per_doc"] = per_document(out.pop("samples", {}))
    out["seconds"] = time.time() - start
    out["data"] = str(folder)
    return out


def per_document(samples: dict) -> dict[str, str]:
    """Each task's headline metric (HEADLINE) document by document, in doc_id order, as a string of 0s and 1s:
    what a paired comparison of two models on the same documents needs, one byte a document in eval.json."""
    scores = {}
    for task, rows in samples.items():
        if task not in HEADLINE:
            continue
        metric = HEADLINE[task]
        values = [float(r[metric]) for r in sorted(rows, key=lambda r: r["doc_id"])]
        if any(v not in (0.0, 1.0) for v in values):
            raise ValueError(f"{task}: lm-eval's per-document {metric} is not 0 or 1; cannot record it per document")
        scores[task] = "".join("1" if v else "0" for v in values)
    return scores
