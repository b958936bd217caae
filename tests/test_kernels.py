"""Triton kernels vs the PyTorch reference, bit for bit (TRITON_INTERPRET=1 on the CPU, small shapes).

Every comparison is exact: codes, block scales (as bytes), tensor scales and fake-quantized values
(as integer bit patterns, so -0 and +0 differ); NaN positions must match where the input has NaN.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: it reads the flag at import
pytest.importorskip("triton")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from averis import qgemm, transforms  # noqa: E402
from averis.formats import make_spec  # noqa: E402
from averis.kernels.triton_kernels import _e4m3_rne  # noqa: E402
from averis.qgemm import fake_quantize, quantize  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"

SPECS = [("nvfp4", None, None), ("nvfp4", (16, 16), None), ("mxfp4", None, "floor"), ("mxfp4", None, "ceil")]


def bits(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32:
        return t.view(torch.int32)
    if t.element_size() == 2:
        return t.view(torch.int16)
    return t.view(torch.uint8)


def assert_bits_equal(a: torch.Tensor, b: torch.Tensor, what: str = "") -> None:
    assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
    diff = bits(a) != bits(b)
    if diff.any():
        first = tuple(diff.nonzero()[0].tolist())
        raise AssertionError(
            f"{what}: {int(diff.sum())} of {diff.numel()} differ, first at {first}: {a[first]} vs {b[first]}"
        )


def assert_bits_equal_nan(got: torch.Tensor, want: torch.Tensor, what: str = "") -> None:
    """Bit for bit where not NaN, NaN at the same places (arithmetic on a NaN gives the GPU's canonical NaN,
    0x7FFFFFFF, where the CPU keeps the input's payload: not a numerical difference)."""
    assert torch.equal(got.isnan(), want.isnan()), f"{what}: NaN positions differ"
    assert_bits_equal(got.nan_to_num(), want.nan_to_num(), what)


def hard_input(shape, dtype, seed=0) -> torch.Tensor:
    """Random data whose rows span 2**-40 .. 2**8 (E4M3 subnormal scales, flushed blocks), with an
    all-zero row, exact E2M1 grid points and midpoints (ties), negative zeros."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    rows = x.shape[-2] if x.ndim > 1 else 1
    scale = torch.exp2(torch.empty(rows).uniform_(-40, 8, generator=g))
    x = x * (scale[:, None] if x.ndim > 1 else scale)
    flat = x.view(-1)
    grid = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 4.0, 0.5, 7.0, -0.0, -2.5, -5.0])
    n = min(flat.numel() // 3, 64)
    flat[:n] = grid[torch.arange(n) % len(grid)] * 2.0 ** (torch.arange(n) % 5 - 2).float()
    if x.ndim > 1 and x.shape[-2] > 3:
        x[..., 3, :] = 0.0
    return x.to(dtype).to(DEV)


def check_quantize(x, fmt, block_shape, scale_rule, rounding, axis, pad=True, tensor_amax=None):
    opts = dict(
        block_shape=block_shape,
        scale_rule=scale_rule,
        rounding=rounding,
        axis=axis,
        pad=pad,
        check_finite=False,
        tensor_amax=tensor_amax,
    )
    g = [torch.Generator(device=DEV).manual_seed(7) for _ in range(4)]
    ref = quantize(x, fmt, generator=g[0], backend="torch", **opts)
    tri = quantize(x, fmt, generator=g[1], backend="triton", **opts)
    tag = f"{fmt}{block_shape} {scale_rule} {rounding} axis={axis} {tuple(x.shape)} {x.dtype}"
    assert_bits_equal(ref.codes, tri.codes, "codes " + tag)
    assert_bits_equal(ref.scales.view(torch.uint8), tri.scales.view(torch.uint8), "scales " + tag)
    if ref.tensor_scale is not None:
        assert_bits_equal(ref.tensor_scale, tri.tensor_scale, "tensor scale " + tag)
    else:
        assert tri.tensor_scale is None
    f_ref = fake_quantize(x, fmt, generator=g[2], backend="torch", **opts)
    f_tri = fake_quantize(x, fmt, generator=g[3], backend="triton", **opts)
    assert_bits_equal(f_ref, f_tri, "fake " + tag)
    # one layout on both backends: a GEMM over them must pick the same cuBLAS kernel (and rounding)
    assert f_ref.is_contiguous() and f_tri.is_contiguous(), "layout " + tag


@pytest.mark.parametrize("fmt,block_shape,scale_rule", SPECS)
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_quantize_2d_both_axes_odd_shapes(fmt, block_shape, scale_rule, rounding):
    for shape, dtype in (((48, 64), torch.bfloat16), ((37, 83), torch.float32)):
        x = hard_input(shape, dtype, seed=shape[0])
        for axis in (-1, 0):
            check_quantize(x, fmt, block_shape, scale_rule, rounding, axis)


@pytest.mark.parametrize("fmt,block_shape,scale_rule", SPECS[:3])
def test_quantize_3d_fp16_and_given_amax(fmt, block_shape, scale_rule):
    x = hard_input((3, 20, 40), torch.float16, seed=3)
    check_quantize(x, fmt, block_shape, scale_rule, "nearest", axis=1)
    check_quantize(x, fmt, block_shape, scale_rule, "stochastic", axis=-1)
    # a caller-provided tensor amax larger than the true one (Averis hands the residual amax in)
    check_quantize(
        x, fmt, block_shape, scale_rule, "nearest", axis=-1, tensor_amax=x.float().abs().amax() * 3
    )


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply")  # _floor_log2's a * 2**64 on huge a
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_mxfp4_ceil_rceil_edges_match_the_reference(rounding):
    """Block maxima at 6 * 2**k and their FP32 neighbours, subnormal quotients included: the kernel's RCEIL
    (bamax * fp32(1/6) > 2**e) equals the reference's, e.g. 0x01400001 keeps e = -127."""
    k = np.concatenate([np.arange(-132, -118), np.arange(-4, 4), np.arange(118, 126)])
    six = np.ldexp(np.float32(6), k).astype(np.float32).view(np.int32).astype(np.int64)
    amax = torch.from_numpy((six[:, None] + np.arange(-2, 3)).ravel().astype(np.int32)).view(torch.float32)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(len(amax), 32, generator=g) * 2 - 1) * amax[:, None]
    x[torch.arange(len(amax)), torch.randint(0, 32, (len(amax),), generator=g)] = amax
    check_quantize(x.to(DEV), "mxfp4", None, "ceil", rounding, axis=-1)
    q = quantize(x.to(DEV), "mxfp4", scale_rule="ceil", backend="triton")
    assert q.scales.view(torch.uint8)[amax.view(torch.int32) == 0x01400001].tolist() == [[0]]


