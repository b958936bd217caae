"""Triton kernels: FP4 quantization (NVFP4 / MXFP4), tensor amax, Averis column statistics.

Every kernel reproduces ``averis.formats`` (or ``averis.transforms``) bit for bit:
- divisions use ``tl.math.div_rn`` (a plain ``/`` is not correctly rounded in Triton on CUDA);
- E4M3 rounding is done with integer bit operations (round to nearest even, subnormals
  included), not with a float8 conversion whose rounding could differ between backends;
- maxima are taken on the integer bits of |x| (NaN-propagating, exact);
- clamps are ``where(v > hi, hi, v)``, which keeps NaN like ``torch.clamp`` (``tl.minimum`` may not);
- kernels are launched with ``enable_fp_fusion=False`` so no a*b+c is contracted into an FMA.

The layout: every quantize kernel sees the input as a 3D strided view (batch, R, L) of the
tensor with the block axis moved last (``L``); 1D blocks run along L, 16x16 tiles also block
R.  The stochastic-rounding noise index is the flat index in the zero-padded (batch, Rp, Lp)
layout, which is the row-major index of the reference's blocked layout.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

FP32_MAX = tl.constexpr(3.4028234663852886e38)
INV6 = tl.constexpr(0.16666666666666666)  # rounds to fp32(1/6) as a Triton constant, like the reference
GOLDEN32 = tl.constexpr(0x9E3779B9)
HASH_M1 = tl.constexpr(0x7FEB352D)
HASH_M2 = tl.constexpr(0x846CA68B)
# The interpreter's own fp32 -> bf16 conversion truncates; on CUDA the conversion rounds to nearest even.
_INTERP = tl.constexpr(os.environ.get("TRITON_INTERPRET") == "1")


# --------------------------------------------------------------------------- scalar helpers
@triton.jit
def _fmax_nan(a, b):
    """max(a, b) that propagates NaN (either operand)."""
    return tl.where((a > b) | (a != a), a, b)


@triton.jit
def _fmin_nan(a, b):
    return tl.where((a < b) | (a != a), a, b)


@triton.jit
def _e4m3_rne(v):
    """Round v in [0, 448] (or NaN) to the nearest float8_e4m3fn value, ties to even; fp32 result."""
    bits = v.to(tl.int32, bitcast=True)
    lsb = (bits >> 20) & 1
    normal = ((bits + 0x7FFFF + lsb) & -1048576).to(tl.float32, bitcast=True)
    r = v * 512.0  # subnormal step 2**-9: round v * 2**9 to an integer (exact scaling)
    sub = ((r + 8388608.0) - 8388608.0) * 0.001953125
    return tl.where(v >= 0.015625, normal, sub)


@triton.jit
def _exp2_int(e):
    """2**e as float32 for integer e in [-149, 127], built from the bits (scales.exp2_int)."""
    normal = (tl.maximum(e + 127, 0) << 23).to(tl.float32, bitcast=True)
    one = tl.full(e.shape, 1, tl.int32)
    sub = (one << tl.minimum(tl.maximum(e + 149, 0), 22)).to(tl.float32, bitcast=True)
    return tl.where(e >= -126, normal, sub)


@triton.jit
def _floor_log2(a):
    """floor(log2(a)) for finite a > 0 (subnormals included), as int32."""
    ex = (a.to(tl.int32, bitcast=True) >> 23) & 0xFF
    ex_sub = (((a * 18446744073709551616.0).to(tl.int32, bitcast=True) >> 23) & 0xFF) - 64
    return tl.where(ex == 0, ex_sub, ex) - 127


@triton.jit
def _e2m1_value(idx):
    """Magnitude of E2M1 index 0..7: {0, .5, 1, 1.5, 2, 3, 4, 6}."""
    f = idx.to(tl.float32)
    return tl.where(idx < 4, f * 0.5, tl.where(idx == 7, 6.0, f - 2.0))


@triton.jit
def _uniform(nidx, seed):
    """formats.noise: (lowbias32(i + seed * GOLDEN) >> 8) * 2**-24, all uint32 (wrapping)."""
    h = nidx + seed * tl.full((), GOLDEN32, tl.uint32)
    h = h ^ (h >> 16)
    h = h * tl.full((), HASH_M1, tl.uint32)
    h = h ^ (h >> 15)
    h = h * tl.full((), HASH_M2, tl.uint32)
    h = h ^ (h >> 16)
    return (h >> 8).to(tl.float32) * 5.9604644775390625e-08


@triton.jit
def _nv_tensor_scales(amax):
    """(S_enc, S_dec) from the tensor amax (scales.nvfp4_tensor_encode/decode_scale)."""
    s_enc = tl.math.div_rn(tl.full((), 2688.0, tl.float32), amax)
    s_enc = tl.where(s_enc > FP32_MAX, FP32_MAX, s_enc)
    s_enc = tl.where(amax == 0.0, 1.0, s_enc)
    finite = (amax == amax) & (tl.abs(amax) <= FP32_MAX)
    s_enc = tl.where(finite, s_enc, float("nan"))
    s_dec = tl.math.div_rn(tl.full((), 1.0, tl.float32), s_enc)
    return s_enc, s_dec


@triton.jit
def _to_out(v, dtype: tl.constexpr):
    """Cast fp32 -> output dtype; bf16 is rounded to nearest even on the bits first (the interpreter's
    own bf16 conversion truncates), so the final cast is exact on every backend."""
    if (dtype == tl.bfloat16) and _INTERP:
        b = v.to(tl.int32, bitcast=True)
        b = (b + 0x7FFF + ((b >> 16) & 1)) & -65536
        return b.to(tl.float32, bitcast=True).to(tl.bfloat16)
    else:
        return v.to(dtype)


# --------------------------------------------------------------------------- tiles
@triton.jit
def _butterfly(v, H: tl.constexpr, BR: tl.constexpr, BL: tl.constexpr):
    """Each pair (i, i + H) with i & H == 0 along dim 1 -> (x_i + x_{i+H}, x_i - x_{i+H})."""
    t = tl.permute(tl.reshape(v, (BR, BL // (2 * H), 2, H)), (0, 1, 3, 2))
    a, b = tl.split(t)
    t = tl.permute(tl.join(a + b, a - b), (0, 1, 3, 2))
    return tl.reshape(t, (BR, BL))


@triton.jit
def _hadamard16(v, BR: tl.constexpr, BL: tl.constexpr):
    """16-point Walsh-Hadamard butterflies along dim 1 (blocks of 16), h = 1, 2, 4, 8, then * 1/4:
    the order of transforms.hadamard16."""
    v = _butterfly(v, 1, BR, BL)
    v = _butterfly(v, 2, BR, BL)
    v = _butterfly(v, 4, BR, BL)
    v = _butterfly(v, 8, BR, BL)
    return v * 0.25


@triton.jit
def _load_tile(
    x_ptr,
    sxr,
    sxl,
    mu_ptr,
    smr,
    sml,
    sgn_ptr,
    rr,
    ll,
    R,
    L,
    HAS_MU: tl.constexpr,
    HAD: tl.constexpr,
    BR: tl.constexpr,
    BL: tl.constexpr,
):
    """fp32 tile of the (moved) input, zero outside [0, R) x [0, L); minus mu; Hadamard."""
    inb = (rr < R) & (ll < L)
    v = tl.load(x_ptr + rr.to(tl.int64) * sxr + ll * sxl, mask=inb, other=0.0).to(tl.float32)
    if HAS_MU:
        mu = tl.load(mu_ptr + rr * smr + ll * sml, mask=inb, other=0.0).to(tl.float32)
        v = tl.where(inb, v - mu, 0.0)
    if HAD:
        sg = tl.load(sgn_ptr + (ll % 16)).to(tl.float32)
        v = _hadamard16(v * sg, BR, BL)
    return v


@triton.jit
def _block_reduce_bits(ab, B: tl.constexpr, TILE: tl.constexpr, BR: tl.constexpr, BL: tl.constexpr):
    """Max of int32 bits over each block: (BR, BL // B) for 1D blocks, (BR // 16, BL // 16) for tiles."""
    if TILE:
        t = tl.reshape(ab, (BR // 16, 16, BL // 16, 16))
        return tl.max(tl.max(t, axis=3), axis=1)
    else:
        return tl.max(tl.reshape(ab, (BR, BL // B, B)), axis=2)


@triton.jit
def _block_expand(s, B: tl.constexpr, TILE: tl.constexpr, BR: tl.constexpr, BL: tl.constexpr):
    """Broadcast one value per block back to the (BR, BL) tile."""
    if TILE:
        t = tl.broadcast_to(tl.reshape(s, (BR // 16, 1, BL // 16, 1)), (BR // 16, 16, BL // 16, 16))
        return tl.reshape(t, (BR, BL))
    else:
        t = tl.broadcast_to(tl.reshape(s, (BR, BL // B, 1)), (BR, BL // B, B))
        return tl.reshape(t, (BR, BL))


@triton.jit
def _quantize_tile(
    v,
    nidx,
    seed,
    amax,
    NV: tl.constexpr,
    B: tl.constexpr,
    TILE: tl.constexpr,
    SR: tl.constexpr,
    CEIL: tl.constexpr,
    UNSCALED: tl.constexpr,
    BR: tl.constexpr,
    BL: tl.constexpr,
):
    """Quantize a (BR, BL) fp32 tile blocked along dim 1 (and dim 0 for 16x16 tiles).

    Returns (dequantized fp32 tile, codes int32 tile, per-block stored scale, S_dec):
    the stored scale is the E4M3 value as fp32 (NVFP4) or the E8M0 byte as int32 (MXFP4).
    UNSCALED: the dequantized tile without the NVFP4 tensor scale (code x block scale).
    """
    bits = v.to(tl.int32, bitcast=True)
    bamax = _block_reduce_bits(bits & 0x7FFFFFFF, B, TILE, BR, BL).to(tl.float32, bitcast=True)
    s_dec = 0.0
    if NV:
        s_enc, s_dec = _nv_tensor_scales(amax)
        sb = bamax * (s_enc * INV6)
        sb = _e4m3_rne(tl.where(sb > 448.0, 448.0, sb))
        e_b = tl.math.div_rn(tl.full(sb.shape, 1.0, tl.float32), sb * s_dec)
        e_b = tl.where(e_b > FP32_MAX, FP32_MAX, e_b)
        factor = e_b
        deq = sb
        stored = sb
    else:
        e = _floor_log2(bamax) - 2
        if CEIL:
            # RCEIL: ceil(log2(fp32(bamax * fp32(1/6)))), as scales.mxfp4_scale_exponent
            e = e + (bamax * INV6 > _exp2_int(tl.minimum(tl.maximum(e, -149), 127))).to(tl.int32)
        e = tl.where(bamax == 0.0, -127, e)
        e = tl.minimum(tl.maximum(e, -127), 127)
        finite = bamax <= FP32_MAX
        factor = _exp2_int(-e)
        deq = tl.where(finite, _exp2_int(e), float("nan"))
        stored = tl.where(finite, e + 127, 255)
    scaled = v * _block_expand(factor, B, TILE, BR, BL)
    sbits = scaled.to(tl.int32, bitcast=True)
    mag = (sbits & 0x7FFFFFFF).to(tl.float32, bitcast=True)
    mag = tl.where(mag > 6.0, 6.0, mag)
    # E2M1 grid step s: 0.5 on [0, 2), 1 on [2, 4), 2 on [4, 6]; mag / s is exact (power of two).
    # Nearest: rint(mag / s) * s (ties to even index == ties to even mantissa, e2m1.RNE_MIDPOINTS);
    # stochastic: lo = floor(mag / s) * s, up when u * s < mag - lo (e2m1.round_stochastic_magnitude).
    big = mag >= 4.0
    mid = mag >= 2.0
    step = tl.where(big, 2.0, tl.where(mid, 1.0, 0.5))
    t = mag * tl.where(big, 0.5, tl.where(mid, 1.0, 2.0))
    r = (t + 8388608.0) - 8388608.0  # round half to even (t < 2**22)
    if SR:
        lo = tl.where(r > t, r - 1.0, r) * step
        u = _uniform(nidx, seed)
        qmag = tl.where(u * step < (mag - lo), lo + step, lo)
    else:
        qmag = r * step
    q = (qmag.to(tl.int32, bitcast=True) | (sbits & -2147483648)).to(tl.float32, bitcast=True)
    if NV and not UNSCALED:
        fq = (q * _block_expand(deq, B, TILE, BR, BL)) * s_dec
    else:
        fq = q * _block_expand(deq, B, TILE, BR, BL)
    idx = tl.where(qmag < 2.5, qmag * 2.0, tl.where(qmag > 5.0, 7.0, qmag + 2.0))
    idx = tl.where(qmag == qmag, idx, 0.0).to(tl.int32)  # NaN -> index 0, like e2m1.encode
    neg = sbits < 0
    codes = idx | (neg.to(tl.int32) << 3)
    return fq, codes, stored, s_dec


@triton.jit
def _store_packed(
    codes,
    stored,
    s_dec,
    c_ptr,
    s_ptr,
    ts_ptr,
    pid_b,
    r0,
    l0,
    Rc,
    Lp,
    NV: tl.constexpr,
    B: tl.constexpr,
    TILE: tl.constexpr,
    BR: tl.constexpr,
    BL: tl.constexpr,
):
    """Codes two per byte (low nibble first) in a (batch, Rc, Lp/2) array; scales; tensor scale."""
    lo, hi = tl.split(tl.reshape(codes, (BR, BL // 2, 2)))
    byte = (lo | (hi << 4)).to(tl.uint8)
    rr = (r0 + tl.arange(0, BR))[:, None]
    l2 = (l0 // 2 + tl.arange(0, BL // 2))[None, :]
    base = pid_b.to(tl.int64) * Rc
    tl.store(c_ptr + (base + rr) * (Lp // 2) + l2, byte, mask=(rr < Rc) & (l2 < Lp // 2))
    if TILE:
        rt = (r0 // 16 + tl.arange(0, BR // 16))[:, None]
        lt = (l0 // 16 + tl.arange(0, BL // 16))[None, :]
        ptrs = s_ptr + (pid_b.to(tl.int64) * (Rc // 16) + rt) * (Lp // 16) + lt
        smask = (rt < Rc // 16) & (lt < Lp // 16)
    else:
        lb = (l0 // B + tl.arange(0, BL // B))[None, :]
        ptrs = s_ptr + (base + rr) * (Lp // B) + lb
        smask = (rr < Rc) & (lb < Lp // B)
    if NV:
        tl.store(ptrs, stored.to(tl.float8e4nv), mask=smask)
        if (pid_b == 0) & (r0 == 0) & (l0 == 0):
            tl.store(ts_ptr, s_dec)
    else:
        tl.store(ptrs, stored.to(tl.uint8), mask=smask)


# --------------------------------------------------------------------------- kernels
@triton.jit
def quantize_kernel(
    x_ptr,
    sxb,
    sxr,
    sxl,
    mu_ptr,
    smr,
    sml,
    sgn_ptr,
    y_ptr,
    syb,
    syr,
    syl,
    c_ptr,
    s_ptr,
    ts_ptr,
    amax_ptr,
    seed_ptr,
    tsum_ptr,
    R,
    L,
    Rp,
    Lp,
    NV: tl.constexpr,
    B: tl.constexpr,
    TILE: tl.constexpr,
    SR: tl.constexpr,
    CEIL: tl.constexpr,
    HAS_MU: tl.constexpr,
    HAD: tl.constexpr,
    FAKE: tl.constexpr,
    PACKED: tl.constexpr,
    UNSCALED: tl.constexpr,
    TSUM: tl.constexpr,
    BR: tl.constexpr,
    BL: tl.constexpr,
):
    """Quantize one (BR, BL) tile.  TSUM (fake, batch 1): also this tile's partial sums over L of the values as
    stored (their dtype's bits), a pairwise tree over the BL = chunk positions (transforms.mean.column_sum's
    chunk), into tsum_ptr (n_L_tiles, R) float32; token_sum_kernel adds the chunks (the wgrad token sums)."""
    pid_r = tl.program_id(0)
    pid_l = tl.program_id(1)
    pid_b = tl.program_id(2)
    r0 = pid_r * BR
    l0 = pid_l * BL
    rr = (r0 + tl.arange(0, BR))[:, None]
    ll = (l0 + tl.arange(0, BL))[None, :]
    v = _load_tile(
        x_ptr + pid_b.to(tl.int64) * sxb,
        sxr,
        sxl,
        mu_ptr,
        smr,
        sml,
        sgn_ptr,
        rr,
        ll,
        R,
        L,
        HAS_MU,
        HAD,
        BR,
        BL,
    )
    amax = 0.0
    if NV:
        amax = tl.load(amax_ptr).to(tl.float32)
    seed = tl.full((), 0, tl.uint32)
    nidx = tl.full((BR, BL), 0, tl.uint32)
    if SR:
        seed = tl.load(seed_ptr).to(tl.uint32)
        nidx = (pid_b.to(tl.uint32) * Rp + rr.to(tl.uint32)) * Lp + ll.to(tl.uint32)
    fq, codes, stored, s_dec = _quantize_tile(v, nidx, seed, amax, NV, B, TILE, SR, CEIL, UNSCALED, BR, BL)
    if FAKE:
        out = y_ptr + pid_b.to(tl.int64) * syb + rr.to(tl.int64) * syr + ll * syl
        tl.store(out, _to_out(fq, y_ptr.dtype.element_ty), mask=(rr < R) & (ll < L))
        if TSUM:
            # zero outside the tensor (a padded lane may be NaN in a NaN block), + 0.0: -0 -> +0 as in the reference
            sv = tl.where((rr < R) & (ll < L), _to_out(fq, y_ptr.dtype.element_ty).to(tl.float32) + 0.0, 0.0)
            rv = r0 + tl.arange(0, BR)
            tl.store(tsum_ptr + pid_l.to(tl.int64) * R + rv, _tree_sum(tl.trans(sv), BL, BR), mask=rv < R)
    if PACKED:
        Rc = R
        if TILE:
            Rc = Rp
        _store_packed(codes, stored, s_dec, c_ptr, s_ptr, ts_ptr, pid_b, r0, l0, Rc, Lp, NV, B, TILE, BR, BL)


@triton.jit
def amax_kernel(
    x_ptr,
    sxb,
    sxr,
    sxl,
    mu_ptr,
    smr,
    sml,
    sgn_ptr,
    out_ptr,
    R,
    L,
    HAS_MU: tl.constexpr,
    HAD: tl.constexpr,
    BR: tl.constexpr,
    BL: tl.constexpr,
):
    """amax(|v|) over the (moved) tensor into out_ptr (int32 bits of a float, zero-initialised)."""
    pid_r = tl.program_id(0)
    pid_l = tl.program_id(1)
    pid_b = tl.program_id(2)
    rr = (pid_r * BR + tl.arange(0, BR))[:, None]
    ll = (pid_l * BL + tl.arange(0, BL))[None, :]
    v = _load_tile(
        x_ptr + pid_b.to(tl.int64) * sxb,
        sxr,
        sxl,
        mu_ptr,
        smr,
        sml,
        sgn_ptr,
        rr,
        ll,
        R,
        L,
        HAS_MU,
        HAD,
        BR,
        BL,
    )
    m = tl.max(tl.max(v.to(tl.int32, bitcast=True) & 0x7FFFFFFF, axis=1), axis=0)
    tl.atomic_max(out_ptr, m)


@triton.jit
def amax_flat_kernel(x_ptr, out_ptr, N, BLOCK: tl.constexpr):
    """amax(|x|) of a contiguous tensor (int32 bits, zero-initialised output)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(x_ptr + offs, mask=offs < N, other=0.0).to(tl.float32)
    m = tl.max(v.to(tl.int32, bitcast=True) & 0x7FFFFFFF, axis=0)
    tl.atomic_max(out_ptr, m)


@triton.jit
def dual_kernel(
    x_ptr,
    sxr,
    sxl,
    mu_ptr,
    yr_ptr,
    yc_ptr,
    amax_ptr,
    seed_ptr,
    M,
    K,
    Mp,
    Kp,
    NV: tl.constexpr,
    B: tl.constexpr,
    SR: tl.constexpr,
    CEIL: tl.constexpr,
    HAS_MU: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    """Rowwise (blocks along K) and columnwise (blocks along M) fake-quant of a 2D tensor, one read.

    Outputs yr, yc are contiguous M x K; mu (optional) is a per-column (length K) mean.
    seed_ptr holds two seeds: [rowwise, columnwise].
    """
    pid_m = tl.program_id(0)
    pid_k = tl.program_id(1)
    rr = (pid_m * BM + tl.arange(0, BM))[:, None]
    kk = (pid_k * BK + tl.arange(0, BK))[None, :]
    v = _load_tile(x_ptr, sxr, sxl, mu_ptr, 0, 1, mu_ptr, rr, kk, M, K, HAS_MU, False, BM, BK)
    amax = 0.0
    if NV:
        amax = tl.load(amax_ptr).to(tl.float32)
    seed_r = tl.full((), 0, tl.uint32)
    seed_c = tl.full((), 0, tl.uint32)
    nr = tl.full((BM, BK), 0, tl.uint32)
    nc = tl.full((BK, BM), 0, tl.uint32)
    if SR:
        seed_r = tl.load(seed_ptr).to(tl.uint32)
        seed_c = tl.load(seed_ptr + 1).to(tl.uint32)
        nr = rr.to(tl.uint32) * Kp + kk.to(tl.uint32)
        rt = (pid_m * BM + tl.arange(0, BM))[None, :]
        kt = (pid_k * BK + tl.arange(0, BK))[:, None]
        nc = kt.to(tl.uint32) * Mp + rt.to(tl.uint32)
    mask = (rr < M) & (kk < K)
    offs = rr.to(tl.int64) * K + kk
    fr, _c, _s, _d = _quantize_tile(v, nr, seed_r, amax, NV, B, False, SR, CEIL, False, BM, BK)
    tl.store(yr_ptr + offs, _to_out(fr, yr_ptr.dtype.element_ty), mask=mask)
    fc, _c2, _s2, _d2 = _quantize_tile(tl.trans(v), nc, seed_c, amax, NV, B, False, SR, CEIL, False, BK, BM)
    tl.store(yc_ptr + offs, _to_out(tl.trans(fc), yc_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _pair_sum(t, G: tl.constexpr, BN: tl.constexpr):
    """(G, BN) -> (G/2, BN): rows 2i + 2i+1 (one level of the fixed pairwise tree).  A sum of two is
    exact in any order; the inputs carry no -0 (normalised by + 0.0), so no identity can change it."""
    return tl.sum(tl.reshape(t, (G // 2, 2, BN)), axis=1)


@triton.jit
def _tree_sum(t, G: tl.constexpr, BN: tl.constexpr):
    """Pairwise tree sum of the G (a power of two, <= 256) rows of t (G, BN), in a fixed order."""
    if G >= 256:
        t = _pair_sum(t, 256, BN)
    if G >= 128:
        t = _pair_sum(t, 128, BN)
    if G >= 64:
        t = _pair_sum(t, 64, BN)
    if G >= 32:
        t = _pair_sum(t, 32, BN)
    if G >= 16:
        t = _pair_sum(t, 16, BN)
    if G >= 8:
        t = _pair_sum(t, 8, BN)
    if G >= 4:
        t = _pair_sum(t, 4, BN)
    if G >= 2:
        t = _pair_sum(t, 2, BN)
    return tl.reshape(t, (BN,))


@triton.jit
def _rows_stats(x_ptr, sxr, rows0, coffs, cm, NROWS, N: tl.constexpr):
    """(sum, max, min) over rows rows0 .. rows0 + N - 1 (N a power of two; rows past NROWS read as +0 for the sum
    and are left out of max / min) of the columns at coffs: the pairwise tree as halves of halves, which is the
    level-by-level tree (rows 2i + 2i+1 first) exactly.  rows0 (SUB, 1) holds the first row of SUB row blocks read
    side by side, coffs and cm (1, BN) the columns: each step is one coalesced (SUB, BN) load, and every column's
    tree stays in its own thread's registers: no layout conversion, no shared memory."""
    if N == 1:
        rows = rows0 + tl.zeros_like(coffs)  # (SUB, BN)
        ok = cm & (rows < NROWS)
        v = tl.load(x_ptr + rows.to(tl.int64) * sxr + coffs, mask=ok, other=0.0).to(tl.float32)
        return v + 0.0, tl.where(ok, v, float("-inf")), tl.where(ok, v, float("inf"))  # + 0.0: -0 -> +0
    else:
        s0, mx0, mn0 = _rows_stats(x_ptr, sxr, rows0, coffs, cm, NROWS, N // 2)
        s1, mx1, mn1 = _rows_stats(x_ptr, sxr, rows0 + N // 2, coffs, cm, NROWS, N // 2)
        return s0 + s1, _fmax_nan(mx0, mx1), _fmin_nan(mn0, mn1)


@triton.jit
def _rows_sum(p, stride, row0, coffs, cm, NROWS, N: tl.constexpr):
    """The pairwise tree sum (as in _rows_stats) of rows row0 .. row0 + N - 1 of float32 partials (rows past NROWS
    read as +0), read from L2 (.cg): other programs of this launch may have just written them."""
    if N == 1:
        rows = row0 + tl.zeros_like(coffs)
        return tl.load(p + rows.to(tl.int64) * stride + coffs, mask=cm & (rows < NROWS), other=0.0,
                       cache_modifier=".cg")
    else:
        return (_rows_sum(p, stride, row0, coffs, cm, NROWS, N // 2)
                + _rows_sum(p, stride, row0 + N // 2, coffs, cm, NROWS, N // 2))


@triton.jit
def column_stats_kernel(
    x_ptr,
    sxr,
    sxc,
    ps_ptr,
    pmax_ptr,
    pmin_ptr,
    cnt_ptr,
    sum_ptr,
    max_ptr,
    min_ptr,
    mu_ptr,
    ramax_ptr,
    NROWS,
    NROWS_F,
    NCOLS,
    NCH,
    CH: tl.constexpr,
    SUB: tl.constexpr,
    BN: tl.constexpr,
    GROUP: tl.constexpr,
):
    """Column sums, maxima, minima, the mean and the residual amax in one read of x (NROWS x NCOLS).

    Order (transforms.mean.column_stats): each chunk of CH rows (zero-padded) is summed by a pairwise tree;
    the chunk sums likewise inside groups of GROUP chunks; the group sums one after the other.  This
    program reads its chunk as SUB blocks of CH / SUB rows side by side, each block's tree row by row
    (_rows_stats), then the blocks' sums by the same tree's top levels (_tree_sum); the last program to finish
    a column tile combines the chunk partials (_column_stats_finish).
    """
    pid_c = tl.program_id(0)
    pid_k = tl.program_id(1)
    cols = pid_c * BN + tl.arange(0, BN)
    cm = cols < NCOLS
    rows0 = pid_k * CH + tl.arange(0, SUB)[:, None] * (CH // SUB)
    s2, mx2, mn2 = _rows_stats(x_ptr, sxr, rows0, (cols * sxc)[None, :], cm[None, :], NROWS, CH // SUB)
    s = _tree_sum(s2, SUB, BN)
    mx = tl.reduce(mx2, 0, _fmax_nan)
    mn = tl.reduce(mn2, 0, _fmin_nan)
    _column_stats_finish(s, mx, mn, cols, cm, pid_c, pid_k, ps_ptr, pmax_ptr, pmin_ptr, cnt_ptr, sum_ptr, max_ptr,
                         min_ptr, mu_ptr, ramax_ptr, NROWS_F, NCOLS, NCH, BN, GROUP)


@triton.jit
def _column_stats_finish(s, mx, mn, cols, cm, pid_c, pid_k, ps_ptr, pmax_ptr, pmin_ptr, cnt_ptr, sum_ptr, max_ptr,
                         min_ptr, mu_ptr, ramax_ptr, NROWS_F, NCOLS, NCH, BN: tl.constexpr, GROUP: tl.constexpr):
    """Store this chunk's (sum, max, min) of the column tile; the last program to finish the tile (atomic
    counter) combines the chunk partials, writes sum, max, min, mu = sum / NROWS and folds
    max_j max(colmax_j - mu_j, mu_j - colmin_j) into ramax (int32 bits, atomic max)."""
    poff = pid_k.to(tl.int64) * NCOLS + cols
    tl.store(ps_ptr + poff, s, mask=cm)
    tl.store(pmax_ptr + poff, mx, mask=cm)
    tl.store(pmin_ptr + poff, mn, mask=cm)
    tl.debug_barrier()
    done = tl.atomic_add(cnt_ptr + pid_c, 1, sem="acq_rel")
    if done == NCH - 1:
        tot = tl.zeros((BN,), tl.float32)
        gmx = tl.full((BN,), float("-inf"), tl.float32)
        gmn = tl.full((BN,), float("inf"), tl.float32)
        kk = tl.arange(0, GROUP)[:, None]
        for k0 in range(0, NCH, GROUP):
            m2 = ((k0 + kk) < NCH) & cm[None, :]
            off = (k0 + kk).to(tl.int64) * NCOLS + cols[None, :]
            tot = tot + _rows_sum(ps_ptr, NCOLS, k0, cols, cm, NCH, GROUP)
            gmx = _fmax_nan(
                tl.reduce(
                    tl.load(pmax_ptr + off, mask=m2, other=float("-inf"), cache_modifier=".cg"), 0, _fmax_nan
                ),
                gmx,
            )
            gmn = _fmin_nan(
                tl.reduce(
                    tl.load(pmin_ptr + off, mask=m2, other=float("inf"), cache_modifier=".cg"), 0, _fmin_nan
                ),
                gmn,
            )
        mu = tl.math.div_rn(tot, tl.full((BN,), 1.0, tl.float32) * NROWS_F)
        tl.store(sum_ptr + cols, tot, mask=cm)
        tl.store(max_ptr + cols, gmx, mask=cm)
        tl.store(min_ptr + cols, gmn, mask=cm)
        tl.store(mu_ptr + cols, mu, mask=cm)
        res = _fmax_nan(gmx - mu, mu - gmn)
        res = tl.where(cm, res, 0.0)
        tl.atomic_max(ramax_ptr, tl.max(res.to(tl.int32, bitcast=True) & 0x7FFFFFFF, axis=0))


@triton.jit
def token_sum_kernel(part_ptr, out_ptr, dt_ptr, NT, C, ROUND: tl.constexpr, BN: tl.constexpr, GROUP: tl.constexpr):
    """out (C,) float32 = the column sums of the chunk partials part (NT, C) (quantize_kernel's TSUM): a pairwise
    tree inside each group of GROUP chunks (zero-padded), the groups one after the other from +0
    (transforms.mean.column_sum); ROUND: then rounded once to dt_ptr's dtype (the values' dtype)."""
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    cm = cols < C
    tot = tl.zeros((BN,), tl.float32)
    for k0 in range(0, NT, GROUP):
        tot = tot + _rows_sum(part_ptr, C, k0, cols, cm, NT, GROUP)
    if ROUND:
        tot = _to_out(tot, dt_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + cols, tot, mask=cm)


@triton.jit
def mean_terms_kernel(u0_ptr, v0_ptr, u1_ptr, v1_ptr, out_ptr, P, Q, LENGTH, TWO: tl.constexpr,
                      ADD_LENGTH: tl.constexpr, BP: tl.constexpr, BQ: tl.constexpr):
    """out (P x Q, contiguous) = u0 (v0 + LENGTH v1)^T (+ u1 v1^T) in float32 from vectors of any float dtype, each
    product rounded, then the add (launched without FMA contraction), written in out's dtype:
    transforms.mean.mean_terms."""
    rp = tl.program_id(0) * BP + tl.arange(0, BP)
    rq = tl.program_id(1) * BQ + tl.arange(0, BQ)
    mp = rp < P
    mq = rq < Q
    v0 = tl.load(v0_ptr + rq, mask=mq, other=0.0).to(tl.float32)
    if TWO:
        v1 = tl.load(v1_ptr + rq, mask=mq, other=0.0).to(tl.float32)
        if ADD_LENGTH:
            v0 = v0 + v1 * LENGTH  # the int converts to float32 exactly (< 2^24), as in PyTorch
    t = tl.load(u0_ptr + rp, mask=mp, other=0.0).to(tl.float32)[:, None] * v0[None, :]
    if TWO:
        t = t + tl.load(u1_ptr + rp, mask=mp, other=0.0).to(tl.float32)[:, None] * v1[None, :]
    offs = rp[:, None].to(tl.int64) * Q + rq[None, :]
    tl.store(out_ptr + offs, _to_out(t, out_ptr.dtype.element_ty), mask=mp[:, None] & mq[None, :])


@triton.jit
def split_decision_kernel(mean_ptr, max_ptr, min_ptr, ramax_ptr, out_mean_ptr, out_ramax_ptr, split_ptr, counts_ptr,
                          energies_ptr, C, R2S, THR2, BLOCK: tl.constexpr):
    """The adaptive split of one source from its column statistics, in one program (transforms.mean.split_decision):
    the channel sums of mean^2 and ((max - min) / R2S)^2 in blocks of BLOCK (a pairwise tree inside, the blocks
    in sequence), the decision, then where(split, mean, 0), where(split, residual amax, amax(|x|)), the split
    flag, the counts [1, split] and the two energies."""
    offs = tl.arange(0, BLOCK)
    me = tl.zeros((1,), tl.float32)
    se = tl.zeros((1,), tl.float32)
    hi = tl.full((1,), float("-inf"), tl.float32)
    lo = tl.full((1,), float("inf"), tl.float32)
    r2s = tl.full((BLOCK,), 1.0, tl.float32) * R2S
    for b in range(0, C, BLOCK):
        m = b + offs < C
        mu = tl.load(mean_ptr + b + offs, mask=m, other=0.0)
        cmax = tl.load(max_ptr + b + offs, mask=m, other=0.0)
        cmin = tl.load(min_ptr + b + offs, mask=m, other=0.0)
        sp = tl.math.div_rn(cmax - cmin, r2s)
        me = me + _tree_sum(tl.reshape(mu * mu, (BLOCK, 1)), BLOCK, 1)
        se = se + _tree_sum(tl.reshape(sp * sp, (BLOCK, 1)), BLOCK, 1)
        hi = _fmax_nan(hi, tl.reduce(tl.reshape(tl.where(m, cmax, float("-inf")), (BLOCK, 1)), 0, _fmax_nan))
        lo = _fmin_nan(lo, tl.reduce(tl.reshape(tl.where(m, cmin, float("inf")), (BLOCK, 1)), 0, _fmin_nan))
    split = (me >= THR2 * (me + se)) & (me > 0.0)
    one = tl.arange(0, 1)
    tl.store(out_ramax_ptr + one, tl.where(split, tl.load(ramax_ptr + one), _fmax_nan(hi, -lo)))
    tl.store(split_ptr + one, split)
    tl.store(counts_ptr + one, tl.full((1,), 1, tl.int64))
    tl.store(counts_ptr + 1 + one, split.to(tl.int64))
    tl.store(energies_ptr + one, me)
    tl.store(energies_ptr + 1 + one, se)
    for b in range(0, C, BLOCK):
        m = b + offs < C
        tl.store(out_mean_ptr + b + offs, tl.where(split, tl.load(mean_ptr + b + offs, mask=m, other=0.0), 0.0),
                 mask=m)


@triton.jit
def uniform_pair_kernel(u1_ptr, u2_ptr, seed1_ptr, seed2_ptr, n, BLOCK: tl.constexpr):
    """formats.noise.normal's two uniform draws in one launch: 1 - noise(seed1), noise(seed2) (both exact)."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = idx < n
    nidx = idx.to(tl.uint32)
    s1 = tl.load(seed1_ptr).to(tl.uint32)
    s2 = tl.load(seed2_ptr).to(tl.uint32)
    tl.store(u1_ptr + idx, 1.0 - _uniform(nidx, s1), mask=m)
    tl.store(u2_ptr + idx, _uniform(nidx, s2), mask=m)
