"""Per-layer quantization state: the frozen recipe (passed to the custom ops as a constant) and the
stochastic-rounding counter (a buffer of the module, so in its state_dict).

Reproducibility: each quantized layer holds the int64 buffer ``averis_rng`` = [seed, counter], seeded
with ``layer_seed(recipe.seed, index)`` where index is the layer's position among the swapped layers.
Every training forward derives its step's seed table from it (``formats.noise.step_seeds``) and then
advances the counter in place; every random draw of the layer's GEMMs (SR noise seeds, Metis sketches)
comes from that table through a :class:`~averis.formats.noise.Stream` per draw site, in a fixed order.
So two runs with the same recipe and data are identical, a compiler that reorders dgrad and wgrad
changes nothing, a checkpoint of the state_dict resumes bit for bit, and a CUDA graph
replays the counter's update like any other kernel.

The custom ops (see ops.py) receive the recipe as its canonical JSON string (``recipe_key``), parsed
once per distinct recipe: their fake implementations read only their arguments.
"""

from __future__ import annotations

import functools
import json

import torch

from .. import recipes as _recipes
from ..formats import noise
from ..recipes.spec import Recipe
from ..transforms import random_signs

RNG_BUFFER = "averis_rng"
# the adaptive split's counters (recipes with mean_threshold): int64 [X calls, X splits, dY calls, dY splits]
SPLIT_BUFFER = "averis_splits"

# the draw sites of one layer: each gets its own stream of seeds from the step seed
LANES = {"fprop": 0, "dgrad": 1, "wgrad_x": 2, "wgrad_dy": 3}


def layer_seed(seed: int, index: int) -> int:
    """The stochastic-rounding seed of layer ``index``: a hash of (recipe seed, index) in [0, 2**31)."""
    return noise.splitmix64(noise.splitmix64(int(seed)) + int(index)) & noise.SEED_MASK


def is_rng_key(name: str) -> bool:
    """Whether a state_dict key is a quantized layer's ``averis_rng`` counter."""
    return name.rpartition(".")[2] == RNG_BUFFER


def is_state_key(name: str) -> bool:
    """Whether a state_dict key is a quantized layer's own buffer (``averis_rng`` or ``averis_splits``), which
    the unquantized model has no place for."""
    return name.rpartition(".")[2] in (RNG_BUFFER, SPLIT_BUFFER)


def new_split_buffer(recipe: Recipe, device: torch.device | None = None) -> torch.Tensor | None:
    """Fresh adaptive-split counters for a layer whose recipe decides adaptively for X or dY, else None."""
    if not (recipe.adaptive("x") or recipe.adaptive("dy")):
        return None
    return torch.zeros(4, dtype=torch.int64, device=device)


def new_rng_buffer(recipe: Recipe, index: int, device: torch.device | None = None) -> torch.Tensor:
    """A fresh ``averis_rng`` buffer: [layer seed, counter 0]."""
    return torch.tensor([layer_seed(recipe.seed, index), 0], dtype=torch.int64, device=device)


def stream(step: torch.Tensor, site: str) -> noise.Stream:
    """The stream of one draw site ("fprop", "dgrad", "wgrad_x", "wgrad_dy") of a layer's step seed table."""
    return noise.Stream(step, LANES[site])


@functools.cache
def recipe_key(recipe: Recipe) -> str:
    """The recipe as a canonical JSON string: the constant the custom ops carry."""
    return json.dumps(recipe.to_dict(), sort_keys=True)


@functools.cache
def recipe_from_key(key: str) -> Recipe:
    return _recipes.from_dict(json.loads(key))


@functools.cache
def _signs(seed: int, device: str) -> torch.Tensor:
    return random_signs(seed, device)


def hadamard_signs(recipe: Recipe, device: torch.device) -> torch.Tensor:
    """The run's fixed Hadamard sign vector (one for all layers, from recipe.seed), cached per device."""
    return _signs(int(recipe.seed), str(torch.device(device)))


class LayerState:
    """What a quantized layer needs besides its parameters and its ``averis_rng`` buffer: the recipe,
    its position among the quantized layers, its name and the evaluation switch (no tensors)."""

    def __init__(self, recipe: Recipe, index: int, name: str):
        self.recipe = recipe
        self.index = index
        self.name = name
        self.enabled = True
        self.key = recipe_key(recipe)  # what the custom ops receive (a plain string: torch.compile sees a constant)
        # how far a training forward advances the counter: 1, or the number of data-parallel ranks, each of which
        # starts at its rank (spread_streams): the ranks then draw what one process would for the same micro-batches
        self.counter_stride = 1
        # (group, position, size) among linears that read one X (declared by the model: see convert.share_inputs);
        # (0, 0, 1) for none.  The custom op receives it as constants.
        self.share = (0, 0, 1)

    def __repr__(self) -> str:
        return f"LayerState(recipe={self.recipe.name!r}, index={self.index}, enabled={self.enabled})"
