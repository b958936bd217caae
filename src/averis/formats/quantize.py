"""The reference quantizer: ``quantize`` -> :class:`QuantizedTensor`, and ``fake_quantize``.

Layout: the block axis is moved last.  1D blocks view it as (..., n_blocks, B);
2D tiles (NVFP4 16x16, for weights) also block the dim before it:
(..., R/16, 16, L/16, 16).  Codes are packed two per byte along the block axis.
``fake_quantize`` and ``QuantizedTensor.dequantize`` share one code path, so they
agree bit for bit.  This is the PyTorch definition the Triton kernels reproduce; the public
``averis.quantize`` / ``averis.fake_quantize`` (``averis.qgemm``) choose between the two.
``quantize_spec`` / ``fake_quantize_spec`` are the same after argument checking
(``check_input``), with the signature of their Triton twins in ``averis.kernels.dispatch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import e2m1, noise, scales
from .spec import FormatSpec, make_spec

_FLOAT_INPUTS = (torch.float32, torch.bfloat16, torch.float16)


@dataclass
class QuantizedTensor:
    """An FP4 tensor: packed codes, block scales and (NVFP4) the FP32 tensor decode scale.

    ``codes``: uint8, the source with ``axis`` moved last (and padded if asked), two
    codes per byte, low nibble first.  ``scales``: float8_e4m3fn (NVFP4) or
    float8_e8m0fnu (MXFP4), one per block, shape (..., n_blocks) for 1D blocks and
    (..., R/16, L/16) for 16x16 tiles.  ``tensor_scale``: S_dec as a 0-d float32
    tensor (NVFP4) or None (MXFP4).  Dequantized value = (code * scale) * tensor_scale.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    tensor_scale: torch.Tensor | None
    shape: torch.Size
    axis: int
    spec: FormatSpec

    @property
    def fmt(self) -> str:
        return self.spec.fmt

    @property
    def block_shape(self) -> tuple[int, ...]:
        return self.spec.block_shape

    @property
    def nbytes(self) -> int:
        """Packed size in bytes: codes + block scales + tensor scale."""
        n = self.codes.numel() * self.codes.element_size() + self.scales.numel() * self.scales.element_size()
        return n + (4 if self.tensor_scale is not None else 0)

    def float4(self) -> torch.Tensor:
        """The codes viewed as torch.float4_e2m1fn_x2."""
        return e2m1.as_float4x2(self.codes)

    def dequantize(self, dtype: torch.dtype = torch.float32, *, tensor_scale: bool = True) -> torch.Tensor:
        """The values in the original shape, contiguous (as the Triton kernels write them: the same layout
        on every backend, so a GEMM that consumes them picks the same kernel and rounds the same way).

        tensor_scale=False: code x block scale only, what an FP4 tensor core multiplies (exact in BF16:
        at most 6 significant bits), the NVFP4 tensor scale left to the GEMM's epilogue."""
        codes = e2m1.unpack(self.codes)
        ts = self.tensor_scale if tensor_scale else None
        values = _dequantize_blocked(codes, self.scales, ts, self.spec)
        return _from_blocked_layout(values, self.shape, self.axis).to(dtype).contiguous()


def quantize(
    x: torch.Tensor,
    fmt: str,
    *,
    axis: int = -1,
    block_shape: tuple[int, ...] | None = None,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
    scale_rule: str | None = None,
    pad: bool = False,
    check_finite: bool = True,
    tensor_amax: torch.Tensor | None = None,
) -> QuantizedTensor:
    """Quantize ``x`` to NVFP4 or MXFP4 in blocks along ``axis`` (the PyTorch reference).

    fmt: "nvfp4" (1x16 blocks, or block_shape=(16, 16) tiles; E4M3 scales + FP32
    tensor scale) or "mxfp4" (1x32 blocks, E8M0 scales; scale_rule "floor" (OCP,
    default) or "ceil").  rounding: "nearest" (ties to even) or "stochastic"
    (seeded through ``generator``).  pad: zero-pad the block axis up to a whole
    block instead of raising.  check_finite: raise on NaN/Inf (costs one host
    sync); with False a non-finite input dequantizes to NaN (the training path).
    tensor_amax: the NVFP4 tensor amax when the caller already has it (it must
    equal amax(|x|); the Averis residual gets it from one statistics pass).
    """
    spec = make_spec(fmt, block_shape, rounding, scale_rule)
    axis = check_input(x, spec, axis, pad, check_finite, generator)
    return quantize_spec(x, spec, axis, generator, pad, tensor_amax)