def test_quantize_non_contiguous_and_1d():
    x = hard_input((64, 48), torch.bfloat16, seed=5)
    check_quantize(x.T, "nvfp4", None, None, "stochastic", axis=-1)  # the wgrad view dY^T
    check_quantize(x[:, 5:37], "mxfp4", None, "floor", "nearest", axis=-1)  # strided rows
    check_quantize(hard_input((100,), torch.float32), "nvfp4", None, None, "nearest", axis=0)


def test_seed_is_drawn_from_generator_without_sync():
    x = hard_input((32, 64), torch.bfloat16)
    g1 = torch.Generator(device=DEV).manual_seed(1)
    a = fake_quantize(x, "nvfp4", rounding="stochastic", generator=g1, backend="triton")
    b = fake_quantize(x, "nvfp4", rounding="stochastic", generator=g1, backend="triton")
    assert not torch.equal(a, b), "two draws from one generator must give different noise"
    g2 = torch.Generator(device=DEV).manual_seed(1)
    assert_bits_equal(a, fake_quantize(x, "nvfp4", rounding="stochastic", generator=g2, backend="triton"))


def test_non_finite_input_gives_nan_like_reference():
    x = hard_input((32, 64), torch.float32)
    x[5, 7] = float("nan")
    x[9, 40] = float("inf")
    for fmt in ("nvfp4", "mxfp4"):
        ref = fake_quantize(x, fmt, backend="torch", check_finite=False)
        tri = fake_quantize(x, fmt, backend="triton", check_finite=False)
        assert torch.equal(ref.isnan(), tri.isnan()) and ref.isnan().any()
        ok = ~ref.isnan()
        assert torch.equal(ref[ok], tri[ok])
        r, t = (quantize(x, fmt, backend=b, check_finite=False) for b in ("torch", "triton"))
        assert torch.equal(r.scales.view(torch.uint8), t.scales.view(torch.uint8)) or fmt == "nvfp4"
    assert qgemm.tensor_amax(x, backend="triton").isnan()


def test_tensor_amax():
    x = hard_input((77, 50), torch.bfloat16)
    assert_bits_equal(qgemm.tensor_amax(x, backend="triton"), x.float().abs().amax())
    assert_bits_equal(qgemm.tensor_amax(x.T, backend="triton"), x.float().abs().amax())


