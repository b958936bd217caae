"""QuantLinear (an nn.Linear) and QuantConv1D (a transformers Conv1D) running the recipe's FP4 GEMMs.

quantize_model swaps a layer by changing its class in place: the parameters stay the same
objects (an optimizer built before the swap still holds them), parameter names are unchanged, and
hooks registered on the module keep working.  The recipe and the evaluation switch
live in the plain attribute ``averis_state`` (no tensors); the stochastic-rounding counter is the
buffer ``averis_rng`` (in the state_dict, so checkpoints carry it; a state_dict saved before the swap,
which lacks it, still loads and keeps the layer's fresh counter).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .ops import quant_linear
from .state import RNG_BUFFER, SPLIT_BUFFER, LayerState, new_rng_buffer, new_split_buffer


class QuantLinear(nn.Linear):
    """nn.Linear whose fprop, dgrad and wgrad run in emulated FP4 per ``averis_state.recipe``."""

    averis_state: LayerState

    @classmethod
    def from_linear(cls, linear: nn.Linear, state: LayerState) -> QuantLinear:
        """Turn ``linear`` into a QuantLinear in place (same parameters) and return it."""
        linear.__class__ = cls
        attach_state(linear, state)
        return linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.averis_state
        if not (st.enabled and st.recipe.quantizes):
            return nn.functional.linear(x, self.weight, self.bias)  # bit-identical to nn.Linear
        return quant_linear(x, self.weight, self.bias, st.key, getattr(self, RNG_BUFFER),
                            self._buffers.get(SPLIT_BUFFER), st.counter_stride, st.share)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        _keep_rng_if_absent(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, recipe={self.averis_state.recipe.name}"


def is_hf_conv1d(module: nn.Module) -> bool:
    """GPT-2 style transformers Conv1D: y = x @ weight + bias with weight (in, out)."""
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers")


class _QuantConv1DMixin:
    """Forward of transformers' Conv1D through the quantized linear (its weight is W^T: in x out)."""

    averis_state: LayerState

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.averis_state
        if not (st.enabled and st.recipe.quantizes):
            return self._averis_base.forward(self, x)
        return quant_linear(x, self.weight.T, self.bias, st.key, getattr(self, RNG_BUFFER),
                            self._buffers.get(SPLIT_BUFFER), st.counter_stride)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        _keep_rng_if_absent(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, recipe={self.averis_state.recipe.name}"


@functools.cache
def quant_conv1d_class(base: type) -> type:
    """A QuantConv1D subclass of the given Conv1D class (made once per class)."""
    return type("QuantConv1D", (_QuantConv1DMixin, base), {"_averis_base": base})


def attach_state(module: nn.Module, state: LayerState) -> None:
    """Give a swapped layer its LayerState and a fresh ``averis_rng`` buffer on its weight's device (and, under an
    adaptive recipe, its ``averis_splits`` counters)."""
    module.averis_state = state
    module.register_buffer(RNG_BUFFER, new_rng_buffer(state.recipe, state.index, module.weight.device))
    splits = new_split_buffer(state.recipe, module.weight.device)
    if splits is not None:
        module.register_buffer(SPLIT_BUFFER, splits)


def detach_state(module: nn.Module) -> None:
    """Undo attach_state (dequantize_model)."""
    del module.averis_state
    module._buffers.pop(RNG_BUFFER, None)
    module._buffers.pop(SPLIT_BUFFER, None)


def _keep_rng_if_absent(module: nn.Module, state_dict: dict, prefix: str) -> None:
    """A state_dict of the unquantized model has no counters: load it as if it held the current ones."""
    for name in (RNG_BUFFER, SPLIT_BUFFER):
        key = prefix + name
        if key not in state_dict and name in module._buffers:
            state_dict[key] = module._buffers[name].clone()


def is_quantized(module: nn.Module) -> bool:
    return isinstance(getattr(module, "averis_state", None), LayerState)
