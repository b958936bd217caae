"""A Qwen3-style decoder in one file: RMSNorm, RoPE, grouped-query attention with QK-norm, SwiGLU.

Every projection is a plain ``nn.Linear`` (no bias, as in Qwen3) so ``averis.quantize_model``
can swap them; embeddings, norms, attention BMMs and the lm_head stay high precision.
Parameter names follow Hugging Face's Qwen3 (``model.layers.N.self_attn.q_proj.weight``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Qwen3Config:
    vocab_size: int = 4096
    hidden_size: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 384
    max_seq_len: int = 2048
    rope_theta: float = 1_000_000.0
    rms_eps: float = 1e-6
    tie_embeddings: bool = True
    init_std: float = 0.02


# Sizes: every width is a multiple of 32 so NVFP4 (16) and MXFP4 (32) blocks tile every GEMM.
PRESETS: dict[str, dict] = {
    # ~0.8M parameters with a 4k vocabulary: a couple of minutes of training on two CPU cores
    "tiny": dict(hidden_size=128, n_layers=4, n_heads=4, n_kv_heads=2, head_dim=32, intermediate_size=384),
    # ~7M without embeddings
    "small": dict(hidden_size=256, n_layers=6, n_heads=4, n_kv_heads=2, head_dim=64, intermediate_size=768),
    # the from-scratch benchmark: ~31M in the blocks + 8.4M tied embeddings at a 16k vocabulary
    "bench": dict(hidden_size=512, n_layers=10, n_heads=8, n_kv_heads=4, head_dim=64, intermediate_size=1536),
    # Qwen3-0.6B's shape (28 layers, hidden 1024, 16/8 heads of 128, FFN 3072, vocabulary 151,936)
    "qwen3-0.6b": dict(vocab_size=151_936, hidden_size=1024, n_layers=28, n_heads=16, n_kv_heads=8, head_dim=128,
                       intermediate_size=3072, max_seq_len=40_960),
}


def preset(name: str, **overrides) -> Qwen3Config:
    if name not in PRESETS:
        raise ValueError(f"unknown qwen3 preset {name!r}; presets: {', '.join(PRESETS)}")
    fields = set(asdict(Qwen3Config()))
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown Qwen3Config field(s) {unknown}; fields: {', '.join(sorted(fields))}")
    return replace(Qwen3Config(), **{**PRESETS[name], **overrides})


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise in fp32 (as Qwen3 does), return in the input dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * x32).to(x.dtype)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)  # (T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)                                  # (T, head_dim)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, heads, T, head_dim); rotate-half convention of Llama / Qwen."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    averis_shared_inputs = (("q_proj", "k_proj", "v_proj"),)  # they read one X: quantized once (averis.nn.convert)

    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        if cfg.n_heads % cfg.n_kv_heads:
            raise ValueError(f"n_heads={cfg.n_heads} must be a multiple of n_kv_heads={cfg.n_kv_heads}")
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_eps)  # QK-norm: per head, before RoPE
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, T, self.n_heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, kv, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_heads != self.n_kv_heads)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class MLP(nn.Module):
    averis_shared_inputs = (("gate_proj", "up_proj"),)

    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_eps)


class Qwen3ForCausalLM(nn.Module):
    """forward(input_ids (B, T)) -> logits (B, T, vocab) in float32."""

    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.config = cfg
        self.model = Decoder(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) for embeddings and projections; output projections scaled by 1/sqrt(2 n_layers)."""
        std = self.config.init_std
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layers))
            else:
                nn.init.normal_(p, std=std)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        if T > self.config.max_seq_len:
            raise ValueError(f"sequence of {T} tokens exceeds max_seq_len={self.config.max_seq_len}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = self.model.embed_tokens(input_ids)  # (B, T, hidden)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x)).float()

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())  # tied weights are counted once by parameters()
        if exclude_embeddings:
            n -= self.model.embed_tokens.weight.numel()
        return n


def build_qwen3(name: str = "tiny", **overrides) -> Qwen3ForCausalLM:
    """A randomly initialised model from a preset, e.g. build_qwen3("bench", vocab_size=16384)."""
    return Qwen3ForCausalLM(preset(name, **overrides))
