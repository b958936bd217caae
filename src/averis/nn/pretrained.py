"""The recipe beside a Hugging Face model's weights: quantize_model records it in ``model.config``, so that
``save_pretrained`` writes it to config.json and ``averis.load_pretrained`` (averis.models.hf) quantizes the
reloaded model again with it.  Models without a transformers config are left alone.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys

import torch

from ..recipes import from_dict

RECIPE_KEY = "averis_recipe"  # the config.json entry; not "quantization_config", which transformers interprets


def record_recipe(model: torch.nn.Module, recipe, quantized: list[str]) -> None:
    """Write the recipe and the quantized layers' names into ``model.config`` (a transformers config).

    quantize_model calls this, so that ``save_pretrained`` stores them in config.json and
    :func:`averis.load_pretrained` can quantize the reloaded model the same way.  Other models are left alone.
    """
    config = getattr(model, "config", None)
    if not _is_hf_config(config):
        return
    record = {"recipe": recipe.to_dict(), "quantized": list(quantized), "averis_version": _version()}
    setattr(config, RECIPE_KEY, json.loads(json.dumps(record)))  # plain JSON types, as config.json will hold


def forget_recipe(model: torch.nn.Module) -> None:
    """Remove what record_recipe wrote (dequantize_model calls this)."""
    config = getattr(model, "config", None)
    if _is_hf_config(config) and hasattr(config, RECIPE_KEY):
        delattr(config, RECIPE_KEY)


def saved_recipe(config):
    """(Recipe, names of the quantized layers) recorded in a transformers config, or None if there is none."""
    record = getattr(config, RECIPE_KEY, None)
    if record is None:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("recipe"), dict):
        raise ValueError(f"config.{RECIPE_KEY} is not a recipe record (a mapping with a 'recipe' mapping)")
    try:
        recipe = from_dict(record["recipe"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"config.{RECIPE_KEY} holds a recipe this version of averis cannot read (written by "
                         f"averis {record.get('averis_version', '?')}): {err}") from None
    return recipe, list(record.get("quantized", []))


def _is_hf_config(config) -> bool:
    transformers = sys.modules.get("transformers")  # a transformers config means transformers is imported
    return transformers is not None and isinstance(config, transformers.PretrainedConfig)


def _version() -> str:
    try:
        return importlib.metadata.version("averis")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"
