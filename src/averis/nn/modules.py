"""QuantLinear (an nn.Linear) and QuantConv1D (a transformers Conv1D) running the recipe's FP4 GEMMs.

quantize_model swaps a layer by changing its class in place: the parameters stay the same
objects (an optimizer built before the swap still holds them), names and state_dict keys are
unchanged, and hooks registered on the module keep working.  The extra state lives in the
plain attribute ``averis_state`` (not a buffer, so it is not in the state_dict).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .ops import quant_linear
from .state import LayerState


class QuantLinear(nn.Linear):
    """nn.Linear whose fprop, dgrad and wgrad run in emulated FP4 per ``averis_state.recipe``."""

    averis_state: LayerState

    @classmethod
    def from_linear(cls, linear: nn.Linear, state: LayerState) -> QuantLinear:
        """Turn ``linear`` into a QuantLinear in place (same parameters) and return it."""
        linear.__class__ = cls
        linear.averis_state = state
        return linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.averis_state
        if not (st.enabled and st.recipe.quantizes):
            return nn.functional.linear(x, self.weight, self.bias)  # bit-identical to nn.Linear
        return quant_linear(x, self.weight, self.bias, st)

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
        return quant_linear(x, self.weight.T, self.bias, st)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, recipe={self.averis_state.recipe.name}"


@functools.cache
def quant_conv1d_class(base: type) -> type:
    """A QuantConv1D subclass of the given Conv1D class (made once per class)."""
    return type("QuantConv1D", (_QuantConv1DMixin, base), {"_averis_base": base})


def is_quantized(module: nn.Module) -> bool:
    return isinstance(getattr(module, "averis_state", None), LayerState)
