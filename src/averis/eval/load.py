"""The model ``averis eval`` scores: a training run's latest checkpoint under its recipe, or a model by name or path.

Which numerics are evaluated: the forward of the recipe the model was trained (or saved) with, i.e. the
FP4 GEMMs of every quantized layer (the forward rounds to nearest, so it is deterministic; the layers the
recipe keeps in high precision stay so), inside the training's autocast (bf16 on CUDA, fp32 on a CPU).
``recipe="bf16"`` evaluates the same weights in high precision; a recipe name on a plain model applies it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..train.quant import NO_QUANT


def load_target(target: str, recipe: str | None = None, device: str | torch.device = "cpu"):
    """(model in eval mode on ``device``, its tokenizer, a description for eval.json).

    target: a run folder (config.yaml + checkpoints/: its latest complete checkpoint), one checkpoint folder
    ``RUN/checkpoints/step_N``, a folder saved with ``save_pretrained`` (an averis recipe in config.json is
    applied again), "smollm2-135m", a .gguf file or a hub id (offline: only from the cache).
    recipe: None for the trained / saved one (none for a plain model), else a recipe name or "bf16".
    """
    from ..train import checkpoint as ckpt

    path = Path(target)
    if path.is_dir() and (path / "config.yaml").is_file() and (path / "checkpoints").exists():
        folder = ckpt.latest(path / "checkpoints")
        if folder is None:
            raise FileNotFoundError(f"run {path} has no complete checkpoint in {path / 'checkpoints'}")
        model, tokenizer, info = _load_run(path, folder, recipe)
    elif path.is_dir() and ckpt.step_of(path) is not None:
        if not ckpt.is_complete(path):
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no '{ckpt.COMPLETE}' marker or files)")
        model, tokenizer, info = _load_run(path.parent.parent, path, recipe)
    elif path.is_dir() and (path / "config.yaml").is_file():
        raise FileNotFoundError(f"run {path} has no checkpoints/ folder: nothing to evaluate")
    else:
        model, tokenizer, info = _load_model(target, recipe)
    return model.to(device).eval(), tokenizer, info


def _load_run(run: Path, folder: Path, recipe: str | None):
    from ..models.hf import causal_lm_from_config, load_causal_lm
    from ..train import checkpoint as ckpt
    from ..train.config import load_config
    from ..train.quant import apply_recipe

    config_file = run / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"checkpoint {folder} is not inside a run folder with config.yaml ({config_file})")
    cfg = load_config(config_file)
    m = cfg.model
    if m.arch != "hf" or not m.name:
        raise ValueError(f"run {run} trained model.arch={m.arch}{' (no model.name)' if m.arch == 'hf' else ''}: "
                         f"averis eval scores Hugging Face models with their own tokenizer (e.g. the SmolLM2 "
                         f"continued-pretraining runs); these small models score at chance on these tasks anyway")
    if cfg.data.tokenizer.lower() != m.name.lower():
        raise ValueError(f"run {run} tokenized its data with {cfg.data.tokenizer!r}, not {m.name}'s own tokenizer: "
                         f"its token ids mean nothing to that tokenizer, so it cannot be evaluated on text")
    # the architecture and the tokenizer; the weights are the checkpoint's, loaded below
    model, tokenizer = load_causal_lm(m.name, dtype=torch.float32)
    if not m.pretrained:
        model = causal_lm_from_config(model.config).float()
    name = recipe or cfg.recipe
    apply_recipe(model, name, cfg.train.seed)  # the run's seed: the same Hadamard signs as in training
    _load_weights(model, ckpt.load_model_file(folder / ckpt.MODEL_FILE), folder)
    info = {"kind": "run", "run": str(run), "checkpoint": str(folder), "step": ckpt.step_of(folder),
            "trained_recipe": cfg.recipe, "recipe": _plain(name), "model_name": m.name, "seed": cfg.train.seed}
    return model, tokenizer, info


def _load_weights(model: torch.nn.Module, state: dict, folder: Path) -> None:
    """The checkpoint's tensors, strictly, except the quantizers' SR counters (absent when the recipe differs)."""
    from ..nn.state import is_rng_key

    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not is_rng_key(k)]
    unexpected = [k for k in unexpected if not is_rng_key(k)]
    if missing or unexpected:
        raise ValueError(f"checkpoint {folder} does not fit the run's model ({len(missing)} tensor(s) missing, e.g. "
                         f"{(missing or ['-'])[0]}; {len(unexpected)} unexpected, e.g. {(unexpected or ['-'])[0]})")


def _load_model(target: str, recipe: str | None):
    from ..models.hf import load_causal_lm, load_pretrained
    from ..train.quant import apply_recipe

    saved = _saved_recipe(Path(target))
    if saved is not None and recipe is None:
        from transformers import AutoTokenizer

        model = load_pretrained(target, dtype=torch.float32)  # quantized again with the recipe it was saved with
        tokenizer = AutoTokenizer.from_pretrained(target)
        name = saved
    else:
        model, tokenizer = load_causal_lm(target, dtype=torch.float32)
        name = _plain(recipe or "bf16")
        apply_recipe(model, name, 0)
    info = {"kind": "model", "model_name": str(target), "trained_recipe": saved, "recipe": name}
    return model, tokenizer, info


def _saved_recipe(folder: Path) -> str | None:
    from ..nn.pretrained import RECIPE_KEY

    config = folder / "config.json"
    if not config.is_file():
        return None
    record = json.loads(config.read_text()).get(RECIPE_KEY)
    return record["recipe"]["name"] if isinstance(record, dict) and isinstance(record.get("recipe"), dict) else None


def _plain(name: str) -> str:
    return "bf16" if name in NO_QUANT else name


def numerics(recipe: str, device: torch.device, precision: str) -> str:
    """One line for eval.json and eval.md: what arithmetic produced the numbers."""
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    around = "bf16 autocast" if bf16 else "fp32"
    if recipe in NO_QUANT:
        return f"high precision ({around}; no FP4 quantization)"
    return f"{recipe} FP4 forward (quantized GEMMs as in training, round to nearest), {around} elsewhere"
