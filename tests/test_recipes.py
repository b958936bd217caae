"""Recipe specs, the named recipes and recipe files."""

import dataclasses

import pytest

from averis import recipes
from averis.recipes import OperandSpec, Recipe

NAMES = ["bf16", "nvfp4", "nvidia", "nvidia_notail", "metis", "averis", "averis_tail", "averis_rht", "averis_act",
         "averis_grad", "averis_attn_in", "averis_o_proj", "averis_mlp_in", "averis_down_proj", "averis_norm_in",
         "averis_adaptive", "mxfp4", "mxfp4_averis"]


def test_builtin_names():
    assert recipes.list() == NAMES
    for name in NAMES:
        assert recipes.get(name).name == name
    assert recipes.get(recipes.get("averis")) is recipes.get("averis")


def test_unknown_name_says_what_exists():
    with pytest.raises(ValueError, match="unknown recipe 'fp4'.*averis"):
        recipes.get("fp4")
    with pytest.raises(TypeError):
        recipes.get(3)


def test_recipes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipes.get("averis").seed = 3


def test_builtin_contents():
    nv = recipes.get("nvidia")
    assert nv.fprop_w.block_shape == (16, 16) and nv.dgrad_w.block_shape == (16, 16)
    assert nv.fprop_x.block_shape is None and nv.wgrad_x.transform == nv.wgrad_dy.transform == "hadamard"
    assert nv.fprop_x.transform == "none" and nv.keep_last_fraction == 0.15
    assert nv.dgrad_dy.rounding == nv.wgrad_dy.rounding == "stochastic" and nv.fprop_x.rounding == "nearest"
    av = recipes.get("averis")
    assert all(av.operand(n).transform == "mean" for n in ("fprop_x", "dgrad_dy", "wgrad_dy", "wgrad_x"))
    assert av.fprop_w.transform == "none" and av.mean_format == "bf16"
    assert recipes.get("averis_rht").wgrad_x.transform == "mean_hadamard"
    assert recipes.get("metis").fprop_x.transform == "lowrank" and recipes.get("metis").lowrank_rank == 16
    assert recipes.get("mxfp4").fprop_x.block == 32
    assert not recipes.get("bf16").quantizes and recipes.get("nvfp4").quantizes
    assert "lm_head" in recipes.get("nvfp4").high_precision


@pytest.mark.parametrize("child, parent, tail", [("nvidia_notail", "nvidia", 0.0), ("averis_tail", "averis", 0.15)])
def test_tail_recipes_differ_from_their_parents_only_in_the_tail(child, parent, tail):
    """averis_tail / nvidia_notail separate the quantization method from NVIDIA's BF16 last blocks."""
    a, b = recipes.get(child).to_dict(), recipes.get(parent).to_dict()
    assert a.pop("name") == child and b.pop("name") == parent
    assert a.pop("keep_last_fraction") == tail and b.pop("keep_last_fraction") == 0.15 - tail
    a.pop("description"), b.pop("description")
    assert a == b
    assert recipes.get("averis_tail").keep_last_fraction == recipes.get("nvidia").keep_last_fraction


def test_tail_recipes_keep_the_same_blocks_as_nvidia():
    import warnings

    from torch import nn

    import averis
    from averis.nn import get_report

    class Blocks(nn.Module):  # 20 blocks: round(0.15 * 20) = 3 last blocks kept
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.ModuleDict({"up": nn.Linear(32, 64), "down": nn.Linear(64, 32)})
                                        for _ in range(20))

    def kept(name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = averis.quantize_model(Blocks(), name)
        return sorted({int(n.split(".")[1]) for n, _ in get_report(model).skipped if n.startswith("layers.")})

    assert kept("nvidia") == kept("averis_tail") == [17, 18, 19]
    assert kept("nvidia_notail") == kept("averis") == []


@pytest.mark.parametrize("bad, match", [
    (dict(format="fp8"), "format='fp8'.*nvfp4"),
    (dict(rounding="up"), "rounding='up'"),
    (dict(transform="pca"), "transform='pca'"),
    (dict(format="mxfp4", block_shape=(16,)), "block_shape"),
    (dict(format="nvfp4", scale_rule="ceil"), "scale_rule"),
    (dict(format="none", transform="mean"), "format 'identity'"),
])
def test_operand_spec_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        OperandSpec(**bad)


def test_recipe_validation():
    h = OperandSpec(transform="hadamard")
    with pytest.raises(ValueError, match="both operands of the wgrad GEMM"):
        Recipe(wgrad_x=h, wgrad_dy=OperandSpec())
    with pytest.raises(ValueError, match="weights are not mean-split"):
        Recipe(fprop_w=OperandSpec(transform="mean"))
    with pytest.raises(ValueError, match="mean_format='fp16'"):
        Recipe(mean_format="fp16")
    with pytest.raises(ValueError, match="keep_last_fraction"):
        Recipe(keep_last_fraction=1.5)
    with pytest.raises(TypeError, match="OperandSpec"):
        Recipe(fprop_x="nvfp4")


def test_identity_hook_replaces_every_quantizer():
    ident = recipes.get("nvidia").with_identity_quantizers()
    for n in recipes.OPERANDS:
        assert ident.operand(n).format == "identity"
        assert ident.operand(n).transform == recipes.get("nvidia").operand(n).transform
    assert ident.mean_format == "fp32"
    assert recipes.get("bf16").with_identity_quantizers().fprop_x.format == "none"


def test_load_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: nvfp4\nactivations: {transform: mean}\ngradients: {transform: mean}\n"
                    "wgrad_x: {transform: mean_hadamard}\nwgrad_dy: {transform: mean_hadamard}\n"
                    "mean_format: fp8\nhigh_precision: [lm_head, 'model.layers.0.*']\nseed: 4\n")
    r = recipes.load(path)
    assert r.name == "mine" and r.mean_format == "fp8" and r.seed == 4
    assert r.fprop_x.transform == "mean" and r.wgrad_x.transform == "mean_hadamard"
    assert r.dgrad_dy.rounding == "stochastic"  # merged onto the base, not replaced
    assert r.high_precision == ("lm_head", "model.layers.0.*")


def test_load_toml(tmp_path):
    path = tmp_path / "mx.toml"
    path.write_text('name = "mx"\nbase = "bf16"\n[weights]\nformat = "mxfp4"\nscale_rule = "ceil"\n'
                    '[activations]\nformat = "mxfp4"\n')
    r = recipes.load(path)
    assert r.name == "mx" and r.fprop_w.format == "mxfp4" and r.fprop_w.scale_rule == "ceil"
    assert r.wgrad_x.format == "mxfp4" and r.dgrad_dy.format == "none"


@pytest.mark.parametrize("text, match", [
    ("colour: red\n", "unknown recipe field 'colour'.*allowed fields are.*mean_format"),
    ("weights: {fromat: nvfp4}\n", "weights.fromat.*allowed fields are format"),
    ("activations: {format: int4}\n", "activations: format='int4'.*'nvfp4'"),
    ("base: fp8\n", "base='fp8'.*averis"),
    ("seed: abc\n", "seed must be an integer"),
    ("mean_all_reduce: 3\n", "true or false"),
    ("- 1\n", "mapping"),
])
def test_load_rejects_bad_files_clearly(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        recipes.load(path)


def test_load_needs_a_known_suffix(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"\.yaml, \.yml or \.toml"):
        recipes.load(path)
    with pytest.raises(ValueError, match="does not exist"):
        recipes.load(tmp_path / "missing.yaml")
