"""FormatSpec: the validated description of one FP4 quantizer (format, blocks, rounding, scale rule)."""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("nvfp4", "mxfp4")
ROUNDINGS = ("nearest", "stochastic")
_BLOCK_SHAPES = {"nvfp4": ((16,), (16, 16)), "mxfp4": ((32,),)}
_SCALE_RULES = {"nvfp4": ("te",), "mxfp4": ("floor", "ceil")}


@dataclass(frozen=True)
class FormatSpec:
    fmt: str
    block_shape: tuple[int, ...]
    rounding: str
    scale_rule: str

    def reduce_dims(self, blocked_ndim: int) -> tuple[int, ...]:
        """Dims of the blocked view that one scale covers."""
        return (-1,) if len(self.block_shape) == 1 else (-3, -1)


def make_spec(fmt: str, block_shape=None, rounding: str = "nearest", scale_rule: str | None = None) -> FormatSpec:
    """Validate quantizer options; every error says what is allowed."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown FP4 format {fmt!r}: use one of {', '.join(FORMATS)}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}: use one of {', '.join(ROUNDINGS)}")
    allowed = _BLOCK_SHAPES[fmt]
    block_shape = allowed[0] if block_shape is None else tuple(int(b) for b in block_shape)
    if block_shape not in allowed:
        raise ValueError(f"{fmt} does not support block_shape {block_shape}: use one of {list(allowed)}")
    rules = _SCALE_RULES[fmt]
    scale_rule = rules[0] if scale_rule is None else scale_rule
    if scale_rule not in rules:
        raise ValueError(f"{fmt} does not support scale_rule {scale_rule!r}: use one of {list(rules)}")
    return FormatSpec(fmt, block_shape, rounding, scale_rule)
