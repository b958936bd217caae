"""Hooks, analyze_model, fidelity and the training callback on tiny models."""

import pytest
import torch
from torch import nn

from averis import recipes
from averis.analysis import LinearCollector, analyze_model, collect, linear_layers, write_evolution, write_report
from averis.analysis.analyze import layer_block, layer_site
from averis.analysis.fidelity import (
    LayerIO,
    capture_layer_io,
    forward_anchor,
    forward_only_recipe,
    layer_fidelity,
    recipe_fidelity,
    summarize,
)
from averis.analysis.report import finite_json
from averis.analysis.text import token_batches
from averis.models.qwen3 import build_qwen3
from averis.nn import LayerState, QuantLinear, quantized_layers

VOCAB = 97


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_qwen3("tiny", vocab_size=VOCAB, n_layers=2, hidden_size=64, head_dim=16, intermediate_size=128,
                       max_seq_len=64)


def batches(n=2, rows=2, seq=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (rows, seq), generator=g) for _ in range(n)]


# --------------------------------------------------------------------------- hooks
def test_linear_layers_errors():
    with pytest.raises(ValueError, match="no linear layers"):
        linear_layers(nn.Sequential(nn.ReLU(), nn.LayerNorm(4)))
    with pytest.raises(ValueError, match="no linear layer name matches"):
        linear_layers(tiny_model(), include="nothing_like_this")
    with pytest.raises(TypeError, match="nn.Module"):
        linear_layers("model")


def test_shared_inputs_are_stored_once_and_named_as_aliases():
    results, _ = collect(tiny_model(), batches())
    by_name = {c.name: c for c in results}
    q = by_name["model.layers.0.self_attn.q_proj"]
    assert q.aliases == ["model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj"]
    assert "model.layers.0.self_attn.k_proj" not in by_name
    assert by_name["model.layers.0.mlp.gate_proj"].aliases == ["model.layers.0.mlp.up_proj"]
    assert q.matrix.shape == (2 * 2 * 32, 64) and q.tokens_seen == 128
    assert by_name["model.layers.1.mlp.down_proj"].matrix.shape == (128, 128)


def test_sample_is_bounded_and_the_same_tokens_in_every_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    with LinearCollector(model, max_tokens=10) as c:
        for _ in range(3):
            c.new_batch()
            model(torch.randn(7, 8))
    first, second = c.results()
    assert first.matrix.shape == (10, 8) and first.tokens_seen == 21
    with torch.no_grad():
        expected = model[0](first.matrix)  # the second layer's input, token by token
    assert torch.allclose(second.matrix, expected, atol=1e-6)


def test_output_gradients_are_collected_and_parameter_grads_left_alone():
    model = tiny_model()
    sentinel = torch.full_like(model.lm_head.weight, 7.0)
    model.lm_head.weight.grad = sentinel
    results, _ = collect(model, batches(), grads=True)
    grads = {c.name: c for c in results if c.kind == "grad_output"}
    assert grads["model.layers.0.self_attn.k_proj"].matrix.shape == (128, 32)  # 2 kv heads of 16
    assert grads["model.layers.1.mlp.down_proj"].matrix.abs().sum() > 0
    assert model.lm_head.weight.grad is sentinel
    assert all(p.grad is None for n, p in model.named_parameters() if "lm_head" not in n and "embed" not in n)


def test_wide_layers_are_skipped_not_collected():
    results, skipped = collect(tiny_model(), batches(), grads=True, max_channels=90)
    assert "lm_head:grad_output" in skipped
    assert all(c.matrix.shape[1] <= 90 for c in results)


# --------------------------------------------------------------------------- analyze_model
def test_analyze_model_records_every_site():
    result = analyze_model(tiny_model(), batches(), formats=("nvfp4",), device="cpu")
    records = result["layers"]
    sites = {r["site"] for r in records if r["block"] is not None}
    assert sites == {"self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj"}
    assert {r["block"] for r in records} == {0, 1, None}  # lm_head sits outside the blocks
    assert all(0 <= r["cos_mean_v1"] <= 1 + 1e-9 for r in records)
    assert set(records[0]["quant"]) == {"nvfp4"}


def test_reports_and_plots(tmp_path):
    result = analyze_model(tiny_model(), batches(n=1), formats=("nvfp4",), device="cpu")
    write_report(result, tmp_path / "one", {"model": "tiny"})
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == ["layers.csv", "outliers.png", "profile.png", "quant_error.png", "report.md", "stats.json"]
    report = (tmp_path / "one" / "report.md").read_text()
    assert "### MLP input (gate/up)" in report and "![profile.png](profile.png)" in report
    write_evolution([("early", result), ("late", result)], tmp_path / "evo")
    assert (tmp_path / "evo" / "evolution.png").is_file()


