"""save_pretrained + averis.load_pretrained: the recipe travels in config.json; the reload is quantized alike."""

from __future__ import annotations

import json

import pytest
import torch

import averis
from averis import recipes
from averis.nn import get_report, is_quantized
from averis.nn.pretrained import RECIPE_KEY, saved_recipe

transformers = pytest.importorskip("transformers")


def tiny(kind: str = "llama", seed: int = 0):
    """A randomly initialised tiny causal LM (no download): 2 blocks, hidden 64, MLP 128."""
    sizes = dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, max_position_embeddings=64)
    config = transformers.LlamaConfig(**sizes) if kind == "llama" else transformers.Qwen2Config(**sizes)
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def batch():
    return torch.randint(0, 96, (2, 32), generator=torch.Generator().manual_seed(1))


def loss_and_logits(model):
    ids = batch()
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    return out.loss, out.logits


def quantized_names(model):
    return [name for name, m in model.named_modules() if is_quantized(m)]


@pytest.mark.parametrize("kind,recipe", [("llama", "nvfp4"), ("llama", "averis"), ("qwen2", "averis")])
def test_round_trip_gives_the_same_fp4_loss(tmp_path, one_thread, kind, recipe):
    model = averis.quantize_model(tiny(kind), recipe)
    loss, logits = loss_and_logits(model)
    with averis.quantization_disabled(model):
        assert not torch.equal(loss_and_logits(model)[0], loss)  # the recipe really changes the forward
    model.save_pretrained(tmp_path)

    saved = json.loads((tmp_path / "config.json").read_text())[RECIPE_KEY]
    assert saved["recipe"]["name"] == recipe and saved["quantized"] == quantized_names(model)
    plain, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    # every weight loads into plain transformers; the only extra entries are the quantizers' SR counters
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["error_msgs"], info
    assert info["unexpected_keys"] == {f"{n}.averis_rng" for n in quantized_names(model)}
    assert not quantized_names(plain)  # plain transformers: nn.Linear, the recipe only in the config

    loaded = averis.load_pretrained(tmp_path)
    assert quantized_names(loaded) == quantized_names(model)
    assert get_report(loaded).recipe == recipe
    assert loaded.model.layers[0].mlp.up_proj.averis_state.recipe == recipes.get(recipe)
    loss2, logits2 = loss_and_logits(loaded)
    assert torch.equal(loss2, loss) and torch.equal(logits2, logits)  # bit for bit


def test_a_custom_recipe_keeps_the_same_layers_in_high_precision(tmp_path, one_thread):
    custom = recipes.from_dict({"name": "mine", "base": "averis", "keep_first_blocks": 1, "seed": 7,
                                "high_precision": ["lm_head", "*.v_proj"], "weights": {"block_shape": [16, 16]}})
    model = averis.quantize_model(tiny(), custom)
    kept = [name for name, _ in get_report(model).skipped]
    assert "model.layers.1.self_attn.v_proj" in kept and "model.layers.0.mlp.up_proj" in kept
    loss, _ = loss_and_logits(model)
    model.save_pretrained(tmp_path)

    loaded = averis.load_pretrained(tmp_path)
    assert [name for name, _ in get_report(loaded).skipped] == kept
    assert loaded.model.layers[1].mlp.up_proj.averis_state.recipe == custom
    assert torch.equal(loss_and_logits(loaded)[0], loss)


@pytest.mark.parametrize("name", recipes.list())
def test_every_builtin_recipe_survives_the_config(name):
    config = transformers.LlamaConfig()
    model = torch.nn.Module()
    model.config = config
    from averis.nn.pretrained import record_recipe

    record_recipe(model, recipes.get(name), ["a", "b"])
    config2 = transformers.LlamaConfig.from_dict(json.loads(config.to_json_string()))
    assert saved_recipe(config2) == (recipes.get(name), ["a", "b"])


def test_dequantize_forgets_the_recipe_and_a_plain_save_needs_one(tmp_path):
    model = averis.dequantize_model(averis.quantize_model(tiny(), "nvfp4"))
    assert not hasattr(model.config, RECIPE_KEY)
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no averis recipe"):
        averis.load_pretrained(tmp_path)
    loaded = averis.load_pretrained(tmp_path, recipe="nvfp4")  # quantize a plain model on loading
    assert quantized_names(loaded) and get_report(loaded).recipe == "nvfp4"


def test_a_record_for_other_layers_is_refused(tmp_path):
    model = tiny()
    averis.quantize_model(model.model, "nvfp4")  # the inner LlamaModel: names lack the "model." prefix
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="other layers"):
        averis.load_pretrained(tmp_path)


def test_models_without_a_transformers_config_are_left_alone():
    model = torch.nn.Sequential(torch.nn.Linear(32, 32))
    model.config = {"not": "a transformers config"}
    averis.quantize_model(model, "nvfp4")
    assert model.config == {"not": "a transformers config"}
