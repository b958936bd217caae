"""The Hugging Face Trainer trains a model quantized with averis.quantize_model, and its save reloads quantized.

Also a model loaded from a GGUF file (as smollm2-135m is): transformers 5 leaves its GGUF quantizer on the
dense model, which made the Trainer refuse it and save_pretrained fail; load_causal_lm removes it.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

import averis
from averis.nn import get_report, is_quantized

transformers = pytest.importorskip("transformers")
if importlib.util.find_spec("accelerate") is None:
    pytest.skip('transformers.Trainer needs accelerate: pip install "averis[hf]"', allow_module_level=True)


class Windows(torch.utils.data.Dataset):
    """Fixed random token windows (labels = inputs: the model shifts them)."""

    def __init__(self, n: int, seq_len: int, vocab: int):
        self.ids = torch.randint(0, vocab, (n, seq_len), generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def trainer_for(model, tmp_path, steps: int):
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=steps, learning_rate=1e-3,
                                          per_device_train_batch_size=2, logging_steps=1, save_strategy="no",
                                          report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
                                          dataloader_num_workers=0)
    return transformers.Trainer(model=model, args=args, train_dataset=Windows(8, 32, 96))


def test_trainer_steps_a_quantized_model_and_saves_its_recipe(tmp_path, one_thread):
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    torch.manual_seed(0)
    model = averis.quantize_model(transformers.AutoModelForCausalLM.from_config(config), "averis")
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    trainer = trainer_for(model, tmp_path, 4)
    result = trainer.train()

    assert result.global_step == 4 and torch.isfinite(torch.tensor(result.training_loss))
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert trainer.model is model and get_report(model).recipe == "averis"
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, before)  # the optimizer stepped
    used = [name for name, _ in get_report(model).swapped]
    counters = {n: m.averis_rng.clone() for n, m in model.named_modules() if is_quantized(m)}
    assert list(counters) == used and all(c[1] == 4 for c in counters.values()), "one SR step per training step"

    trainer.save_model(str(tmp_path / "final"))  # save_pretrained: config.json carries the recipe
    loaded = averis.load_pretrained(tmp_path / "final")
    assert [n for n, m in loaded.named_modules() if is_quantized(m)] == used
    assert all(torch.equal(loaded.get_submodule(n).averis_rng, c) for n, c in counters.items()), "counters saved"
    ids = Windows(8, 32, 96).ids[:2]
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids, labels=ids).loss, model(input_ids=ids, labels=ids).loss)


def write_tiny_llama_gguf(path, vocab=96, hidden=64, ffn=128, blocks=2, heads=2, kv_heads=1):
    """A Llama GGUF file of F32 random weights (the metadata transformers' GGUF loader reads; no tokenizer)."""
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_block_count(blocks)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    rng = np.random.default_rng(0)
    kv = kv_heads * hidden // heads
    shapes = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,), "output.weight": (vocab, hidden)}
    for i in range(blocks):
        shapes.update({f"blk.{i}.{name}": shape for name, shape in [
            ("attn_norm.weight", (hidden,)), ("ffn_norm.weight", (hidden,)), ("attn_q.weight", (hidden, hidden)),
            ("attn_k.weight", (kv, hidden)), ("attn_v.weight", (kv, hidden)), ("attn_output.weight", (hidden, hidden)),
            ("ffn_gate.weight", (ffn, hidden)), ("ffn_up.weight", (ffn, hidden)), ("ffn_down.weight", (hidden, ffn))]})
    for name, shape in shapes.items():
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_a_model_from_a_gguf_file_trains_and_saves(tmp_path, monkeypatch, one_thread):
    pytest.importorskip("gguf", reason='GGUF files need the gguf package: pip install "averis[gguf]"')
    from averis.models.hf import load_causal_lm

    write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: None)  # the file has none
    model, _ = load_causal_lm(str(tmp_path / "tiny.gguf"))
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None  # not written to config.json either
    assert type(model.model.layers[0].mlp.up_proj) is torch.nn.Linear  # dense weights, which averis quantizes

    averis.quantize_model(model.train(), "nvfp4")
    trainer_for(model, tmp_path, 2).train()  # refused before: "cannot perform fine-tuning on purely quantized"
    model.save_pretrained(tmp_path / "saved")  # failed before: "quantized with gguf and is not serializable"
    loaded = averis.load_pretrained(tmp_path / "saved")
    ids = Windows(2, 32, 96).ids
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids, labels=ids).loss, model(input_ids=ids, labels=ids).loss)
