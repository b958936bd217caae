"""The one backend switch (averis.use_backend): it restores, it refuses unknown names, and it decides
what runs -- "triton" reaches the kernels (interpreted on the CPU), "torch" never does."""

from __future__ import annotations

import copy
import os
import threading

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: it reads the flag at import

import averis  # noqa: E402
from averis import qgemm  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def _default_backend(one_thread):
    assert averis.current_backend() == "auto"
    yield
    assert averis.current_backend() == "auto", "a test left the switch changed"


@pytest.fixture
def kernel_calls(monkeypatch):
    """Calls of the Triton fake-quant launcher (a spy on averis.kernels.dispatch.fake_quantize)."""
    pytest.importorskip("triton")
    from averis.kernels import dispatch

    calls = []
    real = dispatch.fake_quantize
    monkeypatch.setattr(dispatch, "fake_quantize", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_context_manager_restores_and_a_plain_call_stays():
    with averis.use_backend("torch"):
        assert averis.current_backend() == "torch"
        with averis.use_backend("triton"):
            assert averis.current_backend() == "triton"
        assert averis.current_backend() == "torch"
    assert averis.current_backend() == "auto"
    with pytest.raises(KeyError):
        with averis.use_backend("torch"):
            raise KeyError("restored on an exception too")
    assert averis.current_backend() == "auto"
    averis.use_backend("torch")
    try:
        assert averis.current_backend() == "torch"
    finally:
        averis.use_backend("auto")


def test_unknown_names_get_one_line_errors():
    for call in (lambda: averis.use_backend("cuda"),
                 lambda: averis.fake_quantize(torch.randn(4, 32), "nvfp4", backend="cuda"),
                 lambda: qgemm.column_stats(torch.randn(4, 32), backend="gpu")):
        with pytest.raises(ValueError, match="unknown backend") as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="small_svd"):
        averis.use_backend("auto", small_svd="eigh")
    assert averis.current_backend() == "auto"


def test_other_threads_see_the_switch():
    """Process-wide: autograd runs a CUDA backward on its own threads, which must see the setting."""
    seen = []
    with averis.use_backend("torch"):
        t = threading.Thread(target=lambda: seen.append(averis.current_backend()))
        t.start()
        t.join()
    assert seen == ["torch"]


def test_the_switch_decides_what_runs(kernel_calls):
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(0)).to(DEV)
    with averis.use_backend("torch"):
        ref = averis.fake_quantize(x, "nvfp4")
        assert not qgemm.resolve(x)
    assert kernel_calls == []
    with averis.use_backend("triton"):
        tri = averis.fake_quantize(x, "nvfp4")
        assert qgemm.resolve(x)
    assert len(kernel_calls) == 1 and torch.equal(ref, tri)
    averis.fake_quantize(x, "nvfp4")  # "auto": the kernels for CUDA tensors only
    assert len(kernel_calls) == (2 if x.is_cuda else 1)


def test_a_call_argument_overrides_the_switch(kernel_calls):
    x = torch.randn(32, 64).to(DEV)
    with averis.use_backend("triton"):
        averis.fake_quantize(x, "nvfp4", backend="torch")
        assert qgemm.tensor_amax(x, backend="torch").device == x.device
    assert kernel_calls == []
    with averis.use_backend("torch"):
        averis.fake_quantize(x, "nvfp4", backend="triton")
    assert len(kernel_calls) == 1


def test_triton_without_the_kernels_is_an_error(monkeypatch):
    """On a CPU tensor the kernels run only under TRITON_INTERPRET=1: "triton" says so, "torch" runs."""
    x = torch.randn(4, 32)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with averis.use_backend("triton"), pytest.raises(RuntimeError, match="needs Triton"):
        averis.fake_quantize(x, "nvfp4")
    with averis.use_backend("torch"):
        averis.fake_quantize(x, "nvfp4")


def test_quantized_layer_runs_on_the_switched_backend(kernel_calls):
    """The layers route through the switch too: nvfp4 quantizes six operands per forward + backward,
    and both backends give the same bits."""
    torch.manual_seed(0)
    layer = averis.quantize_model(torch.nn.Sequential(torch.nn.Linear(32, 32)), "nvfp4").to(DEV)
    x = torch.randn(16, 32, device=DEV)
    saved = copy.deepcopy(layer.state_dict())
    outs = {}
    for name in ("torch", "triton"):
        layer.load_state_dict(saved)
        layer.zero_grad()
        xg = x.clone().requires_grad_()
        with averis.use_backend(name):
            y = layer(xg)
            y.square().sum().backward()
        outs[name] = (y.detach(), xg.grad, layer[0].weight.grad.clone())
        assert len(kernel_calls) == (0 if name == "torch" else 6)
    assert all(torch.equal(a, b) for a, b in zip(*outs.values()))


def test_compiled_code_follows_the_switch(kernel_calls):
    """Dynamo reads the switch when it traces a routed call and guards on it: a switch recompiles."""
    x = torch.randn(32, 64).to(DEV)
    f = torch.compile(lambda t: averis.fake_quantize(t * 2, "nvfp4", check_finite=False), backend="aot_eager",
                      fullgraph=True)
    with averis.use_backend("torch"):
        ref = f(x)
    assert kernel_calls == []
    with averis.use_backend("triton"):
        tri = f(x)
    assert kernel_calls and torch.equal(ref, tri)
