"""What the fixed summation order costs the column-statistics kernel (issue 15): the library's kernel against two
variants that differ only in how each chunk of rows is summed.

  adjacent  the library's order (transforms.mean.column_sum): rows 2i + 2i+1, level by level.  In Triton's
            layouts the rows of a tile are spread cyclically over threads, so every level moves data between them.
  halving   rows i + i + G/2, level by level: the levels whose stride exceeds a thread's row span are additions
            of a thread's own registers.  Reproducible too (its reference is below and checked bit for bit).
  tl.sum    Triton's own reduction: a lower bound, in no order a reference could reproduce.

The chunk partials, the last-program finish and the loads are the library's in every variant, so the differences
are the tree alone.  At the training step's shapes (bench_kernels.STEP_SHAPES) and 8192 x 4096, graphed.  If the
halving tree comes near tl.sum, changing the reference order (and so Averis's last bits) is worth it.

    source benchmarks/gpu/env.sh && python3 benchmarks/gpu/diag/tree_order.py          # on the GPU
    TRITON_INTERPRET=1 python benchmarks/gpu/diag/tree_order.py --cpu-smoke              # the bit checks, no timing
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1].parent))  # benchmarks/, for bench_kernels

from averis import provenance, transforms  # noqa: E402
from averis.kernels import dispatch  # noqa: E402
from averis.kernels.triton_kernels import _column_stats_finish, _fmax_nan, _fmin_nan, _tree_sum  # noqa: E402
from averis.transforms.mean import CHUNK, GROUP, _blocked_sum  # noqa: E402

VARIANTS = {"adjacent": 0, "halving": 1, "tl.sum": 2}


@triton.jit
def _halving_sum(t, G: tl.constexpr, BN: tl.constexpr):
    """(G, BN) -> (BN,): rows i + i + G/2, level by level (G a power of two)."""
    if G >= 256:
        t = tl.sum(tl.reshape(t, (2, 128, BN)), axis=0)
    if G >= 128:
        t = tl.sum(tl.reshape(t, (2, 64, BN)), axis=0)
    if G >= 64:
        t = tl.sum(tl.reshape(t, (2, 32, BN)), axis=0)
    if G >= 32:
        t = tl.sum(tl.reshape(t, (2, 16, BN)), axis=0)
    if G >= 16:
        t = tl.sum(tl.reshape(t, (2, 8, BN)), axis=0)
    if G >= 8:
        t = tl.sum(tl.reshape(t, (2, 4, BN)), axis=0)
    if G >= 4:
        t = tl.sum(tl.reshape(t, (2, 2, BN)), axis=0)
    if G >= 2:
        t = tl.sum(tl.reshape(t, (2, 1, BN)), axis=0)
    return tl.reshape(t, (BN,))


@triton.jit
def stats_variant_kernel(x_ptr, sxr, sxc, ps_ptr, pmax_ptr, pmin_ptr, cnt_ptr, sum_ptr, max_ptr, min_ptr, mu_ptr,
                         ramax_ptr, NROWS, NROWS_F, NCOLS, NCH, CH: tl.constexpr, BN: tl.constexpr,
                         GROUP: tl.constexpr, TREE: tl.constexpr):
    """averis.kernels.triton_kernels.column_stats_kernel with the chunk's tree chosen by TREE (VARIANTS)."""
    pid_c = tl.program_id(0)
    pid_k = tl.program_id(1)
    cols = pid_c * BN + tl.arange(0, BN)
    cm = cols < NCOLS
    rows = pid_k * CH + tl.arange(0, CH)
    ok = (rows[:, None] < NROWS) & cm[None, :]
    v = tl.load(x_ptr + rows[:, None].to(tl.int64) * sxr + cols[None, :] * sxc, mask=ok, other=0.0)
    v = v.to(tl.float32)
    if TREE == 0:
        s = _tree_sum(v + 0.0, CH, BN)
    elif TREE == 1:
        s = _halving_sum(v + 0.0, CH, BN)
    else:
        s = tl.sum(v + 0.0, axis=0)
    mx = tl.reduce(tl.where(ok, v, float("-inf")), 0, _fmax_nan)
    mn = tl.reduce(tl.where(ok, v, float("inf")), 0, _fmin_nan)
    _column_stats_finish(s, mx, mn, cols, cm, pid_c, pid_k, ps_ptr, pmax_ptr, pmin_ptr, cnt_ptr, sum_ptr, max_ptr,
                         min_ptr, mu_ptr, ramax_ptr, NROWS_F, NCOLS, NCH, BN, GROUP)


