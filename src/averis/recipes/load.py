"""User recipes from YAML or TOML files (or plain dicts).

Schema (every key optional; unknown keys are an error that names the allowed ones)::

    name: my_recipe
    base: averis                 # a built-in recipe to start from (default: bf16, all high precision)
    weights:     {format: nvfp4, block_shape: [16, 16]}        # fprop_w and dgrad_w
    activations: {format: nvfp4, transform: mean}              # fprop_x and wgrad_x
    gradients:   {format: nvfp4, rounding: stochastic}         # dgrad_dy and wgrad_dy
    wgrad_x:     {transform: mean_hadamard}                    # one operand (applied last)
    mean_format: bf16
    mean_sites: [attn_in, mlp_in]  # split the mean only at these sites (averis.recipes.sites)
    mean_threshold: 0.3          # the adaptive split: split where the mean ratio R >= 0.3 (null: every step)
    high_precision: ["lm_head", "*.lm_head"]

Operand tables are merged field by field onto the base recipe's operand specs.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from .builtin import BUILTIN
from .spec import OPERANDS, OperandSpec, Recipe

GROUPS = {"weights": ("fprop_w", "dgrad_w"), "activations": ("fprop_x", "wgrad_x"),
          "gradients": ("dgrad_dy", "wgrad_dy")}
_OPERAND_FIELDS = tuple(f.name for f in dataclasses.fields(OperandSpec))
_RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in OPERANDS)
_INT_FIELDS = ("lowrank_rank", "lowrank_power_iters", "seed", "keep_first_blocks", "keep_last_blocks")


def load(path: str | Path) -> Recipe:
    """A Recipe from a .yaml/.yml or .toml file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"recipe file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(path.read_text())
    elif suffix == ".toml":
        data = tomllib.loads(path.read_text())
    else:
        raise ValueError(f"recipe file {path} must end in .yaml, .yml or .toml")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"recipe file {path} must hold a mapping of recipe fields at the top level")
    data.setdefault("name", path.stem)
    return from_dict(data)


def from_dict(data: dict) -> Recipe:
    """A Recipe from a dict of the file schema (see the module docstring)."""
    data = dict(data)
    allowed = ("base", *GROUPS, *OPERANDS, *_RECIPE_FIELDS)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ValueError(f"unknown recipe field {unknown[0]!r}: allowed fields are {', '.join(allowed)}")
    base_name = data.pop("base", "bf16")
    if base_name not in BUILTIN:
        raise ValueError(f"base={base_name!r} is not a built-in recipe: use one of {', '.join(BUILTIN)}")
    base = BUILTIN[base_name]
    operands = {n: base.operand(n) for n in OPERANDS}
    for group, names in GROUPS.items():
        if group in data:
            table = data.pop(group)
            for n in names:
                operands[n] = _merge_operand(operands[n], table, group)
    for n in OPERANDS:
        if n in data:
            operands[n] = _merge_operand(operands[n], data.pop(n), n)
    options = {k: _coerce(k, v) for k, v in data.items()}
    return dataclasses.replace(base, **operands, **options)


def _merge_operand(spec: OperandSpec, table, where: str) -> OperandSpec:
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table of operand fields ({', '.join(_OPERAND_FIELDS)})")
    for key in table:
        if key not in _OPERAND_FIELDS:
            raise ValueError(f"unknown operand field {where}.{key}: allowed fields are "
                             f"{', '.join(_OPERAND_FIELDS)}")
    changes = dict(table)
    if changes.get("block_shape") is not None:
        changes["block_shape"] = tuple(changes["block_shape"])
    if "format" in changes and "block_shape" not in changes:
        changes["block_shape"] = None  # the base's block shape may not exist in the new format
    try:
        return dataclasses.replace(spec, **changes)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _coerce(key: str, value):
    if key in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
    if key == "mean_all_reduce" and not isinstance(value, bool):
        raise ValueError(f"mean_all_reduce must be true or false, got {value!r}")
    if key == "keep_last_fraction":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"keep_last_fraction must be a number in [0, 1), got {value!r}")
        value = float(value)
    if key == "mean_sites":
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"mean_sites must be a list of site names (attn_in, o_proj, mlp_in, down_proj, other), "
                             f"got {value!r}")
        value = tuple(value)
    if key == "high_precision":
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"high_precision must be a list of module-name patterns, got {value!r}")
        value = tuple(value)
    return value
