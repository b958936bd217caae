"""Recipe fidelity: how far each recipe's quantized GEMMs are from full precision, on a real model and text.

Two measurements:
- ``forward_anchor``: the loss increase when only the forward GEMM quantizes its operands (every linear
  input and weight in NVFP4; lm_head and embeddings stay high precision), for plain NVFP4 and for the
  mean split with the mean in FP4 or BF16.  Built from recipes whose backward operands are unquantized.
- ``recipe_fidelity``: for each full W4A4G4 recipe, the loss increase of its quantized forward, and for
  every linear layer, fed the *same* full-precision input X and output gradient D (captured from the
  full-precision model), the relative error of its output Y = X W^T, input gradient dX = D W and weight
  gradient dW = D^T X against full precision - whole, and token-centred:
  ||C(Y^ - Y)|| / ||C(Y)|| with C removing the per-batch token mean (likewise for dX), and for dW the error
  relative to the covariance part sum_b C(D_b)^T C(X_b), the part of the gradient that carries the
  token-to-token information.  Feeding every layer the same operands isolates each layer's GEMM error
  from the drift of earlier layers.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

import torch
from torch import nn

from .. import recipes as recipes_mod
from ..nn import dequantize_model, quantize_model, quantized_layers
from ..recipes import OperandSpec, Recipe
from .collect import gradients_enabled, linear_layers, lm_loss, model_device

FORWARD_MODES = ("nvfp4", "nvfp4_mean_fp4", "nvfp4_mean_bf16")
FORWARD_LABELS = {"nvfp4": "plain NVFP4", "nvfp4_mean_fp4": "mean split, FP4 mean",
                  "nvfp4_mean_bf16": "mean split, BF16 mean"}
METRICS = ("y", "y_centred", "dx", "dx_centred", "dw", "dw_centred")


# --------------------------------------------------------------------------- losses
@torch.no_grad()
def mean_loss(model: nn.Module, batches: Sequence[torch.Tensor]) -> float:
    """Mean next-token loss over equal-size batches (the model is put in eval mode)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        losses = [float(lm_loss(model, ids.to(device))) for ids in batches]
    finally:
        model.train(was_training)
    if not losses:
        raise ValueError("no batches of text were given")
    return sum(losses) / len(losses)


def forward_only_recipe(mode: str, fmt: str = "nvfp4") -> Recipe:
    """A recipe quantizing only the fprop operands (X and W, RNE); the backward stays high precision."""
    if mode not in FORWARD_MODES:
        raise ValueError(f"unknown forward mode {mode!r}: use one of {', '.join(FORWARD_MODES)}")
    mean = mode != "nvfp4"
    x = OperandSpec(fmt, transform="mean" if mean else "none")
    return Recipe(name=f"forward-{mode}", fprop_x=x, fprop_w=OperandSpec(fmt),
                  mean_format="fp4" if mode == "nvfp4_mean_fp4" else "bf16",
                  description=f"forward only: {FORWARD_LABELS[mode]}")


def quantized_loss(model: nn.Module, recipe: Recipe | str, batches: Sequence[torch.Tensor]) -> float:
    """Loss of ``model`` under ``recipe``'s quantized forward; the model is restored afterwards."""
    quantize_model(model, recipe)
    try:
        return mean_loss(model, batches)
    finally:
        dequantize_model(model)


def forward_anchor(model: nn.Module, batches: Sequence[torch.Tensor], modes: Sequence[str] = FORWARD_MODES,
                   fmt: str = "nvfp4") -> dict:
    """{"fp_loss", "modes": {mode: {"loss", "increase_pct", "label"}}}: forward-only quantization cost."""
    fp = mean_loss(model, batches)
    out = {"fp_loss": fp, "format": fmt, "modes": {}}
    for mode in modes:
        loss = quantized_loss(model, forward_only_recipe(mode, fmt), batches)
        out["modes"][mode] = {"label": FORWARD_LABELS[mode], "loss": loss, "increase_pct": 100.0 * (loss / fp - 1)}
    return out


# --------------------------------------------------------------------------- captured operands
@dataclass
class LayerIO:
    """A linear layer's full-precision operands, one entry per batch."""

    inputs: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor] = field(default_factory=list)


def capture_layer_io(model: nn.Module, batches: Sequence[torch.Tensor], include: str | None = None,
                     exclude: str | None = None) -> dict[str, LayerIO]:
    """Every selected linear layer's input X and output gradient dL/dY for each batch (full precision).

    The loss is the mean over the batch's tokens, so D is that of one micro-batch of training.
    Layers fed the same tensor (q/k/v) share the stored X.  Parameter .grad is restored afterwards.
    """
    layers = linear_layers(model, include, exclude)
    captured = {name: LayerIO() for name in layers}
    handles = []

    def hook(name):
        def fn(module, args, output):
            captured[name].inputs.append(args[0].detach())
            output.register_hook(lambda g: captured[name].grads.append(g.detach()))
        return fn

    for name, module in layers.items():
        handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    device = model_device(model)
    try:
        model.eval()
        with gradients_enabled(model):
            for ids in batches:
                lm_loss(model, ids.to(device)).backward()
                model.zero_grad(set_to_none=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n: io for n, io in captured.items() if io.inputs and len(io.grads) == len(io.inputs)}


