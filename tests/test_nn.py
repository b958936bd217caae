"""QuantLinear: identity-quantizer equivalence, hand-written references, axes, RNG, conversion."""

import copy
import warnings

import pytest
import torch
from torch import nn

import averis
from averis import fake_quantize, recipes
from averis.nn import QuantLinear, functional, get_report
from averis.qgemm import operand
from averis.transforms import hadamard16, random_signs

NAMES = recipes.list()


pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(recipe, k=64, n=96, seed=0):
    torch.manual_seed(seed)
    ref = nn.Linear(k, n)
    q = averis.quantize_model(nn.Sequential(copy.deepcopy(ref)), recipe)
    return ref, q


def _inputs(shape, seed=1, mean=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g) + mean * torch.linspace(-1, 2, shape[-1])
    return x


def _run(layer, x, dy):
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(dy)
    lin = layer if isinstance(layer, nn.Linear) else layer[0]
    return y, x.grad, lin.weight.grad, lin.bias.grad


@pytest.mark.parametrize("name", NAMES)
def test_identity_quantizers_reproduce_nn_linear(name, monkeypatch):
    """With every quantizer the identity, transforms must cancel exactly: mean terms, Hadamard inverse,
    low-rank split (40 tokens: not a multiple of 16, so the token padding is exercised too)."""
    calls = []
    for fn in ("mean_split", "decide_split", "hadamard16", "lowrank_split"):
        real = getattr(operand, fn)
        monkeypatch.setattr(operand, fn, lambda *a, _r=real, _n=fn, **k: calls.append(_n) or _r(*a, **k))
    recipe = recipes.get(name).with_identity_quantizers()
    ref, q = _pair(recipe)
    x, dy = _inputs((2, 20, 64)), _inputs((2, 20, 96), seed=2, mean=0.5)
    for got, want in zip(_run(q, x, dy), _run(ref, x, dy)):
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5)
    layer_recipe = recipe.for_layer("0")  # an nn.Sequential's layer sits at site "other"
    adaptive = layer_recipe.mean_threshold is not None
    expected = {t for n in recipes.OPERANDS for t in _transform_fns(layer_recipe.operand(n).transform, adaptive)}
    assert set(calls) == expected


def _transform_fns(transform, adaptive=False):
    mean = "decide_split" if adaptive else "mean_split"  # the adaptive split takes its mean from its decision
    return {"none": [], "mean": [mean], "hadamard": ["hadamard16"],
            "mean_hadamard": [mean, "hadamard16"], "lowrank": ["lowrank_split"]}[transform]


