"""Host side of the Triton kernels: the entry points averis.qgemm routes to, and the fused ops.

- ``quantize`` / ``fake_quantize``: same signature and bit-identical results as the PyTorch
  reference ``averis.formats.quantize.quantize_spec`` / ``fake_quantize_spec``
  (``dispatch.quantize(x, spec, axis, generator, pad, tensor_amax)``); ``fake_quantize`` also takes
  ``mu`` / ``signs`` (quantize x - mu, or the 16-point RHT of x, in the same pass).
- ``amax``: tensor amax as a device scalar (no host sync).
- ``column_stats``, ``fake_quantize_residual``: Averis' one-pass statistics (in the summation order
  of averis.transforms.mean.column_stats, whose chunk and group sizes the caller passes) and fused
  subtract-and-quantize; ``fake_quantize_hadamard``: fused 16-point RHT + quantize;
  ``fake_quantize_dual``: rowwise and columnwise fake-quant from one read; ``mean_terms``: the wgrad mean
  restoration terms (averis.transforms.mean.mean_terms) written once in the GEMM's dtype;
  ``split_decision``: the adaptive split's rule (averis.transforms.mean.split_decision) in one launch.

No ``.item()`` or other host synchronisation anywhere: the tensor amax, the SR seed
(``noise.draw_seed``) and the tensor scale stay on the device.  The fake-quant entry is a
``torch.library.custom_op`` (with a fake implementation), so torch.compile treats it as one opaque op.
"""

from __future__ import annotations

import os

import torch

from ..formats import noise
from ..formats.quantize import QuantizedTensor, nvfp4_decode_scale
from ..formats.spec import FormatSpec
from . import triton_kernels as K

_LAUNCH = {"enable_fp_fusion": False}

# Tile configs (rows, cols, num_warps), chosen per layout; the benchmark may override them.
CONFIGS = {
    "row": (8, 256, 4),  # blocks along the contiguous dim
    "col": (16, 64, 2),  # blocks along a strided dim (columnwise / wgrad)
    "tile": (16, 256, 4),  # 16x16 tiles
    "had": (16, 128, 4),  # Hadamard along the contiguous dim
    "dual": (32, 64, 4),
    "amax": (32, 256, 4),
    "stats": (16, 64, 4),  # (row blocks of a chunk read side by side, columns at most, warps); the rows per chunk
    # are the caller's (the summation order); a narrowed tile reads more blocks side by side (column_stats)
    "amaxflat": (0, 32768, 16),  # (-, elements per program, warps)
    "terms": (32, 256, 4),  # mean_terms: rows, columns of the P x Q output, warps
    "tsum": (0, 128, 4),  # token_sum_kernel: (-, columns at most, warps); chunk, group: the caller's (the order)
}
_INTERPRET_CONFIGS = {k: (min(v[0], 32), min(v[1], 64), v[2]) for k, v in CONFIGS.items()}


_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"  # read once, as Triton and triton_kernels read it at import


def _interpret() -> bool:
    return _INTERPRET


# Host-side integer helpers: triton.cdiv and triton.next_power_of_2 are constexpr functions whose Python calls cost
# microseconds each (argument unwrapping), a dozen or more per layer call on the eager path.
def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _cfg(kind: str) -> tuple[int, int, int]:
    if kind == "stats":
        return CONFIGS["stats"] if not _interpret() else (4, 16, 1)
    return _INTERPRET_CONFIGS[kind] if _interpret() else CONFIGS[kind]


def _pow2_at_least(n: int, lo: int) -> int:
    return max(lo, 1 << max(n - 1, 0).bit_length())  # triton.next_power_of_2(n), for n >= 0


ENOUGH_PROGRAMS = 512  # a launch over column tiles narrows its tiles until it has this many programs (or 16 columns)


