"""Typed, frozen recipe descriptions: one :class:`OperandSpec` per operand of each of the three GEMMs.

A linear layer ``Y = X W^T`` runs three GEMMs (method.md section 3); every one of their six
operands gets its own spec, so a recipe can quantize, round and transform each independently:

====================  =====================  ==================
GEMM                  operand A              operand B
====================  =====================  ==================
fprop  Y  = X W^T     ``fprop_x``  along K   ``fprop_w``  along K
dgrad  dX = dY W      ``dgrad_dy`` along N   ``dgrad_w``  along N
wgrad  dW = dY^T X    ``wgrad_dy`` along M   ``wgrad_x``  along M (tokens)
====================  =====================  ==================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..formats.spec import make_spec
from .sites import SITES, site_of

# "none": the operand stays in high precision and no transform runs (the BF16 baseline).
# "identity": transforms run but the quantizer returns its input (the test hook that proves
# the algebra of every transform: outputs must then equal nn.Linear's up to float rounding).
FORMATS = ("none", "identity", "nvfp4", "mxfp4")
ROUNDINGS = ("nearest", "stochastic")
TRANSFORMS = ("none", "mean", "hadamard", "mean_hadamard", "lowrank")
MEAN_FORMATS = ("bf16", "fp8", "fp4", "fp32")
GEMMS = ("fprop", "dgrad", "wgrad")
OPERANDS = ("fprop_x", "fprop_w", "dgrad_dy", "dgrad_w", "wgrad_dy", "wgrad_x")
GEMM_OPERANDS = {"fprop": ("fprop_x", "fprop_w"), "dgrad": ("dgrad_dy", "dgrad_w"),
                 "wgrad": ("wgrad_dy", "wgrad_x")}
WEIGHT_OPERANDS = ("fprop_w", "dgrad_w")
TOKEN_OPERANDS = ("fprop_x", "dgrad_dy", "wgrad_dy", "wgrad_x")


def _choice(field_name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{field_name}={value!r} is not allowed: use one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class OperandSpec:
    """How one GEMM operand is transformed and quantized.

    format: "none" | "identity" | "nvfp4" | "mxfp4".  block_shape: None for the format's
    default ((16,) NVFP4, (32,) MXFP4) or (16, 16) tiles (NVFP4 weights only), blocks run
    along the GEMM's reduction axis.  rounding: "nearest" (ties to even) or "stochastic".
    scale_rule: None for the default ("te" NVFP4, "floor" MXFP4) or "ceil" (MXFP4).
    transform: "none", "mean" (Averis mean-residual split over tokens), "hadamard"
    (16-point RHT along the reduction axis; both operands of the GEMM must use it),
    "mean_hadamard" (both), "lowrank" (Metis randomized-SVD split).
    """

    format: str = "nvfp4"
    block_shape: tuple[int, ...] | None = None
    rounding: str = "nearest"
    scale_rule: str | None = None
    transform: str = "none"

    def __post_init__(self):
        _choice("format", self.format, FORMATS)
        _choice("rounding", self.rounding, ROUNDINGS)
        _choice("transform", self.transform, TRANSFORMS)
        if self.block_shape is not None:
            object.__setattr__(self, "block_shape", tuple(int(b) for b in self.block_shape))
        if self.quantized:
            make_spec(self.format, self.block_shape, self.rounding, self.scale_rule)  # a clear ValueError
        elif self.format == "none" and self.transform != "none":
            raise ValueError(f"transform={self.transform!r} needs a quantized operand: format 'none' keeps "
                             f"the operand in high precision untransformed; use format 'identity' to test "
                             f"transforms")

    @property
    def quantized(self) -> bool:
        return self.format in ("nvfp4", "mxfp4")

    @property
    def block(self) -> int:
        """Block length along the reduction axis (16 for identity, so that checks stay meaningful)."""
        if self.block_shape is not None:
            return self.block_shape[-1]
        return 32 if self.format == "mxfp4" else 16

    @property
    def tile_rows(self) -> int:
        """Block length along the other axis (16 for 16x16 tiles, else 1)."""
        return self.block_shape[0] if self.block_shape is not None and len(self.block_shape) == 2 else 1

    @property
    def has_mean(self) -> bool:
        return self.transform in ("mean", "mean_hadamard")

    @property
    def has_hadamard(self) -> bool:
        return self.transform in ("hadamard", "mean_hadamard")

    def quantizer_options(self) -> dict:
        """Keyword arguments for averis.fake_quantize (except axis, generator, pad)."""
        return {"block_shape": self.block_shape, "rounding": self.rounding, "scale_rule": self.scale_rule}


HP = OperandSpec(format="none")


@dataclass(frozen=True)
class Recipe:
    """A W4A4G4 training recipe: six operand specs plus the options of the transforms.

    mean_format: precision of the Averis mean vector: "bf16" (default, method.md section 4),
    "fp8" (float8_e4m3fn with a per-tensor scale), "fp4" (the operand's own FP4 quantizer, the
    paper's text) or "fp32".  mean_all_reduce: average the mean over torch.distributed ranks
    (default off: the paper uses the local micro-batch).  lowrank_rank / lowrank_power_iters:
    the Metis randomized SVD.  seed: seeds the fixed Hadamard sign vector and every layer's
    stochastic-rounding generator (layer i uses a seed derived from (seed, i)).
    high_precision: fnmatch patterns of module names kept in high precision;
    keep_first_blocks / keep_last_blocks: transformer blocks kept in high precision;
    keep_last_fraction: keep round(fraction * n_blocks) more of the last blocks.
    mean_sites: the sites (averis.recipes.sites: attn_in, o_proj, mlp_in, down_proj, other) whose layers
    split the mean off; at the others the operands' mean transforms are dropped (``for_layer``).
    mean_threshold: None (split every step) or the adaptive split: per layer call and per source (X, dY),
    split only where the mean ratio R = ||mean|| / rms(token), estimated from the column statistics
    (qgemm.operand.decide_split), is at least mean_threshold, decided on the device.
    """

    name: str = "custom"
    fprop_x: OperandSpec = HP
    fprop_w: OperandSpec = HP
    dgrad_dy: OperandSpec = HP
    dgrad_w: OperandSpec = HP
    wgrad_dy: OperandSpec = HP
    wgrad_x: OperandSpec = HP
    mean_format: str = "bf16"
    mean_all_reduce: bool = False
    lowrank_rank: int = 16
    lowrank_power_iters: int = 2
    seed: int = 0
    high_precision: tuple[str, ...] = ("lm_head", "*.lm_head", "*embed*")
    keep_first_blocks: int = 0
    keep_last_blocks: int = 0
    keep_last_fraction: float = 0.0
    mean_sites: tuple[str, ...] = SITES
    mean_threshold: float | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self):
        for name in OPERANDS:
            if not isinstance(getattr(self, name), OperandSpec):
                got = type(getattr(self, name)).__name__
                raise TypeError(f"recipe field {name} must be an OperandSpec, got {got}")
        _choice("mean_format", self.mean_format, MEAN_FORMATS)
        object.__setattr__(self, "high_precision", tuple(self.high_precision))
        for name in ("lowrank_rank", "lowrank_power_iters", "keep_first_blocks", "keep_last_blocks"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lowrank_rank == 0 and any(self.operand(n).transform == "lowrank" for n in OPERANDS):
            raise ValueError("lowrank_rank must be >= 1 when an operand uses transform 'lowrank'")
        if not 0.0 <= self.keep_last_fraction < 1.0:
            raise ValueError(f"keep_last_fraction must be in [0, 1), got {self.keep_last_fraction}")
        object.__setattr__(self, "mean_sites", tuple(self.mean_sites))
        for site in self.mean_sites:
            _choice("mean_sites entry", site, SITES)
        if self.mean_threshold is not None:
            if isinstance(self.mean_threshold, bool) or not isinstance(self.mean_threshold, int | float) \
                    or not 0 < self.mean_threshold <= 1:
                raise ValueError(f"mean_threshold must be a number in (0, 1] (split where the mean ratio R = "
                                 f"||mean|| / rms(token) is at least that) or None (always split), "
                                 f"got {self.mean_threshold!r}")
            object.__setattr__(self, "mean_threshold", float(self.mean_threshold))
            if self.mean_all_reduce:
                raise ValueError("mean_threshold (the adaptive split) decides from the local statistics and does not "
                                 "combine with mean_all_reduce: set one of them")
        self._check_transforms()

    def _check_transforms(self) -> None:
        for name in WEIGHT_OPERANDS:
            t = self.operand(name).transform
            if t in ("mean", "mean_hadamard", "lowrank"):
                raise ValueError(f"{name}.transform={t!r}: weights are not mean-split or low-rank split; "
                                 f"use 'none' or 'hadamard'")
        for gemm, (a, b) in GEMM_OPERANDS.items():
            ha, hb = self.operand(a).has_hadamard, self.operand(b).has_hadamard
            if ha != hb:
                raise ValueError(f"the Hadamard transform must be on both operands of the {gemm} GEMM or on "
                                 f"neither: set {a}.transform and {b}.transform together")
            for n in (a, b):
                if self.operand(n).transform == "lowrank" and (ha or hb):
                    raise ValueError(f"{n}: 'lowrank' cannot be combined with a Hadamard {gemm} GEMM")

    def for_layer(self, name: str) -> Recipe:
        """The recipe the linear layer called ``name`` runs: this one where its site is in ``mean_sites``, else
        this one without its mean split (``without_mean``)."""
        return self if site_of(name) in self.mean_sites else self.without_mean()

    def without_mean(self) -> Recipe:
        """The same recipe with the mean split dropped from every operand ("mean" -> "none", "mean_hadamard"
        -> "hadamard") and no adaptive threshold: the operand specs of the recipe without Averis."""
        drop = {"mean": "none", "mean_hadamard": "hadamard"}
        ops = {n: dataclasses.replace(self.operand(n), transform=drop.get(self.operand(n).transform,
                                                                          self.operand(n).transform))
               for n in OPERANDS}
        return dataclasses.replace(self, mean_threshold=None, **ops)

    def adaptive(self, source: str) -> bool:
        """Whether the adaptive split decides for ``source`` ("x" or "dy"): a threshold is set and one of the
        source's operands splits the mean."""
        names = {"x": ("fprop_x", "wgrad_x"), "dy": ("dgrad_dy", "wgrad_dy")}[source]
        return self.mean_threshold is not None and any(self.operand(n).has_mean for n in names)

    def operand(self, name: str) -> OperandSpec:
        _choice("operand", name, OPERANDS)
        return getattr(self, name)

    @property
    def quantizes(self) -> bool:
        """False for a recipe that leaves every operand in high precision (bf16)."""
        return any(self.operand(n).format != "none" for n in OPERANDS)

    def to_dict(self) -> dict:
        """Every field, in the schema of recipe files (``averis.recipes.from_dict`` gives the recipe back)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, OperandSpec):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)

    def with_identity_quantizers(self) -> Recipe:
        """The same recipe with every quantizer replaced by the identity (a test hook).

        Transforms still run; the mean is kept in FP32.  Outputs and gradients must equal
        nn.Linear's up to float rounding.
        """
        ops = {n: dataclasses.replace(self.operand(n), format="identity", block_shape=None, scale_rule=None)
               if self.operand(n).quantized else self.operand(n) for n in OPERANDS}
        return dataclasses.replace(self, name=f"{self.name}-identity", mean_format="fp32", **ops)