def _weight(module: nn.Module) -> torch.Tensor:
    """W as (out x in): nn.Linear's weight, or the transpose of a transformers Conv1D's."""
    return module.weight if isinstance(module, nn.Linear) else module.weight.T


# --------------------------------------------------------------------------- per-layer fidelity
class _Accumulator:
    """Sums of squared errors and references over batches for one layer."""

    def __init__(self):
        self.sums = {f"{m}_{part}": 0.0 for m in METRICS for part in ("err", "ref")}

    def add(self, metric: str, err: torch.Tensor, ref: torch.Tensor) -> None:
        self.sums[f"{metric}_err"] += float(err.double().square().sum())
        self.sums[f"{metric}_ref"] += float(ref.double().square().sum())

    def relative(self) -> dict[str, float]:
        return {m: math.sqrt(self.sums[f"{m}_err"] / self.sums[f"{m}_ref"]) if self.sums[f"{m}_ref"] > 0 else 0.0
                for m in METRICS}


def _centre(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(-1, t.shape[-1]).double()
    return flat - flat.mean(dim=0)


def layer_fidelity(module: nn.Module, io: LayerIO) -> dict[str, float]:
    """Relative errors of ``module``'s (quantized) Y, dX, dW against full precision on the captured operands."""
    weight = _weight(module).detach().double()
    acc = _Accumulator()
    dw_q = dw_fp = dw_cov = None
    param = module.weight
    param.grad = None
    for x, d in zip(io.inputs, io.grads):
        xq = x.clone().requires_grad_(True)
        y = module(xq)
        y.backward(d.to(y.dtype))
        x64, d64 = x.double().reshape(-1, x.shape[-1]), d.double().reshape(-1, d.shape[-1])
        y_fp = x64 @ weight.T
        if module.bias is not None:
            y_fp = y_fp + module.bias.detach().double()
        dx_fp = d64 @ weight
        y_q, dx_q = y.detach().double().reshape(y_fp.shape), xq.grad.double().reshape(dx_fp.shape)
        acc.add("y", y_q - y_fp, y_fp)
        acc.add("y_centred", _centre(y_q - y_fp), _centre(y_fp))
        acc.add("dx", dx_q - dx_fp, dx_fp)
        acc.add("dx_centred", _centre(dx_q - dx_fp), _centre(dx_fp))
        dw_fp = _add(dw_fp, d64.T @ x64)
        dw_cov = _add(dw_cov, _centre(d64).T @ _centre(x64))
    dw_q = param.grad.detach().double()
    if not isinstance(module, nn.Linear):  # Conv1D stores W^T
        dw_q = dw_q.T
    param.grad = None
    acc.add("dw", dw_q - dw_fp, dw_fp)
    acc.add("dw_centred", dw_q - dw_fp, dw_cov)
    return acc.relative()


def _add(total, value):
    return value if total is None else total + value


def recipe_fidelity(model: nn.Module, batches: Sequence[torch.Tensor], recipe_names: Sequence[str] | None = None,
                    *, include: str | None = None, exclude: str | None = "lm_head", verbose: bool = False) -> dict:
    """Loss increase and per-layer GEMM errors of each recipe (default: every built-in recipe).

    include / exclude: regexes on layer names (lm_head, which no built-in recipe quantizes, is left out
    by default: its output gradient is vocabulary-wide).
    """
    names = list(recipe_names) if recipe_names else recipes_mod.list()
    chosen = [recipes_mod.get(n) for n in names]  # an unknown name fails before any work
    fp_loss = mean_loss(model, batches)
    io = capture_layer_io(model, batches, include, exclude)
    if not io:
        raise ValueError("no linear layer received input and gradient: nothing to measure")
    out = {"fp_loss": fp_loss, "recipes": {}}
    with gradients_enabled(model):
        for recipe in chosen:
            start = time.time()
            out["recipes"][recipe.name] = _one_recipe(model, recipe, batches, io, fp_loss)
            if verbose:
                r = out["recipes"][recipe.name]
                print(f"  {recipe.name}: loss {r['loss_increase_pct']:+.2f}%, {r['quantized_layers']} quantized "
                      f"layers, {time.time() - start:.0f} s", file=sys.stderr)
    return out


def _one_recipe(model: nn.Module, recipe: Recipe, batches, io: dict[str, LayerIO], fp_loss: float) -> dict:
    quantize_model(model, recipe)
    try:
        loss = mean_loss(model, batches)
        quantized = quantized_layers(model)
        layers = {}
        for name, layer_io in io.items():
            module = model.get_submodule(name)
            layers[name] = {"quantized": name in quantized, **layer_fidelity(module, layer_io)}
    finally:
        dequantize_model(model)
    return {"description": recipe.description, "loss": loss, "loss_increase_pct": 100.0 * (loss / fp_loss - 1),
            "quantized_layers": len(quantized), "layers": layers}


def summarize(result: dict) -> dict:
    """Per recipe: loss increase and the median over quantized layers of every error metric."""
    out = {}
    for name, r in result["recipes"].items():
        rows = [v for v in r["layers"].values() if v["quantized"]] or list(r["layers"].values())
        out[name] = {"loss_increase_pct": r["loss_increase_pct"], "quantized_layers": r["quantized_layers"],
                     **{m: median([v[m] for v in rows]) for m in METRICS}}
    return out
