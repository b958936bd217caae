"""torch.compile sees the emulated GEMMs as custom ops (averis::fprop/dgrad/wgrad)."""

import pytest
import torch
from torch import nn

import averis
from averis.nn import rng_state, set_rng_state

pytestmark = pytest.mark.usefixtures("one_thread")


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))
    return averis.quantize_model(model, "averis")


def _step(model, x):
    y = model(x)
    y.pow(2).mean().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    return y.detach(), grads


def test_compile_fullgraph_is_bit_identical_to_eager():
    """aot_eager runs the same ATen ops as eager: outputs and SR gradients must match bit for bit."""
    model, x = _model(), torch.randn(2, 16, 64) + 2
    saved = rng_state(model)
    y, grads = _step(model, x)
    set_rng_state(model, saved)
    yc, grads_c = _step(torch.compile(model, backend="aot_eager", fullgraph=True), x)
    assert torch.equal(y, yc)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_c))


@pytest.mark.slow
def test_compile_inductor_on_cpu():
    """Inductor fuses the ops around the custom GEMMs, so results agree to float rounding."""
    model, x = _model(), torch.randn(2, 16, 64) + 2
    saved = rng_state(model)
    y, grads = _step(model, x)
    set_rng_state(model, saved)
    yc, grads_c = _step(torch.compile(model, fullgraph=True), x)
    torch.testing.assert_close(yc, y, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads, grads_c):
        assert ((a - b).norm() / a.norm()) < 1e-2
