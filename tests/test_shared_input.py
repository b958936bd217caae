"""One X, several readers: q, k and v (and gate and up) quantize their shared input once (nn.ops.SharedInput).

The bits must be those of every linear quantizing X itself: the loss, every gradient and every buffer (the
stochastic-rounding counters, the adaptive split's counts), eager and compiled, on the PyTorch path and on the
Triton dispatch path; recipes whose X operands draw random numbers never share; and a changed X is never served
from the cache."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import averis
from averis.models.qwen3 import build_qwen3
from averis.nn import functional as F
from averis.nn import ops, quantize_model
from averis.recipes import BUILTIN

VOCAB = 256


def _train_step(recipe: str, share: bool, compiled: bool = False):
    """(loss, gradients, buffers, X operands prepared) of two training steps of a tiny Qwen3."""
    prepared = [0]
    real = F.fprop_x_operand

    def counting(*args, **kwargs):
        prepared[0] += 1
        return real(*args, **kwargs)

    ops.SharedInput.enabled = share
    ops._SHARED.clear()
    F.fprop_x_operand = counting
    try:
        torch.manual_seed(0)
        model = quantize_model(build_qwen3("tiny", vocab_size=VOCAB, n_layers=2), recipe)
        run = torch.compile(model, backend="aot_eager") if compiled else model
        ids = torch.randint(0, VOCAB, (2, 64))
        for _ in range(2):  # the second step reads the counters the first advanced
            model.zero_grad()
            loss = torch.nn.functional.cross_entropy(run(ids).reshape(-1, VOCAB), ids.reshape(-1))
            loss.backward()
    finally:
        F.fprop_x_operand = real
        ops.SharedInput.enabled = True
        ops._SHARED.clear()
    grads = [p.grad.clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    return loss.detach(), grads, buffers, prepared[0]


def _bits_equal(a, b) -> bool:
    flat = (t.reshape(-1).view(torch.uint8) for t in (a, b))
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(*flat)


def _assert_same(shared, separate):
    assert _bits_equal(shared[0], separate[0]), "loss"
    assert all(_bits_equal(g, h) for g, h in zip(shared[1], separate[1], strict=True)), "gradients"
    assert all(_bits_equal(g, h) for g, h in zip(shared[2], separate[2], strict=True)), "buffers"


@pytest.mark.parametrize("recipe", ["nvfp4", "nvidia", "averis", "averis_rht", "averis_adaptive", "mxfp4"])
def test_shared_input_gives_the_bits_of_separate_quantization(recipe):
    shared, separate = _train_step(recipe, True), _train_step(recipe, False)
    _assert_same(shared, separate)
    # 2 layers x 7 linears x 2 steps read X; shared: q/k/v and gate/up each prepare it once (4 a layer)
    assert (shared[3], separate[3]) == (2 * 4 * 2, 2 * 7 * 2)


def test_shared_input_compiled():
    shared, separate = _train_step("averis", True, compiled=True), _train_step("averis", False, compiled=True)
    _assert_same(shared, separate)
    assert shared[3] < separate[3]


class Readers(torch.nn.Module):
    """Three linears that read one X, declared as q, k and v are (averis_shared_inputs)."""

    averis_shared_inputs = (("q", "k", "v"),)

    def __init__(self, features: int = 64, out: int = 32):
        super().__init__()
        self.q, self.k, self.v = (torch.nn.Linear(features, out, bias=False) for _ in range(3))


def _three_readers(recipe: str, share: bool, backend: str, device: str):
    """(output, dX, dW of each) of three linears reading one X, as q, k and v do."""
    ops.SharedInput.enabled = share
    ops._SHARED.clear()
    try:
        torch.manual_seed(0)
        readers = quantize_model(Readers(), recipe).to(device)
        x = (torch.randn(16, 64) + torch.linspace(-2, 2, 64)).to(device).requires_grad_()
        with averis.use_backend(backend):
            y = readers.q(x) + readers.k(x) + readers.v(x)
            y.square().sum().backward()
    finally:
        ops.SharedInput.enabled = True
        ops._SHARED.clear()
    return y.detach(), [x.grad, *(layer.weight.grad for layer in (readers.q, readers.k, readers.v))]


@pytest.mark.skipif(not os.environ.get("TRITON_INTERPRET") and not torch.cuda.is_available(),
                    reason="the Triton dispatch path needs a GPU or TRITON_INTERPRET=1")
@pytest.mark.parametrize("recipe", ["nvfp4", "averis"])
def test_shared_input_on_the_triton_path(recipe):
    """The fused kernels (the residual quantize with its token sums, the column statistics) shared too."""
    pytest.importorskip("triton")
    device = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
    shared, separate = (_three_readers(recipe, share, "triton", device) for share in (True, False))
    assert _bits_equal(shared[0], separate[0])
    assert all(_bits_equal(g, h) for g, h in zip(shared[1], separate[1], strict=True))


def test_random_x_operands_are_never_shared():
    recipe = BUILTIN["nvfp4"]
    sr_x = recipe.replace(fprop_x=dataclasses.replace(recipe.fprop_x, rounding="stochastic"))
    assert F.shares_input(recipe) and not F.shares_input(sr_x)
    assert not F.shares_input(BUILTIN["metis"])  # its low-rank sketch draws
    assert _train_step("metis", True)[3] == _train_step("metis", False)[3]


def test_a_changed_x_is_quantized_again():
    """The same storage, changed in place between two readers of a group (its version moves): the next reader
    must not take the first's operands."""
    torch.manual_seed(0)
    readers = quantize_model(Readers(32, 32), "averis")
    x = torch.randn(16, 32)
    with torch.no_grad():
        readers.q(x)
        x.mul_(3.0)
        y_shared = readers.k(x)
        ops.SharedInput.enabled = False
        try:
            y_alone = readers.k(x)
        finally:
            ops.SharedInput.enabled = True
    assert _bits_equal(y_shared, y_alone)


def test_only_declared_groups_share():
    """Groups come from the model's declaration, in call order; undeclared linears (a Hugging Face model's, a
    ModuleList's) never share, nor do groups under a recipe whose X operands draw."""
    shares = [layer.averis_state.share for layer in (lambda r: (r.q, r.k, r.v))(quantize_model(Readers(), "averis"))]
    assert shares[0][0] > 0 and {s[0] for s in shares} == {shares[0][0]}
    assert [s[1:] for s in shares] == [(0, 3), (1, 3), (2, 3)]
    plain = quantize_model(torch.nn.ModuleList([torch.nn.Linear(32, 32, bias=False) for _ in range(3)]), "averis")
    assert all(layer.averis_state.share == (0, 0, 1) for layer in plain)
    metis = quantize_model(Readers(), "metis")
    assert metis.q.averis_state.share == (0, 0, 1)