@triton.jit
def _e4m3_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + o, _e4m3_rne(tl.load(x_ptr + o, mask=o < n)), mask=o < n)


def test_e4m3_rounding_helper_matches_torch():
    grid_vals = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    grid_vals = grid_vals[:127]  # the non-negative finite E4M3 values, ascending
    mids = (grid_vals[1:] + grid_vals[:-1]) / 2
    near = torch.cat(
        [mids, torch.nextafter(mids, torch.zeros_like(mids)), torch.nextafter(mids, mids * 2 + 1)]
    )
    rnd = torch.exp2(torch.empty(4000).uniform_(-14, 8.8)).clamp(max=448)
    v = torch.cat([grid_vals, near, rnd, torch.tensor([0.0, 448.0, 2.0**-12, 1e-30])]).float().to(DEV)
    out = torch.empty_like(v)
    _e4m3_kernel[(triton.cdiv(v.numel(), 1024),)](v, out, v.numel(), BLOCK=1024)
    assert_bits_equal(out, v.to(torch.float8_e4m3fn).float())


# --------------------------------------------------------------------------- Averis
def test_column_stats_many_chunks():
    """More than 64 chunks (two groups of the pairwise tree), with a small chunk to stay cheap."""
    x = (hard_input((2 * 67 + 1, 24), torch.bfloat16) + 1).bfloat16()
    ref = transforms.column_stats(x, chunk=2)
    tri = qgemm.column_stats(x, backend="triton", chunk=2)
    for name in ("sum", "mean", "residual_amax"):
        assert_bits_equal(getattr(tri, name), getattr(ref, name), name)
    assert torch.equal(tri.max, ref.max) and torch.equal(tri.min, ref.min)


@pytest.mark.parametrize("shift,expect", [(3.0, True), (0.0, False), (float("nan"), False)])
def test_split_decision_kernel_equals_the_reference(shift, expect):
    """The adaptive split's rule in one kernel: the same split flag, mean, residual amax and counts as the
    reference, bit for bit, for a source with a mean (split), without (not split: zeros and amax(|x|)) and
    with a NaN (not split), over 600 channels (two whole blocks of 256 and a partial one)."""
    g = torch.Generator().manual_seed(7)
    scale = torch.exp2(torch.randint(-6, 6, (600,), generator=g).float())  # channels over 12 binades
    x = (torch.randn(96, 600, generator=g) + (shift if shift == shift else 0.0)) * scale
    if shift != shift:
        x[5, 17] = float("nan")
    cs = transforms.column_stats(x)
    ref = transforms.mean.split_decision(cs, x.shape[0], 0.5)  # on the CPU; the kernel on DEV
    got = qgemm.split_decision(type(cs)(*(t.to(DEV) for t in cs)), x.shape[0], 0.5, backend="triton")
    got = type(got)(*(t.cpu() for t in got))
    assert bool(ref.split) is expect and torch.equal(got.split, ref.split) and got.split.dtype == torch.bool
    assert torch.equal(got.counts, ref.counts) and ref.counts.tolist() == [1, int(expect)]
    for name in ("mean", "residual_amax", "energies"):  # the energies: the sums' order, bit for bit
        assert_bits_equal_nan(getattr(got, name), getattr(ref, name), name)
    if not expect and shift == 0.0:
        assert_bits_equal(ref.residual_amax, x.abs().amax(), "amax(|x|) where not split")


@pytest.mark.parametrize("two,length", [(False, 0), (True, 0), (True, 1), (True, 4097)])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16])
def test_mean_terms_kernel_rounds_each_product_then_the_sum(two, length, out_dtype, in_dtype):
    """The wgrad mean terms u0 (v0 + length v1)^T + u1 v1^T: the kernel (reading the vectors in their own dtype),
    the PyTorch reference and numpy float32 arithmetic (v0 + length v1 rounded, each product rounded, then the
    add, no fused multiply-add) give the same bits, on a ragged shape."""
    g = torch.Generator().manual_seed(int(two) + length)
    u0, u1 = (torch.randn(37, generator=g) * torch.exp2(torch.randint(-20, 20, (37,), generator=g).float())
              for _ in range(2))
    v0, v1 = (torch.randn(300, generator=g) for _ in range(2))
    args = tuple(a.to(in_dtype) for a in ((u0, v0, u1, v1) if two else (u0, v0)))
    ref = transforms.mean.mean_terms(*args, out_dtype=out_dtype, length=length)  # on the CPU; the kernel on DEV
    got = qgemm.mean_terms(*(a.to(DEV) for a in args), out_dtype=out_dtype, length=length, backend="triton").cpu()
    assert_bits_equal(got, ref, "kernel vs reference")
    n = [a.float().numpy() for a in args]
    v = n[1] + n[3] * np.float32(length) if length else n[1]  # float32 throughout: each step rounded
    expect = n[0][:, None] * v[None, :]
    if two:
        expect = expect + n[2][:, None] * n[3][None, :]
    assert_bits_equal(ref, torch.from_numpy(expect).to(out_dtype), "reference vs numpy float32")


