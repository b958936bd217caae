"""Relative error of one linear layer's three GEMMs under every recipe, against full precision.

Operands: (a) synthetic activations with a strong per-channel mean (plus a few massive
channels) and synthetic gradients with a small mean; (b) real inputs X, output gradients dY
and weights W of SmolLM2-135M layers, captured with hooks during a forward/backward of the LM
loss on corpus text.  For every recipe we run the emulated fprop, dgrad and wgrad
(averis.nn.functional, FP32 compute) and report

    err(T)   = ||T_q - T|| / ||T||                    for T in Y, dX, dW
    err_c(T) = ||C(T_q - T)|| / ||C(T)||              C = subtract the mean over tokens (Y, dX)
    err_c(dW) = ||dW_q - dW|| / ||dY_R^T X_R||        the error against dW's token-centred part

The layer is quantized under every recipe here (the NVIDIA recipe's BF16 last blocks and
each recipe's high-precision layers do not apply to a single layer).  SR recipes: mean over
``--seeds`` generator seeds.

    python benchmarks/recipe_error.py [--tokens 2048] [--seeds 3] [--no-model]
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import time
from pathlib import Path

import torch

from averis import recipes
from averis.nn import functional as F
from averis.transforms import random_signs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "recipe_error.json"
DOC = ROOT / "docs" / "recipes.md"
METRICS = ("Y", "dX", "dW", "Y_c", "dX_c", "dW_c")
SMOLLM2_LAYERS = ("model.layers.2.self_attn.q_proj", "model.layers.15.mlp.gate_proj",
                  "model.layers.15.mlp.down_proj", "model.layers.28.mlp.down_proj")


# --------------------------------------------------------------------------- operands
def synthetic(tokens: int, k: int = 576, n: int = 1536, seed: int = 0) -> dict[str, torch.Tensor]:
    """X with a per-channel mean about 3x its token spread and 4 massive channels; dY with a small mean."""
    g = torch.Generator().manual_seed(seed)
    spread = torch.rand(k, generator=g) + 0.5
    mean = 3.0 * torch.randn(k, generator=g)
    mean[torch.randperm(k, generator=g)[:4]] *= 20.0
    x = torch.randn(tokens, k, generator=g) * spread + mean
    dy = 1e-3 * (torch.randn(tokens, n, generator=g) + 0.5 * torch.randn(n, generator=g))
    w = 0.02 * torch.randn(n, k, generator=g)
    return {"x": x, "dy": dy, "w": w}


def smollm2(tokens: int) -> dict[str, dict[str, torch.Tensor]]:
    """{layer: {x, dy, w}} of SmolLM2-135M (GGUF, FP32) on ``tokens`` tokens of the corpus."""
    from averis.models import hf

    model, tok = hf.load_causal_lm("smollm2-135m")
    ids = _corpus_ids(tok, tokens)
    seq = 512
    ids = ids[: (ids.numel() // seq) * seq].view(-1, seq)
    captured: dict[str, dict[str, torch.Tensor]] = {}
    modules = dict(model.named_modules())
    hooks = []
    for name in SMOLLM2_LAYERS:
        mod = modules[name]
        store = captured[name] = {"w": mod.weight.detach().clone()}
        hooks.append(mod.register_forward_hook(lambda m, inp, out, _s=store: _keep(_s, "x", inp[0])))
        hooks.append(mod.register_full_backward_hook(lambda m, gin, gout, _s=store: _keep(_s, "dy", gout[0])))
    model.train()
    out = model(ids, labels=ids)
    out.loss.backward()
    for h in hooks:
        h.remove()
    return captured


def _keep(store: dict, key: str, t: torch.Tensor) -> None:
    store[key] = t.detach().reshape(-1, t.shape[-1])


def _corpus_ids(tok, tokens: int) -> torch.Tensor:
    from averis.data.sources import corpus_or_bundled

    path, _ = corpus_or_bundled("austen")  # the offline corpus's, else the bundled copy (a fresh clone)
    with lzma.open(path, "rt", encoding="utf-8") as f:
        text = f.read(40 * tokens)
    text = text[len(text) // 4:]  # skip the front matter
    return torch.tensor(tok(text)["input_ids"][:tokens])


# --------------------------------------------------------------------------- errors
def _rel(err: torch.Tensor, ref: torch.Tensor) -> float:
    return (err.norm() / ref.norm()).item()


def _centre(t: torch.Tensor) -> torch.Tensor:
    return t - t.mean(0, keepdim=True)


def errors(recipe, ops: dict[str, torch.Tensor], seeds: int) -> dict[str, float]:
    x, dy, w = ops["x"].float(), ops["dy"].float(), ops["w"].float()
    ref = {"Y": x @ w.T, "dX": dy @ w, "dW": dy.T @ x}
    centred_dw = _centre(dy).T @ _centre(x)
    stochastic = any(recipe.operand(n).rounding == "stochastic" for n in recipes.OPERANDS)
    runs = []
    for s in range(seeds if stochastic else 1):
        signs = random_signs(recipe.seed)
        gens = [torch.Generator().manual_seed(1000 * s + i) for i in range(3)]
        got = {"Y": F.fprop(x, w, recipe, torch.float32, gens[0], signs),
               "dX": F.dgrad(dy, w, recipe, torch.float32, gens[1], signs),
               "dW": F.wgrad(dy, x, recipe, torch.float32, gens[2], signs)}
        r = {k: _rel(got[k] - ref[k], ref[k]) for k in ref}
        r["Y_c"] = _rel(_centre(got["Y"] - ref["Y"]), _centre(ref["Y"]))
        r["dX_c"] = _rel(_centre(got["dX"] - ref["dX"]), _centre(ref["dX"]))
        r["dW_c"] = _rel(got["dW"] - ref["dW"], centred_dw)
        runs.append(r)
    return {m: sum(r[m] for r in runs) / len(runs) for m in METRICS}


def mean_ratio(x: torch.Tensor) -> float:
    """||mu|| / sqrt(mean_t ||x_t||^2) (method.md section 6)."""
    x = x.float()
    return (x.mean(0).norm() / x.pow(2).sum(1).mean().sqrt()).item()


# --------------------------------------------------------------------------- report
def table(case: str, rows: dict[str, dict[str, float]]) -> str:
    head = "| recipe | " + " | ".join(METRICS) + " |\n|" + " --- |" * (len(METRICS) + 1) + "\n"
    body = "".join(f"| {name} | " + " | ".join(f"{r[m]:.4f}" for m in METRICS) + " |\n"
                   for name, r in rows.items())
    return f"**{case}**\n\n" + head + body


def write_doc(markdown: str) -> None:
    begin, end = "<!-- recipe_error:begin -->", "<!-- recipe_error:end -->"
    text = DOC.read_text() if DOC.exists() else f"# Recipes\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    text = re.sub(f"{begin}.*{end}", lambda _: f"{begin}\n{markdown}\n{end}", text, flags=re.S)
    DOC.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-model", action="store_true", help="synthetic operands only (no SmolLM2)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    torch.manual_seed(0)
    t0 = time.time()
    cases = {"synthetic (strong per-channel mean), 576 -> 1536": synthetic(args.tokens)}
    if not args.no_model:
        for name, ops in smollm2(args.tokens).items():
            n, k = ops["w"].shape
            cases[f"SmolLM2-135M {name} ({k} -> {n})"] = ops
    results = {"tokens": args.tokens, "seeds": args.seeds, "cases": {}}
    markdown = []
    for case, ops in cases.items():
        rows = {name: errors(recipes.get(name), ops, args.seeds) for name in recipes.list()}
        stats = {"x_mean_ratio": mean_ratio(ops["x"]), "dy_mean_ratio": mean_ratio(ops["dy"])}
        results["cases"][case] = {"operand_stats": stats, "errors": rows}
        title = f"{case}: mean ratio X {stats['x_mean_ratio']:.2f}, dY {stats['dy_mean_ratio']:.2f}"
        print(table(title, rows))
        markdown.append(table(title, rows))
    results["seconds"] = round(time.time() - t0, 1)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1))
        write_doc(f"Tokens: {args.tokens}; SR recipes averaged over {args.seeds} seeds. Written by "
                  f"`python benchmarks/recipe_error.py`.\n\n" + "\n".join(markdown))
        print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
