"""Forward (and backward) hooks that collect every linear layer's input and output gradient.

Memory stays bounded however much text is fed: each layer keeps at most ``max_tokens`` rows, a
uniform random sample of all the tokens it saw (bottom-k sampling: every token gets a random key,
the rows with the smallest keys are kept).  All layers of one batch share the keys, so they keep the
same tokens.  Layers fed the same tensor (q/k/v, gate/up) are stored once and named as aliases.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

INPUT, GRAD_OUTPUT = "input", "grad_output"


@dataclass
class Collected:
    """What one linear layer saw: a (tokens x channels) sample of its input or output gradient."""

    name: str
    kind: str
    matrix: torch.Tensor
    tokens_seen: int
    aliases: list[str] = field(default_factory=list)


def linear_layers(model: nn.Module, include: str | None = None, exclude: str | None = None) -> dict[str, nn.Module]:
    """The model's linear layers by name: nn.Linear (and subclasses) and GPT-2's Conv1D.

    include / exclude: regular expressions searched in the module names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    found = {name: m for name, m in model.named_modules() if _is_linear(m)}
    if not found:
        raise ValueError(f"{type(model).__name__} has no linear layers (nn.Linear): nothing to analyze")
    chosen = {n: m for n, m in found.items()
              if (include is None or re.search(include, n)) and (exclude is None or not re.search(exclude, n))}
    if not chosen:
        raise ValueError(f"no linear layer name matches include={include!r} exclude={exclude!r}; "
                         f"names look like {next(iter(found))!r}")
    return chosen


def _is_linear(m: nn.Module) -> bool:
    if isinstance(m, nn.Linear):
        return True
    # transformers' Conv1D (GPT-2): a linear layer with a transposed weight.
    weight = getattr(m, "weight", None)
    return type(m).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.ndim == 2


class _Reservoir:
    """At most ``capacity`` rows with the smallest keys among all rows offered."""

    def __init__(self, capacity: int, dtype: torch.dtype, device: torch.device):
        self.capacity, self.dtype, self.device = capacity, dtype, device
        self.rows: torch.Tensor | None = None
        self.keys: torch.Tensor | None = None
        self.seen = 0

    def add(self, rows: torch.Tensor, keys: torch.Tensor) -> None:
        self.seen += rows.shape[0]
        if rows.shape[0] > self.capacity:  # keep the batch's own best rows first: bounds the copy
            best = keys.topk(self.capacity, largest=False).indices
            rows, keys = rows[best], keys[best]
        rows = rows.detach().to(self.device, self.dtype)
        keys = keys.to(self.device)
        if self.rows is not None:
            rows, keys = torch.cat([self.rows, rows]), torch.cat([self.keys, keys])
        if rows.shape[0] > self.capacity:
            best = keys.topk(self.capacity, largest=False).indices.sort().values
            rows, keys = rows[best], keys[best]
        self.rows, self.keys = rows, keys


