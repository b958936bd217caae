"""Where one recipe's step time goes beyond another's: the profiles of a bench_step.py result (``--profile``: GPU
kernel time per eager step and its top kernels), grouped into kernel families, side by side, with the difference.

    python benchmarks/profile_diff.py benchmarks/results/step/step_nvidia_h200_qwen3-0.6b.json --base nvfp4 \
        --recipes averis,nvidia [--json OUT.json]

The profile keeps only the top kernels of each step (bench_step.py's profile_steps); what they leave out is the
row "other (not in the top kernels)", so every column sums to the profile's GPU time per step.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # a plain checkout runs it too
from averis import provenance  # noqa: E402

# (family, pattern on the kernel name): the first match wins
FAMILIES = [
    ("quantize (Triton quantize_kernel)", r"^quantize_kernel"),
    ("column statistics (Triton column_stats_kernel)", r"^column_stats_kernel"),
    ("tensor amax (Triton amax kernels)", r"^amax_(flat_)?kernel"),
    ("GEMV / small GEMM (token sums, rank-one terms)", r"nvjet_sm90_tst_(8x64|64x8)|splitK|splitKreduce"),
    ("FP32 GEMM (sm80 xmma f32)", r"xmma_gemm_f32f32"),
    ("GEMM (cuBLAS nvjet)", r"^nvjet"),
    ("strided copies (non-vectorised direct_copy)", r"elementwise_kernel<128, 4, .*direct_copy"),
    ("casts and copies (vectorised direct_copy, bf16 copy)", r"direct_copy|bfloat16_copy"),
    ("attention (cuDNN SDPA)", r"sdpa|flash"),
    ("optimizer", r"Optimizer|multi_tensor_apply"),
    ("softmax / cross-entropy", r"SoftMax"),
    ("compiled elementwise (Inductor triton_*)", r"^triton_"),
]
OTHER = "other (not in the top kernels)"


def family(name: str) -> str:
    return next((f for f, pat in FAMILIES if re.search(pat, name)), "other top kernels")


def breakdown(profile: dict) -> dict[str, float]:
    """ms per step by family; the part of the GPU time outside the listed kernels is OTHER."""
    out: dict[str, float] = {}
    for k in profile["top_kernels"]:
        f = family(k["name"])
        out[f] = out.get(f, 0.0) + k["ms_per_step"]
    out[OTHER] = profile["gpu_ms_per_step"] - sum(out.values())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", type=Path, help="a bench_step.py JSON run with --profile")
    ap.add_argument("--base", default="nvfp4", help="the recipe the others are compared with")
    ap.add_argument("--recipes", default="averis", help="comma-separated")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = ap.parse_args()
    if not args.result.exists():
        sys.exit(f"profile_diff.py: error: {args.result} does not exist: give a bench_step.py result JSON")
    res = json.loads(args.result.read_text())
    rows = {r["recipe"]: r for r in res.get("rows", [])}
    names = [args.base, *args.recipes.split(",")]
    missing = [n for n in names if "profile" not in rows.get(n, {})]
    if missing:
        sys.exit(f"profile_diff.py: error: no profile for {', '.join(missing)} in {args.result} "
                 f"(profiled: {', '.join(r for r in rows if 'profile' in rows[r]) or 'none'}): run bench_step.py "
                 "--profile")
    parts = {n: breakdown(rows[n]["profile"]) for n in names}
    families = [f for f, _ in FAMILIES] + ["other top kernels", OTHER]
    families = [f for f in families if any(f in p for p in parts.values())]
    command = "python benchmarks/profile_diff.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"{res['device']}, {res.get('preset', '?')} preset, commit {str(res.get('commit', '?'))[:7]} (the profile's "
          f"run); computed at {provenance.commit()} with: {command}")
    print("GPU kernel time per eager step, ms, by kernel family (torch.profiler; the graphed step runs the same "
          "kernels)\n")
    head = "| family | " + " | ".join(names) + " | " + " | ".join(f"{n} - {args.base}" for n in names[1:]) + " |"
    print(head + "\n|---|" + "---:|" * (2 * len(names) - 1))
    for f in families:
        vals = [parts[n].get(f, 0.0) for n in names]
        print(f"| {f} | " + " | ".join(f"{v:.2f}" for v in vals) + " | "
              + " | ".join(f"{v - vals[0]:+.2f}" for v in vals[1:]) + " |")
    totals = [rows[n]["profile"]["gpu_ms_per_step"] for n in names]
    print("| **GPU time per step** | " + " | ".join(f"**{t:.2f}**" for t in totals) + " | "
          + " | ".join(f"**{t - totals[0]:+.2f}**" for t in totals[1:]) + " |")
    graph = [rows[n].get("graph_ms") for n in names]
    if all(g is not None for g in graph):
        print("| graphed step (median), ms | " + " | ".join(f"{g:.2f}" for g in graph) + " | "
              + " | ".join(f"{g - graph[0]:+.2f}" for g in graph[1:]) + " |")
    if args.json:
        args.json.write_text(json.dumps({"device": res["device"], "preset": res.get("preset"),
                                         "profile_commit": res.get("commit"), "commit": provenance.commit(),
                                         "command": command, "base": args.base, "ms_per_step": parts,
                                         "gpu_ms_per_step": dict(zip(names, totals)),
                                         "graph_ms": dict(zip(names, graph))}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
