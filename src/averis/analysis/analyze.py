"""``analyze_model``: collect every linear layer's input (and output gradient) and measure its mean bias."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable

import torch
from torch import nn

from .collect import GRAD_OUTPUT, collect
from .stats import activation_stats

_BLOCK_INDEX = re.compile(r"\.(\d+)\.")


def layer_block(name: str) -> int | None:
    """The transformer block a module belongs to: the first integer in its dotted name."""
    m = _BLOCK_INDEX.search(f".{name}.")
    return int(m.group(1)) if m else None


def layer_site(name: str) -> str:
    """The module's place inside its block ("self_attn.q_proj"), or its whole name outside blocks."""
    m = _BLOCK_INDEX.search(f".{name}.")
    return f".{name}."[m.end():].strip(".") if m else name


def analyze_model(model: nn.Module, batches: Iterable[torch.Tensor], *, grads: bool = False,
                  max_tokens: int = 4096, include: str | None = None, exclude: str | None = None,
                  formats: tuple[str, ...] = ("nvfp4", "mxfp4"), quantize: bool = True,
                  device: str | torch.device | None = None, seed: int = 0, min_tokens: int = 16,
                  verbose: bool = False) -> dict:
    """Statistics of every linear layer's input (and, with grads=True, output gradient) of ``model``.

    batches: blocks of token ids (batch x seq).  Each layer keeps a uniform sample of at most
    ``max_tokens`` tokens; statistics run on ``device`` (default: CUDA when present, else the CPU).
    Returns {"layers": [record per layer and kind], "skipped": {...}, "settings": {...}}.
    """
    compute = torch.device(device) if device is not None else _default_device()
    start = time.time()
    collected, skipped = collect(model, batches, grads=grads, max_tokens=max_tokens, include=include,
                                 exclude=exclude, seed=seed)
    if not collected:
        raise ValueError("no linear layer received input: does the model's forward use its linear layers?")
    # A layer that saw few tokens (an MoE expert) is skipped; only when every layer did is it an error.
    for c in collected:
        if c.tokens_seen < min_tokens:
            skipped[f"{c.name}:{c.kind}"] = f"saw {c.tokens_seen} tokens < min_tokens={min_tokens}"
    collected = [c for c in collected if c.tokens_seen >= min_tokens]
    if not collected:
        raise ValueError(f"too few tokens: every layer saw fewer than {min_tokens} tokens (needed for meaningful "
                         f"statistics); feed more text")
    records = []
    for i, item in enumerate(collected):
        matrix = item.matrix.to(compute)
        item.matrix = None  # free the host copy as soon as it is on the device
        stats = activation_stats(matrix, formats=formats, quantize=quantize, seed=seed)
        records.append({"name": item.name, "kind": item.kind, "block": layer_block(item.name),
                        "site": layer_site(item.name), "aliases": item.aliases,
                        "tokens_seen": item.tokens_seen, **stats})
        if verbose:
            print(f"  [{i + 1}/{len(collected)}] {item.kind:<11} {item.name}: R={stats['mean_ratio']:.3f} "
                  f"cos={stats['cos_mean_v1']:.3f}", file=sys.stderr)
    settings = {"max_tokens": max_tokens, "grads": grads, "include": include, "exclude": exclude,
                "formats": list(formats), "quantize": quantize, "device": str(compute), "seed": seed,
                "seconds": round(time.time() - start, 1)}
    return {"layers": records, "skipped": skipped, "settings": settings}


def _default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def select(records: list[dict], kind: str = "input", site: str | None = None) -> list[dict]:
    """Records of one kind (and site), in model order."""
    return [r for r in records if r["kind"] == kind and (site is None or r["site"] == site)]


def sites(records: list[dict], kind: str = "input") -> list[str]:
    """The distinct in-block sites of the records of one kind, in model order (block-less ones last)."""
    seen: dict[str, None] = {}
    for r in records:
        if r["kind"] == kind and r["block"] is not None:
            seen.setdefault(r["site"], None)
    return list(seen)


__all__ = ["analyze_model", "layer_block", "layer_site", "select", "sites", "GRAD_OUTPUT"]
