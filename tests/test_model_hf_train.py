"""Hugging Face causal LMs in the trainer: from a config, and from a saved folder (weights + tokenizer)."""

from __future__ import annotations

import pytest
import torch

from averis.train import Trainer, load_config

transformers = pytest.importorskip("transformers")

LLAMA = ("model.hf_config={model_type: llama, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, "
         "num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: true}")


def sets(tmp_path, name, *extra):
    return load_config(overrides=[f"out={tmp_path / name}", f"data.cache_dir={tmp_path / 'cache'}",
                                  "data.max_chars=40000", "data.tokenizer=byte", "data.seq_len=32",
                                  "train.batch_size=2", "train.max_steps=3", "train.eval_every=3",
                                  "train.eval_batches=1", "train.progress=false", "train.tensorboard=false",
                                  "model.arch=hf", *extra])


def test_hf_model_from_a_config_trains(tmp_path):
    trainer = Trainer(sets(tmp_path, "cfg", LLAMA))
    assert type(trainer.raw_model).__name__ == "LlamaForCausalLM"
    assert trainer.raw_model.get_input_embeddings().weight.shape == (257, 64)  # the data's vocabulary
    summary = trainer.fit()
    assert summary["status"] == "done" and summary["val_loss"] is not None


def test_hf_model_from_a_folder_keeps_its_weights_unless_asked(tmp_path):
    folder = tmp_path / "llama"
    from averis.models.hf import causal_lm_from_config

    torch.manual_seed(123)  # not the trainer's seed (0), so a fresh initialisation differs
    model = causal_lm_from_config({"model_type": "llama", "vocab_size": 300, "hidden_size": 64,
                                   "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                                   "num_key_value_heads": 1, "max_position_embeddings": 64})
    model.save_pretrained(folder)
    from tokenizers import Tokenizer, models

    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1},
                                                                                            unk_token="<unk>")))
    fast.save_pretrained(folder)
    loaded = Trainer(sets(tmp_path, "pre", f"model.name={folder}")).raw_model
    fresh = Trainer(sets(tmp_path, "fresh", f"model.name={folder}", "model.pretrained=false")).raw_model
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])
    assert not torch.equal(fresh.state_dict()[key], model.state_dict()[key])


def test_hf_config_needs_a_model_type():
    with pytest.raises(ValueError, match="model_type"):
        load_config(overrides=["model.arch=hf", "model.hf_config={hidden_size: 64}"])
