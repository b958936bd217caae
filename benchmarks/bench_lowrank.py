"""Metis randomized SVD: the old Householder-QR algorithm vs the new CholeskyQR one (averis.transforms.lowrank).

For each shape, one rank-16 split with 2 power iterations (the Metis recipe's settings) of an
activation-like FP32 matrix (Gaussian noise + a per-column mean + a decaying rank-32 signal):
  - time of randomized_svd alone and of lowrank_split (SVD + residual): old, new (auto: the Triton
    Jacobi r x r SVD on CUDA), and new with cuSOLVER for the r x r SVD; CUDA events, median over
    --repeats calls after --warmup calls; plus the host time to issue one call (how long the
    Python thread is busy: equal to the device time when the call synchronizes)
  - relative reconstruction error ||X - U diag(S) V^T||_F / ||X||_F of old and new against the exact
    rank-r truncated SVD's (singular values of X in FP64 on the CPU)
  - whether the new split runs under torch.cuda.set_sync_debug_mode("error") without raising
    (and, for comparison, whether the old one does)
and the time of the r x r SVD alone: the Triton Jacobi kernel vs torch.linalg.svd (cuSOLVER).
Prints a markdown table and writes lowrank_<device>.json to --out (default benchmarks/results/).

Usage (GPU):  python benchmarks/bench_lowrank.py [--out DIR] [--repeats 20] [--warmup 5]
Smoke test:   python benchmarks/bench_lowrank.py --device cpu --shapes 256x64,64x256 --repeats 2
              (CPU: wall-clock times; the sync check is skipped)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from averis import provenance, qgemm  # noqa: E402

SHAPES = [(8192, 512), (8192, 1536), (576, 8192), (16384, 576)]
RANK, POWER_ITERS = 16, 2


# ----------------------------------------------------------------- the old algorithm (baseline only)
def old_randomized_svd(x: torch.Tensor, rank: int, power_iters: int = 2, generator: torch.Generator | None = None):
    """averis.transforms.lowrank.randomized_svd before the CholeskyQR rewrite (as of commit df542d3), verbatim:
    5 Householder QRs of tall-skinny FP32 matrices and an r x n SVD (cuSOLVER on CUDA)."""
    with torch.autocast(x.device.type, enabled=False):
        xf = x.float()
        m, n = xf.shape
        r = min(rank, m, n)
        omega = torch.randn(n, r, generator=generator, device=xf.device, dtype=torch.float32)
        q = torch.linalg.qr(xf @ omega).Q
        for _ in range(power_iters):
            q = torch.linalg.qr(xf.T @ q).Q
            q = torch.linalg.qr(xf @ q).Q
        u_small, s, vh = torch.linalg.svd(q.T @ xf, full_matrices=False)
        return q @ u_small, s, vh.T


def _split(svd):
    def split(x, rank, power_iters, generator):
        u, s, v = svd(x, rank, power_iters, generator)
        with torch.autocast(x.device.type, enabled=False):
            return u, s, v, x.float() - (u * s) @ v.T
    return split


def _new_svd(method):
    def svd(x, rank, power_iters, generator):
        return qgemm.randomized_svd(x, rank, power_iters, generator, small_svd=method)
    return svd


VARIANTS = {  # name: (randomized_svd, lowrank_split)
    "old": (old_randomized_svd, _split(old_randomized_svd)),
    "new": (qgemm.randomized_svd, qgemm.lowrank_split),
    "new_cusolver_rxr": (_new_svd("svd"), _split(_new_svd("svd"))),
}


# ----------------------------------------------------------------- measurement
def make_input(m, n, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = 32
    signal = (torch.randn(m, k, generator=g) * torch.logspace(1, -1, k)) @ torch.randn(k, n, generator=g) / n**0.5
    x = torch.randn(m, n, generator=g) + 3 * torch.randn(1, n, generator=g) + 4 * signal
    return x.to(device)


def time_call(fn, device, repeats, warmup):
    """(median device ms, median host ms) of fn()."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    dev, host = [], []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            start.record()
            fn()
            end.record()
            host.append((time.perf_counter() - t0) * 1e3)
            end.synchronize()
            dev.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            dev.append((time.perf_counter() - t0) * 1e3)
            host.append(dev[-1])
    return statistics.median(dev), statistics.median(host)


def rel_err(x, u, s, v):
    xd = x.double()
    return ((xd - (u.double() * s.double()) @ v.double().T).norm() / xd.norm()).item()


def exact_err(x, r):
    sv = torch.linalg.svdvals(x.double().cpu())
    return (sv[r:].square().sum().sqrt() / sv.square().sum().sqrt()).item()


def sync_free(split, x, generator):
    """(True, "") if split runs under set_sync_debug_mode("error"), else (False, where it synchronized)."""
    split(x, RANK, POWER_ITERS, generator)           # warm-up outside the check (Triton compile, cuBLAS handles)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        split(x, RANK, POWER_ITERS, generator)
        return True, ""
    except RuntimeError as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
        where = f"{frames[-1].filename.split('/')[-1]}:{frames[-1].lineno} {frames[-1].line}" if frames else ""
        return False, f"{str(e).splitlines()[0]} at {where}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


