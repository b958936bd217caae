"""GPU benchmark of the FP4 Triton kernels (averis.kernels); writes benchmarks/results/kernels_<device>.json.

Sections (``--sections`` picks some; default all):
  check  bit-exactness of every kernel against the PyTorch reference on large shapes and many seeds
         (the reference runs on the GPU through backend="torch"; it is first checked equal to the CPU
         reference on a mid-size tensor of every spec)
  bw     each kernel's achieved bandwidth vs the device's measured copy bandwidth (+ a tile-config sweep)
  averis Averis quantization (column stats + fused subtract-and-quantize) vs plain NVFP4 fake-quant
  shapes each quantization kernel at the training step's own (narrow) shapes against its floor, the token sums'
         second launch, and the statistics / token-sum column tiles swept there (not in the default set)
(the training step is benchmarks/bench_step.py)

Times are medians (triton.testing.do_bench, or CUDA-graph replays); ratios come from the same run.
Usage: python benchmarks/bench_kernels.py [--sections check,sweep,bw,averis] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import triton  # noqa: E402
from triton.testing import do_bench  # noqa: E402

from averis import provenance, qgemm, transforms  # noqa: E402
from averis.formats import make_spec  # noqa: E402
from averis.kernels import dispatch  # noqa: E402
from averis.qgemm import fake_quantize, quantize  # noqa: E402
from averis.transforms.mean import CHUNK, GROUP  # noqa: E402

RESULTS: dict = {}


def log(*a):
    print(*a, flush=True)


def bits(t):
    return (
        t.view(torch.int32)
        if t.dtype == torch.float32
        else t.view(torch.int16)
        if t.element_size() == 2
        else t.view(torch.uint8)
    )


def same(a, b) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        na, nb = a.isnan(), b.isnan()
        return bool(torch.equal(na, nb) and torch.equal(bits(a)[~na], bits(b)[~nb]))
    return bool(torch.equal(bits(a), bits(b)))


def hard_input(shape, dtype, seed, device="cuda"):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(shape, generator=g, device=device)
    scale = torch.exp2(torch.empty(shape[0], device=device).uniform_(-30, 8, generator=g))
    x = x * scale[:, None] + (torch.randn(shape[1], generator=g, device=device) * 4)[None, :] * scale[:, None]
    x[3] = 0
    return x.to(dtype)


def gen(seed):
    return torch.Generator(device=torch.device("cuda", torch.cuda.current_device())).manual_seed(seed)


SPECS = {
    "nvfp4": ("nvfp4", None, None),
    "nvfp4_16x16": ("nvfp4", (16, 16), None),
    "mxfp4": ("mxfp4", None, "floor"),
    "mxfp4_ceil": ("mxfp4", None, "ceil"),
}


# --------------------------------------------------------------------------- (0) bit-exactness
def section_check():
    out = {"cases": 0, "failures": []}

    def record(name, ok):
        out["cases"] += 1
        if not ok:
            out["failures"].append(name)
            log("  MISMATCH", name)

    # the GPU torch reference equals the CPU reference (so it may stand in for it on large shapes)
    for sname, (fmt, bs, rule) in SPECS.items():
        x = hard_input((512, 768), torch.bfloat16, 1)
        for rnd in ("nearest", "stochastic"):
            for axis in (-1, 0):
                o = dict(block_shape=bs, scale_rule=rule, rounding=rnd, axis=axis, check_finite=False)
                gc = torch.Generator().manual_seed(5)
                gg = gen(5)
                a = fake_quantize(x, fmt, generator=gg, backend="torch", **o)
                qa = quantize(x, fmt, generator=gg, backend="triton", **o)
                if rnd == "nearest":
                    b = fake_quantize(x.cpu(), fmt, generator=gc, backend="torch", **o)
                    qb = quantize(x.cpu(), fmt, generator=gc, backend="torch", **o)
                    record(f"gpu-torch==cpu {sname} {rnd} axis={axis}", same(a.cpu(), b))
                    record(
                        f"triton packed==cpu {sname} {rnd} axis={axis}",
                        same(qa.codes.cpu(), qb.codes)
                        and same(qa.scales.view(torch.uint8).cpu(), qb.scales.view(torch.uint8)),
                    )
    log(f"  gpu torch path vs cpu reference: {out['cases'] - len(out['failures'])}/{out['cases']} equal")

    shapes = [
        ((4096, 4096), torch.bfloat16),
        ((1000, 1000), torch.bfloat16),
        ((2048, 1536), torch.float32),
        ((4, 512, 768), torch.float16),
    ]
    for sname, (fmt, bs, rule) in SPECS.items():
        for shape, dt in shapes:
            x = hard_input((shape[0] * (shape[1] if len(shape) == 3 else 1), shape[-1]), dt, 2).reshape(shape)
            for rnd in ("nearest", "stochastic"):
                for axis in (-1, 0 if len(shape) == 2 else 1):
                    for seed in range(3 if rnd == "stochastic" else 1):
                        o = dict(
                            block_shape=bs,
                            scale_rule=rule,
                            rounding=rnd,
                            axis=axis,
                            pad=True,
                            check_finite=False,
                        )
                        g1, g2 = (gen(100 + seed) for _ in range(2))
                        r = quantize(x, fmt, generator=g1, backend="torch", **o)
                        t = quantize(x, fmt, generator=g2, backend="triton", **o)
                        ok = same(r.codes, t.codes) and same(
                            r.scales.view(torch.uint8), t.scales.view(torch.uint8)
                        )
                        if r.tensor_scale is not None:
                            ok = ok and same(r.tensor_scale, t.tensor_scale)
                        fr = fake_quantize(x, fmt, generator=g1, backend="torch", **o)
                        ft = fake_quantize(x, fmt, generator=g2, backend="triton", **o)
                        record(
                            f"quantize {sname} {tuple(shape)} {dt} {rnd} axis={axis} seed={seed}",
                            ok and same(fr, ft),
                        )
    # Averis: stats, residual amax, fused residual quantize (both axes), dual, Hadamard
    for shape in ((8192, 2048), (1000, 1000), (8192, 512)):
        x = (hard_input(shape, torch.bfloat16, 3).float() + 2).bfloat16()
        st = qgemm.column_stats(x)
        rs = transforms.column_stats(x)
        record(f"column_stats sum/mean {shape}", same(st.sum, rs.sum) and same(st.mean, rs.mean))
        record(
            f"column_stats max/min {shape}", bool(torch.equal(st.max, rs.max) and torch.equal(st.min, rs.min))
        )
        ks = dispatch.column_stats(x, CHUNK, GROUP)
        record(f"column_stats kernel {shape}", all(same(a, b) for a, b in zip(
            ks, (rs.sum, rs.max, rs.min, rs.mean, rs.residual_amax))))
        exact = (x.float() - st.mean).abs().amax()
        record(f"residual amax == amax|x-mu| {shape}", same(st.residual_amax, exact))
        for sname in ("nvfp4", "mxfp4"):
            fmt, bs, rule = SPECS[sname]
            for rnd in ("nearest", "stochastic"):
                for axis in (1, 0):
                    for odt in (torch.bfloat16, torch.float32):
                        g1, g2 = (gen(7) for _ in range(2))
                        t = qgemm.fake_quantize_residual(
                            x, st.mean, st.residual_amax, fmt, axis, g1, rounding=rnd, pad=True, out_dtype=odt
                        )
                        r = fake_quantize(
                            x.float() - st.mean,
                            fmt,
                            axis=axis,
                            generator=g2,
                            rounding=rnd,
                            pad=True,
                            check_finite=False,
                            backend="torch",
                        ).to(odt)
                        record(f"residual {sname} {shape} {rnd} axis={axis} {odt}", same(t, r))
            if shape[0] % 32 == 0:
                for m in (None, st.mean):
                    g1, g2 = (gen(8) for _ in range(2))
                    ta = None if m is None else st.residual_amax
                    yr, yc = qgemm.fake_quantize_dual(
                        x, fmt, g1, mu=m, tensor_amax=ta, rounding="stochastic"
                    )
                    rr, rc = qgemm.fake_quantize_dual(
                        x, fmt, g2, mu=m, tensor_amax=ta, rounding="stochastic", backend="torch"
                    )
                    record(f"dual {sname} {shape} mu={m is not None}", same(yr, rr) and same(yc, rc))
                signs = torch.tensor([1, -1, 1, 1, -1, -1, 1, -1, 1, 1, 1, -1, -1, 1, -1, 1.0], device="cuda")
                for axis in (1, 0):
                    g1, g2 = (gen(9) for _ in range(2))
                    t = qgemm.fake_quantize_hadamard(x, signs, fmt, axis, g1, rounding="stochastic")
                    h = transforms.hadamard16(x, signs, axis)
                    r = fake_quantize(
                        h,
                        fmt,
                        axis=axis,
                        generator=g2,
                        rounding="stochastic",
                        backend="torch",
                        check_finite=False,
                    ).to(x.dtype)
                    record(f"hadamard {sname} {shape} axis={axis}", same(t, r))
    # QuantLinear's operand preparation: fused kernels vs the unfused path (mean_split, hadamard16, quantize)
    from averis import recipes
    from averis.transforms import random_signs

    tokens = (hard_input((8192, 1536), torch.bfloat16, 6).float() + 1).bfloat16()
    signs = random_signs(0, "cuda")
    for rname, opname, axis_kind in (
        ("averis", "fprop_x", "rows"),
        ("averis", "wgrad_dy", "reduction"),
        ("nvidia", "wgrad_x", "reduction"),
        ("averis_rht", "wgrad_dy", "reduction"),
        ("mxfp4_averis", "dgrad_dy", "rows"),
    ):
        recipe = recipes.get(rname)
        a = tokens if axis_kind == "rows" else tokens.T
        outs = []
        for use in (False, True):
            with qgemm.use_backend("auto", fused=use):  # unfused: each op through its own kernel
                outs.append(
                    qgemm.prepare(
                        a, recipe.operand(opname), recipe, mean_axis=axis_kind, generator=gen(2), signs=signs
                    )
                )
        ok = same(outs[0].values.float(), outs[1].values.float())
        ok = ok and ((outs[0].scale is None and outs[1].scale is None) or same(outs[0].scale, outs[1].scale))
        for name in ("row_mean", "red_mean"):
            r, t = getattr(outs[0], name), getattr(outs[1], name)
            ok = ok and ((r is None and t is None) or same(r, t))
        record(f"prepare fused==unfused {rname} {opname}", ok)
    x = hard_input((2048, 2048), torch.float32, 4)
    x[7, 9] = float("nan")
    for fmt in ("nvfp4", "mxfp4"):
        r = fake_quantize(x, fmt, backend="torch", check_finite=False)
        t = fake_quantize(x, fmt, backend="triton", check_finite=False)
        record(f"nan propagation {fmt}", same(r, t))
    record("amax", same(qgemm.tensor_amax(x), x.abs().amax()))
    log(f"  bit-exact: {out['cases'] - len(out['failures'])}/{out['cases']} cases equal")
    RESULTS["check"] = out


def section_diag():
    """Where Triton and the reference differ (first elements), fake vs packed paths."""
    for shape, dt, fmt, axis in (
        ((64, 64), torch.float32, "nvfp4", -1),
        ((512, 768), torch.bfloat16, "nvfp4", -1),
        ((512, 768), torch.bfloat16, "mxfp4", -1),
        ((4096, 4096), torch.bfloat16, "mxfp4", 0),
    ):
        x = hard_input(shape, dt, 1)
        r = fake_quantize(x, fmt, axis=axis, backend="torch", check_finite=False)
        t = fake_quantize(x, fmt, axis=axis, backend="triton", check_finite=False)
        q = quantize(x, fmt, axis=axis, backend="triton", check_finite=False).dequantize(x.dtype)
        c = fake_quantize(x.cpu(), fmt, axis=axis, backend="torch", check_finite=False)
        spec = make_spec(fmt)
        d, _ = dispatch._fake_quantize_op(
            x, None, None, None, None, spec.fmt, False, False, spec.scale_rule, axis % x.ndim, False, x.dtype, False,
            0, 0, False,
        )
        bad = (bits(r) != bits(t)).nonzero()
        log(
            f"  {shape} {dt} {fmt} axis={axis}: torch-gpu==cpu {same(r.cpu(), c)}  "
            f"triton-fake==ref {same(r, t)} "
            f"({len(bad)} differ)  packed.dequant==ref {same(r, q)}  op-dispatch==ref {same(r, d)}"
        )
        for i in bad[:4].tolist():
            i = tuple(i)
            log(
                f"     at {i}: x={x[i].item()!r} ref={r[i].item()!r} triton={t[i].item()!r} "
                f"packed={q[i].item()!r}"
            )


# --------------------------------------------------------------------------- (1) bandwidth
def copy_bandwidth():
    n = 1 << 29  # 1 GiB of bf16... 2 bytes each
    src = torch.randn(n // 2, device="cuda").to(torch.bfloat16).repeat(2)
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    return 2 * src.numel() * 2 / ms / 1e6  # GB/s


def timed(fn, inner=10, outer=15):
    """GPU time (ms) of fn in steady state: fn captured in a CUDA graph (no host launch overhead), replayed
    ``inner`` times back to back between two CUDA events; the median over ``outer`` such runs.  (No L2
    flush between calls: do_bench's flush leaves ~50 MB of dirty lines whose write-back the next kernel
    pays for, which biases short read-heavy kernels; the tensors here are larger than the L2 anyway.)"""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    for _ in range(3):
        graph.replay()
    times = []
    for _ in range(outer):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(inner):
            graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / inner)
    times.sort()
    return times[len(times) // 2]


def wall_ms(fn):
    """Wall-clock ms of one call (the CPU smoke test: no meaning as a timing)."""
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def timed_eager(fn):
    return do_bench(fn, warmup=25, rep=200, return_mode="median")


def section_bw():
    big_gbs = copy_bandwidth()
    M, Kd = 8192, 4096
    x = torch.randn(M, Kd, device="cuda").bfloat16()
    y = torch.empty_like(x)
    copy_gbs = 4 * x.numel() / timed(lambda: y.copy_(x)) / 1e6  # the same tensor, timed the same way
    log(
        f"  device-to-device copy: {copy_gbs:.0f} GB/s of this tensor (read + write); "
        f"1 GiB copy {big_gbs:.0f} GB/s"
    )
    n = x.numel()
    amax = x.float().abs().amax()
    st = qgemm.column_stats(x)
    signs = torch.ones(16, device="cuda")
    g = None  # SR cases draw from the default CUDA generator, which graph capture handles
    nv, nv2d, mx = make_spec("nvfp4"), make_spec("nvfp4", (16, 16)), make_spec("mxfp4")
    nvsr = make_spec("nvfp4", rounding="stochastic")
    packed_bytes = n // 2 + n // 16
    rows = []
    cases = [
        # name, fn, bytes moved (each input read once, each output written once)
        ("amax (tensor, device scalar)", lambda: dispatch.amax(x), 2 * n),
        ("column_stats (sum/max/min/mu/res-amax)", lambda: qgemm.column_stats(x), 2 * n),
        ("fake nvfp4 1x16 rowwise RNE", lambda: dispatch.fake_quantize(x, nv, 1, None, False, amax), 4 * n),
        ("fake nvfp4 1x16 rowwise SR", lambda: dispatch.fake_quantize(x, nvsr, 1, g, False, amax), 4 * n),
        (
            "fake nvfp4 1x16 columnwise RNE",
            lambda: dispatch.fake_quantize(x, nv, 0, None, False, amax),
            4 * n,
        ),
        (
            "fake nvfp4 1x16 columnwise SR (dY^T view)",
            lambda: dispatch.fake_quantize(x.T, nvsr, 1, g, False, amax),
            4 * n,
        ),
        ("fake nvfp4 16x16 tiles", lambda: dispatch.fake_quantize(x, nv2d, 1, None, False, amax), 4 * n),
        ("fake mxfp4 1x32 rowwise", lambda: dispatch.fake_quantize(x, mx, 1, None, False, None), 4 * n),
        ("fake mxfp4 1x32 columnwise", lambda: dispatch.fake_quantize(x, mx, 0, None, False, None), 4 * n),
        (
            "packed nvfp4 1x16 rowwise",
            lambda: dispatch.quantize(x, nv, 1, None, False, amax),
            2 * n + packed_bytes,
        ),
        (
            "packed nvfp4 1x16 columnwise",
            lambda: dispatch.quantize(x, nv, 0, None, False, amax),
            2 * n + packed_bytes,
        ),
        (
            "fake residual nvfp4 rowwise (x - mu)",
            lambda: dispatch.fake_quantize_residual(x, st.mean, st.residual_amax, nv, 1, None),
            4 * n,
        ),
        (
            "fake residual nvfp4 columnwise SR",
            lambda: dispatch.fake_quantize_residual(x, st.mean, st.residual_amax, nvsr, 0, g),
            4 * n,
        ),
        (
            "fake residual nvfp4 rowwise, fp32 out",
            lambda: dispatch.fake_quantize_residual(
                x, st.mean, st.residual_amax, nv, 1, None, out_dtype=torch.float32
            ),
            6 * n,
        ),
        (
            "fake RHT16 + nvfp4 columnwise SR (wgrad)",
            lambda: dispatch.fake_quantize_hadamard(x, signs, nvsr, 0, g, tensor_amax=amax),
            4 * n,
        ),
        (
            "fake RHT16 + nvfp4 rowwise",
            lambda: dispatch.fake_quantize_hadamard(x, signs, nv, 1, None, tensor_amax=amax),
            4 * n,
        ),
        (
            "dual rowwise+columnwise nvfp4 (one read)",
            lambda: dispatch.fake_quantize_dual(x, nv, None, amax),
            6 * n,
        ),
        (
            "end-to-end fake nvfp4 (amax + quantize)",
            lambda: fake_quantize(x, "nvfp4", check_finite=False),
            6 * n,
        ),
        (
            "naive torch fake nvfp4 (reference path)",
            lambda: fake_quantize(x, "nvfp4", check_finite=False, backend="torch"),
            6 * n,
        ),
    ]
    for name, fn, nbytes in cases:
        try:
            fn()
            ms = timed(fn) if "naive" not in name else timed_eager(fn)
            gbs = nbytes / ms / 1e6
            eager = timed_eager(fn)
            rows.append(
                {"kernel": name, "ms": ms, "GB/s": gbs, "frac_of_copy": gbs / copy_gbs, "eager_ms": eager}
            )
            log(
                f"  {name:48s} {ms * 1e3:9.1f} us {gbs:7.0f} GB/s {100 * gbs / copy_gbs:5.1f}%   "
                f"(eager {eager * 1e3:.1f} us)"
            )
        except Exception as e:  # keep going: one failure must not hide the rest
            rows.append({"kernel": name, "error": repr(e)})
            log(f"  {name}: ERROR {e!r}")
    RESULTS["bandwidth"] = {
        "shape": [M, Kd],
        "dtype": "bfloat16",
        "copy_GBps": copy_gbs,
        "copy_1GiB_GBps": big_gbs,
        "rows": rows,
    }


def section_sweep():
    """Tile configs of the hot kernels; the best per kind is reported (and used for the rest of the run)."""
    M, Kd = 8192, 4096
    x = torch.randn(M, Kd, device="cuda").bfloat16()
    amax = x.float().abs().amax()
    nv = make_spec("nvfp4")
    nv2d = make_spec("nvfp4", (16, 16))
    signs = torch.ones(16, device="cuda")
    sweeps = {
        "row": (
            [(8, 256, 4), (16, 256, 4), (32, 256, 8), (16, 512, 8), (32, 128, 4), (64, 128, 8), (8, 512, 4)],
            lambda: dispatch.fake_quantize(x, nv, 1, None, False, amax),
        ),
        "col": (
            [(32, 64, 4), (16, 128, 4), (32, 128, 4), (64, 32, 4), (16, 64, 2), (128, 32, 4)],
            lambda: dispatch.fake_quantize(x, nv, 0, None, False, amax),
        ),
        "tile": (
            [(32, 128, 4), (64, 64, 4), (16, 256, 4), (32, 256, 8), (64, 128, 8)],
            lambda: dispatch.fake_quantize(x, nv2d, 1, None, False, amax),
        ),
        "had": (
            [(16, 128, 4), (8, 256, 4), (32, 128, 8), (16, 256, 8)],
            lambda: dispatch.fake_quantize_hadamard(x, signs, nv, 1, None, tensor_amax=amax),
        ),
        "amax": (
            [(32, 256, 4), (64, 256, 8), (16, 512, 4), (32, 512, 8)],
            lambda: dispatch.amax(x, signs=None, mu=st_mean, axis=1),
        ),
        "stats": (
            [(16, 64, 4), (8, 64, 2), (32, 64, 8), (16, 128, 8), (32, 32, 4), (8, 128, 4)],
            lambda: qgemm.column_stats(x),
        ),
        "amaxflat": (
            [(0, 16384, 8), (0, 4096, 4), (0, 8192, 4), (0, 32768, 16), (0, 2048, 4)],
            lambda: dispatch.amax(x),
        ),
        "dual": (
            [(64, 64, 8), (32, 64, 4), (64, 128, 8), (128, 64, 8), (32, 32, 4)],
            lambda: dispatch.fake_quantize_dual(x, nv, None, amax),
        ),
    }
    st_mean = qgemm.column_stats(x).mean
    best = {}
    table = {}
    for kind, (cfgs, fn) in sweeps.items():
        orig = dispatch.CONFIGS[kind]
        res = []
        for cfg in cfgs:
            dispatch.CONFIGS[kind] = cfg
            try:
                fn()
                res.append((timed(fn), cfg))
            except Exception as e:
                log(f"  sweep {kind} {cfg}: ERROR {e!r}")
        res.sort()
        table[kind] = [{"config": list(c), "us": t * 1e3} for t, c in res]
        best[kind] = res[0][1] if res else orig
        dispatch.CONFIGS[kind] = best[kind]
        log(
            f"  sweep {kind}: "
            + ", ".join(f"{c}={t * 1e3:.1f}us" for t, c in res)
            + f"  (default was {orig})"
        )
    RESULTS["sweep"] = {"shape": [M, Kd], "results": table, "best": {k: list(v) for k, v in best.items()}}


# --------------------------------------------------------------------------- (1b) the step's own shapes
# (tokens, channels) of the linears' inputs and output gradients in bench_step's presets (batch 8 x 1024): where the
# step spends its quantization time, each launch is small, and latency, not bandwidth, sets its time.
STEP_SHAPES = {"bench": [(8192, 256), (8192, 512), (8192, 1536)], "qwen3-0.6b": [(8192, 1024), (8192, 2048),
                                                                               (8192, 3072)]}


def section_shapes(device="cuda", shapes=None, time_fn=None):
    """Per call at the step's shapes, graphed: each Averis and NVFP4 quantization kernel, its floor (bytes over
    the copy bandwidth of the same tensor, each input read once and each output written once) and the gap; the
    token sums' second launch alone; and the statistics / token-sum column tiles swept.  (device, shapes,
    time_fn: the CPU smoke test's Triton interpreter, small shapes and a wall clock.)"""
    rows = []
    for preset, preset_shapes in (shapes or STEP_SHAPES).items():
        for shape in preset_shapes:
            row = _shape_row(preset, shape, device, time_fn or timed)
            rows.append(row)
            log(f"  {preset} {shape}: copy {row['copy_us']:.1f} us ({row['copy_gbs']:.0f} GB/s); " + "; ".join(
                f"{name} {v['us']:.1f} us" + (f" ({v['gap']:.1f}x floor)" if "gap" in v else "")
                for name, v in row["kernels"].items())
                + f"; transpose + rowwise == columnwise, bit for bit: {row['transposed_equals_columnwise']}")
            tiles = row["tiles_us"]
            best = min(tiles, key=tiles.get)
            log(f"    tiles: best {best} {tiles[best]:.1f} us; " + ", ".join(f"{t} {u:.1f}" for t, u in tiles.items()))
    RESULTS["step_shapes"] = rows


