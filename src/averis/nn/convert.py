"""quantize_model / dequantize_model, the evaluation switch, reports, and keeping the RNGs around a block."""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import warnings
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import recipes as _recipes
from ..recipes.sites import site_of
from ..recipes.spec import GEMM_OPERANDS, Recipe
from ..transforms.hadamard import BLOCK as HADAMARD_BLOCK
from .functional import shares_input
from .modules import QuantLinear, attach_state, detach_state, is_hf_conv1d, is_quantized, quant_conv1d_class
from .pretrained import forget_recipe, record_recipe
from .state import RNG_BUFFER, SPLIT_BUFFER, LayerState, is_state_key

_REPORT_ATTR = "_averis_report"


@dataclass
class QuantizationReport:
    """What quantize_model did: swapped layers (name, out x in) and skipped ones (name, reason)."""

    recipe: str
    swapped: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"averis.quantize_model: recipe {self.recipe!r}, {len(self.swapped)} layers quantized, "
                 f"{len(self.skipped)} kept in high precision"]
        lines += [f"  quantized  {name}  ({n} x {k})" for name, (n, k) in self.swapped]
        lines += [f"  skipped    {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def quantize_model(model: nn.Module, recipe: str | Recipe, *, report: bool = False) -> nn.Module:
    """Swap every eligible nn.Linear (and transformers Conv1D) of ``model`` in place; return the model.

    Kept in high precision: names matching ``recipe.high_precision`` (lm_head, embeddings by
    default), the first/last transformer blocks the recipe asks for, subclasses of nn.Linear
    (their forward may not be nn.Linear's), and layers whose in/out features do not divide into
    the recipe's blocks (one warning lists them).  Each layer runs ``recipe.for_layer(name)``: the recipe,
    without its mean split where the layer's site is not in ``recipe.mean_sites``.  report=True prints what
    was swapped and skipped; ``get_report(model)`` returns it.  Parameter names are unchanged; each quantized layer adds
    its stochastic-rounding counter buffer ``averis_rng`` to the state_dict (``plain_state_dict`` drops them).
    A Hugging Face model also gets ``model.config.averis_recipe`` (the recipe and the quantized layers),
    so that ``save_pretrained`` keeps it and ``averis.load_pretrained`` quantizes the reloaded model again.
    """
    recipe = _recipes.get(recipe)
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize_model needs an nn.Module, got {type(model).__name__}")
    already = [n for n, m in model.named_modules() if is_quantized(m)]
    if already:
        raise ValueError(f"the model is already quantized ({already[0]} and {len(already) - 1} more): call "
                         f"averis.dequantize_model(model) first to change the recipe")
    rep = QuantizationReport(recipe.name)
    blocks = _block_index(model)
    keep = _kept_blocks(recipe, blocks)
    ragged = []
    index = 0
    for name, module in list(model.named_modules()):
        if not (isinstance(module, nn.Linear) or is_hf_conv1d(module)):
            continue
        reason = _skip_reason(name, module, recipe, blocks, keep)
        if reason is None:
            reason = _size_problem(module, recipe)
            if reason is not None:
                ragged.append(f"{name} ({reason})")
        if reason is not None:
            rep.skipped.append((name, reason))
            continue
        _swap(module, LayerState(recipe.for_layer(name), index, name))  # mean_sites: per-site split
        rep.swapped.append((name, _out_in(module)))
        index += 1
    if ragged:
        warnings.warn(f"averis: {len(ragged)} layers kept in high precision because their sizes do not "
                      f"divide into {recipe.name} blocks: {'; '.join(ragged)}", stacklevel=2)
    share_inputs(model)
    object.__setattr__(model, _REPORT_ATTR, rep)
    record_recipe(model, recipe, [name for name, _ in rep.swapped])  # config.json keeps it
    if report:
        print(rep)
    return model


_GROUPS = itertools.count(1)  # share groups: unique in the process (the custom op receives them as constants)


def share_inputs(model: nn.Module) -> None:
    """Tag the quantized linears that a module declares to read one X, so that X is quantized once for them
    (averis.nn.ops.SharedInput): ``averis_shared_inputs`` on the module, tuples of its children's names in call
    order, e.g. (("q_proj", "k_proj", "v_proj"),).  A group is tagged where all its members are QuantLinears under
    one recipe whose X operands draw no random numbers (nn.functional.shares_input); the bits are the same either
    way.  Only a model's author can declare this: linears that read different inputs must never be a group."""
    for module in model.modules():
        for names in getattr(module, "averis_shared_inputs", ()):
            states = [getattr(getattr(module, n, None), "averis_state", None) for n in names]
            ok = (all(isinstance(getattr(module, n, None), QuantLinear) for n in names) and len(names) > 1
                  and len({st.key for st in states}) == 1 and shares_input(states[0].recipe))
            group = next(_GROUPS) if ok else 0
            for pos, st in enumerate(states):
                if st is not None:
                    st.share = (group, pos, len(names)) if ok else (0, 0, 1)


def dequantize_model(model: nn.Module) -> nn.Module:
    """Undo quantize_model in place: every quantized layer becomes its original class again."""
    for _, module in model.named_modules():
        if is_quantized(module):
            base = nn.Linear if isinstance(module, QuantLinear) else module._averis_base
            detach_state(module)
            module.__class__ = base
    if _REPORT_ATTR in model.__dict__:
        object.__delattr__(model, _REPORT_ATTR)
    forget_recipe(model)
    return model


def get_report(model: nn.Module) -> QuantizationReport:
    """The QuantizationReport of the last quantize_model call on ``model``."""
    rep = model.__dict__.get(_REPORT_ATTR)
    if rep is None:
        raise ValueError("this model was not quantized with averis.quantize_model")
    return rep


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if is_quantized(m)}