def bench_shape(m, n, device, args):
    x = make_input(m, n, device)
    row = {"shape": [m, n], "rank": RANK, "power_iters": POWER_ITERS}
    row["err_exact"] = exact_err(x, min(RANK, m, n))
    for name, (svd, split) in VARIANTS.items():
        gen = torch.Generator(device=device).manual_seed(1)
        u, s, v = svd(x, RANK, POWER_ITERS, gen)
        row[f"err_{name}"] = rel_err(x, u, s, v)
        row[f"orth_{name}"] = max((u.T @ u - torch.eye(u.shape[1], device=device)).abs().max().item(),
                                  (v.T @ v - torch.eye(v.shape[1], device=device)).abs().max().item())
        row[f"svd_ms_{name}"], row[f"svd_host_ms_{name}"] = time_call(
            lambda svd=svd, gen=gen: svd(x, RANK, POWER_ITERS, gen), device, args.repeats, args.warmup)
        row[f"split_ms_{name}"], row[f"split_host_ms_{name}"] = time_call(
            lambda split=split, gen=gen: split(x, RANK, POWER_ITERS, gen), device, args.repeats, args.warmup)
    if device.type == "cuda":
        for name in ("new", "old"):
            ok, why = sync_free(VARIANTS[name][1], x, torch.Generator(device=device).manual_seed(2))
            row[f"sync_free_{name}"], row[f"sync_where_{name}"] = ok, why
        row["jacobi_fallback"] = qgemm.lowrank.jacobi_broken()
    return row


def bench_small(device, args):
    """Device ms of the r x r SVD alone (a 16 x 16 FP64 lower-triangular matrix, like Rb^T): the Triton
    Jacobi kernel (tl.gather and masked-sum variants) and torch.linalg.svd (cuSOLVER + host sync)."""
    g = torch.Generator().manual_seed(3)
    a = torch.linalg.qr(torch.randn(RANK, 4 * RANK, generator=g, dtype=torch.float64).T * torch.logspace(
        0, -3, RANK, dtype=torch.float64)).R.T.contiguous().to(device)
    out = {"torch_linalg_svd_ms": time_call(lambda: torch.linalg.svd(a), device, args.repeats, args.warmup)[0]}
    if device.type == "cuda":
        try:
            from averis.kernels import jacobi
        except ImportError as e:                          # no Triton
            out["jacobi_error"] = repr(e)
            return out
        variants = [("jacobi_gather_ms", True)] if jacobi._HAS_GATHER else []
        for key, gather in variants + [("jacobi_masked_sum_ms", False)]:
            try:
                out[key] = time_call(lambda gather=gather: jacobi.jacobi_svd(a, gather=gather), device,
                                     args.repeats, args.warmup)[0]
            except Exception as e:                        # report a compile failure, keep the rest
                out[key.replace("_ms", "_error")] = f"{type(e).__name__}: {e}"[:500]
    return out


def table(rows, cuda):
    head = ["shape", "split old ms", "split new ms", "speed-up", "new w/ cuSOLVER r x r ms", "svd old ms", "svd new ms",
            "host new ms", "err old / exact", "err new / exact", "orth new"]
    if cuda:
        head += ["new sync-free", "old sync-free"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [f"{r['shape'][0]} x {r['shape'][1]}", f"{r['split_ms_old']:.3f}", f"{r['split_ms_new']:.3f}",
                 f"{r['split_ms_old'] / r['split_ms_new']:.1f}x", f"{r['split_ms_new_cusolver_rxr']:.3f}",
                 f"{r['svd_ms_old']:.3f}", f"{r['svd_ms_new']:.3f}", f"{r['split_host_ms_new']:.3f}",
                 f"{r['err_old'] / r['err_exact']:.4f}", f"{r['err_new'] / r['err_exact']:.4f}", f"{r['orth_new']:.1e}"]
        if cuda:
            cells += ["yes" if r["sync_free_new"] else "NO", "yes" if r["sync_free_old"] else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test: wall-clock times)")
    default_shapes = ",".join(f"{m}x{n}" for m, n in SHAPES)
    p.add_argument("--shapes", default=None, help=f"comma-separated MxN list (default: {default_shapes})")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_lowrank.py: no CUDA device (torch.cuda.is_available() is False); "
                 "run it on a GPU machine, or pass --device cpu for a CPU smoke test")
    if device.type not in ("cuda", "cpu"):
        sys.exit(f"bench_lowrank.py: --device must be cuda or cpu, not {args.device!r}")
    shapes = SHAPES if args.shapes is None else [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu_{platform.machine()}"
    rows = []
    for m, n in shapes:
        rows.append(bench_shape(m, n, device, args))
        print(f"# {m} x {n}: old {rows[-1]['split_ms_old']:.3f} ms, new {rows[-1]['split_ms_new']:.3f} ms", flush=True)
    small = bench_small(device, args)
    md = table(rows, device.type == "cuda")
    print(f"\nMetis rank-{RANK} split, {POWER_ITERS} power iterations, {name}, torch {torch.__version__}; "
          f"median of {args.repeats} ({'CUDA events' if device.type == 'cuda' else 'wall clock'})\n")
    print(md)
    print("\nr x r SVD alone (16 x 16, FP64): " + ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in small.items()))
    for r in rows:
        for v in ("new", "old"):
            if r.get(f"sync_where_{v}"):
                print(f"{v} {r['shape']}: synchronizes: {r[f'sync_where_{v}']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"lowrank_{provenance.slug(name)}.json"
    meta = {"device": name, "torch": torch.__version__, "repeats": args.repeats, "warmup": args.warmup}
    try:
        import triton
        meta["triton"] = triton.__version__
    except ImportError:
        meta["triton"] = None
    path.write_text(json.dumps({"meta": meta, "rows": rows, "small_svd": small, "table": md}, indent=1) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
