"""W4A4G4 recipes: :class:`Recipe`, :class:`OperandSpec`, the named recipes and user recipe files.

``get(name)`` returns a built-in recipe (or a Recipe passed through), ``list()`` their names,
``load(path)`` a YAML or TOML recipe file (see docs/recipes.md for the schema).
"""

from __future__ import annotations

from .builtin import BUILTIN
from .load import from_dict, load
from .spec import FORMATS, MEAN_FORMATS, OPERANDS, ROUNDINGS, TRANSFORMS, OperandSpec, Recipe


def get(name: str | Recipe) -> Recipe:
    """The built-in recipe called ``name`` (a Recipe is returned unchanged)."""
    if isinstance(name, Recipe):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a recipe is a name or an averis.recipes.Recipe, got {type(name).__name__}")
    if name not in BUILTIN:
        raise ValueError(f"unknown recipe {name!r}: use one of {', '.join(BUILTIN)}, or "
                         f"averis.recipes.load(path) for a YAML/TOML file")
    return BUILTIN[name]


def list() -> list[str]:  # noqa: A001 - the public name the API asks for
    """Names of the built-in recipes."""
    return [*BUILTIN]


__all__ = ["Recipe", "OperandSpec", "get", "list", "load", "from_dict", "FORMATS", "ROUNDINGS", "TRANSFORMS",
           "MEAN_FORMATS", "OPERANDS"]