def test_mean_terms_length_needs_the_second_pair():
    with pytest.raises(ValueError, match="needs u1 and v1"):
        qgemm.mean_terms(torch.ones(3), torch.ones(4), length=8)


@pytest.mark.parametrize("chunk", [1, 2, 8, 128])
def test_column_stats_kernel_equals_the_reference_at_every_chunk_size(chunk):
    """The column-statistics kernel at chunk sizes from 1 to 128 rows (each a different depth of the pairwise
    tree): the same bits as the reference, for a partial last chunk, -0, NaN and the transposed (wgrad) view."""
    from averis.kernels import dispatch
    from averis.transforms.mean import GROUP

    g = torch.Generator().manual_seed(chunk)
    # float32 over 20 binades: no sum of these is exact, so any other summation order shows in the bits
    shape = (2 * chunk + 3, 40)  # two whole chunks and a partial one
    x = torch.randn(shape, generator=g) * torch.exp2(torch.randint(-10, 10, shape, generator=g).float())
    x[1, 3] = float("nan")
    x[2, 5] = -0.0
    bf = (hard_input(x.shape, torch.bfloat16) + 1).bfloat16().cpu()
    views = (lambda t: t, lambda t: t.T.contiguous().T, lambda t: t[:, 7:33])
    for src, view in [(x, v) for v in views] + [(bf, views[0])]:
        ref = transforms.column_stats(view(src), chunk=chunk)  # on the CPU; the kernel on DEV, the same view
        total, mx, mn, mean, res = (t.cpu() for t in dispatch.column_stats(view(src.to(DEV)), chunk, GROUP))
        for name, got, want in (("sum", total, ref.sum), ("mean", mean, ref.mean),
                                ("residual_amax", res, ref.residual_amax), ("max", mx, ref.max), ("min", mn, ref.min)):
            assert_bits_equal_nan(got, want, name)  # the NaN column's sum is NaN on both, its payload the device's


@pytest.mark.parametrize("cfg", [(1, 16, 1), (8, 32, 1), (32, 16, 2), (16, 64, 4)])
def test_column_stats_kernel_equals_the_reference_at_every_tile(monkeypatch, cfg):
    """Every (row blocks side by side, columns, warps) tile the benchmark's sweep may set gives the reference's
    bits: one block (the whole chunk's tree row by row) to a block a row (the tree's top levels only), a ragged
    last chunk and column tile, NaN and a column of -0."""
    from averis.kernels import dispatch
    from averis.transforms.mean import GROUP

    monkeypatch.setattr(dispatch, "_cfg", lambda kind, cfg_=dispatch._cfg: cfg if kind == "stats" else cfg_(kind))
    g = torch.Generator().manual_seed(cfg[0] + cfg[1])
    x = torch.randn(300, 70, generator=g) * torch.exp2(torch.randint(-20, 20, (300, 1), generator=g).float()) + 0.3
    x[5, 3] = float("nan")
    x[:, 7] = -0.0
    ref = transforms.column_stats(x, chunk=32)
    got = dispatch.column_stats(x.to(DEV), 32, GROUP)
    for name, g_, w in zip(("sum", "max", "min", "mean", "residual_amax"), got, ref):
        assert_bits_equal_nan(g_.cpu(), w, name)


def test_column_tiles_narrow_until_the_launch_fills_the_gpu():
    """Narrow operands get narrow column tiles (more programs); wide ones keep the configured tile."""
    from averis.kernels.dispatch import ENOUGH_PROGRAMS, _narrow_columns, _row_reduction_warps

    assert _narrow_columns(128, 512, 1) == 16  # token sums of a 512-channel operand: 32 programs, not 4
    assert _narrow_columns(32, 4096, 64) == 32  # statistics of 8192 x 4096: 128 x 64 programs already
    assert _narrow_columns(32, 512, 64) == 32  # statistics at the bench preset: 16 x 64 programs already
    assert _narrow_columns(128, 20, 1) == 16 and _narrow_columns(64, 3, 1) == 16  # never below 16
    assert triton.cdiv(4096, _narrow_columns(128, 4096, 1)) >= ENOUGH_PROGRAMS // 2
    # a narrowed tile keeps at most a warp per 32 columns (the row-at-a-time reductions: a thread per column)
    assert [_row_reduction_warps(bn, 4) for bn in (16, 32, 64, 128, 256)] == [1, 1, 2, 4, 4]