@pytest.mark.parametrize("autocast", [False, True])
def test_bf16_recipe_is_bit_identical_to_nn_linear(autocast):
    ref, q = _pair("bf16")
    x, dy = _inputs((3, 16, 64)), _inputs((3, 16, 96), seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        g = dy.bfloat16() if autocast else dy
        got, want = _run(q, x, g), _run(ref, x, g)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def _nearest(recipe):
    """The recipe with nearest rounding everywhere, so a hand-written reference is deterministic."""
    r = recipes.get(recipe)
    return r.replace(**{n: r.operand(n).__class__(**{**r.operand(n).__dict__, "rounding": "nearest"})
                        for n in recipes.OPERANDS})


def _fq(t, axis, **kw):
    return fake_quantize(t, "nvfp4", axis=axis, check_finite=False, **kw)


def _close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_vanilla_nvfp4_matches_hand_written_reference():
    ref, q = _pair(_nearest("nvfp4"))
    x, dy = _inputs((32, 64)), _inputs((32, 96), seed=2)
    y, dx, dw, _ = _run(q, x, dy)
    w = ref.weight.detach()
    _close(y, _fq(x, 1) @ _fq(w, 1).T + ref.bias)
    _close(dx, _fq(dy, 1) @ _fq(w, 0))                   # dgrad: reduction over out-features
    _close(dw, _fq(dy, 0).T @ _fq(x, 0))                 # wgrad: reduction over tokens


def test_averis_matches_hand_written_four_term_reference():
    ref, q = _pair(_nearest("averis"))
    x, dy = _inputs((48, 64)), _inputs((48, 96), seed=2, mean=2.0)
    y, dx, dw, _ = _run(q, x, dy)
    w = ref.weight.detach()
    mu_x, mu_d = x.mean(0, keepdim=True), dy.mean(0, keepdim=True)
    xr, dr = x - mu_x, dy - mu_d
    bf = lambda t: t.bfloat16().float()  # noqa: E731 - the mean is kept in BF16
    _close(y, _fq(xr, 1) @ _fq(w, 1).T + bf(mu_x) @ _fq(w, 1).T + ref.bias)
    _close(dx, _fq(dr, 1) @ _fq(w, 0) + bf(mu_d) @ _fq(w, 0))
    q_dr, q_xr = _fq(dr, 0), _fq(xr, 0)
    four = (q_dr.T @ q_xr + bf(mu_d).T @ q_xr.sum(0, keepdim=True) + q_dr.sum(0, keepdim=True).T @ bf(mu_x)
            + 48 * bf(mu_d).T @ bf(mu_x))
    _close(dw, four)
    # the cross terms vanish in exact arithmetic but not after quantization: they matter
    assert (four - (q_dr.T @ q_xr + 48 * bf(mu_d).T @ bf(mu_x))).abs().max() > 1e-4


def test_nvidia_matches_hand_written_reference():
    recipe = _nearest("nvidia")
    ref, q = _pair(recipe)
    x, dy = _inputs((32, 64)), _inputs((32, 96), seed=2)
    y, dx, dw, _ = _run(q, x, dy)
    w = ref.weight.detach()
    tiles = dict(block_shape=(16, 16))
    assert torch.equal(_fq(w, 1, **tiles), _fq(w, 0, **tiles)), "16x16 tiles: fprop and dgrad copies agree"
    _close(y, _fq(x, 1) @ _fq(w, 1, **tiles).T + ref.bias)
    _close(dx, _fq(dy, 1) @ _fq(w, 0, **tiles))
    s = random_signs(recipe.seed)
    _close(dw, _fq(hadamard16(dy, s, 0), 0).T @ _fq(hadamard16(x, s, 0), 0))


def test_each_gemm_quantizes_along_its_reduction_axis(monkeypatch):
    seen = []
    def spy_on(real):
        def spy(t, fmt, **kw):
            seen.append((t.shape[kw["axis"]], kw["rounding"], kw["block_shape"]))
            return real(t, fmt, **kw)

        return spy

    for fn in ("fake_quantize", "fake_quantize_unscaled"):  # tensor scale folded in (default) or kept apart
        monkeypatch.setattr(operand, fn, spy_on(getattr(operand, fn)))
    m, k, n = 32, 64, 96
    _, q = _pair("nvidia", k=k, n=n)
    _run(q, _inputs((m, k)), _inputs((m, n), seed=2))
    assert seen == [(k, "nearest", None), (k, "nearest", (16, 16)),       # fprop: X, W along in-features
                    (m, "nearest", None),                                 # wgrad's X along tokens, made in fprop
                    (n, "stochastic", None), (n, "nearest", (16, 16)),    # dgrad: dY, W along out-features
                    (m, "stochastic", None)]                              # wgrad: dY along tokens


@pytest.mark.parametrize("name", [n for n in NAMES if n != "bf16"])
def test_quantized_recipes_are_close_but_not_exact(name):
    ref, q = _pair(name)
    x, dy = _inputs((64, 64)), _inputs((64, 96), seed=2)
    for got, want in zip(_run(q, x, dy)[:3], _run(ref, x, dy)[:3]):
        err = ((got - want).norm() / want.norm()).item()
        assert 1e-4 < err < 0.4, err


def test_averis_beats_vanilla_on_activations_with_a_mean():
    errs = {}
    for name in ("nvfp4", "averis"):
        ref, q = _pair(name)
        x = _inputs((64, 64), mean=20.0)
        y, want = q(x), ref(x)
        want_c, y_c = want - want.mean(0), y - y.mean(0)
        errs[name] = ((y_c - want_c).norm() / want_c.norm()).item()
    assert errs["averis"] < 0.5 * errs["nvfp4"], errs


def test_autocast_runs_gemms_in_bf16_and_returns_master_dtype_grads():
    ref, q = _pair("averis")
    x = _inputs((2, 16, 64)).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = q(x)
    assert y.dtype == torch.bfloat16
    y.float().pow(2).mean().backward()
    assert x.grad.dtype == torch.float32 and q[0].weight.grad.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = ref(x)
    assert ((y.float() - want.float()).norm() / want.float().norm()) < 0.2


def test_stochastic_rounding_is_reproducible_and_resumable():
    x, dy = _inputs((32, 64)), _inputs((32, 96), seed=2)
    _, a = _pair("nvfp4")
    _, b = _pair("nvfp4")
    first = _run(a, x, dy)[2].clone()
    assert torch.equal(first, _run(b, x, dy)[2].clone()), "same recipe seed: same noise"
    saved = _counters(a)
    a.zero_grad()
    second = _run(a, x, dy)[2].clone()
    assert not torch.equal(first, second), "the counter advances: fresh noise each step"
    a.load_state_dict(saved, strict=False)
    a.zero_grad()
    assert torch.equal(_run(a, x, dy)[2], second), "restored counter: identical step"
    _, c = _pair(recipes.get("nvfp4").replace(seed=1))
    assert not torch.equal(first, _run(c, x, dy)[2])


def test_layers_get_distinct_generators():
    torch.manual_seed(0)
    lin = nn.Linear(64, 64)
    model = averis.quantize_model(nn.ModuleList([copy.deepcopy(lin), copy.deepcopy(lin)]), "nvfp4")
    x, dy = _inputs((32, 64)), _inputs((32, 64), seed=2)
    grads = [_run(m, x, dy)[2] for m in model]
    assert not torch.equal(grads[0], grads[1])
    assert model[0].averis_rng[0] != model[1].averis_rng[0], "each layer has its own seed"


def _counters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.endswith("averis_rng")}


