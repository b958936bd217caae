"""The quantized linear as an autograd.Function over three torch.library custom ops.

The ops (``averis::fprop``, ``averis::dgrad``, ``averis::wgrad``) are opaque to torch.compile
(their fake implementations give only shapes), so compiled models keep the exact emulation,
generators included.  Saved for backward: the layer input X as it arrived (2D view) and the
weight W itself (no copy); no quantized or transformed copies are kept -- the backward GEMMs
re-quantize X and W along their own reduction axes, which they would have to do anyway.
"""

from __future__ import annotations

import torch

from . import functional as F
from .state import LayerState, state_of


@torch.library.custom_op("averis::fprop", mutates_args=())
def fprop_op(x: torch.Tensor, w: torch.Tensor, key: int, dtype: torch.dtype) -> torch.Tensor:
    st = state_of(key)
    return F.fprop(x, w, st.recipe, dtype, st.generator(x.device, "fprop"), st.signs(x.device))


@fprop_op.register_fake
def _(x, w, key, dtype):
    return x.new_empty((x.shape[0], w.shape[0]), dtype=dtype)


@torch.library.custom_op("averis::dgrad", mutates_args=())
def dgrad_op(dy: torch.Tensor, w: torch.Tensor, key: int, dtype: torch.dtype,
             out_dtype: torch.dtype) -> torch.Tensor:
    st = state_of(key)
    dx = F.dgrad(dy, w, st.recipe, dtype, st.generator(dy.device, "dgrad"), st.signs(dy.device))
    return dx.to(out_dtype)


@dgrad_op.register_fake
def _(dy, w, key, dtype, out_dtype):
    return dy.new_empty((dy.shape[0], w.shape[1]), dtype=out_dtype)


@torch.library.custom_op("averis::wgrad", mutates_args=())
def wgrad_op(dy: torch.Tensor, x: torch.Tensor, key: int, dtype: torch.dtype,
             out_dtype: torch.dtype) -> torch.Tensor:
    st = state_of(key)
    dw = F.wgrad(dy, x, st.recipe, dtype, st.generator(dy.device, "wgrad"), st.signs(dy.device))
    return dw.to(out_dtype)


@wgrad_op.register_fake
def _(dy, x, key, dtype, out_dtype):
    return dy.new_empty((dy.shape[1], x.shape[1]), dtype=out_dtype)


class QuantLinearFunction(torch.autograd.Function):
    """Y = X W^T with fprop, dgrad and wgrad each in emulated FP4 (X is 2D: tokens x in-features)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, key: int, dtype: torch.dtype) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.key, ctx.dtype = key, dtype
        return fprop_op(x, w, key, dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w = ctx.saved_tensors
        dy = dy.contiguous()
        dx = dgrad_op(dy, w, ctx.key, ctx.dtype, x.dtype) if ctx.needs_input_grad[0] else None
        dw = wgrad_op(dy, x, ctx.key, ctx.dtype, w.dtype) if ctx.needs_input_grad[1] else None
        return dx, dw, None, None


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The GEMM dtype nn.Linear would use: the autocast dtype when autocast is on, else x's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


def quant_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 state: LayerState) -> torch.Tensor:
    """F.linear(x, weight, bias) with the layer's recipe (weight is N x K)."""
    dtype = compute_dtype(x)
    x2d = x.reshape(-1, x.shape[-1])
    y = QuantLinearFunction.apply(x2d, weight, state.key, dtype)
    y = y.reshape(*x.shape[:-1], weight.shape[0])
    return y if bias is None else y + bias.to(dtype)
