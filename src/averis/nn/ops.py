"""The quantized linear as an autograd.Function over two torch.library custom ops.

The ops (``averis::fprop`` and ``averis::backward``, which runs dgrad and wgrad together) are opaque
to torch.compile (their fake implementations give only shapes), so compiled models keep the exact
emulation, random draws included.  Saved for backward: wgrad's X operand, made in the forward from
the statistics the fprop computed (X^T transformed and quantized along the tokens, in the compute
dtype, its mean, its token sums where the quantize pass emitted them, and its tensor scale), the weight
W itself (no copy) and W's tensor amax -- not X, which under autocast often arrives in FP32.  dgrad
re-quantizes W along its own axis; dY's statistics / amax pass runs once for dgrad and wgrad.

The ops carry no reference to the layer: the recipe is a constant (its JSON key, see state.py) and the
randomness a step-seed tensor, so their fake implementations read only their arguments.

The adaptive split (a recipe with ``mean_threshold``): each op also returns its source's decision as int64
[1, split] (X in the forward, dY in the backward; empty where the recipe does not decide for that source),
which the layer adds to its ``averis_splits`` buffer in place: counted on the device, no host sync.
"""

from __future__ import annotations

import threading

import torch

from ..formats import noise
from ..qgemm import LayerStats, QOperand, shares_amax
from ..qgemm.backend import current_backend, exact_gemm_setting, fused_setting
from ..transforms.mean import mean_dtype
from . import functional as F
from .state import hadamard_signs, recipe_from_key, stream


@torch.library.custom_op("averis::fprop", mutates_args=())
def fprop_op(x: torch.Tensor, w: torch.Tensor, step: torch.Tensor, recipe_key: str, dtype: torch.dtype,
             need_wgrad: bool, share_group: int = 0, share_pos: int = 0,
             share_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                           torch.Tensor, torch.Tensor]:
    """(Y, wgrad's X operand: its values, its mean over tokens, its token sums (K,) float32 and its tensor scale,
    W's tensor amax, X's adaptive split decision [1, split] or empty).

    With need_wgrad, X^T is transformed and quantized for wgrad here, from the statistics the fprop
    just computed, and backward keeps that (in the compute dtype) instead of X; its random draws come
    from the step's wgrad_x stream.  Outputs not computed are empty (never read).

    share_group > 0: this linear is reader ``share_pos`` of ``share_size`` that the model declares to read the same
    X (SharedInput): the first makes X's operands and keeps them, the next take them, the last lets them go."""
    recipe = recipe_from_key(recipe_key)
    signs = hadamard_signs(recipe, x.device)
    key = _SHARED.key(x, recipe, recipe_key, dtype, need_wgrad, share_group)
    hit = _SHARED.get(key) if share_pos > 0 else None
    if share_group and share_pos == share_size - 1:
        _SHARED.clear()  # the group's last reader: nothing may take these operands later
    if hit is not None:  # an earlier reader of this X in its group: its operands, its decision
        a, wgrad_x, decision = hit
        stats = LayerStats()  # X's draw nothing (F.shares_input): W's start where they would have
        y = F.fprop(x, w, recipe, dtype, stream(step, "fprop"), signs, stats, x_operand=a)
        # new tensor objects (views of the first reader's): a compiled graph that sees one object twice among its
        # inputs (the saved tensors) compiles a deduplicated graph, whose sums may round otherwise
        wgrad_x, decision = tuple(t.view(t.shape) for t in wgrad_x), decision.view(decision.shape)
        return y, *wgrad_x, (_empty(x) if stats.w.amax is None else stats.w.amax), decision
    stats = LayerStats()
    fprop_stream = stream(step, "fprop")  # X's draws (if any), then W's, in one fixed order
    a = F.fprop_x_operand(x, recipe, dtype, fprop_stream, signs, stats)
    y = F.fprop(x, w, recipe, dtype, fprop_stream, signs, stats, x_operand=a)
    w_amax = _empty(x) if stats.w.amax is None else stats.w.amax
    decision = _decision(recipe, "x", stats.x, x)
    if not need_wgrad:
        wgrad_x = (_empty(x, dtype), _empty(x), _empty(x), _empty(x))
    else:
        op = F.wgrad_x_operand(x, recipe, dtype, stream(step, "wgrad_x"), signs, stats)
        values = F.in_wgrad_x_layout(op.values, F.wgrad_x_tokens_major(x, recipe))  # the layout the fake declares
        values = values.clone() if _same_storage(values, x) else values  # a custom op may not return its input
        mean = _empty(x) if op.red_mean is None else op.red_mean.to(mean_dtype(recipe.mean_format))  # no copy
        sums = _empty(x) if op.token_sum is None else op.token_sum  # F.wgrad_x_has_token_sum says which
        scale = _empty(x) if op.scale is None else op.scale.float().reshape(())
        wgrad_x = (values, mean, sums, scale)
    if share_pos < share_size - 1:
        _SHARED.put(key, x, (a, wgrad_x, decision))
    return y, *wgrad_x, w_amax, decision


