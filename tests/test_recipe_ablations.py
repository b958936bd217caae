"""The Averis ablation recipes (issue 18): which operands and which sites split the mean off.

Each layer of a model quantized with an ablation recipe must run exactly the split the recipe names
(read from the resolved per-layer specs), and a layer with the split off must equal the nvfp4 layer bit for
bit, one with it on the averis layer bit for bit.
"""

import copy

import pytest
import torch
from torch import nn

import averis
from averis import fake_quantize, recipes
from averis.models.qwen3 import Qwen3ForCausalLM, preset
from averis.recipes.sites import SITES, site_of

pytestmark = pytest.mark.usefixtures("one_thread")

X_OPS, DY_OPS = ("fprop_x", "wgrad_x"), ("dgrad_dy", "wgrad_dy")
# (recipe, splits X, splits dY, sites): written out here, not read from the recipes
ABLATIONS = {
    "averis": (True, True, SITES),
    "averis_act": (True, False, SITES),
    "averis_grad": (False, True, SITES),
    "averis_attn_in": (True, True, ("attn_in",)),
    "averis_o_proj": (True, True, ("o_proj",)),
    "averis_mlp_in": (True, True, ("mlp_in",)),
    "averis_down_proj": (True, True, ("down_proj",)),
    "averis_norm_in": (True, False, ("attn_in", "mlp_in")),
    "averis_adaptive": (True, True, SITES),
}
SITE_OF_QWEN3 = {"q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in", "o_proj": "o_proj",
                 "gate_proj": "mlp_in", "up_proj": "mlp_in", "down_proj": "down_proj"}


def test_site_names():
    assert {site_of(f"model.layers.3.{p}.{n}"): n for p, n in [("self_attn", "q_proj"), ("mlp", "down_proj")]} == \
        {"attn_in": "q_proj", "down_proj": "down_proj"}
    assert site_of("transformer.h.0.attn.c_proj") == "o_proj" and site_of("transformer.h.0.mlp.c_proj") == "down_proj"
    assert site_of("transformer.h.0.mlp.c_fc") == "mlp_in" and site_of("score") == "other"
    assert site_of("model.layers.0.self_attn.xq_proj") == "other"  # whole name parts, not substrings


@pytest.mark.parametrize("name", ABLATIONS)
def test_each_layer_runs_the_split_its_recipe_names(name):
    split_x, split_dy, sites = ABLATIONS[name]
    model = averis.quantize_model(Qwen3ForCausalLM(preset("tiny", vocab_size=256)), name)
    layers = averis.nn.quantized_layers(model)
    assert len(layers) == 4 * 7
    for lname, layer in layers.items():
        site = SITE_OF_QWEN3[lname.rsplit(".", 1)[1]]
        spec = layer.averis_state.recipe
        for ops, on in ((X_OPS, split_x), (DY_OPS, split_dy)):
            want = on and site in sites
            assert [spec.operand(o).transform for o in ops] == ["mean" if want else "none"] * 2, (lname, ops)
        # weights and formats untouched: everything but the transforms is averis's
        base = recipes.get("averis")
        for o in recipes.OPERANDS:
            assert spec.operand(o).format == base.operand(o).format
            assert spec.operand(o).rounding == base.operand(o).rounding
    assert averis.nn.get_report(model).recipe == name


def _one_layer(recipe, site_path):
    """A single nn.Linear at the module path ``site_path`` ("self_attn.q_proj"), quantized with ``recipe``."""
    torch.manual_seed(0)
    lin = nn.Linear(64, 96)
    parts = site_path.split(".")
    root = node = nn.ModuleDict()
    for p in parts[:-1]:
        node[p] = nn.ModuleDict()
        node = node[p]
    node[parts[-1]] = lin
    averis.quantize_model(root, recipe)
    return lin


def _run(layer, x, dy):
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(dy)
    return y.detach(), x.grad, layer.weight.grad, layer.bias.grad


def _operands(autocast=False):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 64, generator=g) + 3 * torch.linspace(-1, 2, 64)
    dy = torch.randn(48, 96, generator=g) + 0.5 * torch.linspace(-1, 2, 96)
    return x, (dy.bfloat16() if autocast else dy)


