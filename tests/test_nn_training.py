"""Every named recipe trains a tiny model of our own and a tiny transformers Qwen3 on CPU."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import averis
from averis import recipes

VOCAB, SEQ, BATCH, STEPS = 64, 32, 4, 30


pytestmark = pytest.mark.usefixtures("one_thread")


class TinyLM(nn.Module):
    """Embedding, pre-norm blocks of causal attention and a GELU MLP, lm_head (nanoGPT-like)."""

    def __init__(self, d=64, n_blocks=2, heads=4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(VOCAB, d)
        self.blocks = nn.ModuleList(nn.ModuleDict(dict(
            norm1=nn.LayerNorm(d), qkv=nn.Linear(d, 3 * d), proj=nn.Linear(d, d),
            norm2=nn.LayerNorm(d), up=nn.Linear(d, 4 * d), down=nn.Linear(4 * d, d)))
            for _ in range(n_blocks))
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)

    def forward(self, ids):
        b, t = ids.shape
        h = self.embed(ids)
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["norm1"](h)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)       # B x H x T x D/H
            h = h + blk["proj"](att.transpose(1, 2).reshape(b, t, -1))
            h = h + blk["down"](F.gelu(blk["up"](blk["norm2"](h))))
        return self.lm_head(self.norm(h))


def _qwen3():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Qwen3Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   head_dim=16, max_position_embeddings=SEQ)
    return transformers.Qwen3ForCausalLM(cfg)


def _batch():
    """A learnable pattern: each token follows from the previous one (t' = 3 t + 1 mod VOCAB)."""
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, VOCAB, (BATCH, 1), generator=g)
    ids = [start]
    for _ in range(SEQ):
        ids.append((ids[-1] * 3 + 1) % VOCAB)
    return torch.cat(ids, 1)


def _train(model, recipe):
    averis.quantize_model(model, recipe)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = _batch()
    losses = []
    for _ in range(STEPS):
        out = model(ids[:, :-1])
        logits = out.logits if hasattr(out, "logits") else out
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads), "non-finite gradient"
        opt.step()
        losses.append(loss.item())
    return losses


def _check_falls(losses):
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0], losses


@pytest.mark.parametrize("name", recipes.list())
def test_tiny_model_of_our_own_trains(name):
    torch.manual_seed(0)
    losses = _train(TinyLM(), name)
    _check_falls(losses)


@pytest.mark.parametrize("name", recipes.list())
def test_tiny_qwen3_trains(name):
    torch.manual_seed(0)
    model = _qwen3()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every projection of this Qwen3 divides into blocks: no skip warning
        losses = _train(model, name)
    swapped = averis.nn.get_report(model).swapped
    if name != "bf16":
        assert len(swapped) == 14 and all(".layers." in n for n, _ in swapped)  # 7 projections x 2 blocks
    _check_falls(losses)