@pytest.mark.parametrize("enough", [1, 1 << 20])
def test_column_statistics_and_token_sums_do_not_depend_on_the_column_tile(monkeypatch, enough):
    """The widest tile (enough=1: no narrowing) and the narrowest (16 columns) give the same bits: each
    column's order is its own."""
    from averis.kernels import dispatch
    from averis.transforms.mean import GROUP, TOKEN_CHUNK

    monkeypatch.setattr(dispatch, "ENOUGH_PROGRAMS", enough)
    cfg = dispatch._cfg  # the statistics' widest tile 64 columns here too (the interpreter's default is 16)
    monkeypatch.setattr(dispatch, "_cfg", lambda kind: (4, 64, 1) if kind == "stats" else cfg(kind))
    x = (hard_input((150, 100), torch.float32, seed=5).cpu() + 0.25).to(DEV)  # a ragged last tile of columns
    ref = transforms.column_stats(x.cpu(), chunk=16)
    got = dispatch.column_stats(x, 16, GROUP)
    for name, g, w in zip(("sum", "max", "min", "mean", "residual_amax"), got, ref):
        assert_bits_equal_nan(g.cpu(), w, name)
    gen = torch.Generator(DEV).manual_seed(0)
    values, sums = dispatch.fake_quantize(x, make_spec("nvfp4"), 0, gen, True, ref.residual_amax.to(DEV),
                                          torch.bfloat16, mu=ref.mean.to(DEV), token_sum=(TOKEN_CHUNK, GROUP, True))
    assert_bits_equal_nan(sums.cpu(), transforms.mean.token_sum(values.cpu(), True), "token sums")


@pytest.mark.parametrize("fmt,chunk,group,tokens", [("nvfp4", 16, 4, 16 * 4 * 2 + 16 * 2 + 5),
                                                    ("nvfp4", transforms.mean.TOKEN_CHUNK, transforms.mean.GROUP, 200),
                                                    ("mxfp4", 32, 2, 32 * 5 + 7)])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("out_dtype,round_sum", [(torch.float32, False), (torch.bfloat16, False),
                                                 (torch.bfloat16, True)])
def test_quantize_token_sums_equal_the_reference(fmt, chunk, group, tokens, rounding, out_dtype, round_sum):
    """The columnwise residual quantize's by-product token sums (wgrad's mean terms): the values are those of the
    plain kernel, and the sums are transforms.mean.column_sum of those values (rounded to their dtype where
    asked), bit for bit: several groups of chunks, a ragged last chunk, NaN, -0, rows over 48 binades and
    channels over 20, so that any other summation order shows in the bits."""
    from averis.kernels import dispatch

    g = torch.Generator().manual_seed(chunk + tokens)
    x = hard_input((tokens, 40), torch.float32, seed=tokens).cpu()  # tokens x channels
    x = x * torch.exp2(torch.randint(-10, 10, (40,), generator=g).float()) + 0.5
    x[:, 9] = -0.0  # a channel of -0: its residual quantizes to -0, summed as +0
    st = transforms.column_stats(x)
    tensor_amax = st.residual_amax if fmt == "nvfp4" else None
    x[5, 3] = float("nan")  # one NaN block (the tensor amax, given, stays finite)
    x, mu = x.to(DEV), st.mean.to(DEV)
    spec = make_spec(fmt, rounding=rounding)

    def run(**kw):
        gen = torch.Generator(DEV).manual_seed(3)
        amax = None if tensor_amax is None else tensor_amax.to(DEV)
        return dispatch.fake_quantize(x, spec, 0, gen, True, amax, out_dtype, mu=mu, **kw)

    plain = run()
    values, sums = run(token_sum=(chunk, group, round_sum))
    assert_bits_equal_nan(values, plain, "values")
    want = transforms.mean.column_sum(values.cpu(), chunk, group)
    want = want.to(out_dtype).float() if round_sum else want
    assert sums.shape == (40,) and sums.dtype == torch.float32
    assert_bits_equal_nan(sums.cpu(), want, "token sums")
    assert sums[3].isnan() and bits(sums[9:10].cpu()).item() == 0  # the NaN channel; +0 from the -0 channel
    if chunk == transforms.mean.TOKEN_CHUNK:  # the wgrad reference itself
        assert_bits_equal_nan(sums.cpu(), transforms.mean.token_sum(values.cpu(), round_sum), "mean.token_sum")