class SharedInput(threading.local):
    """X's prepared operands, kept from the first of the linears that the model declares to read one X (q, k and
    v; gate and up: ``averis_shared_inputs``, see nn.convert) for the others, where the recipe's X operands draw no
    random numbers (F.shares_input): they are then the same bits for every reader, so X is quantized once (its
    statistics, fprop's operand, wgrad's operand, saved for backward once).

    Only declared readers take an entry, only from their own group, and the group's last reader drops it: the
    window is the group's consecutive calls, in which X is an input of every call, so its memory cannot hold
    anything else.  The entry is also keyed by X's storage, offset, shape, strides, dtype and version (an in-place
    change in between bumps it) and by everything else the operands depend on; a reader that misses makes its
    own.  ``enabled = False`` turns sharing off (each linear quantizes its X; the same bits)."""

    enabled = True

    def __init__(self):
        self.entry = None

    def key(self, x: torch.Tensor, recipe, recipe_key: str, dtype: torch.dtype, need_wgrad: bool, group: int):
        if not (group and self.enabled and F.shares_input(recipe)) or x.is_inference():  # no version counter
            return None
        return (group, x.untyped_storage().data_ptr(), x.storage_offset(), tuple(x.shape), x.stride(), x.dtype,
                x.device, x._version, recipe_key, dtype, need_wgrad, exact_gemm_setting(), current_backend(),
                fused_setting())

    def get(self, key):
        return self.entry[2] if key is not None and self.entry is not None and self.entry[0] == key else None

    def put(self, key, x: torch.Tensor, value) -> None:
        self.entry = None if key is None else (key, x, value)

    def clear(self) -> None:
        self.entry = None


_SHARED = SharedInput()


def _decision(recipe, source: str, stats, like: torch.Tensor) -> torch.Tensor:
    """int64 [1, split] for the source's adaptive split (zeros where no GEMM decided in this call, e.g. an
    evaluation forward of a recipe that splits X only for wgrad), or empty where the recipe does not decide."""
    if not recipe.adaptive(source):
        return like.new_empty(0, dtype=torch.int64)
    if stats.split is None:
        return like.new_zeros(2, dtype=torch.int64)
    return stats.split_counts


def _fake_decision(recipe, source: str, like: torch.Tensor) -> torch.Tensor:
    return like.new_empty(2 if recipe.adaptive(source) else 0, dtype=torch.int64)