def _shape_row(preset, shape, device, timed_):
    from averis.transforms.mean import TOKEN_CHUNK

    nv, nvsr = make_spec("nvfp4"), make_spec("nvfp4", rounding="stochastic")
    x = (torch.randn(shape, device=device) + torch.randn(shape[1], device=device) * 3).bfloat16()
    y = torch.empty_like(x)
    n = x.numel()
    copy_us = timed_(lambda: y.copy_(x)) * 1e3
    bw = 4 * n / copy_us / 1e3  # GB/s
    st = qgemm.column_stats(x)
    amax = dispatch.amax(x)
    tsum = (TOKEN_CHUNK, GROUP, True)  # SR below draws from the default generator, which graph capture handles

    def with_sums():
        return dispatch.fake_quantize(x, nvsr, 0, None, True, st.residual_amax, mu=st.mean, token_sum=tsum)

    def columnwise_sr(generator=None):
        return dispatch.fake_quantize(x, nvsr, 0, generator, True, amax)

    def transposed_sr(generator=None):  # the same bits as columnwise_sr, in X^T's layout
        return dispatch.fake_quantize(x.t().contiguous(), nvsr, 1, generator, True, amax)

    cases = [  # name, fn, bytes moved
        ("amax", lambda: dispatch.amax(x), 2 * n),
        ("column_stats", lambda: qgemm.column_stats(x), 2 * n),
        ("rowwise RNE", lambda: dispatch.fake_quantize(x, nv, 1, None, False, amax), 4 * n),
        ("columnwise SR", columnwise_sr, 4 * n),
        ("residual rowwise RNE", lambda: dispatch.fake_quantize(x, nv, 1, None, False, st.residual_amax, mu=st.mean),
         4 * n),
        ("residual columnwise SR", lambda: dispatch.fake_quantize(x, nvsr, 0, None, True, st.residual_amax,
                                                                   mu=st.mean), 4 * n),
        ("residual columnwise SR + token sums", with_sums, 4 * n),
        # columnwise quantization is the largest gap to the floor (step/89d7628): its suspects, one at a time.
        # SR's hash (rowwise SR against rowwise RNE), the strided block axis (columnwise RNE against rowwise
        # RNE), and the alternative of a transpose then a rowwise pass (the same bits, X^T's layout; the wgrad
        # GEMM could read it transposed), its floor still one read and one write
        ("rowwise SR", lambda: dispatch.fake_quantize(x, nvsr, 1, None, False, amax), 4 * n),
        ("columnwise RNE", lambda: dispatch.fake_quantize(x, nv, 0, None, True, amax), 4 * n),
        ("transpose copy", lambda: x.t().contiguous(), 4 * n),
        ("transpose + rowwise SR", transposed_sr, 4 * n),
    ]
    row = {"preset": preset, "shape": list(shape), "copy_us": copy_us, "copy_gbs": bw, "kernels": {}}
    k = row["kernels"]
    for name, fn, nbytes in cases:
        us = timed_(fn) * 1e3
        floor = nbytes / bw / 1e3
        k[name] = {"us": us, "floor_us": floor, "gap": us / floor}
    k["token sums (the difference)"] = {"us": k["residual columnwise SR + token sums"]["us"]
                                        - k["residual columnwise SR"]["us"]}
    # the transposed route is the columnwise quantization's twin: the same noise index, so the same bits
    col = columnwise_sr(torch.Generator(device).manual_seed(7))
    via_t = transposed_sr(torch.Generator(device).manual_seed(7))
    row["transposed_equals_columnwise"] = bool(torch.equal(col, via_t.t()))
    tiles = {}
    # (row blocks side by side, columns, warps): the statistics read sub x bn values a step, the token sums bn
    # (two warps lost everywhere at bench (8192, 256), step/89f92dc: not swept again)
    stats_tiles = [(s, bn, w) for s, bn in ((8, 32), (16, 32), (32, 32), (8, 64), (16, 64), (32, 64), (16, 128))
                   for w in (4, 8)]
    tsum_tiles = [(0, bn, w) for bn in (16, 32, 64, 128) for w in (1, 2, 4, 8) if w == 1 or 32 * w <= bn]
    for kind, cands, fn in (("stats", stats_tiles, lambda: qgemm.column_stats(x)), ("tsum", tsum_tiles, with_sums)):
        orig, enough = dispatch.CONFIGS[kind], dispatch.ENOUGH_PROGRAMS
        dispatch.ENOUGH_PROGRAMS = 1  # each tile as given
        try:
            for cfg in cands:
                dispatch.CONFIGS[kind] = cfg
                tiles[f"{kind} {cfg[0]}x{cfg[1]}x{cfg[2]}w" if kind == "stats" else f"{kind} {cfg[1]}x{cfg[2]}w"] = (
                    timed_(fn) * 1e3)
        finally:
            dispatch.CONFIGS[kind], dispatch.ENOUGH_PROGRAMS = orig, enough
    row["tiles_us"] = tiles
    return row