class LinearCollector:
    """Hooks on the linear layers of ``model``; use as a context manager around forward/backward passes.

    Call ``new_batch()`` before each batch.  grads=True also records each layer's output gradient
    dL/dY (run a backward pass inside the context).  Layers wider than ``max_channels`` are skipped
    (an lm_head's output gradient: a Gram matrix of the vocabulary would not fit) and listed in
    ``skipped``.  store_dtype float32 keeps bfloat16 activations exact.
    """

    def __init__(self, model: nn.Module, *, max_tokens: int = 4096, grads: bool = False,
                 include: str | None = None, exclude: str | None = None, max_channels: int = 16384,
                 seed: int = 0, store_device: str | torch.device = "cpu", store_dtype=torch.float32):
        if max_tokens < 2:
            raise ValueError(f"max_tokens={max_tokens}: keep at least 2 tokens per layer")
        self.layers = linear_layers(model, include, exclude)
        self.max_tokens, self.grads, self.max_channels = max_tokens, grads, max_channels
        self.store_device, self.store_dtype = torch.device(store_device), store_dtype
        self._generator = torch.Generator().manual_seed(seed)
        self._keys: dict[int, torch.Tensor] = {}
        self._store: dict[tuple[str, str], _Reservoir] = {}
        self._aliases: dict[str, list[str]] = {}
        self._last_input: tuple[torch.Tensor, str] | None = None
        self._handles: list = []
        self.skipped: dict[str, str] = {}

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> LinearCollector:
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._last_input = None

    def new_batch(self) -> None:
        """Fresh sampling keys (the tokens of a new batch) and no input shared with the last batch."""
        self._keys.clear()
        self._last_input = None

    # ---------------------------------------------------------------- hooks
    def _forward_hook(self, name: str):
        def hook(module, args, output):
            x = args[0] if args else None
            if isinstance(x, torch.Tensor):
                self._record_input(name, x)
            if self.grads and isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda g: self._record(name, GRAD_OUTPUT, g))
        return hook

    def _record_input(self, name: str, x: torch.Tensor) -> None:
        last = self._last_input
        if last is not None and last[0] is x:  # same tensor as the previous layer's input (q/k/v)
            aliases = self._aliases.setdefault(last[1], [])
            if name not in aliases:
                aliases.append(name)
            return
        self._last_input = (x, name)
        self._record(name, INPUT, x)

    def _record(self, name: str, kind: str, t: torch.Tensor) -> None:
        rows = t.detach().reshape(-1, t.shape[-1])
        if rows.shape[-1] > self.max_channels:
            self.skipped[f"{name}:{kind}"] = f"{rows.shape[-1]} channels > max_channels={self.max_channels}"
            return
        key = (name, kind)
        if key not in self._store:
            self._store[key] = _Reservoir(self.max_tokens, self.store_dtype, self.store_device)
        self._store[key].add(rows, self._batch_keys(rows.shape[0]).to(rows.device))

    def _batch_keys(self, n: int) -> torch.Tensor:
        if n not in self._keys:
            self._keys[n] = torch.rand(n, generator=self._generator)
        return self._keys[n]

    # ---------------------------------------------------------------- results
    def results(self) -> list[Collected]:
        """Everything recorded, in model order, inputs before gradients."""
        out = []
        for kind in (INPUT, GRAD_OUTPUT):
            for name in self.layers:
                res = self._store.get((name, kind))
                if res is not None and res.rows is not None:
                    aliases = self._aliases.get(name, []) if kind == INPUT else []
                    out.append(Collected(name, kind, res.rows, res.seen, list(aliases)))
        return out


def lm_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits (batch, seq, vocab) of a causal LM: HF models (``.logits``), tuples, or a plain tensor."""
    out = model(ids)
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 3:
        raise TypeError(f"cannot read logits from {type(model).__name__}'s output ({type(out).__name__}): "
                        f"the model must return logits (batch, seq, vocab) or an object with .logits")
    return out


def lm_loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of a (batch, seq) block of token ids."""
    logits = lm_logits(model, ids)
    return nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextlib.contextmanager
def gradients_enabled(model: nn.Module):
    """Every parameter requires grad inside the block (so outputs carry gradients); afterwards each
    parameter's requires_grad flag and .grad are exactly as they were."""
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
            p.grad = None
        yield
    finally:
        for p, (flag, grad) in zip(params, saved):
            p.requires_grad_(flag)
            p.grad = grad


def collect(model: nn.Module, batches: Iterable[torch.Tensor], *, grads: bool = False, max_tokens: int = 4096,
            include: str | None = None, exclude: str | None = None, seed: int = 0,
            max_channels: int = 16384) -> tuple[list[Collected], dict[str, str]]:
    """Run ``batches`` (token id blocks, batch x seq) through ``model`` and collect its linear layers.

    grads=True runs the LM loss backward too; parameter gradients are left as they were found.
    The model runs in eval mode (no dropout) and is put back in its mode afterwards.
    Returns (collected, skipped layers).
    """
    device = model_device(model)
    collector = LinearCollector(model, max_tokens=max_tokens, grads=grads, include=include, exclude=exclude,
                                seed=seed, max_channels=max_channels)
    was_training = model.training
    model.eval()
    count = 0
    try:
        with collector, (gradients_enabled(model) if grads else contextlib.nullcontext()):
            for ids in batches:
                collector.new_batch()
                ids = ids.to(device)
                if grads:
                    lm_loss(model, ids).backward()
                    model.zero_grad(set_to_none=True)
                else:
                    with torch.no_grad():
                        lm_logits(model, ids)
                count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no batches of text were given: nothing to collect")
    return collector.results(), collector.skipped
