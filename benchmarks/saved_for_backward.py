"""What one training forward keeps for the backward pass, per recipe: bytes a token and a step, by dtype.

The activation memory of a step (and so how many runs share a GPU: a SmolLM2-135M run held 24-55 GiB at 16 x 1024
tokens, benchmarks/results/smollm2_epoch) is what autograd saves.  This counts it exactly, from the tensors autograd
saves (torch.autograd.graph.saved_tensors_hooks; each storage once), for the training forward (train mode, bf16
autocast, the loss on the logits), every linear layer but lm_head under the recipe.  The attention kernel differs
between devices (on the CPU, Hugging Face's attention may save its T x T probabilities; flash attention on a GPU
does not), so compare recipes on one device.

Usage: python benchmarks/saved_for_backward.py [--model smollm2-135m] [--recipes bf16,nvfp4,averis]
       [--tokens 512] [--out benchmarks/results/saved_for_backward]
"""

from __future__ import annotations

import argparse
import collections
import json
import shlex
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from averis import provenance  # noqa: E402
from averis.analysis.loading import load_model  # noqa: E402
from averis.nn.convert import quantize_model  # noqa: E402


def saved_bytes(model: torch.nn.Module, ids: torch.Tensor, device: torch.device) -> collections.Counter:
    """{dtype: bytes} of every storage autograd saves in one training forward and loss, but the parameters'
    own storages (which exist anyway; a copy of a weight, e.g. autocast's bf16 cast, counts)."""
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}
    groups: collections.Counter = collections.Counter()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            groups[str(t.dtype).removeprefix("torch.")] += storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast(device.type, dtype=torch.bfloat16):
        logits = model(ids)
        logits = getattr(logits, "logits", logits)  # a Hugging Face output, or our models' logits tensor
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
    del loss, logits
    return groups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="a model load_model accepts (default smollm2-135m)")
    ap.add_argument("--recipes", default="bf16,nvfp4,averis", help="comma-separated recipes (bf16: no FP4)")
    ap.add_argument("--tokens", type=int, default=512, help="tokens of one sequence (default 512)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "saved_for_backward")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for recipe in args.recipes.split(","):
        model, _, label = load_model(args.model, device=device)
        if recipe != "bf16":
            quantize_model(model, recipe)
        vocab = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)).num_embeddings
        ids = torch.randint(0, vocab, (2, args.tokens), generator=torch.Generator().manual_seed(0))
        # one sequence, then two: the difference is what each token adds, the rest what a step saves whatever
        # its size (autocast's weight casts, ...)
        one, two = (saved_bytes(model, ids[:n].to(device), device) for n in (1, 2))
        dtypes = sorted(set(one) | set(two))
        per_token = {d: (two[d] - one[d]) / args.tokens for d in dtypes}
        fixed = {d: one[d] - per_token[d] * args.tokens for d in dtypes}
        rows.append({"recipe": recipe, "bytes_per_token": per_token, "bytes_fixed": fixed,
                     "per_token_total": sum(per_token.values()), "fixed_total": sum(fixed.values())})
        print(f"{recipe}: {rows[-1]['per_token_total'] / 1024:.0f} KiB a token, "
              f"{rows[-1]['fixed_total'] / 2**20:.0f} MiB a step", flush=True)
        del model
    dtypes = sorted({d for r in rows for d in r["bytes_per_token"]})
    lines = [f"{label}, sequences of {args.tokens} tokens, training forward + loss, bf16 autocast, {device}: what "
             "autograd saves for the backward pass (each storage once, parameters not counted)", "",
             "| saved as | " + " | ".join(f"{r['recipe']} KiB/token" for r in rows) + " | "
             + " | ".join(f"{r['recipe']} MiB/step" for r in rows) + " |",
             "| --- |" + " ---: |" * (2 * len(rows))]
    for d in dtypes:
        lines.append(f"| {d} | " + " | ".join(f"{r['bytes_per_token'].get(d, 0) / 1024:.1f}" for r in rows) + " | "
                     + " | ".join(f"{r['bytes_fixed'].get(d, 0) / 2**20:.0f}" for r in rows) + " |")
    lines.append("| **total** | " + " | ".join(f"**{r['per_token_total'] / 1024:.1f}**" for r in rows) + " | "
                 + " | ".join(f"**{r['fixed_total'] / 2**20:.0f}**" for r in rows) + " |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"saved_{provenance.slug(label)}_{device.type}"
    meta = {"model": label, "tokens": args.tokens, "device": provenance.device_name(device),
            "commit": provenance.commit(), "torch": torch.__version__,
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    (args.out / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    (args.out / f"{stem}.md").write_text(table + "\n\n" + "\n".join(f"- {k}: {v}" for k, v in meta.items()) + "\n")
    print(f"wrote {args.out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
