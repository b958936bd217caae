"""The named recipes (method.md section 5), built from a few shared operand specs.

The Averis ablations (issue 18) are averis with one thing changed: which operands split the mean
(``averis_act``, ``averis_grad``), at which sites (``averis_<site>``, ``averis_norm_in``: mean_sites), or
when (``averis_adaptive``: mean_threshold).
"""

from __future__ import annotations

from .spec import HP, OperandSpec, Recipe

# the adaptive split's default: split a source only where its mean ratio R = ||mean|| / rms(token) is at least
# 0.3 (the mean holds >= 9% of its energy); on SmolLM2 that splits the attention, MLP and o_proj inputs, few
# down_proj inputs and no output gradient: where the split cut the NVFP4 error and where it did not
# (docs/recipes.md)
ADAPTIVE_THRESHOLD = 0.3


def _uniform(name: str, fmt: str, description: str, *, weight_block=None, act_transform="none",
             grad_transform="none", wgrad_transform=None, grad_rounding="stochastic", **options) -> Recipe:
    """A recipe with one spec per role: weights, activations (nearest), gradients (SR by default).

    act_transform / grad_transform apply to X and dY in every GEMM; wgrad_transform, when given,
    overrides both for the wgrad GEMM (where the NVIDIA recipe puts its Hadamard transform).
    """
    w = OperandSpec(fmt, block_shape=weight_block)
    x = OperandSpec(fmt, transform=act_transform)
    dy = OperandSpec(fmt, rounding=grad_rounding, transform=grad_transform)
    wx = OperandSpec(fmt, transform=wgrad_transform or act_transform)
    wdy = OperandSpec(fmt, rounding=grad_rounding, transform=wgrad_transform or grad_transform)
    return Recipe(name=name, fprop_x=x, fprop_w=w, dgrad_dy=dy, dgrad_w=w, wgrad_dy=wdy, wgrad_x=wx,
                  description=description, **options)


def _build() -> dict[str, Recipe]:
    nvidia = _uniform("nvidia", "nvfp4", "NVIDIA NVFP4 recipe: 16x16 weight tiles, 1x16 activations/gradients, "
                      "16-point RHT on both wgrad operands, SR on gradients, last ~15% of blocks in BF16",
                      weight_block=(16, 16), wgrad_transform="hadamard", keep_last_fraction=0.15)
    nvfp4 = _uniform("nvfp4", "nvfp4", "vanilla NVFP4: 1x16 blocks everywhere, nearest forward, SR on gradients")
    averis = _uniform("averis", "nvfp4", "Averis: vanilla NVFP4 with the mean-residual split of activations and "
                      "gradients in every GEMM, the mean in BF16", act_transform="mean", grad_transform="mean")
    # The same two recipes with the BF16 tail swapped, to separate the quantization method from the tail
    tail = nvidia.keep_last_fraction
    nvidia_notail = nvidia.replace(name="nvidia_notail", keep_last_fraction=0.0,
                                   description="NVIDIA's recipe without its BF16 tail: every block in FP4")
    averis_tail = averis.replace(name="averis_tail", keep_last_fraction=tail,
                                 description=f"Averis with NVIDIA's BF16 tail: the last ~{tail:.0%} of blocks in BF16")
    averis_act = averis.replace(name="averis_act", dgrad_dy=nvfp4.dgrad_dy, wgrad_dy=nvfp4.wgrad_dy,
                                description="Averis on the activations only: X split, dY quantized as in nvfp4")
    averis_grad = averis.replace(name="averis_grad", fprop_x=nvfp4.fprop_x, wgrad_x=nvfp4.wgrad_x,
                                 description="Averis on the output gradients only: dY split, X quantized as in nvfp4")
    site_words = {"attn_in": "attention inputs (q/k/v)", "o_proj": "o_proj inputs", "mlp_in": "MLP inputs (gate/up)",
                  "down_proj": "down_proj inputs"}
    per_site = [averis.replace(name=f"averis_{site}", mean_sites=(site,),
                               description=f"Averis at the {words} only (X and dY); nvfp4 at the other layers")
                for site, words in site_words.items()]
    averis_norm_in = averis_act.replace(
        name="averis_norm_in", mean_sites=("attn_in", "mlp_in"),
        description="Averis where the mean is (SmolLM2): activations only, at the attention and MLP inputs")
    averis_adaptive = averis.replace(
        name="averis_adaptive", mean_threshold=ADAPTIVE_THRESHOLD,
        description=f"Averis where it pays, per layer call and source: split X (dY) only where its mean ratio R "
                    f"(estimated from the column statistics) is >= {ADAPTIVE_THRESHOLD}, decided on the device")
    recipes = [
        Recipe(name="bf16", fprop_x=HP, fprop_w=HP, dgrad_dy=HP, dgrad_w=HP, wgrad_dy=HP, wgrad_x=HP,
               description="no quantization: every GEMM in the input dtype (BF16 under autocast)"),
        nvfp4,
        nvidia,
        nvidia_notail,
        _uniform("metis", "nvfp4", "Metis: vanilla NVFP4 with a rank-16 randomized-SVD split (2 power "
                 "iterations) of activations and gradients in every GEMM",
                 act_transform="lowrank", grad_transform="lowrank"),
        averis,
        averis_tail,
        _uniform("averis_rht", "nvfp4", "Averis + NVIDIA's 16-point RHT on the wgrad operands",
                 act_transform="mean", grad_transform="mean", wgrad_transform="mean_hadamard"),
        averis_act,
        averis_grad,
        *per_site,
        averis_norm_in,
        averis_adaptive,
        _uniform("mxfp4", "mxfp4", "vanilla MXFP4: 1x32 blocks, E8M0 scales (OCP floor rule), nearest "
                 "forward, SR on gradients"),
        _uniform("mxfp4_averis", "mxfp4", "MXFP4 with the Averis mean-residual split",
                 act_transform="mean", grad_transform="mean"),
    ]
    return {r.name: r for r in recipes}


BUILTIN: dict[str, Recipe] = _build()
