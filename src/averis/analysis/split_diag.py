"""What the Averis mean split changes, per linear layer and site (issue 18): ``averis fidelity MODEL --split``.

For every linear layer fed the full-precision input X and output gradient D captured from the
full-precision model (as ``recipe_fidelity`` does), with and without the split:

- per source (X along the fprop axis, D along the dgrad axis, NVFP4, nearest rounding, per batch as a layer
  sees it): the amax of the source and of the residual, the share of calls the adaptive rule splits
  (``qgemm.operand.decide_split``, per batch as a layer call),
  the block-scale inflation (geometric mean over 1x16 blocks of block amax of the source / block amax of
  the residual: how much the mean widens each block's scale), the mean ratio R = ||mu|| / rms(token),
  and the relative quantization error ||Q(X) - X|| / ||X|| against ||Q(X_R) + mu_bf16 - X|| / ||X||;
- per GEMM output (Y, dX, dW, whole and token-centred): the relative error under ``nvfp4`` (no split) and
  ``averis`` (split), from :func:`averis.analysis.fidelity.layer_fidelity`;
- the loss increase of each recipe's quantized forward (nvfp4, averis and the ablation recipes).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from statistics import median

import torch
from torch import nn

from ..nn import dequantize_model, quantize_model
from ..qgemm import fake_quantize
from ..qgemm.operand import SourceStats, decide_split
from ..recipes.builtin import ADAPTIVE_THRESHOLD
from ..recipes.sites import SITES, site_of
from .analyze import layer_block
from .collect import gradients_enabled
from .fidelity import capture_layer_io, layer_fidelity, mean_loss, quantized_loss

SOURCES = ("x", "dy")
SPLIT_RECIPES = ("nvfp4", "averis")  # GEMM errors without and with the split
LOSS_RECIPES = ("nvfp4", "averis", "averis_act", "averis_norm_in", "averis_adaptive")
BLOCK = 16


class _SourceAccumulator:
    """Sums over batches for one source of one layer."""

    def __init__(self):
        self.amax = self.amax_res = 0.0
        self.log_inflation = 0.0
        self.blocks = 0
        self.err = self.err_split = self.ref = 0.0
        self.mean_sq = self.token_sq = 0.0
        self.tokens = 0
        self.calls = self.splits = 0

    def add(self, t: torch.Tensor, threshold: float) -> None:
        t = t.reshape(-1, t.shape[-1]).float()
        decision = SourceStats()
        decide_split(t, threshold, decision)  # the library's rule, as a layer call makes it
        self.calls, self.splits = self.calls + 1, self.splits + int(decision.split)
        mu = t.mean(0, keepdim=True)
        r = t - mu
        self.amax = max(self.amax, float(t.abs().amax()))
        self.amax_res = max(self.amax_res, float(r.abs().amax()))
        bx = t.abs().reshape(t.shape[0], -1, BLOCK).amax(-1)
        br = r.abs().reshape(r.shape[0], -1, BLOCK).amax(-1)
        live = (bx > 0) & (br > 0)
        self.log_inflation += float((bx[live].double().log() - br[live].double().log()).sum())
        self.blocks += int(live.sum())
        q = fake_quantize(t, "nvfp4", axis=-1, check_finite=False)
        q_split = fake_quantize(r, "nvfp4", axis=-1, check_finite=False) + mu.bfloat16().float()  # the BF16 mean
        self.err += float((q - t).double().square().sum())
        self.err_split += float((q_split - t).double().square().sum())
        self.ref += float(t.double().square().sum())
        self.mean_sq += float(mu.double().square().sum()) * t.shape[0]
        self.token_sq += float(t.double().square().sum())
        self.tokens += t.shape[0]

    def result(self) -> dict:
        ratio = self.amax_res / self.amax if self.amax > 0 else 1.0
        rel = (lambda e: math.sqrt(e / self.ref)) if self.ref > 0 else (lambda e: 0.0)
        return {"amax": self.amax, "amax_residual": self.amax_res, "amax_ratio": ratio,
                "adaptive_splits": self.splits / self.calls if self.calls else 0.0,
                "block_inflation": math.exp(self.log_inflation / self.blocks) if self.blocks else 1.0,
                "mean_ratio": math.sqrt(self.mean_sq / self.token_sq) if self.token_sq > 0 else 0.0,
                "qerr": rel(self.err), "qerr_split": rel(self.err_split)}


def split_diagnostic(model: nn.Module, batches: Sequence[torch.Tensor], *, include: str | None = None,
                     exclude: str | None = "lm_head", threshold: float = ADAPTIVE_THRESHOLD,
                     loss_recipes: Sequence[str] = LOSS_RECIPES, verbose: bool = False) -> dict:
    """{"fp_loss", "losses": {recipe: {loss, increase_pct}}, "threshold", "layers": {name: record}} (see the
    module docstring); a layer's record: site, block, "x" and "dy" (source effects), "nvfp4" and "averis"
    (Y/dX/dW errors)."""
    start = time.time()
    fp_loss = mean_loss(model, batches)
    losses = {}
    for name in loss_recipes:
        loss = quantized_loss(model, name, batches)
        losses[name] = {"loss": loss, "increase_pct": 100.0 * (loss / fp_loss - 1)}
    io = capture_layer_io(model, batches, include, exclude)
    if not io:
        raise ValueError("no linear layer received input and gradient: nothing to measure")
    layers = {}
    for name, lio in io.items():
        rec = {"site": site_of(name), "block": layer_block(name)}
        for source, tensors in (("x", lio.inputs), ("dy", lio.grads)):
            acc = _SourceAccumulator()
            for t in tensors:
                if t.shape[-1] % BLOCK:
                    raise ValueError(f"{name}: {t.shape[-1]} channels are not a multiple of {BLOCK}: leave the layer "
                                     f"out with --exclude")
                acc.add(t, threshold)
            rec[source] = acc.result()
        layers[name] = rec
    with gradients_enabled(model):
        for recipe in SPLIT_RECIPES:
            quantize_model(model, recipe)
            try:
                for name, lio in io.items():
                    layers[name][recipe] = layer_fidelity(model.get_submodule(name), lio)
            finally:
                dequantize_model(model)
            if verbose:
                print(f"  {recipe}: per-layer GEMM errors of {len(io)} layers, {time.time() - start:.0f} s",
                      file=sys.stderr)
    return {"fp_loss": fp_loss, "losses": losses, "threshold": threshold, "layers": layers,
            "seconds": round(time.time() - start, 1)}


def site_summary(result: dict) -> dict[str, dict[str, float]]:
    """Per site: the median over its layers of every measurement (split decisions: the mean share of calls
    that split)."""
    out = {}
    for site in SITES:
        rows = [r for r in result["layers"].values() if r["site"] == site]
        if not rows:
            continue
        s = {"layers": len(rows)}
        for source in SOURCES:
            for key in ("mean_ratio", "amax_ratio", "block_inflation", "qerr", "qerr_split"):
                s[f"{source}_{key}"] = median(r[source][key] for r in rows)
            s[f"{source}_adaptive_splits"] = sum(r[source]["adaptive_splits"] for r in rows) / len(rows)
        for recipe in SPLIT_RECIPES:
            for metric in ("y", "dx", "dw", "y_centred", "dx_centred", "dw_centred"):
                s[f"{recipe}_{metric}"] = median(r[recipe][metric] for r in rows)
        out[site] = s
    return out