def _narrow_columns(bn: int, cols: int, programs_per_tile: int) -> int:
    """The column tile (a power of two, 16 <= it <= bn) of a reduction over the rows of ``cols`` columns: halved
    until the launch has ENOUGH_PROGRAMS programs.  The step's operands are narrow (256-3072 channels), and a
    launch of a few wide programs leaves most SMs idle.  Each column's sum is its own, so the tile never changes
    a bit."""
    bn = min(bn, _pow2_at_least(cols, 16))
    while bn > 16 and _cdiv(cols, bn) * programs_per_tile < ENOUGH_PROGRAMS:
        bn //= 2
    return bn


def _row_reduction_warps(width: int, warps: int) -> int:
    """Warps for a launch that reads ``width`` values at a time (token sums: a row of the column tile; column
    statistics: a row of each of its side-by-side blocks): at most one thread per value, so a narrowed tile drops
    its surplus warps instead of holding replicas of the same values."""
    return min(warps, max(1, width // 32))


# --------------------------------------------------------------------------- layout
def _view3(t: torch.Tensor, axis: int, tiled: bool) -> tuple[torch.Tensor, bool]:
    """(batch, R, L) view of t with ``axis`` moved last; (view, is_view). Copies only when strides forbid."""
    moved = t.movedim(axis, -1)
    if moved.ndim == 1:
        moved = moved.unsqueeze(0)
    L, R = moved.shape[-1], moved.shape[-2]
    shapes = [(-1, R, L)] if tiled else [(1, -1, L), (-1, R, L)]
    for shape in shapes:
        try:
            v = moved.view(shape)
            if v.shape[0] <= 65535:
                return v, True
        except RuntimeError:
            pass
    return moved.reshape(1, -1, L) if not tiled else moved.reshape(-1, R, L).contiguous(), False


def _dims(x: torch.Tensor, spec: FormatSpec, axis: int, pad: bool):
    tiled = len(spec.block_shape) == 2
    b = spec.block_shape[-1]
    x3, _ = _view3(x, axis, tiled)
    nb, R, L = x3.shape
    Lp = -(-L // b) * b if pad else L
    Rp = (-(-R // 16) * 16 if pad else R) if tiled else R
    return x3, nb, R, L, Rp, Lp, tiled, b


def _layout_kind(x3: torch.Tensor, tiled: bool, had: bool) -> str:
    if tiled:
        return "tile"
    if had:
        return "had"
    return "row" if x3.stride(2) == 1 or x3.shape[2] == 1 else "col"


def _tile(kind: str, R: int, L: int, b: int, tiled: bool) -> tuple[int, int, int]:
    br, bl, nw = _cfg(kind)
    bl = min(bl, _pow2_at_least(L, max(b, 16)))
    br = min(br, _pow2_at_least(R, 16 if tiled else 1))
    if kind == "col" or tiled:
        br = max(br, 16)
    return br, bl, nw


# --------------------------------------------------------------------------- amax
def amax(
    x: torch.Tensor, *, mu: torch.Tensor | None = None, signs: torch.Tensor | None = None, axis: int = -1
) -> torch.Tensor:
    """amax(|x|) (or of |x - mu|, or of the 16-point RHT of x along ``axis``): a 0-d float32 device tensor."""
    out = torch.zeros(1, dtype=torch.int32, device=x.device)
    if mu is None and signs is None and x.is_contiguous():
        _, block, nw = CONFIGS["amaxflat"]
        block = 4096 if _interpret() else block
        K.amax_flat_kernel[(_cdiv(x.numel(), block),)](x, out, x.numel(), BLOCK=block, num_warps=nw)
        return out.view(torch.float32).reshape(())
    had = signs is not None
    x3, _ = _view3(x, axis, False)
    nb, R, L = x3.shape
    if had:
        kind = "had"
    else:
        kind = "amax" if x3.stride(2) == 1 or L == 1 else "col"
    br, bl, nw = _tile(kind, R, L, 16, False)
    grid = (_cdiv(R, br), _cdiv(L, bl), nb)
    K.amax_kernel[grid](
        *_source_args(x, x3, axis, mu, signs),
        out,
        R,
        L,
        HAS_MU=mu is not None,
        HAD=had,
        BR=br,
        BL=bl,
        num_warps=nw,
        **_LAUNCH,
    )
    return out.view(torch.float32).reshape(())


def _source_args(x, x3, axis, mu, signs) -> tuple:
    """The leading arguments of every kernel that reads tiles of x, x - mu or its RHT (``_load_tile``):
    the moved 3D view and its strides, mu and its strides over the tile, the Hadamard signs."""
    mu_ptr, smr, sml = _mu_args(mu, x3, axis, x)
    sg = signs.to(device=x.device, dtype=torch.float32).contiguous() if signs is not None else x3
    return (x3, *x3.stride(), mu_ptr, smr, sml, sg)


def _mu_args(mu, x3, axis, x):
    if mu is None:
        return x3, 0, 0
    if x.ndim != 2:
        raise ValueError(
            f"the residual (mean-split) kernels take a 2D (tokens x channels) tensor, got "
            f"shape {tuple(x.shape)}"
        )
    mu = mu.reshape(-1).float().contiguous()
    if mu.numel() != x.shape[1]:
        raise ValueError(f"mu has {mu.numel()} entries but x has {x.shape[1]} columns")
    # mu is indexed by x's column; after moving the block axis last that is L (axis 1) or R (axis 0).
    return (mu, 0, 1) if axis % 2 == 1 else (mu, 1, 0)


# --------------------------------------------------------------------------- quantize
def _launch_quantize(
    x, spec, axis, seed, tensor_amax, pad, *, mu=None, signs=None, fake=True, packed=False, out_dtype=None,
    unscaled=False, token_sum=None,
):
    """token_sum: (chunk, group, round) to also return the (R,) float32 sums over the block axis of the stored
    values (see fake_quantize), else None: y, codes, scales, tensor scale, dims, sums."""
    x3, nb, R, L, Rp, Lp, tiled, b = _dims(x, spec, axis, pad)
    nv = spec.fmt == "nvfp4"
    had = signs is not None
    sr = spec.rounding == "stochastic"
    if nv and tensor_amax is None:
        tensor_amax = amax(x, mu=mu, signs=signs, axis=axis)
    kind = _layout_kind(x3, tiled, had)
    br, bl, nw = _tile(kind, Rp, Lp, b, tiled)
    if token_sum is not None:
        if tiled or had or not fake or nb != 1 or token_sum[0] % b or token_sum[0] > 256:
            raise ValueError("token sums need a 2D fake quantize in 1D blocks without the RHT, a chunk of whole "
                             "blocks (<= 256)")
        bl = token_sum[0]  # the token tile is the reference's chunk: the summation order, whatever CONFIGS says
    dev = x.device
    y = y3 = None
    is_view = True
    if fake:
        y = torch.empty(x.shape, dtype=out_dtype or x.dtype, device=dev)
        y3, is_view = _view3(y, axis, tiled)
        if not is_view:
            y3 = torch.empty(x3.shape, dtype=y.dtype, device=dev)
    codes = scales = tscale = None
    dummy = x3
    if packed:
        rc = Rp if tiled else R
        codes = torch.empty(nb, rc, Lp // 2, dtype=torch.uint8, device=dev)
        if tiled:
            scales = torch.empty(nb, rc // 16, Lp // 16, dtype=torch.uint8, device=dev)
        else:
            scales = torch.empty(nb, rc, Lp // b, dtype=torch.uint8, device=dev)
        if nv:
            scales = scales.view(torch.float8_e4m3fn)
            tscale = torch.empty((), dtype=torch.float32, device=dev)
    amax_t = tensor_amax.reshape(1).float() if nv else dummy
    grid = (_cdiv(Rp, br), _cdiv(Lp, bl), nb)
    part = torch.empty(grid[1], R, dtype=torch.float32, device=dev) if token_sum is not None else dummy
    K.quantize_kernel[grid](
        *_source_args(x, x3, axis, mu, signs),
        y3 if fake else dummy,
        *(y3.stride() if fake else (0, 0, 0)),
        codes if packed else dummy,
        scales if packed else dummy,
        tscale if (packed and nv) else dummy,
        amax_t,
        seed if sr else dummy,
        part,
        R,
        L,
        Rp,
        Lp,
        NV=nv,
        B=b,
        TILE=tiled,
        SR=sr,
        CEIL=spec.scale_rule == "ceil",
        HAS_MU=mu is not None,
        HAD=had,
        FAKE=fake,
        PACKED=packed,
        UNSCALED=unscaled,
        TSUM=token_sum is not None,
        BR=br,
        BL=bl,
        num_warps=nw,
        **_LAUNCH,
    )
    if fake and not is_view:
        y.copy_(_unview3(y3, x, axis))
    sums = None
    if token_sum is not None:  # a second small launch over the (token tiles x R) partials: no atomics, one order
        sums = torch.empty(R, dtype=torch.float32, device=dev)
        _, bn, tw = _cfg("tsum")
        bn = _narrow_columns(bn, R, 1)
        tw = _row_reduction_warps(bn, tw)
        K.token_sum_kernel[(_cdiv(R, bn),)](part, sums, y3, grid[1], R, ROUND=token_sum[2], BN=bn,
                                            GROUP=token_sum[1], num_warps=tw, **_LAUNCH)
    return y, codes, scales, tscale, (nb, R, L, Rp, Lp), sums


def _unview3(y3, x, axis):
    moved_shape = list(x.shape)
    moved_shape.append(moved_shape.pop(axis))
    return y3.reshape(moved_shape).movedim(-1, axis)


def quantize(
    x: torch.Tensor, spec: FormatSpec, axis: int, generator, pad: bool, tensor_amax
) -> QuantizedTensor:
    """Triton twin of averis.formats.quantize (packed codes, block scales, tensor scale)."""
    seed = noise.draw_seed(generator, x.device) if spec.rounding == "stochastic" else None
    _, codes, scales, tscale, _, _ = _launch_quantize(
        x, spec, axis, seed, tensor_amax, pad, fake=False, packed=True
    )
    moved_shape = list(x.shape)
    moved_shape.append(moved_shape.pop(axis))
    b = spec.block_shape[-1]
    if len(spec.block_shape) == 2:
        lead = moved_shape[:-2]
        codes = codes.reshape(*lead, codes.shape[1], codes.shape[2])
        scales = scales.reshape(*lead, scales.shape[1], scales.shape[2])
    else:
        lead = moved_shape[:-1]
        codes = codes.reshape(*lead, codes.shape[-1])
        scales = scales.reshape(*lead, -1)
    if spec.fmt == "mxfp4":
        scales = scales.view(torch.float8_e8m0fnu)
    del b
    return QuantizedTensor(codes, scales, tscale, x.shape, axis, spec)


# --------------------------------------------------------------------------- the fake-quant custom op
@torch.library.custom_op("averis::fake_quantize", mutates_args=())
def _fake_quantize_op(
    x: torch.Tensor,
    seed: torch.Tensor | None,
    tensor_amax: torch.Tensor | None,
    mu: torch.Tensor | None,
    signs: torch.Tensor | None,
    fmt: str,
    tiled: bool,
    stochastic: bool,
    scale_rule: str,
    axis: int,
    pad: bool,
    out_dtype: torch.dtype,
    unscaled: bool,
    chunk: int,
    group: int,
    round_sum: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the fake-quantized values, their token sums or an empty tensor): chunk > 0 asks for the sums
    (fake_quantize's ``token_sum`` = (chunk, group, round_sum)), 0 for none."""
    spec = FormatSpec(
        fmt,
        (16, 16) if tiled else ((16,) if fmt == "nvfp4" else (32,)),
        "stochastic" if stochastic else "nearest",
        scale_rule,
    )
    y, *_, sums = _launch_quantize(
        x, spec, axis, seed, tensor_amax, pad, mu=mu, signs=signs, fake=True, out_dtype=out_dtype, unscaled=unscaled,
        token_sum=(chunk, group, round_sum) if chunk else None,
    )
    return y, (x.new_empty(0, dtype=torch.float32) if sums is None else sums)


_FQ_IMPL = getattr(_fake_quantize_op, "_init_fn", _fake_quantize_op)


@_fake_quantize_op.register_fake
def _(x, seed, tensor_amax, mu, signs, fmt, tiled, stochastic, scale_rule, axis, pad, out_dtype, unscaled, chunk,
      group, round_sum):
    return (torch.empty(x.shape, dtype=out_dtype, device=x.device),
            torch.empty(x.shape[1 - axis % 2] if chunk else 0, dtype=torch.float32, device=x.device))


def _fq(x, spec: FormatSpec, axis, generator, pad, tensor_amax, mu=None, signs=None, out_dtype=None,
        unscaled=False, token_sum=None):
    seed = noise.draw_seed(generator, x.device) if spec.rounding == "stochastic" else None
    if unscaled and spec.fmt == "nvfp4" and tensor_amax is None:  # the caller needs the scale it implies
        tensor_amax = amax(x, mu=mu, signs=signs, axis=axis)
    if tensor_amax is not None:
        tensor_amax = tensor_amax.float().reshape(())
    args = (
        x,
        seed,
        tensor_amax,
        mu,
        signs,
        spec.fmt,
        len(spec.block_shape) == 2,
        spec.rounding == "stochastic",
        spec.scale_rule,
        axis,
        pad,
        out_dtype or x.dtype,
        unscaled,
    )
    if token_sum is not None and x.ndim != 2:
        raise ValueError(f"token sums take a 2D tensor, got shape {tuple(x.shape)}")
    args += tuple(token_sum) if token_sum is not None else (0, 0, False)
    # traced: one opaque op with a fake implementation; eager: skip the dispatcher (host overhead)
    y, sums = (_fake_quantize_op if torch.compiler.is_compiling() else _FQ_IMPL)(*args)
    if unscaled:
        y = (y, (nvfp4_decode_scale(tensor_amax) if spec.fmt == "nvfp4" else None))
    return y if token_sum is None else (y, sums)


def fake_quantize(
    x: torch.Tensor, spec: FormatSpec, axis: int, generator, pad: bool, tensor_amax, out_dtype=None, *,
    mu: torch.Tensor | None = None, signs: torch.Tensor | None = None, unscaled: bool = False,
    token_sum: tuple[int, int, bool] | None = None,
):
    """Triton twin of averis.formats.quantize.fake_quantize_spec: x's shape, dequantized FP4 values in out_dtype
    (x's).  mu: quantize x.float() - mu instead (x 2D, mu per column); signs: the 16-point RHT of x along axis.
    unscaled: (code x block scale, the NVFP4 tensor decode scale or None), the twin of
    fake_quantize_unscaled_spec.

    token_sum: (chunk, group, round) to return (result, sums) with sums the (x.shape[1 - axis],) float32 sums
    over ``axis`` of the values as stored, from the same pass (x 2D, 1D blocks, no RHT): the order of
    transforms.mean.column_sum(values, chunk, group) (the kernel's tile along ``axis`` is ``chunk``), rounded
    once to out_dtype where ``round`` (transforms.mean.token_sum).  wgrad's mean terms use them instead of a
    second read of the operand."""
    return _fq(x, spec, axis, generator, pad, tensor_amax, mu=mu, signs=signs, out_dtype=out_dtype, unscaled=unscaled,
               token_sum=token_sum)


def uniform_pair(n: int, seed1: torch.Tensor, seed2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - uniform_noise(n, seed1), uniform_noise(n, seed2)) in one launch: the integer hash of
    averis.formats.noise, so bit for bit the reference's (the Box-Muller tail stays in PyTorch)."""
    u1 = torch.empty(n, dtype=torch.float32, device=seed1.device)
    u2 = torch.empty_like(u1)
    block = 1024
    K.uniform_pair_kernel[(_cdiv(n, block),)](u1, u2, seed1, seed2, n, BLOCK=block, **_LAUNCH)
    return u1, u2


# --------------------------------------------------------------------------- Averis
def column_stats(x: torch.Tensor, chunk: int, group: int):
    """(sum, max, min, mean, residual amax) of the columns of a 2D tensor in one read, summed in chunks of
    ``chunk`` rows and groups of ``group`` chunks (the order of averis.transforms.mean.column_stats)."""
    if x.ndim != 2:
        raise ValueError(f"column_stats takes a 2D (tokens x channels) tensor, got shape {tuple(x.shape)}")
    rows, cols = x.shape
    sub0, bn0, nw = _cfg("stats")
    ch = chunk
    nch = _cdiv(rows, ch)
    bn = _narrow_columns(bn0, cols, nch)
    sub = min(ch, max(1, sub0 * bn0 // bn))  # as many values in flight per program when the tile narrows
    nw = _row_reduction_warps(sub * bn, nw)
    nct = _cdiv(cols, bn)
    dev = x.device
    part = torch.empty(3, nch, cols, dtype=torch.float32, device=dev)
    out = torch.empty(4, cols, dtype=torch.float32, device=dev)
    ints = torch.zeros(nct + 1, dtype=torch.int32, device=dev)
    ramax = ints[nct:]
    K.column_stats_kernel[(nct, nch)](
        x,
        x.stride(0),
        x.stride(1),
        part[0],
        part[1],
        part[2],
        ints,
        out[0],
        out[1],
        out[2],
        out[3],
        ramax,
        rows,
        float(rows),
        cols,
        nch,
        CH=ch,
        SUB=sub,
        BN=bn,
        GROUP=group,
        num_warps=nw,
        **_LAUNCH,
    )
    return out[0], out[1], out[2], out[3], ramax.view(torch.float32).reshape(())


def split_decision(mean: torch.Tensor, cmax: torch.Tensor, cmin: torch.Tensor, residual_amax: torch.Tensor,
                   range_to_sigma: float, threshold: float, block: int):
    """transforms.mean.split_decision in one launch: (split () bool, mean, residual amax, counts [1, split],
    energies); range_to_sigma and the channel sums' block size are the caller's (the reference's)."""
    c = mean.numel()
    dev = mean.device
    out_mean = torch.empty(c, dtype=torch.float32, device=dev)
    scalars = torch.empty(1, dtype=torch.float32, device=dev)
    split = torch.empty(1, dtype=torch.bool, device=dev)
    counts = torch.empty(2, dtype=torch.int64, device=dev)
    energies = torch.empty(2, dtype=torch.float32, device=dev)
    K.split_decision_kernel[(1,)](mean.float(), cmax.float(), cmin.float(), residual_amax.float().reshape(1),
                                  out_mean, scalars, split, counts, energies, c, range_to_sigma,
                                  threshold * threshold, BLOCK=block, num_warps=4, **_LAUNCH)
    return split.reshape(()), out_mean, scalars.reshape(()), counts, energies


def mean_terms(u0: torch.Tensor, v0: torch.Tensor, u1: torch.Tensor | None, v1: torch.Tensor | None,
               out_dtype: torch.dtype, length: int = 0) -> torch.Tensor:
    """transforms.mean.mean_terms in one pass: the vectors read in their own float dtypes (no cast kernels),
    v0 + length x v1 formed in the kernel, the P x Q terms written once, in out_dtype."""
    u0, v0 = u0.reshape(-1).contiguous(), v0.reshape(-1).contiguous()
    two = u1 is not None
    u1, v1 = (u1.reshape(-1).contiguous(), v1.reshape(-1).contiguous()) if two else (u0, v0)
    p, q = u0.numel(), v0.numel()
    out = torch.empty(p, q, dtype=out_dtype, device=u0.device)
    bp, bq, nw = _cfg("terms")
    K.mean_terms_kernel[(_cdiv(p, bp), _cdiv(q, bq))](u0, v0, u1, v1, out, p, q, length, TWO=two,
                                                      ADD_LENGTH=bool(length), BP=bp, BQ=bq, num_warps=nw,
                                                      **_LAUNCH)
    return out


def fake_quantize_residual(
    x: torch.Tensor,
    mu: torch.Tensor,
    residual_amax: torch.Tensor | None,
    spec: FormatSpec,
    axis: int = -1,
    generator=None,
    pad: bool = False,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """fake_quantize(x.float() - mu, tensor_amax=residual_amax) fused: one read of x, mu on dim 0."""
    return _fq(x, spec, axis % x.ndim, generator, pad, residual_amax, mu=mu, out_dtype=out_dtype)


def fake_quantize_hadamard(
    x: torch.Tensor,
    signs: torch.Tensor,
    spec: FormatSpec,
    axis: int = -1,
    generator=None,
    tensor_amax=None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """fake_quantize(transforms.hadamard16(x, signs, axis)) along ``axis``, fused."""
    axis = axis % x.ndim
    if x.shape[axis] % 16:
        raise ValueError(
            f"the 16-point Hadamard transform needs a multiple of 16 along axis {axis}, got {x.shape[axis]}"
        )
    return _fq(x, spec, axis, generator, False, tensor_amax, signs=signs, out_dtype=out_dtype)


def fake_quantize_dual(
    x: torch.Tensor,
    spec: FormatSpec,
    generator=None,
    tensor_amax=None,
    mu=None,
    pad: bool = False,
    out_dtype: torch.dtype | None = None,
):
    """(rowwise, columnwise) fake-quant of a 2D tensor from one read: equal to
    fake_quantize(x, axis=1) then fake_quantize(x, axis=0) with the same generator (seeds drawn in that
    order); with ``mu``, of the residual x - mu.  1D blocks only."""
    if x.ndim != 2 or len(spec.block_shape) != 1:
        raise ValueError("fake_quantize_dual takes a 2D tensor and 1D blocks (1x16 NVFP4, 1x32 MXFP4)")
    M, Kd = x.shape
    b = spec.block_shape[0]
    if not pad and (M % b or Kd % b):
        raise ValueError(
            f"shape {tuple(x.shape)} does not divide into blocks of {b} along both dims: pass pad=True"
        )
    sr = spec.rounding == "stochastic"
    nv = spec.fmt == "nvfp4"
    seeds = (
        torch.cat([noise.draw_seed(generator, x.device), noise.draw_seed(generator, x.device)])
        if sr
        else None
    )
    if nv and tensor_amax is None:
        tensor_amax = amax(x, mu=mu)
    bm, bk, nw = _cfg("dual")
    bm = min(bm, _pow2_at_least(M, 32))
    bk = min(bk, _pow2_at_least(Kd, 32))
    dt = out_dtype or x.dtype
    yr = torch.empty(M, Kd, dtype=dt, device=x.device)
    yc = torch.empty(M, Kd, dtype=dt, device=x.device)
    Mp, Kp = -(-M // b) * b, -(-Kd // b) * b
    muv = mu.reshape(-1).float().contiguous() if mu is not None else x
    grid = (_cdiv(M, bm), _cdiv(Kd, bk))
    K.dual_kernel[grid](
        x,
        x.stride(0),
        x.stride(1),
        muv,
        yr,
        yc,
        tensor_amax.reshape(1).float() if nv else x,
        seeds if sr else x,
        M,
        Kd,
        Mp,
        Kp,
        NV=nv,
        B=b,
        SR=sr,
        CEIL=spec.scale_rule == "ceil",
        HAS_MU=mu is not None,
        BM=bm,
        BK=bk,
        num_warps=nw,
        **_LAUNCH,
    )
    return yr, yc
