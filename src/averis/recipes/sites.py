"""Where a linear layer sits in a transformer block, read from its module name.

A recipe's ``mean_sites`` names the sites whose layers split the mean off (docs/recipes.md).  The mean is
strong at some sites and weak at others (SmolLM2-135M: the inputs that come out of an RMSNorm, q/k/v and
gate/up, carry most of it; o_proj and down_proj inputs little), so the split can be kept where it pays.

| site | the layer's input | names (last parts of the module name) |
| --- | --- | --- |
| ``attn_in`` | the attention block's normed input | q_proj, k_proj, v_proj, qkv_proj, c_attn, query_key_value, Wqkv |
| ``o_proj`` | the attention output | o_proj, attn.c_proj, out_proj, attention.dense |
| ``mlp_in`` | the MLP block's normed input | gate_proj, up_proj, gate_up_proj, c_fc, fc1, w1, w3 |
| ``down_proj`` | the MLP's activation | down_proj, mlp.c_proj, fc2, w2 |
| ``other`` | any other linear layer | |
"""

from __future__ import annotations

SITES = ("attn_in", "o_proj", "mlp_in", "down_proj", "other")

# dotted suffixes of module names (Llama/Qwen/Mistral, GPT-2 Conv1D, GPT-NeoX, MPT, Mixtral experts)
SITE_SUFFIXES = {
    "attn_in": ("q_proj", "k_proj", "v_proj", "qkv_proj", "c_attn", "query_key_value", "Wqkv"),
    "o_proj": ("o_proj", "attn.c_proj", "out_proj", "attention.dense"),
    "mlp_in": ("gate_proj", "up_proj", "gate_up_proj", "c_fc", "fc1", "w1", "w3"),
    "down_proj": ("down_proj", "mlp.c_proj", "fc2", "w2"),
}


def site_of(name: str) -> str:
    """The site (one of SITES) of the linear layer called ``name`` ("model.layers.3.mlp.up_proj" -> "mlp_in")."""
    for site, suffixes in SITE_SUFFIXES.items():
        if any(name == s or name.endswith("." + s) for s in suffixes):
            return site
    return "other"
