"""torch.compile sees the emulated GEMMs as custom ops (averis::fprop/dgrad/wgrad)."""

import copy

import pytest
import torch
from torch import nn

import averis

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
    saved = copy.deepcopy(model.state_dict())
    y, grads = _step(model, x)
    model.load_state_dict(saved)
    yc, grads_c = _step(torch.compile(model, backend="aot_eager", fullgraph=True), x)
    assert torch.equal(y, yc)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_c))


@pytest.mark.slow
def test_compile_inductor_on_cpu():
    """Inductor fuses the ops around the custom GEMMs, so results agree to float rounding."""
    model, x = _model(), torch.randn(2, 16, 64) + 2
    saved = copy.deepcopy(model.state_dict())
    y, grads = _step(model, x)
    model.load_state_dict(saved)
    yc, grads_c = _step(torch.compile(model, fullgraph=True), x)
    torch.testing.assert_close(yc, y, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads, grads_c):
        assert ((a - b).norm() / a.norm()) < 1e-2


def _layouts(outs):
    return [(tuple(t.shape), t.stride(), t.dtype) for t in outs]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
@pytest.mark.parametrize("exact_gemm", [False, True])
@pytest.mark.parametrize("name", [n for n in averis.recipes.list() if n != "bf16"])
def test_fprop_op_fake_declares_the_real_layouts(name, device, exact_gemm):
    """Inductor asserts the fake implementation's strides on the real outputs (a mismatch fails a compiled
    run): each output's shape, strides and dtype must agree, for every recipe, the fused CUDA path included."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from averis.nn.ops import fprop_op

    layer = averis.quantize_model(nn.Sequential(nn.Linear(64, 96, bias=False)), name)[0].to(device)
    x, w = torch.randn(256, 64, device=device) + 1, layer.weight.detach()
    step = averis.formats.noise.step_seeds(layer.averis_rng)
    args = (layer.averis_state.key, torch.bfloat16, True)
    with averis.use_backend("auto", exact_gemm=exact_gemm):
        real = fprop_op(x, w, step, *args)
        with FakeTensorMode() as mode:
            fake = fprop_op(mode.from_tensor(x), mode.from_tensor(w), mode.from_tensor(step), *args)
    assert _layouts(fake) == _layouts(real)