def test_analyze_model_too_few_tokens():
    with pytest.raises(ValueError, match="too few tokens"):
        analyze_model(tiny_model(), [torch.randint(0, VOCAB, (1, 4))], quantize=False)


def test_layer_names():
    assert layer_block("model.layers.12.mlp.down_proj") == 12
    assert layer_site("model.layers.12.mlp.down_proj") == "mlp.down_proj"
    assert layer_block("lm_head") is None and layer_site("lm_head") == "lm_head"


def test_token_batches():
    ids = list(range(100))
    out = token_batches(ids, 64, 16, batch_size=3)
    assert [b.shape for b in out] == [(3, 16), (1, 16)]
    with pytest.raises(ValueError, match="too few tokens"):
        token_batches(ids, 128, 16)
    with pytest.raises(ValueError, match="multiple"):
        token_batches(ids, 40, 16)


# --------------------------------------------------------------------------- fidelity
def test_bf16_recipe_is_exact_and_nvfp4_is_not():
    model = tiny_model()
    result = recipe_fidelity(model, batches(n=1), ["bf16", "nvfp4"])
    s = summarize(result)
    assert s["bf16"]["loss_increase_pct"] == 0.0
    assert max(s["bf16"][m] for m in ("y", "dx", "dw")) < 1e-5
    for m in ("y", "dx", "dw"):
        assert 0.02 < s["nvfp4"][m] < 0.5
    assert not quantized_layers(model)  # the model is given back unquantized
    assert all(p.grad is None for p in model.parameters())


def test_mean_split_cuts_the_centred_output_error_of_a_biased_input():
    g = torch.Generator().manual_seed(0)
    x = 20.0 * torch.rand(256, generator=g) + torch.randn(2, 128, 256, generator=g)
    d = 1e-3 * torch.randn(2, 128, 64, generator=g)
    io = LayerIO([x], [d])
    errors = {}
    for name in ("nvfp4", "averis"):
        torch.manual_seed(0)
        layer = nn.Linear(256, 64, bias=False)
        QuantLinear.from_linear(layer, LayerState(recipes.get(name), 0, "layer"))
        errors[name] = layer_fidelity(layer, io)
    assert errors["averis"]["y_centred"] < 0.5 * errors["nvfp4"]["y_centred"]
    assert errors["averis"]["y"] < errors["nvfp4"]["y"]


def test_forward_only_recipes_quantize_only_the_forward():
    for mode, mean_format in (("nvfp4", "bf16"), ("nvfp4_mean_fp4", "fp4"), ("nvfp4_mean_bf16", "bf16")):
        r = forward_only_recipe(mode)
        assert r.fprop_x.quantized and r.fprop_w.quantized
        assert not any(r.operand(n).quantized for n in ("dgrad_dy", "dgrad_w", "wgrad_dy", "wgrad_x"))
        assert r.fprop_x.has_mean == (mode != "nvfp4") and r.mean_format == mean_format
    with pytest.raises(ValueError, match="unknown forward mode"):
        forward_only_recipe("fp8")


def test_forward_anchor_restores_the_model():
    model = tiny_model()
    out = forward_anchor(model, batches(n=1))
    assert set(out["modes"]) == {"nvfp4", "nvfp4_mean_fp4", "nvfp4_mean_bf16"}
    assert all(r["loss"] != out["fp_loss"] for r in out["modes"].values())
    assert not quantized_layers(model)


def test_capture_layer_io_shapes():
    io = capture_layer_io(tiny_model(), batches(n=2), exclude="lm_head")
    assert "lm_head" not in io
    down = io["model.layers.0.mlp.down_proj"]
    assert len(down.inputs) == len(down.grads) == 2
    assert down.inputs[0].shape == (2, 32, 128) and down.grads[0].shape == (2, 32, 64)


class _SparseLM(nn.Module):
    """A toy LM whose second linear layer sees only the first token of each row (like an MoE expert)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.dense = nn.Linear(32, 32)
        self.first_only = nn.Linear(32, 32)
        self.head = nn.Linear(32, VOCAB)

    def forward(self, ids):
        h = self.dense(self.embed(ids))
        h = torch.cat([self.first_only(h[:, :1]), h[:, 1:]], dim=1)
        return self.head(h)


def test_layers_that_saw_too_few_tokens_are_skipped_not_fatal():
    result = analyze_model(_SparseLM(), batches(), quantize=False, min_tokens=16)
    names = {r["name"] for r in result["layers"]}
    assert "dense" in names and "first_only" not in names
    assert "first_only:input" in result["skipped"]


def test_non_finite_floats_become_strings_for_strict_json():
    out = finite_json({"a": [float("inf"), 1.0], "b": {"c": float("nan")}})
    assert out == {"a": ["inf", 1.0], "b": {"c": "nan"}}
