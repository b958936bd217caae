"""The quantized linear as an autograd.Function over two torch.library custom ops.

The ops (``averis::fprop`` and ``averis::backward``, which runs dgrad and wgrad together) are opaque
to torch.compile (their fake implementations give only shapes), so compiled models keep the exact
emulation, generators included.  Saved for backward: the layer input X as it arrived (2D view), the
weight W itself (no copy) and what the forward measured of them: X's column mean and tensor amax
(of the residual for Averis), W's tensor amax (small tensors).  No quantized or transformed copies
are kept -- the backward GEMMs re-quantize X and W along their own reduction axes, which they would
have to do anyway, but X's, dY's and W's statistics / amax passes run once per layer call although
each enters two GEMMs.
"""

from __future__ import annotations

import torch

from ..kernels.fused import computes_stats  # [kernels]
from . import functional as F
from .state import state_of


@torch.library.custom_op("averis::fprop", mutates_args=())
def fprop_op(x: torch.Tensor, w: torch.Tensor, key: int,
             dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Y, X's column mean, X's tensor amax (of the residual when split), W's tensor amax) -- the last
    three for backward, which quantizes X and W again; left unset (never read) where not computed."""
    st = state_of(key)
    shared: dict = {}
    y = F.fprop(x, w, st.recipe, dtype, st.generator(x.device, "fprop"), st.signs(x.device), shared=shared)
    x_mean, x_amax = shared.get("x", (_unset(x, x.shape[1]), shared.get("x_amax", _unset(x, ()))))
    return y, x_mean, x_amax, shared.get("w_amax", _unset(x, ()))


def _unset(like: torch.Tensor, shape) -> torch.Tensor:
    return like.new_empty(shape, dtype=torch.float32)


@fprop_op.register_fake
def _(x, w, key, dtype):
    return (x.new_empty((x.shape[0], w.shape[0]), dtype=dtype), _unset(x, x.shape[1]), _unset(x, ()),
            _unset(x, ()))


@torch.library.custom_op("averis::backward", mutates_args=())
def backward_op(dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, x_mean: torch.Tensor, x_amax: torch.Tensor,
                w_amax: torch.Tensor, key: int, dtype: torch.dtype, need_dx: bool,
                need_dw: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(dX, dW) in X's and W's dtypes; an empty tensor for a gradient not needed."""
    st = state_of(key)
    recipe, signs = st.recipe, st.signs(dy.device)
    shared: dict = {}  # what the forward computed of X and W, by the rules it used (see fprop_op)
    if computes_stats(x, recipe.fprop_x, recipe, "rows", signs):
        shared["x"] = (x_mean, x_amax)
    elif F.shares_amax(recipe.fprop_x):
        shared["x_amax"] = x_amax
    if F.shares_amax(recipe.fprop_w):
        shared["w_amax"] = w_amax
    dx = dw = None
    if need_dx:
        dx = F.dgrad(dy, w, recipe, dtype, st.generator(dy.device, "dgrad"), signs, shared=shared).to(x.dtype)
    if need_dw:
        dw = F.wgrad(dy, x, recipe, dtype, st.generator(dy.device, "wgrad"), signs, shared=shared).to(w.dtype)
    return (x.new_empty(0) if dx is None else dx), (w.new_empty(0) if dw is None else dw)


@backward_op.register_fake
def _(dy, x, w, x_mean, x_amax, w_amax, key, dtype, need_dx, need_dw):
    return (x.new_empty(x.shape if need_dx else (0,)), w.new_empty(w.shape if need_dw else (0,)))


class QuantLinearFunction(torch.autograd.Function):
    """Y = X W^T with fprop, dgrad and wgrad each in emulated FP4 (X is 2D: tokens x in-features)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, key: int, dtype: torch.dtype) -> torch.Tensor:
        y, x_mean, x_amax, w_amax = fprop_op(x, w, key, dtype)
        ctx.save_for_backward(x, w, x_mean, x_amax, w_amax)
        ctx.key, ctx.dtype = key, dtype
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w, x_mean, x_amax, w_amax = ctx.saved_tensors
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_dx or need_dw):
            return None, None, None, None
        dx, dw = backward_op(dy.contiguous(), x, w, x_mean, x_amax, w_amax, ctx.key, ctx.dtype, need_dx, need_dw)
        return (dx if need_dx else None), (dw if need_dw else None), None, None


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The GEMM dtype nn.Linear would use: the autocast dtype when autocast is on, else x's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


def quant_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 state) -> torch.Tensor:
    """F.linear(x, weight, bias) with the layer's recipe (weight is N x K)."""
    dtype = compute_dtype(x)
    x2d = x.reshape(-1, x.shape[-1])
    y = QuantLinearFunction.apply(x2d, weight, state.key, dtype)
    y = y.reshape(*x.shape[:-1], weight.shape[0])
    return y if bias is None else y + bias.to(dtype)
