"""Build the model a ModelConfig names: our Qwen3-style decoder, or a Hugging Face causal LM."""

from __future__ import annotations

from torch import nn

from ..models.qwen3 import Qwen3ForCausalLM, preset


def build_model(cfg, vocab_size: int, seq_len: int) -> nn.Module:
    """A model in FP32 (the master weights), on the CPU, in train mode."""
    if cfg.arch == "qwen3":
        overrides = {"vocab_size": vocab_size, **cfg.overrides}
        if cfg.tie_embeddings is not None:
            overrides["tie_embeddings"] = cfg.tie_embeddings
        qcfg = preset(cfg.preset, **overrides)
        if qcfg.max_seq_len < seq_len:
            qcfg.max_seq_len = seq_len
        if qcfg.vocab_size < vocab_size:
            raise ValueError(f"model.overrides.vocab_size={qcfg.vocab_size} is smaller than the tokenizer's "
                             f"{vocab_size}")
        return Qwen3ForCausalLM(qcfg).train()
    return build_hf(cfg, vocab_size).train()


def build_hf(cfg, vocab_size: int) -> nn.Module:
    import torch

    from ..models.hf import causal_lm_from_config, load_causal_lm

    if not cfg.name:
        return causal_lm_from_config({"vocab_size": vocab_size, **cfg.hf_config}).float()
    model, _tokenizer = load_causal_lm(cfg.name, dtype=torch.float32)
    if not cfg.pretrained:
        model = causal_lm_from_config(model.config)  # same architecture, fresh initialisation
    rows = model.get_input_embeddings().weight.shape[0]
    if vocab_size > rows:
        raise ValueError(f"the data's vocabulary ({vocab_size}) is larger than {cfg.name}'s embedding "
                         f"({rows} rows): tokenize with the model's own tokenizer (data.tokenizer={cfg.name})")
    return model