def test_deepcopy_keeps_an_independent_working_copy():
    _, a = _pair("nvfp4")
    x, dy = _inputs((32, 64)), _inputs((32, 96), seed=2)
    b = copy.deepcopy(a)
    assert b[0].averis_state is not a[0].averis_state
    assert torch.equal(_run(a, x, dy)[2], _run(b, x, dy)[2])


def test_non_finite_input_propagates_nan():
    _, q = _pair("averis")
    x = _inputs((16, 64))
    x[3, 5] = float("inf")
    assert torch.isnan(q(x)).any()


# --------------------------------------------------------------------------- quantize_model
class Block(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.q_proj = nn.Linear(d, d, bias=False)
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)

    def forward(self, x):
        return x + self.down(torch.relu(self.up(self.q_proj(x))))


class Toy(nn.Module):
    def __init__(self, n_blocks=4, d=64, vocab=64):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d) for _ in range(n_blocks))
        self.odd = nn.Linear(d, 40)                      # 40 out-features: not whole NVFP4 blocks
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for block in self.layers:
            h = block(h)
        return self.lm_head(h) + self.odd(h).sum(-1, keepdim=True)


def test_quantize_model_swaps_and_reports(capsys):
    torch.manual_seed(0)
    model = Toy()
    keys = list(model.state_dict())
    with pytest.warns(UserWarning, match=r"1 layers kept.*odd \(dgrad_dy: 40 is not a multiple of 16\)"):
        out = averis.quantize_model(model, "averis", report=True)
    assert out is model
    new = list(model.state_dict())
    assert [k for k in new if not k.endswith(".averis_rng")] == keys, "parameter and buffer names unchanged"
    assert sorted(k for k in new if k.endswith(".averis_rng")) == sorted(f"{n}.averis_rng" for n, _ in
                                                                         get_report(model).swapped)
    assert isinstance(model.layers[0].up, QuantLinear) and type(model.lm_head) is nn.Linear
    rep = get_report(model)
    assert len(rep.swapped) == 12 and dict(rep.skipped).keys() == {"odd", "lm_head"}
    assert "high_precision pattern 'lm_head'" in dict(rep.skipped)["lm_head"]
    assert "12 layers quantized" in capsys.readouterr().out


def test_quantize_twice_is_a_clear_error_and_dequantize_undoes_it():
    model = Toy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        averis.quantize_model(model, "nvfp4")
        with pytest.raises(ValueError, match="already quantized.*dequantize_model"):
            averis.quantize_model(model, "averis")
        averis.dequantize_model(model)
        assert all(type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear))
        assert not hasattr(model.layers[0].up, "averis_state")
        averis.quantize_model(model, recipes.get("averis"))
    assert isinstance(model.layers[1].down, QuantLinear)


def test_keep_blocks_in_high_precision():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = averis.quantize_model(Toy(n_blocks=8), "nvidia")   # round(0.15 * 8) = 1 last block
        skipped = dict(get_report(model).skipped)
        kept = {n for n in skipped if n.startswith("layers.")}
        assert kept == {"layers.7.q_proj", "layers.7.up", "layers.7.down"}
        r = recipes.get("averis").replace(keep_first_blocks=1, keep_last_blocks=2, high_precision=())
        model = averis.quantize_model(Toy(n_blocks=8), r)
        kept = {n.split(".")[1] for n, _ in get_report(model).skipped if n.startswith("layers.")}
        assert kept == {"0", "6", "7"} and "lm_head" in dict(get_report(model).swapped)


def test_linear_subclasses_are_skipped_with_a_reason():
    mha = nn.MultiheadAttention(64, 4)
    averis.quantize_model(mha, "nvfp4")
    assert "MultiheadAttention" in dict(get_report(mha).skipped)["out_proj"]


