"""Forward-only NVFP4 anchor on SmolLM2-135M under several text slices and batch layouts.

The anchor (method.md section 4): every linear input and weight NVFP4, loss increase over full
precision for plain NVFP4, the mean split with an FP4 mean, and with a BF16 mean.  The mean is taken
over the tokens of one forward call (the micro-batch), so the layout changes the numbers.

    python benchmarks/analysis_anchor_scan.py [--out docs/analysis/smollm2/anchor_scan.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from averis.analysis.fidelity import forward_anchor
from averis.analysis.loading import load_model
from averis.analysis.text import encode, token_batches
from averis.data import corpus_text

TOKENS = 2048
# (text slice, sequences per forward, sequence length)
SETTINGS = [("start", 4, 512), ("start", 1, 2048), ("start", 8, 256),
            ("skip_quarter", 1, 512), ("skip_quarter", 4, 512), ("skip_quarter", 1, 2048)]


def text_ids(tokenizer, slice_name: str) -> list[int]:
    """austen.txt from its start, or (as benchmarks/recipe_error.py does) after its first quarter."""
    text = corpus_text("austen", 40 * TOKENS)
    if slice_name == "skip_quarter":
        text = text[len(text) // 4:]
    return encode(tokenizer, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/analysis/smollm2/anchor_scan.json")
    args = parser.parse_args()
    model, tokenizer, _ = load_model("smollm2-135m")
    rows = []
    for slice_name, batch, seq in SETTINGS:
        start = time.time()
        batches = token_batches(text_ids(tokenizer, slice_name), TOKENS, seq, batch)
        anchor = forward_anchor(model, batches)
        row = {"text": slice_name, "batch": batch, "seq_len": seq, "forwards": len(batches),
               "fp_loss": anchor["fp_loss"], **{m: r["increase_pct"] for m, r in anchor["modes"].items()}}
        rows.append(row)
        print(f"{slice_name:>12} {batch} x {seq:<4} ({len(batches)} forwards): FP loss {row['fp_loss']:.4f}, "
              f"plain +{row['nvfp4']:.2f}%, FP4 mean +{row['nvfp4_mean_fp4']:.2f}%, "
              f"BF16 mean +{row['nvfp4_mean_bf16']:.2f}%  ({time.time() - start:.0f} s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
