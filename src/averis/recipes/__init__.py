"""W4A4G4 recipes: :class:`Recipe`, :class:`OperandSpec`, the named recipes and user recipe files.

``get(name)`` returns a built-in recipe (or a Recipe passed through), ``list()`` their names,
``load(path)`` a YAML or TOML recipe file (see docs/recipes.md for the schema), ``resolve(name_or_path)``
either of them (what the command line and run configs accept).
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


RECIPE_FILE_SUFFIXES = (".yaml", ".yml", ".toml")


def resolve(name_or_path: str | Recipe) -> Recipe:
    """A built-in recipe by name, or a recipe file by path (what ``--recipe`` and a config's ``recipe`` accept)."""
    if isinstance(name_or_path, str) and name_or_path.lower().endswith(RECIPE_FILE_SUFFIXES):
        return load(name_or_path)
    if isinstance(name_or_path, str) and name_or_path not in BUILTIN:
        raise ValueError(f"unknown recipe {name_or_path!r}: use one of {', '.join(BUILTIN)}, or a recipe file "
                         f"(--recipe path/to/recipe.yaml; the schema is in docs/recipes.md)")
    return get(name_or_path)


def list() -> list[str]:  # noqa: A001 - the public name the API asks for
    """Names of the built-in recipes."""
    return [*BUILTIN]


__all__ = ["Recipe", "OperandSpec", "get", "list", "load", "resolve", "from_dict", "FORMATS", "ROUNDINGS", "TRANSFORMS",
           "MEAN_FORMATS", "OPERANDS"]