def column_stats_variant(x: torch.Tensor, tree: str, chunk: int = CHUNK):
    """(sum, max, min, mean, residual amax), launched as dispatch.column_stats launches the library's kernel."""
    rows, cols = x.shape
    _, bn, nw = dispatch._cfg("stats")
    nch = triton.cdiv(rows, chunk)
    bn = dispatch._narrow_columns(bn, cols, nch)
    nct = triton.cdiv(cols, bn)
    part = torch.empty(3, nch, cols, dtype=torch.float32, device=x.device)
    out = torch.empty(4, cols, dtype=torch.float32, device=x.device)
    ints = torch.zeros(nct + 1, dtype=torch.int32, device=x.device)
    stats_variant_kernel[(nct, nch)](x, x.stride(0), x.stride(1), part[0], part[1], part[2], ints, out[0], out[1],
                                     out[2], out[3], ints[nct:], rows, float(rows), cols, nch, CH=chunk, BN=bn,
                                     GROUP=GROUP, TREE=VARIANTS[tree], num_warps=nw, enable_fp_fusion=False)
    return out[0], out[1], out[2], out[3], ints[nct:].view(torch.float32).reshape(())


def halving_column_sum(x: torch.Tensor, chunk: int = CHUNK, group: int = GROUP) -> torch.Tensor:
    """The halving order's reference: chunks of ``chunk`` rows (zero-padded) summed i + i + G/2 level by level, then
    the chunk sums as the library sums them (transforms.mean._blocked_sum)."""
    xf = x.float()
    rows, cols = xf.shape
    nch = max(1, -(-rows // chunk))
    t = torch.nn.functional.pad(xf + 0.0, (0, 0, 0, nch * chunk - rows)).view(nch, chunk, cols)
    while t.shape[1] > 1:
        half = t.shape[1] // 2
        t = t[:, :half] + t[:, half:]
    return _blocked_sum(t[:, 0], group)


def check(x: torch.Tensor) -> str:
    """The adjacent variant against the library kernel and its reference, the halving variant against its own."""
    lib = dispatch.column_stats(x, CHUNK, GROUP)
    adj = column_stats_variant(x, "adjacent")
    hal = column_stats_variant(x, "halving")
    same_lib = all(torch.equal(a.view(torch.int32), b.view(torch.int32)) for a, b in zip(adj, lib))
    ref = transforms.mean.column_sum(x.cpu())
    same_ref = torch.equal(adj[0].cpu().view(torch.int32), ref.view(torch.int32))
    same_hal = torch.equal(hal[0].cpu().view(torch.int32), halving_column_sum(x.cpu()).view(torch.int32))
    differ = int((hal[0].cpu().view(torch.int32) != ref.view(torch.int32)).sum())
    return (f"adjacent == library kernel: {same_lib}; == reference: {same_ref}; halving == its reference: "
            f"{same_hal} (its sums differ from the adjacent order's on {differ}/{x.shape[1]} columns)")


def main(argv: list[str]) -> None:
    smoke = "--cpu-smoke" in argv
    device = "cpu (Triton interpreter)" if smoke else torch.cuda.get_device_name(0)
    print(f"device {device}; commit {provenance.commit()}; command python benchmarks/gpu/diag/tree_order.py "
          f"{' '.join(argv)}", flush=True)
    torch.manual_seed(0)
    if smoke:
        x = torch.randn(300, 40) * torch.exp2(torch.randint(-10, 10, (300, 40)).float())
        print(f"300 x 40: {check(x)}")
        return
    from bench_kernels import STEP_SHAPES, timed

    shapes = [s for preset in STEP_SHAPES.values() for s in preset] + [(8192, 4096)]
    for shape in shapes:
        x = (torch.randn(shape, device="cuda") * 3 + torch.randn(shape[1], device="cuda")).bfloat16()
        times = {tree: timed(lambda tree=tree, x=x: column_stats_variant(x, tree)) * 1e3 for tree in VARIANTS}
        lib = timed(lambda x=x: dispatch.column_stats(x, CHUNK, GROUP)) * 1e3
        print(f"{shape[0]} x {shape[1]}: {check(x)}", flush=True)
        print("  us per call, graphed: library " + f"{lib:.1f}; " + "; ".join(f"{t} {u:.1f}" for t, u in times.items()),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