# --------------------------------------------------------------------------- (2) Averis vs plain NVFP4
def section_averis():
    rows = []
    for shape in ((8192, 512), (8192, 1536), (8192, 4096), (16384, 4096)):
        x = (torch.randn(shape, device="cuda") + torch.randn(shape[1], device="cuda") * 3).bfloat16()

        def plain(x=x):
            return fake_quantize(x, "nvfp4", check_finite=False)

        def averis(x=x):
            st = qgemm.column_stats(x)
            return qgemm.fake_quantize_residual(x, st.mean, st.residual_amax, "nvfp4")

        def averis_torch_split(x=x):  # unfused: torch mean, subtract, then the plain kernels on the residual
            mu = x.float().mean(0)
            return fake_quantize(x.float() - mu, "nvfp4", check_finite=False).bfloat16()

        row = {"shape": list(shape)}
        for name, fn in (("plain", plain), ("averis", averis), ("averis_unfused", averis_torch_split)):
            fn()
            row[name + "_us"] = timed_eager(fn) * 1e3
            # the same under a CUDA graph (launch overhead removed, as in a captured training step)
            row[name + "_graph_us"] = timed(fn) * 1e3
        row["ratio"] = row["averis_us"] / row["plain_us"]
        row["ratio_graph"] = row["averis_graph_us"] / row["plain_graph_us"]
        rows.append(row)
        log(
            f"  {str(shape):14s} plain {row['plain_us']:7.1f} us  averis {row['averis_us']:7.1f} us  "
            f"x{row['ratio']:.3f} | graphs: plain {row['plain_graph_us']:7.1f}  averis "
            f"{row['averis_graph_us']:7.1f}  x{row['ratio_graph']:.3f} | "
            f"unfused averis {row['averis_unfused_us']:.1f}"
        )
    RESULTS["averis_vs_nvfp4"] = rows


