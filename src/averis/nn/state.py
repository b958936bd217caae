"""Per-layer quantization state: recipe, enabled flag, stochastic-rounding generators, Hadamard signs.

Reproducibility: each quantized layer owns one ``torch.Generator`` per GEMM (fprop, dgrad,
wgrad) and device, seeded from ``layer_seed(recipe.seed, index, gemm)`` where index is the
layer's position among the swapped layers.  Every random draw of a GEMM (SR noise seeds, Metis
sketches) comes from its generator in a fixed order, so two runs with the same recipe and data
are identical, and a compiler that reorders the dgrad and wgrad ops changes nothing.  To resume
bit for bit, save ``averis.nn.rng_state(model)`` with the checkpoint and restore it with ``set_rng_state``.

The custom ops (see ops.py) reach the state through an integer key (``id`` of the state)
looked up in a weak registry, so torch.compile sees only tensors, ints and dtypes.
"""

from __future__ import annotations

import weakref

import torch

from ..recipes.spec import Recipe
from ..transforms import random_signs

_REGISTRY: weakref.WeakValueDictionary[int, LayerState] = weakref.WeakValueDictionary()


GEMMS = ("fprop", "dgrad", "wgrad")


def layer_seed(seed: int, index: int, gemm: str) -> int:
    """The generator seed of one GEMM of layer ``index`` (distinct per layer and GEMM, stable across runs)."""
    return (int(seed) * 1_000_003 + int(index) * 7_919 + GEMMS.index(gemm) * 104_729 + 1) % (2**63 - 1)


class LayerState:
    """Everything a quantized layer needs besides its parameters (kept out of the state_dict)."""

    def __init__(self, recipe: Recipe, index: int, name: str):
        self.recipe = recipe
        self.index = index
        self.name = name
        self.enabled = True
        self._generators: dict[str, torch.Generator] = {}  # "gemm@device" -> generator
        self._signs: dict[str, torch.Tensor] = {}
        self.key = id(self)
        _REGISTRY[self.key] = self

    def generator(self, device: torch.device, gemm: str) -> torch.Generator:
        """The generator of one GEMM ("fprop", "dgrad" or "wgrad") on ``device``, created on first use."""
        key = f"{gemm}@{torch.device(device)}"
        if key not in self._generators:
            g = torch.Generator(device=device)
            g.manual_seed(layer_seed(self.recipe.seed, self.index, gemm))
            self._generators[key] = g
        return self._generators[key]

    def signs(self, device: torch.device) -> torch.Tensor:
        """The run's fixed Hadamard sign vector (one for all layers, from recipe.seed)."""
        dev = str(torch.device(device))
        if dev not in self._signs:
            self._signs[dev] = random_signs(self.recipe.seed, device)
        return self._signs[dev]

    def rng_state(self) -> dict[str, torch.Tensor]:
        """{"gemm@device": generator state} of the generators used so far."""
        return {key: g.get_state() for key, g in self._generators.items()}

    def set_rng_state(self, states: dict[str, torch.Tensor]) -> None:
        """Restore ``rng_state()``; generators absent from it restart from their seed (as if unused).

        Existing generators are reset in place, never replaced: a CUDA graph that registered them
        (train.cuda_graph) keeps drawing from the restored state.
        """
        for key in states:
            gemm, _, dev = key.partition("@")
            if gemm not in GEMMS or not dev:
                raise ValueError(f"bad rng state key {key!r}: expected 'gemm@device' with gemm in {GEMMS}")
        for key, g in self._generators.items():
            if key not in states:
                g.manual_seed(layer_seed(self.recipe.seed, self.index, key.partition("@")[0]))
        for key, state in states.items():
            gemm, _, dev = key.partition("@")
            self.generator(torch.device(dev), gemm).set_state(state.clone())

    def generators(self) -> list[torch.Generator]:
        """The generators created so far (one per GEMM and device used)."""
        return list(self._generators.values())

    # pickling / deepcopy: generators are rebuilt from their saved states, under a new key
    def __getstate__(self):
        return {"recipe": self.recipe, "index": self.index, "name": self.name, "enabled": self.enabled,
                "rng": {d: s.clone() for d, s in self.rng_state().items()}}

    def __setstate__(self, data):
        self.__init__(data["recipe"], data["index"], data["name"])
        self.enabled = data["enabled"]
        self.set_rng_state(data["rng"])

    def __repr__(self) -> str:
        return f"LayerState(recipe={self.recipe.name!r}, index={self.index}, enabled={self.enabled})"


def state_of(key: int) -> LayerState:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise RuntimeError(f"no live quantized layer has key {key}: the layer was deleted while its autograd "
                           f"graph was still alive") from None