@contextlib.contextmanager
def quantization_disabled(model: nn.Module):
    """Run the quantized layers of ``model`` in high precision inside the block (e.g. for evaluation)."""
    layers = list(quantized_layers(model).values())
    before = [m.averis_state.enabled for m in layers]
    for m in layers:
        m.averis_state.enabled = False
    try:
        yield model
    finally:
        for m, was in zip(layers, before):
            m.averis_state.enabled = was


def plain_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A quantized model's state_dict without the quantizers' ``averis_rng`` (and ``averis_splits``) counters:
    what the unquantized model loads with ``strict=True``."""
    return {k: v for k, v in state_dict.items() if not is_state_key(k)}


@contextlib.contextmanager
def rng_kept(model: nn.Module):
    """Run the block, then put the global CPU and CUDA RNGs and every quantized layer's counters back where they
    were, in place: its stochastic-rounding counter (``averis_rng``) and, under an adaptive recipe, its split
    counters (``averis_splits``), so passes that are not training steps (a CUDA graph's warm-up, an analysis
    forward) neither move the random streams nor count as split decisions."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    buffers = [m._buffers.get(name) for m in quantized_layers(model).values() for name in (RNG_BUFFER, SPLIT_BUFFER)]
    counters = [(buf, buf.clone()) for buf in buffers if buf is not None]
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        for buf, saved in counters:
            buf.copy_(saved)


def spread_streams(model: nn.Module, rank: int, world: int) -> None:
    """Give data-parallel rank ``rank`` of ``world`` its share of every quantized layer's stochastic-rounding
    draws: its counters start at (their value +) ``rank`` and advance by ``world`` per training forward.

    Rank r's m-th micro-batch of a step is global micro-batch m * world + r (averis.data.batching), the one a
    single process with world times the micro-batches draws at counter + m * world + r: so the ranks together
    make exactly the draws of one process over the same tokens, and a checkpoint (rank 0's counters) resumes
    on either.  Call it once per process, after loading a checkpoint; the ranks must not synchronise these
    buffers afterwards (DDP: broadcast_buffers=False)."""
    if not 0 <= rank < world:
        raise ValueError(f"spread_streams: rank {rank} is not in [0, {world})")
    with torch.no_grad():
        for m in quantized_layers(model).values():
            m.averis_state.counter_stride = world
            getattr(m, RNG_BUFFER)[1:].add_(rank)


def split_counts(model: nn.Module) -> dict[str, dict]:
    """How often each layer's adaptive split (a recipe with ``mean_threshold``) split its sources, from the layers'
    ``averis_splits`` buffers (one host read): {layer name: {"site", "x_calls", "x_splits", "dy_calls", "dy_splits"}}.
    X counts training forwards (grad enabled), dY backward passes.  Layers without the counters are left out."""
    out = {}
    for name, m in quantized_layers(model).items():
        buf = m._buffers.get(SPLIT_BUFFER)
        if buf is not None:
            xc, xs, dc, ds = (int(v) for v in buf.tolist())
            out[name] = {"site": site_of(name), "x_calls": xc, "x_splits": xs, "dy_calls": dc, "dy_splits": ds}
    return out