def markdown(res: dict) -> str:
    """Tables for docs/kernels.md from a results JSON."""
    out = [
        f"Device: {res.get('device')}; " + ", ".join(f"{k} {v}" for k, v in res.get("versions", {}).items())
    ]
    if "check" in res:
        c = res["check"]
        out.append(f"\nBit-exact checks on the GPU: {c['cases'] - len(c['failures'])}/{c['cases']} equal.")
    if "bandwidth" in res:
        b = res["bandwidth"]
        out += [
            f"\nKernels on a {b['shape'][0]} x {b['shape'][1]} {b['dtype']} tensor; device copy bandwidth "
            f"{b['copy_GBps']:.0f} GB/s (read + write).\n",
            "| kernel | time (us) | GB/s | % of copy |",
            "| --- | ---: | ---: | ---: |",
        ]
        for r in b["rows"]:
            if "ms" in r:
                out.append(
                    f"| {r['kernel']} | {r['ms'] * 1e3:.1f} | {r['GB/s']:.0f} | "
                    f"{100 * r['frac_of_copy']:.0f}% |"
                )
            else:
                out.append(f"| {r['kernel']} | error | | |")
    if "averis_vs_nvfp4" in res:
        out += [
            "\n| shape | plain NVFP4 (us) | Averis (us) | ratio | plain, graph (us) | Averis, graph (us) "
            "| ratio, graph | unfused Averis (us) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in res["averis_vs_nvfp4"]:
            out.append(
                f"| {r['shape'][0]} x {r['shape'][1]} | {r['plain_us']:.1f} | {r['averis_us']:.1f} | "
                f"{r['ratio']:.3f} | {r['plain_graph_us']:.1f} | {r['averis_graph_us']:.1f} | "
                f"{r['ratio_graph']:.3f} | {r['averis_unfused_us']:.1f} |"
            )
    if "step_shapes" in res:
        names = list(res["step_shapes"][0]["kernels"])
        out += ["\nAt the training step's shapes, graphed, us per call (x: times the floor, bytes over the copy "
                "bandwidth of the same tensor):\n",
                "| preset | shape | copy | " + " | ".join(names) + " | best stats tile | best tsum tile |",
                "| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " | --- | --- |"]
        for r in res["step_shapes"]:
            cells = [f"{v['us']:.1f}" + (f" ({v['gap']:.1f}x)" if "gap" in v else "")
                     for v in (r["kernels"][n] for n in names)]
            best = {kind: min((t for t in r["tiles_us"] if t.startswith(kind + " ")), key=r["tiles_us"].get)
                    for kind in ("stats", "tsum")}
            out.append(f"| {r['preset']} | {r['shape'][0]} x {r['shape'][1]} | {r['copy_us']:.1f} | "
                       + " | ".join(cells) + " | " + " | ".join(f"{b} ({r['tiles_us'][b]:.1f})"
                                                               for b in best.values()) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", default="check,sweep,bw,averis")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--merge", action="store_true", help="update an existing JSON instead of replacing it")
    ap.add_argument("--markdown", metavar="JSON", help="print the tables of a results JSON and exit (no GPU)")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run the shapes section once on the CPU (TRITON_INTERPRET=1), small shapes, no timing meaning")
    args = ap.parse_args()
    if args.cpu_smoke:  # the code path of the shapes section, checked without a GPU
        section_shapes("cpu", {"smoke": [(256, 48)]}, time_fn=wall_ms)
        print(markdown(RESULTS))
        return
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    dev = torch.cuda.get_device_name()
    tag = provenance.slug(dev)
    path = Path(args.out) / f"kernels_{tag}.json"
    if args.merge and path.exists():
        RESULTS.update(json.loads(path.read_text()))
        for kind, cfg in RESULTS.get("sweep", {}).get("best", {}).items():  # the tile configs swept before
            dispatch.CONFIGS[kind] = tuple(cfg)
    RESULTS["device"] = dev
    RESULTS["commit"] = provenance.commit()
    RESULTS["command"] = " ".join(["python3", *sys.argv])
    RESULTS["versions"] = {
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
    }
    RESULTS["configs"] = {k: list(v) for k, v in dispatch.CONFIGS.items()}
    log(f"device {dev}, torch {torch.__version__}, triton {triton.__version__}")
    secs = args.sections.split(",")
    for sec in secs:
        t0 = time.time()
        log(f"== {sec}")
        try:
            if sec == "diag":
                section_diag()
            elif sec == "check":
                section_check()
            elif sec == "sweep":
                section_sweep()
                RESULTS["configs"] = {k: list(v) for k, v in dispatch.CONFIGS.items()}
            elif sec == "bw":
                section_bw()
            elif sec == "averis":
                section_averis()
            elif sec == "shapes":
                section_shapes()
        except Exception as e:
            RESULTS.setdefault("errors", []).append(f"{sec}: {e!r}")
            traceback.print_exc()
        log(f"   ({time.time() - t0:.0f} s)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(RESULTS, indent=1))
    log(f"wrote {path}")
    os.environ.get("OUT") and log("OUT is", os.environ["OUT"])


if __name__ == "__main__":
    main()
