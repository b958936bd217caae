"""Zero-shot downstream evaluation through EleutherAI's lm-evaluation-harness, offline, on local JSONL files.

    from averis.eval import load_target, evaluate
    model, tokenizer, info = load_target("runs/smollm2/averis")       # a run: its latest checkpoint, its recipe
    result = evaluate(model, tokenizer, ["piqa", "arc_easy"], limit=100)

The task configs (``tasks/*.yaml``) reproduce lm-eval's own task definitions on the files of
``shared/data/eval`` (prompts precomputed there, see its README); they are rendered with the data folder
filled in and handed to lm-eval's ``TaskManager(include_path=...)``, and the model runs through lm-eval's
``HFLM``.  Nothing touches the network: the Hugging Face offline switches are set before lm-eval (and
``datasets``) are imported.  Needs the eval extra: ``pip install "averis[eval]"``.
"""

from __future__ import annotations

from .harness import (
    HEADLINE,
    TASKS,
    data_folder,
    evaluate,
    require_lm_eval,
)
from .load import load_target
from .table import compare_table, markdown_table, summarize

__all__ = ["HEADLINE", "TASKS", "compare_table", "data_folder", "evaluate", "load_target", "markdown_table",
           "require_lm_eval", "summarize"]