def split_fractions_by_site(counts: dict[str, dict]) -> dict[str, dict[str, float | None]]:
    """split_counts summed per site: {site: {"x": fraction of X decisions that split, "dy": the same for dY}}
    (None where no decision was counted)."""
    sums: dict[str, list[int]] = {}
    for c in counts.values():
        s = sums.setdefault(c["site"], [0, 0, 0, 0])
        for i, k in enumerate(("x_calls", "x_splits", "dy_calls", "dy_splits")):
            s[i] += c[k]
    return {site: {"x": s[1] / s[0] if s[0] else None, "dy": s[3] / s[2] if s[2] else None}
            for site, s in sums.items()}


# --------------------------------------------------------------------------- helpers
def _swap(module: nn.Module, state: LayerState) -> None:
    if isinstance(module, nn.Linear):
        QuantLinear.from_linear(module, state)
    else:
        module.__class__ = quant_conv1d_class(type(module))
        attach_state(module, state)


def _out_in(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    return module.weight.shape[1], module.weight.shape[0]


def _block_index(model: nn.Module) -> dict[str, tuple[int, int]]:
    """{layer name: (block index, number of blocks)} for layers inside the model's transformer blocks.

    The blocks are the nn.ModuleList holding the most linear layers (model.layers, transformer.h, ...).
    """
    lists = {n: m for n, m in model.named_modules() if isinstance(m, nn.ModuleList)}
    found: dict[str, tuple[str, int]] = {}
    for name, m in model.named_modules():
        if not (isinstance(m, nn.Linear) or is_hf_conv1d(m)):
            continue
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in lists and parts[i].isdigit():
                found[name] = (prefix, int(parts[i]))
                break
    if not found:
        return {}
    main, _ = Counter(p for p, _ in found.values()).most_common(1)[0]
    n_blocks = len(lists[main])
    return {name: (i, n_blocks) for name, (p, i) in found.items() if p == main}


def _kept_blocks(recipe: Recipe, blocks: dict[str, tuple[int, int]]) -> set[int]:
    if not blocks:
        return set()
    n = next(iter(blocks.values()))[1]
    last = recipe.keep_last_blocks + round(recipe.keep_last_fraction * n)
    return set(range(min(recipe.keep_first_blocks, n))) | set(range(max(n - last, 0), n))


def _skip_reason(name: str, module: nn.Module, recipe: Recipe, blocks, keep: set[int]) -> str | None:
    for pattern in recipe.high_precision:
        if fnmatch.fnmatchcase(name, pattern):
            return f"matches high_precision pattern {pattern!r}"
    if name in blocks and blocks[name][0] in keep:
        return f"in transformer block {blocks[name][0]}, kept in high precision by the recipe"
    if isinstance(module, nn.Linear) and type(module) is not nn.Linear:
        return (f"{type(module).__name__} subclasses nn.Linear (its forward may not be nn.Linear's, e.g. "
                f"nn.MultiheadAttention reads out_proj.weight directly)")
    return None


def _size_problem(module: nn.Module, recipe: Recipe) -> str | None:
    """Why the layer's sizes do not divide into the recipe's blocks, or None."""
    n, k = _out_in(module)
    reduction = {"fprop": k, "dgrad": n}
    other = {"fprop": n, "dgrad": k}
    for gemm in ("fprop", "dgrad"):
        for name in GEMM_OPERANDS[gemm]:
            spec = recipe.operand(name)
            if spec.quantized and reduction[gemm] % spec.block:
                return f"{name}: {reduction[gemm]} is not a multiple of {spec.block}"
            if spec.quantized and spec.tile_rows > 1 and other[gemm] % spec.tile_rows:
                return f"{name}: {other[gemm]} is not a multiple of the {spec.tile_rows}-row tiles"
            if spec.has_hadamard and reduction[gemm] % HADAMARD_BLOCK:
                return f"{name}: {reduction[gemm]} is not a multiple of the 16-point Hadamard"
    return None