def _empty(like: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return like.new_empty(0, dtype=dtype)


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@fprop_op.register_fake
def _(x, w, step, recipe_key, dtype, need_wgrad, share_group=0, share_pos=0, share_size=1):
    recipe = recipe_from_key(recipe_key)
    y = x.new_empty((x.shape[0], w.shape[0]), dtype=dtype)
    w_amax = _empty(x) if not shares_amax(recipe.fprop_w) else x.new_empty((), dtype=torch.float32)
    decision = _fake_decision(recipe, "x", x)
    if not need_wgrad:
        return y, _empty(x, dtype), _empty(x), _empty(x), _empty(x), w_amax, decision
    length, has_mean, _, has_scale = F.wgrad_x_layout(recipe, x.shape[0])
    mean = x.new_empty((x.shape[1], 1), dtype=mean_dtype(recipe.mean_format)) if has_mean else _empty(x)
    sums = x.new_empty((x.shape[1],), dtype=torch.float32) if F.wgrad_x_has_token_sum(x, recipe) else _empty(x)
    scale = x.new_empty((), dtype=torch.float32) if has_scale else _empty(x)
    if F.wgrad_x_tokens_major(x, recipe):
        values = x.new_empty((length, x.shape[1]), dtype=dtype).T
    else:
        values = x.new_empty((x.shape[1], length), dtype=dtype)
    return y, values, mean, sums, scale, w_amax, decision


@torch.library.custom_op("averis::backward", mutates_args=())
def backward_op(dy: torch.Tensor, w: torch.Tensor, xw_values: torch.Tensor, xw_mean: torch.Tensor,
                xw_sums: torch.Tensor, xw_scale: torch.Tensor, w_amax: torch.Tensor, step: torch.Tensor,
                recipe_key: str, dtype: torch.dtype, x_dtype: torch.dtype, need_dx: bool,
                need_dw: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dX, dW, dY's adaptive split decision) in X's and W's dtypes; an empty tensor for a gradient not needed
    (and for the decision where the recipe does not decide for dY)."""
    recipe = recipe_from_key(recipe_key)
    signs = hadamard_signs(recipe, dy.device)
    stats = LayerStats()
    if shares_amax(recipe.fprop_w):  # the forward's amax of W (see fprop_op)
        stats.w.amax = w_amax
    dx = dw = None
    if need_dx:
        dx = F.dgrad(dy, w, recipe, dtype, stream(step, "dgrad"), signs, stats).to(x_dtype)
    if need_dw:
        _, has_mean, in_hadamard, has_scale = F.wgrad_x_layout(recipe, dy.shape[0])
        x_operand = QOperand(xw_values, dy.shape[0], scale=xw_scale if has_scale else None,
                             signs=signs if in_hadamard else None, red_mean=xw_mean if has_mean else None,
                             token_sum=xw_sums if xw_sums.numel() else None)
        dw = F.wgrad(dy, None, recipe, dtype, stream(step, "wgrad_dy"), signs, stats,
                     x_operand=x_operand).to(w.dtype)
    return ((dy.new_empty(0, dtype=x_dtype) if dx is None else dx), (w.new_empty(0) if dw is None else dw),
            _decision(recipe, "dy", stats.dy, dy))


@backward_op.register_fake
def _(dy, w, xw_values, xw_mean, xw_sums, xw_scale, w_amax, step, recipe_key, dtype, x_dtype, need_dx, need_dw):
    dx = dy.new_empty((dy.shape[0], w.shape[1]) if need_dx else (0,), dtype=x_dtype)
    return dx, w.new_empty(w.shape if need_dw else (0,)), _fake_decision(recipe_from_key(recipe_key), "dy", dy)


class QuantLinearFunction(torch.autograd.Function):
    """Y = X W^T with fprop, dgrad and wgrad each in emulated FP4 (X is 2D: tokens x in-features)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, step: torch.Tensor, recipe_key: str, dtype: torch.dtype,
                grad_enabled: bool, dy_splits: torch.Tensor | None = None,
                share: tuple[int, int, int] = (0, 0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
        """(Y, X's adaptive split decision).  dy_splits: the layer's dY counters (a view of ``averis_splits``),
        which backward increments in place (a plain ctx attribute: its in-place updates must not trip autograd's
        version check of saved tensors)."""
        need_wgrad = ctx.needs_input_grad[1] and grad_enabled  # evaluation under no_grad skips it
        y, xw_values, xw_mean, xw_sums, xw_scale, w_amax, x_split = fprop_op(x, w, step, recipe_key, dtype,
                                                                             need_wgrad, *share)
        ctx.save_for_backward(w, xw_values, xw_mean, xw_sums, xw_scale, w_amax, step)
        ctx.recipe_key, ctx.dtype, ctx.x_dtype = recipe_key, dtype, x.dtype
        ctx.dy_splits = dy_splits
        ctx.mark_non_differentiable(x_split)
        return y, x_split

    @staticmethod
    def backward(ctx, dy: torch.Tensor, _):
        w, xw_values, xw_mean, xw_sums, xw_scale, w_amax, step = ctx.saved_tensors
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_dx or need_dw):
            return None, None, None, None, None, None, None, None
        dx, dw, dy_split = backward_op(dy.contiguous(), w, xw_values, xw_mean, xw_sums, xw_scale, w_amax, step,
                                       ctx.recipe_key, ctx.dtype, ctx.x_dtype, need_dx, need_dw)
        if ctx.dy_splits is not None and dy_split.numel():
            with torch.no_grad():
                ctx.dy_splits.add_(dy_split)
        return (dx if need_dx else None), (dw if need_dw else None), None, None, None, None, None, None


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The GEMM dtype nn.Linear would use: the autocast dtype when autocast is on, else x's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


def quant_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, key: str,
                 rng: torch.Tensor, splits: torch.Tensor | None = None, stride: int = 1,
                 share: tuple[int, int, int] = (0, 0, 1)) -> torch.Tensor:
    """F.linear(x, weight, bias) with the recipe whose ``recipe_key`` is ``key`` (weight is N x K).

    ``rng`` is the layer's ``averis_rng`` buffer [seed, counter]: a training forward (grad enabled) draws
    this step's seed from it and advances the counter in place; an evaluation forward draws without
    advancing (it leaves training unchanged); ``stride``: by how much (the data-parallel ranks, see
    averis.nn.spread_streams).  ``splits``: the layer's ``averis_splits`` counters under an
    adaptive recipe ([X calls, X splits, dY calls, dY splits]), incremented in place: X by a training forward,
    dY by the backward.  ``share``: (group, position, size) among linears that read one X (LayerState.share)."""
    dtype = compute_dtype(x)
    x2d = x.reshape(-1, x.shape[-1])
    grad_enabled = torch.is_grad_enabled()  # read here: inside forward it is always off
    step = noise.step_seeds(rng)
    if grad_enabled:
        with torch.no_grad():
            rng[1:].add_(stride)
    y, x_split = QuantLinearFunction.apply(x2d, weight, step, key, dtype, grad_enabled,
                                           None if splits is None else splits[2:], share)
    if splits is not None and grad_enabled and x_split.numel():
        with torch.no_grad():
            splits[:2].add_(x_split)
    y = y.reshape(*x.shape[:-1], weight.shape[0])
    return y if bias is None else y + bias.to(dtype)
