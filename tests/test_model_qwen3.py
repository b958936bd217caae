"""The Qwen3-style decoder: equal to transformers' Qwen3 given the same weights; presets; causality."""

from __future__ import annotations

import pytest
import torch

from averis.models.qwen3 import PRESETS, Qwen3Config, Qwen3ForCausalLM, build_qwen3


def small_config(**kw) -> Qwen3Config:
    return Qwen3Config(vocab_size=300, hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                       intermediate_size=96, max_seq_len=64, **kw)


@pytest.mark.parametrize("tied", [True, False])
def test_matches_transformers_qwen3(tied):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Qwen3Config"):
        pytest.skip("this transformers has no Qwen3")
    cfg = small_config(tie_embeddings=tied)
    torch.manual_seed(0)
    ours = Qwen3ForCausalLM(cfg).eval()
    hf_cfg = transformers.Qwen3Config(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, head_dim=16, intermediate_size=96,
                                      max_position_embeddings=64, rope_theta=cfg.rope_theta, rms_norm_eps=cfg.rms_eps,
                                      tie_word_embeddings=tied, attention_bias=False)
    hf = transformers.Qwen3ForCausalLM(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and all("rotary" in m for m in missing)
    ids = torch.randint(0, 300, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, rtol=1e-4, atol=1e-4)


def test_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(small_config()).eval()
    ids = torch.randint(0, 300, (1, 16))
    changed = ids.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 300
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.equal(a[:, :10], b[:, :10]) and not torch.equal(a[:, 10:], b[:, 10:])


def test_preset_sizes():
    bench = build_qwen3("bench", vocab_size=16384)
    assert 30e6 <= bench.num_parameters() <= 60e6
    with torch.device("meta"):
        big = build_qwen3("qwen3-0.6b")
    assert 0.58e9 < big.num_parameters() < 0.61e9  # Qwen3-0.6B: 596M with tied embeddings
    for name, p in PRESETS.items():
        assert p["hidden_size"] % 32 == 0 and p.get("intermediate_size", 32) % 32 == 0, name


def test_bad_preset_and_field_are_clear_errors():
    with pytest.raises(ValueError, match="presets"):
        build_qwen3("huge")
    with pytest.raises(ValueError, match="n_layer"):
        build_qwen3("tiny", n_layer=3)


def test_all_projections_are_plain_linear_layers():
    model = build_qwen3("tiny")
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 * 7 + 1  # q k v o gate up down per block, plus lm_head