@pytest.mark.parametrize("shape,dtype", [((70, 45), torch.bfloat16), ((40, 48), torch.float32)])
def test_column_stats_one_pass(shape, dtype):
    x = hard_input(shape, dtype) + 3.0  # a mean bias
    x = x.to(dtype)
    ref = transforms.column_stats(x)
    tri = qgemm.column_stats(x, backend="triton")
    for name in ("sum", "mean"):
        assert_bits_equal(getattr(tri, name), getattr(ref, name), name)
    assert torch.equal(tri.max, x.float().amax(0)) and torch.equal(tri.min, x.float().amin(0))
    exact = (x.float() - tri.mean).abs().amax()
    assert_bits_equal(tri.residual_amax, exact, "residual amax")
    assert_bits_equal(ref.residual_amax, exact, "reference residual amax")
    # the transposed (wgrad) view: statistics over the tokens of dY^T
    t = qgemm.column_stats(x.T.contiguous().T, backend="triton")
    assert_bits_equal(t.mean, ref.mean)
    # the mean agrees with torch.mean to rounding
    torch.testing.assert_close(tri.mean, x.float().mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt,block_shape,scale_rule", [SPECS[0], SPECS[2]])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_fake_quantize_residual_fused(fmt, block_shape, scale_rule, rounding):
    x = (hard_input((48, 40), torch.bfloat16) + 2.0).to(torch.bfloat16)
    st = qgemm.column_stats(x, backend="triton")
    for axis in (1, 0):
        for out_dtype in (torch.float32, torch.bfloat16):
            opts = dict(
                block_shape=block_shape,
                scale_rule=scale_rule,
                rounding=rounding,
                pad=True,
                out_dtype=out_dtype,
            )
            g1, g2 = (torch.Generator(device=DEV).manual_seed(11) for _ in range(2))
            tri = qgemm.fake_quantize_residual(
                x, st.mean, st.residual_amax, fmt, axis, g1, backend="triton", **opts
            )
            r = x.float() - st.mean
            ref = fake_quantize(
                r,
                fmt,
                axis=axis,
                generator=g2,
                backend="torch",
                check_finite=False,
                block_shape=block_shape,
                scale_rule=scale_rule,
                rounding=rounding,
                pad=True,
            )
            assert_bits_equal(tri, ref.to(out_dtype), f"residual axis={axis} {out_dtype}")


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
def test_fake_quantize_hadamard_fused(fmt):
    from averis.transforms import hadamard_matrix, random_signs

    signs = random_signs(3).to(DEV)
    x = hard_input((64, 48) if fmt == "nvfp4" else (64, 96), torch.bfloat16)
    for axis in (-1, 0):
        h = transforms.hadamard16(x, signs, axis)
        moved = x.float().movedim(axis, -1)  # the transform as a plain matrix product: same up to rounding
        h2 = (moved.unflatten(-1, (-1, 16)) @ hadamard_matrix(signs)).flatten(-2).movedim(-1, axis)
        assert float((h - h2).norm() / h2.norm()) < 1e-6
        for rounding in ("nearest", "stochastic"):
            g1, g2 = (torch.Generator(device=DEV).manual_seed(5) for _ in range(2))
            tri = qgemm.fake_quantize_hadamard(x, signs, fmt, axis, g1, rounding=rounding, backend="triton")
            ref = fake_quantize(
                h, fmt, axis=axis, generator=g2, rounding=rounding, backend="torch", check_finite=False
            ).to(x.dtype)
            assert_bits_equal(tri, ref, f"hadamard {fmt} axis={axis} {rounding}")


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
def test_dual_rowwise_columnwise_one_read(fmt):
    x = hard_input((64, 96) if fmt == "mxfp4" else (48, 80), torch.bfloat16)
    mu = x.float().mean(0)
    for m in (None, mu):
        g1, g2 = (torch.Generator(device=DEV).manual_seed(9) for _ in range(2))
        ta = None if m is None else (x.float() - m).abs().amax()
        yr, yc = qgemm.fake_quantize_dual(
            x, fmt, g1, mu=m, tensor_amax=ta, rounding="stochastic", backend="triton"
        )
        rr, rc = qgemm.fake_quantize_dual(
            x, fmt, g2, mu=m, tensor_amax=ta, rounding="stochastic", backend="torch"
        )
        assert_bits_equal(yr, rr, "rowwise")
        assert_bits_equal(yc, rc, "columnwise")


def test_custom_op_has_fake_impl():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(32, 64, dtype=torch.bfloat16)
        y, sums = torch.ops.averis.fake_quantize(
            x, None, None, None, None, "nvfp4", False, False, "te", 1, False, torch.bfloat16, False, 0, 0, False
        )
        assert y.shape == x.shape and y.dtype == torch.bfloat16
        assert sums.shape == (0,)  # no token sums asked for
        _, sums = torch.ops.averis.fake_quantize(
            x, None, None, None, None, "nvfp4", False, False, "te", 1, False, torch.bfloat16, False, 16, 4, True
        )
        assert sums.shape == (32,) and sums.dtype == torch.float32  # one sum per row: the sums run along axis 1


def test_fallback_without_triton_backend_matches():
    x = hard_input((32, 32), torch.float32) + 1
    st_t = qgemm.column_stats(x, backend="torch")
    st_k = qgemm.column_stats(x, backend="triton")
    assert_bits_equal(st_t.mean, st_k.mean)
    spec = make_spec("nvfp4")
    a = qgemm.fake_quantize_residual(x, st_t.mean, st_t.residual_amax, spec, backend="torch")
    b = qgemm.fake_quantize_residual(x, st_k.mean, st_k.residual_amax, spec, backend="triton")
    assert_bits_equal(a, b)


# --------------------------------------------------------------------------- wiring into QuantLinear
@pytest.mark.parametrize(
    "recipe_name,operand,mean_axis",
    [
        ("averis", "fprop_x", "rows"),
        ("averis", "wgrad_dy", "reduction"),
        ("averis", "wgrad_x", "reduction"),
        ("nvidia", "wgrad_dy", "reduction"),
        ("averis_rht", "wgrad_x", "reduction"),
        ("mxfp4_averis", "dgrad_dy", "rows"),
    ],
)
@pytest.mark.parametrize("exact_gemm,out_dtype", [(False, None), (False, torch.bfloat16), (True, torch.bfloat16)])
def test_fused_prepare_equals_unfused_path(recipe_name, operand, mean_axis, exact_gemm, out_dtype):
    """qgemm.prepare through the fused kernels == its unfused torch path, bit for bit; a wgrad mean operand
    (no RHT) also comes with its token sums, transforms.mean.token_sum of those values, which the GEMM uses."""
    from averis import recipes
    from averis.qgemm.gemm import token_sum
    from averis.transforms import random_signs

    recipe = recipes.get(recipe_name)
    spec = recipe.operand(operand)
    # tokens x channels; 208 tokens: 3 whole token tiles and a ragged one, a multiple of 16 for the RHT
    tokens = (hard_input((208, 32), torch.bfloat16, seed=4).float() + 1.5).bfloat16()
    a = tokens if mean_axis == "rows" else tokens.T  # the operand as prepare sees it (reduction axis last)
    signs = random_signs(1).to(DEV)
    outs = []
    for backend in ("torch", "triton"):
        g = torch.Generator(device=DEV).manual_seed(3)
        with qgemm.use_backend(backend, exact_gemm=exact_gemm):
            assert qgemm.fused_applies(a, spec, recipe, mean_axis, True) == (backend == "triton")
            outs.append(qgemm.prepare(a, spec, recipe, mean_axis=mean_axis, generator=g, signs=signs,
                                      out_dtype=out_dtype))
    ref, got = outs
    assert_bits_equal(
        got.values.float().contiguous(), ref.values.float().contiguous(), f"{recipe_name} {operand} values"
    )
    assert (ref.scale is None) == (got.scale is None)
    if ref.scale is not None:
        assert_bits_equal(got.scale, ref.scale, f"{recipe_name} {operand} tensor scale")
    for name in ("row_mean", "red_mean"):
        r, t = getattr(ref, name), getattr(got, name)
        assert (r is None) == (t is None)
        if r is not None:
            assert_bits_equal(t, r, name)
    assert ref.token_sum is None  # the unfused path: the GEMM sums the values itself (the same reference order)
    if mean_axis != "reduction" or not spec.has_mean or spec.has_hadamard:
        assert got.token_sum is None
        return
    folded = not exact_gemm  # the tensor scale is in the values: the sums rounded to their dtype
    want = transforms.mean.token_sum(ref.values.T.cpu(), folded)  # the unfused values, tokens-major
    assert_bits_equal(got.token_sum.cpu(), want, f"{recipe_name} {operand} token sums")
    assert_bits_equal(token_sum(got, got.values, exact_gemm), token_sum(ref, ref.values, exact_gemm), "GEMM sums")


@pytest.mark.parametrize("exact_gemm", [False, True])
def test_layer_dw_from_the_fused_token_sums_equals_the_summing_path(monkeypatch, exact_gemm):
    """averis' QuantLinear backward through the fused kernels: wgrad's mean terms take both operands' token sums
    from the quantize pass (X's saved by the forward, dY's from the backward) and give the same dW, bit for bit,
    as the GEMM summing the values itself (transforms.mean.token_sum, the unfused paths' way)."""
    import dataclasses

    import averis
    from averis.qgemm import gemm

    real = gemm.token_sum
    seen = []

    def summing(op, values, exact=True):
        return real(dataclasses.replace(op, token_sum=None), values, exact)

    def recording(op, values, exact=True):
        got = real(op, values, exact)
        seen.append((op.token_sum is not None, torch.equal(bits(got), bits(summing(op, values, exact)))))
        return got

    g = torch.Generator().manual_seed(5)
    x0 = (torch.randn(200, 64, generator=g) + 2).bfloat16().to(DEV)  # 200 tokens: a ragged token tile
    model = averis.quantize_model(torch.nn.Sequential(torch.nn.Linear(64, 48, bias=False)), "averis")
    model = model.to(device=DEV, dtype=torch.bfloat16)
    rng = model[0].averis_rng.clone()
    grads = []
    for token_sum in (recording, summing):
        monkeypatch.setattr(gemm, "token_sum", token_sum)
        model[0].averis_rng.copy_(rng)  # the same random draws in both runs
        model[0].weight.grad = None
        x = x0.clone().requires_grad_()
        with averis.use_backend("triton", exact_gemm=exact_gemm):
            model(x).float().pow(2).mean().backward()
        grads.append((model[0].weight.grad.clone(), x.grad.clone()))
    assert seen == [(True, True), (True, True)], seen  # dY's and X's sums from the kernels, equal to the summing path's
    assert_bits_equal(grads[0][0], grads[1][0], "dW")
    assert_bits_equal(grads[0][1], grads[1][1], "dX")


@pytest.mark.parametrize("fmt,block,rule", SPECS)
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16])
def test_fp32_input_quantized_straight_into_the_gemm_dtype(fmt, block, rule, out_dtype):
    """out_dtype: the kernel rounds its FP32 dequantized value once, as the reference's cast does."""
    x = hard_input((64, 64), torch.float32, seed=7)
    for axis in (-1, 0):
        opts = dict(block_shape=block, scale_rule=rule, axis=axis, rounding="stochastic" if fmt == "nvfp4" else
                    "nearest")
        want = fake_quantize(x, fmt, backend="torch", generator=torch.Generator(DEV).manual_seed(3), **opts)
        got = fake_quantize(x, fmt, backend="triton", generator=torch.Generator(DEV).manual_seed(3),
                            out_dtype=out_dtype, **opts)
        assert_bits_equal(got, want.to(out_dtype), f"{fmt} {block} axis {axis} -> {out_dtype}")


@pytest.mark.parametrize("shape", [(5, 3), (1300, 16)])  # one partial block; several blocks
def test_sketch_noise_kernel_equals_reference(shape):
    """Metis's Gaussian sketch from a layer's stream: the kernel's two uniform draws (one launch) give the
    reference's bits, and so does the whole routed normal_noise (the Box-Muller tail is shared)."""
    from averis.formats import noise
    from averis.kernels import dispatch
    from averis.qgemm.ops import normal_noise

    table = noise.step_seeds(torch.tensor([12345, 7], device=DEV))
    s1, s2 = table[1, 0:1], table[1, 1:2]
    n = shape[0] * shape[1]
    u1, u2 = dispatch.uniform_pair(n, s1, s2)
    assert_bits_equal(u1, 1.0 - noise.uniform_noise((n,), s1), "1 - u1")
    assert_bits_equal(u2, noise.uniform_noise((n,), s2), "u2")
    ref = noise.normal(shape, noise.Stream(table, 1), torch.device(DEV))
    routed = normal_noise(shape, noise.Stream(table, 1), torch.device(DEV), backend="triton")
    assert_bits_equal(routed, ref, "normal")
    assert torch.isfinite(ref).all() and ref.std() > 0.5