def fake_quantize(x: torch.Tensor, fmt: str, **options) -> torch.Tensor:
    """x's shape, holding the dequantized FP4 values (the path training uses), in x's dtype or ``out_dtype``;
    contiguous.

    Equals ``quantize(x, fmt, **options).dequantize().to(out_dtype or x.dtype)`` bit for bit.  out_dtype
    (e.g. the BF16 a GEMM consumes) saves the caller a cast pass over an FP32 input.
    """
    out_dtype = check_out_dtype(options.pop("out_dtype", None)) or x.dtype
    return quantize(x, fmt, **options).dequantize(out_dtype)


def quantize_spec(x: torch.Tensor, spec: FormatSpec, axis: int, generator, pad: bool, tensor_amax) -> QuantizedTensor:
    """``quantize`` of an input ``check_input`` accepted (``axis`` as it returned it)."""
    blocked = _to_blocked_layout(x, spec, axis, pad)
    codes, block_scales, tensor_scale = _quantize_blocked(blocked, spec, generator, tensor_amax)
    return QuantizedTensor(e2m1.pack(_flatten_blocks(codes, spec)), block_scales, tensor_scale,
                           x.shape, axis, spec)


def fake_quantize_spec(x: torch.Tensor, spec: FormatSpec, axis: int, generator, pad: bool, tensor_amax,
                       out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``fake_quantize`` of an input ``check_input`` accepted, in ``out_dtype`` (default x's dtype)."""
    return quantize_spec(x, spec, axis, generator, pad, tensor_amax).dequantize(out_dtype or x.dtype)


def fake_quantize_unscaled_spec(x: torch.Tensor, spec: FormatSpec, axis: int, generator, pad: bool, tensor_amax,
                                out_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(code x block scale in ``out_dtype``, the NVFP4 tensor decode scale or None): ``fake_quantize_spec``
    with the tensor scale kept apart, for a GEMM that applies it to its FP32 accumulator."""
    q = quantize_spec(x, spec, axis, generator, pad, tensor_amax)
    return q.dequantize(out_dtype or x.dtype, tensor_scale=False), q.tensor_scale


def nvfp4_decode_scale(tensor_amax: torch.Tensor) -> torch.Tensor:
    """The NVFP4 tensor decode scale S_dec (0-d float32) of a tensor whose amax is ``tensor_amax``."""
    return scales.nvfp4_tensor_decode_scale(scales.nvfp4_tensor_encode_scale(tensor_amax.float().reshape(())))


def check_out_dtype(out_dtype: torch.dtype | None) -> torch.dtype | None:
    if out_dtype is not None and out_dtype not in _FLOAT_INPUTS:
        raise TypeError(f"out_dtype must be torch.float32, bfloat16 or float16, got {out_dtype!r}")
    return out_dtype


# --------------------------------------------------------------------------- core
def _quantize_blocked(blocked: torch.Tensor, spec: FormatSpec, generator, tensor_amax):
    """Codes (unpacked, blocked shape), block scales and tensor scale of a blocked fp32 tensor."""
    block_amax = blocked.abs().amax(dim=spec.reduce_dims(blocked.ndim), keepdim=True)
    uniform = None
    if spec.rounding == "stochastic":
        uniform = noise.uniform_noise(blocked.shape, noise.draw_seed(generator, blocked.device))
    if spec.fmt == "nvfp4":
        amax = block_amax.amax() if tensor_amax is None else tensor_amax.float().reshape(())
        s_enc = scales.nvfp4_tensor_encode_scale(amax)
        s_dec = scales.nvfp4_tensor_decode_scale(s_enc)
        block_scale = scales.nvfp4_block_scale(block_amax, s_enc)
        e_b = scales.nvfp4_element_encode_factor(block_scale, s_dec)
        codes = e2m1.encode(blocked * e_b, spec.rounding, uniform)
        return codes, _squeeze_blocks(block_scale, spec), s_dec
    exponent = scales.mxfp4_scale_exponent(block_amax, spec.scale_rule)
    scaled = blocked * scales.exp2_int(-exponent)
    codes = e2m1.encode(scaled, spec.rounding, uniform)
    block_scale = scales.e8m0_from_exponent(exponent, torch.isfinite(block_amax))
    return codes, _squeeze_blocks(block_scale, spec), None


def _dequantize_blocked(codes_flat: torch.Tensor, block_scales, tensor_scale, spec: FormatSpec):
    """Dequantized float32 values in the moved (block-axis-last) layout."""
    codes = _unflatten_blocks(codes_flat, spec)
    values = e2m1.decode(codes)
    if spec.fmt == "nvfp4":
        scale = _unsqueeze_blocks(block_scales.float(), spec)
        values = values * scale
        return _flatten_blocks(values if tensor_scale is None else values * tensor_scale, spec)
    scale = _unsqueeze_blocks(scales.e8m0_to_float(block_scales), spec)
    return _flatten_blocks(values * scale, spec)


# --------------------------------------------------------------------------- layout
def _to_blocked_layout(x: torch.Tensor, spec: FormatSpec, axis: int, pad: bool) -> torch.Tensor:
    moved = x.float().movedim(axis, -1)
    if pad:
        moved = _pad_to_blocks(moved, spec)
    return _unflatten_blocks(moved, spec)


def _pad_to_blocks(moved: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    b = spec.block_shape[-1]
    extra = (-moved.shape[-1]) % b
    pads = [0, extra]
    if len(spec.block_shape) == 2:
        pads += [0, (-moved.shape[-2]) % spec.block_shape[0]]
    return torch.nn.functional.pad(moved, pads) if any(pads) else moved


def _unflatten_blocks(moved: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    b = spec.block_shape[-1]
    if len(spec.block_shape) == 1:
        return moved.unflatten(-1, (moved.shape[-1] // b, b))
    r = spec.block_shape[0]
    return moved.unflatten(-1, (moved.shape[-1] // b, b)).unflatten(-3, (moved.shape[-2] // r, r))


def _flatten_blocks(blocked: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    if len(spec.block_shape) == 1:
        return blocked.flatten(-2)
    return blocked.flatten(-2).flatten(-3, -2)


def _squeeze_blocks(block_scale: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    if len(spec.block_shape) == 1:
        return block_scale.squeeze(-1)
    return block_scale.squeeze(-1).squeeze(-2)


def _unsqueeze_blocks(block_scale: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    if len(spec.block_shape) == 1:
        return block_scale.unsqueeze(-1)
    return block_scale.unsqueeze(-2).unsqueeze(-1)


def _from_blocked_layout(values: torch.Tensor, shape: torch.Size, axis: int) -> torch.Tensor:
    moved_shape = list(shape)
    moved_shape.append(moved_shape.pop(axis))
    crop = tuple(slice(0, n) for n in moved_shape)
    return values[crop].movedim(-1, axis)


# --------------------------------------------------------------------------- checks
def check_input(x, spec: FormatSpec, axis: int, pad: bool, check_finite: bool, generator) -> int:
    """The block axis as a non-negative dim, or a clear error for an input ``spec`` cannot quantize."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_INPUTS:
        raise TypeError(
            f"cannot quantize a {x.dtype} tensor: FP4 quantization takes float32, bfloat16 or float16 "
            f"input (convert with x.float() first)")
    if x.numel() == 0:
        raise ValueError(f"cannot quantize an empty tensor (shape {tuple(x.shape)})")
    if x.ndim == 0:
        raise ValueError("cannot quantize a 0-d tensor: give it at least one dimension of a whole block")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
    axis = axis % x.ndim
    dims = [(axis, spec.block_shape[-1])]
    if len(spec.block_shape) == 2:
        if x.ndim < 2:
            raise ValueError(f"{spec.block_shape} tiles need a tensor of at least 2 dims, got shape {tuple(x.shape)}")
        dims.append((_tile_partner_dim(x.ndim, axis), spec.block_shape[0]))
    for dim, b in dims:
        if x.shape[dim] % b and not pad:
            raise ValueError(
                f"dim {dim} of shape {tuple(x.shape)} has size {x.shape[dim]}, which does not divide into "
                f"{spec.fmt} blocks of {b}: pass pad=True to zero-pad the last block, or reshape the tensor")
    if generator is not None and spec.rounding == "stochastic" and not _same_device(generator.device, x.device):
        raise ValueError(f"the generator is on {generator.device} but the tensor is on {x.device}: "
                         f"create torch.Generator(device=x.device)")
    if check_finite and not bool(torch.isfinite(x).all()):
        raise ValueError(
            "the tensor holds NaN or Inf, which FP4 cannot represent: fix the source, or pass "
            "check_finite=False to propagate NaN through the scales")
    return axis


def _same_device(a: torch.device, b: torch.device) -> bool:
    """cuda and cuda:0 are the same device when one of them names no index."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _tile_partner_dim(ndim: int, axis: int) -> int:
    """The second tiled dim: the one just before the block axis once the axis is moved last."""
    others = [d for d in range(ndim) if d != axis]
    return others[-1]