def test_state_dict_round_trip_and_optimizer_keeps_parameters():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = Toy()
        params = list(src.parameters())
        averis.quantize_model(src, "averis")
        assert all(a is b for a, b in zip(params, src.parameters()))
        dst = averis.quantize_model(Toy(), "averis")
    dst.load_state_dict(src.state_dict())
    ids = torch.randint(0, 64, (2, 16))
    assert torch.equal(src(ids), dst(ids))
    plain = Toy()
    with pytest.raises(RuntimeError, match="averis_rng"):
        plain.load_state_dict(src.state_dict())   # the quantizers' counters have no place in the plain model
    plain.load_state_dict(averis.nn.plain_state_dict(src.state_dict()))  # without them it loads
    assert torch.equal(plain.lm_head.weight, src.lm_head.weight)


def test_quantization_disabled_gives_high_precision_outputs():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Toy()
        plain = copy.deepcopy(model)
        averis.quantize_model(model, "averis")
    ids = torch.randint(0, 64, (2, 16))
    with averis.quantization_disabled(model):
        assert torch.equal(model(ids), plain(ids))
    assert not torch.equal(model(ids), plain(ids))


def test_gpt2_conv1d_is_quantized_through_its_transposed_weight():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=32)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    plain = copy.deepcopy(model)
    keys = list(model.state_dict())
    averis.quantize_model(model, recipes.get("averis").with_identity_quantizers())
    assert len(get_report(model).swapped) == 8 and list(averis.nn.plain_state_dict(model.state_dict())) == keys
    ids = torch.randint(0, 100, (2, 16))
    torch.testing.assert_close(model(ids).logits, plain(ids).logits, rtol=1e-4, atol=1e-4)
    model(ids).logits.sum().backward()
    plain(ids).logits.sum().backward()
    torch.testing.assert_close(model.transformer.h[0].mlp.c_fc.weight.grad,
                               plain.transformer.h[0].mlp.c_fc.weight.grad, rtol=1e-4, atol=1e-4)
    averis.dequantize_model(model)
    assert type(model.transformer.h[0].mlp.c_fc) is type(plain.transformer.h[0].mlp.c_fc)


def test_recipe_argument_is_checked():
    with pytest.raises(ValueError, match="unknown recipe"):
        averis.quantize_model(nn.Linear(16, 16), "fp3")
    with pytest.raises(TypeError, match="nn.Module"):
        averis.quantize_model("model", "averis")


def test_the_rng_counter_is_a_buffer_restored_in_place_and_evaluation_leaves_it():
    """The SR state is the ``averis_rng`` buffer: in the state_dict, restored in place (a CUDA graph holds its
    address), advanced by each training forward and left alone by evaluation under no_grad."""
    _, a = _pair("nvfp4")
    x, dy = _inputs((32, 64)), _inputs((32, 96), seed=2)
    buf = a[0].averis_rng
    fresh = _counters(a)
    assert list(fresh) == ["0.averis_rng"] and fresh["0.averis_rng"][1] == 0
    first = _run(a, x, dy)[2].clone()
    assert buf[1] == 1
    with torch.no_grad():
        a(x)
    assert buf[1] == 1, "an evaluation forward does not advance the counter"
    a.zero_grad()
    _run(a, x, dy)
    a.load_state_dict(fresh, strict=False)
    assert a[0].averis_rng is buf and buf[1] == 0
    a.zero_grad()
    assert torch.equal(_run(a, x, dy)[2], first)
    plain = {k: v for k, v in a.state_dict().items() if not k.endswith("averis_rng")}
    a.load_state_dict(plain)  # a state_dict from before quantize_model loads and keeps the counter
    assert buf[1] == 1
    averis.dequantize_model(a)
    assert "0.averis_rng" not in a.state_dict()


def test_backward_keeps_wgrads_quantized_x_in_the_compute_dtype_not_x(monkeypatch):
    """Under autocast X arrives in FP32; the layer keeps wgrad's quantized X^T in BF16 (half the memory)."""
    _, q = _pair("averis")
    x = _inputs((32, 64)).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = q(x)
    saved = _quant_node(y.grad_fn).saved_tensors
    assert not any(t.dtype == torch.float32 and t.shape in ((32, 64), (64, 32)) for t in saved), "no FP32 X"
    assert any(t.dtype == torch.bfloat16 and t.shape == (64, 32) for t in saved), "wgrad's X^T operand"
    made = []
    real = functional.wgrad_x_operand
    monkeypatch.setattr(functional, "wgrad_x_operand", lambda *a, **k: made.append(1) or real(*a, **k))
    with torch.no_grad():
        q(x)
    assert made == [], "no gradient wanted: the wgrad operand is not made"
    q(x.detach()).sum().backward()
    assert made == [1]


def _quant_node(node):
    """The QuantLinearFunction node behind ``node`` in the autograd graph (below the bias add / reshape)."""
    while "QuantLinearFunction" not in type(node).__name__:
        node = next(n for n, _ in node.next_functions if n is not None)
    return node