PATHS = {"attn_in": "self_attn.q_proj", "o_proj": "self_attn.o_proj", "mlp_in": "mlp.up_proj",
         "down_proj": "mlp.down_proj", "other": "score"}


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("name", ["averis_attn_in", "averis_o_proj", "averis_mlp_in", "averis_down_proj",
                                  "averis_norm_in"])
@pytest.mark.parametrize("site", SITES)
def test_per_site_layers_equal_nvfp4_or_averis_bit_for_bit(name, site, autocast):
    """Full split at a chosen site equals averis, no split elsewhere equals nvfp4: Y, dX, dW, db (SR included)."""
    split_x, split_dy, sites = ABLATIONS[name]
    on = site in sites
    x, dy = _operands(autocast)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        got = _run(_one_layer(name, PATHS[site]), x, dy)
        ref = {r: _run(_one_layer(r, PATHS[site]), x, dy) for r in ("nvfp4", "averis")}
    # Y and dX come from one source's split each (X, dY); dW needs both
    want_y = ref["averis" if on and split_x else "nvfp4"][0]
    want_dx = ref["averis" if on and split_dy else "nvfp4"][1]
    assert torch.equal(got[0], want_y)
    assert torch.equal(got[1], want_dx)
    if split_x == split_dy or not on:
        assert torch.equal(got[2], ref["averis" if on else "nvfp4"][2])
        assert torch.equal(got[3], ref["averis" if on else "nvfp4"][3])
    assert not torch.equal(ref["nvfp4"][0], ref["averis"][0])  # the comparison can fail


@pytest.mark.parametrize("name", ["averis_act", "averis_grad"])
def test_one_source_split_equals_averis_on_it_and_nvfp4_on_the_other(name):
    """averis_act: Y as averis, dX as nvfp4; averis_grad: the reverse; dW = the hand-written mixed product."""
    x, dy = _operands()
    got = _run(_one_layer(name, "mlp.up_proj"), x, dy)
    ref = {r: _run(_one_layer(r, "mlp.up_proj"), x, dy) for r in ("nvfp4", "averis")}
    split_x = name == "averis_act"
    assert torch.equal(got[0], ref["averis" if split_x else "nvfp4"][0])
    assert torch.equal(got[1], ref["nvfp4" if split_x else "averis"][1])
    if split_x:  # dW with nearest rounding: Q(D)^T Q(X_R) + colsum(Q(D))^T mu_X, the mean in BF16
        lin = _one_layer(recipes.get(name).replace(wgrad_dy=recipes.OperandSpec("nvfp4")), "mlp.up_proj")
        dw = _run(lin, x, dy)[2]
        mu = x.mean(0, keepdim=True)
        q_d = fake_quantize(dy, "nvfp4", axis=0)
        want = q_d.T @ fake_quantize(x - mu, "nvfp4", axis=0) + q_d.sum(0, keepdim=True).T @ mu.bfloat16().float()
        torch.testing.assert_close(dw, want, rtol=1e-5, atol=1e-5)


def test_mean_sites_and_threshold_are_checked_and_load_from_files(tmp_path):
    with pytest.raises(ValueError, match="mean_sites entry='mlp'"):
        recipes.get("averis").replace(mean_sites=("mlp",))
    with pytest.raises(ValueError, match="mean_threshold must be a number in"):
        recipes.get("averis").replace(mean_threshold=0)
    with pytest.raises(ValueError, match="does not combine with mean_all_reduce"):
        recipes.get("averis").replace(mean_threshold=0.8, mean_all_reduce=True)
    path = tmp_path / "mine.yaml"
    path.write_text("base: averis_act\nmean_sites: [attn_in, mlp_in]\n")
    mine = recipes.load(path)
    assert mine.replace(name="averis_norm_in", description="") == recipes.get("averis_norm_in")
    path.write_text("base: averis\nmean_sites: attn_in\n")
    with pytest.raises(ValueError, match="mean_sites must be a list"):
        recipes.load(path)


def test_without_mean_keeps_hadamard():
    r = recipes.get("averis_rht").without_mean()
    assert (r.wgrad_x.transform, r.fprop_x.transform) == ("hadamard", "none")
    assert copy.deepcopy(recipes.get("averis").without_mean()).fprop_x == recipes.get("nvfp4").fprop_x
