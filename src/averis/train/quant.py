"""The bridge to averis.nn / averis.recipes: apply a recipe to a model, and collect quantizer RNG state.

Recipes are applied after the model is built and before torch.compile / DDP / FSDP wrapping.
"bf16" (no quantization) works even where averis.nn is not installed.
"""

from __future__ import annotations

import importlib.util

from torch import nn

NO_QUANT = ("bf16", "none", "fp32")


def recipe_names() -> list[str]:
    if importlib.util.find_spec("averis.recipes") is None:
        return ["bf16"]
    from .. import recipes

    return recipes.list()


def resolve_recipe(name: str, seed: int):
    """A Recipe object (seeded with the run's seed) from a built-in name or a YAML/TOML file, or None for bf16."""
    if name in NO_QUANT:
        return None
    if importlib.util.find_spec("averis.recipes") is None:
        raise ValueError(f"recipe {name!r} needs averis.recipes, which this installation lacks (only bf16 runs)")
    from .. import recipes

    recipe = recipes.resolve(name)
    if not recipe.quantizes:
        return None
    # the run's seed drives the stochastic rounding and the Hadamard signs, so seeds differ in noise
    return recipe.replace(seed=seed) if hasattr(recipe, "replace") else recipe


def apply_recipe(model: nn.Module, name: str, seed: int = 0) -> nn.Module:
    """Swap the model's nn.Linear layers for quantized ones (in place; parameter names unchanged)."""
    recipe = resolve_recipe(name, seed)
    if recipe is None:
        return model
    if importlib.util.find_spec("averis.nn") is None:
        raise ValueError(f"recipe {name!r} needs averis.nn (quantize_model), which this installation lacks")
    from ..nn import quantize_model

    return quantize_model(model, recipe)

