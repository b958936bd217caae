"""The memory floor of FP4 emulation in one training step, per recipe, against a measured step (bench_step.py).

Emulated FP4 training adds passes over the GEMM operands to the BF16 step: statistics (a tensor amax, or Averis's
column statistics), then fake quantization into the layout each GEMM reads.  Their floor is the bytes those passes
must move over the device's copy bandwidth; everything else in the step (GEMMs, attention, optimizer) is the BF16
step's own.  So the floor of a recipe's step is  bf16 step + quantization bytes / copy bandwidth,  and the measured
step minus that floor is the time the emulation loses above it.  Counted per step, for the quantized linears that
averis.quantize_model swaps in under the recipe (its BF16 tail, kept layers and mean sites as in training):

- sources: X once per shared-input group (q/k/v, gate/up read one X), dY per linear, W per linear; activations and
  gradients are BF16 (2 bytes), weights are read in their parameter dtype;
- statistics: one read of a source per kind of scale its quantized operands need: a tensor amax (no transform),
  the column statistics ("mean": the mean and the residual amax from the same read, in place of the amax), the amax
  of the Hadamard-transformed source ("hadamard"), both ("mean_hadamard");
- quantization: one read and one BF16 write (the fake-quantized copy the GEMM reads) per distinct quantized operand
  of a source: X rowwise (fprop) and columnwise (wgrad), dY likewise (dgrad, wgrad), W along K (fprop) and along N
  (dgrad), or once for both where W uses 16x16 tiles;
- the Averis mean terms are vectors (a few KB a layer): counted as 0;
- Metis's low-rank split (randomized SVD) is GEMM work, not modelled: its rows say n/a.

    python benchmarks/step_floor.py --step benchmarks/results/step/89d7628/step_nvidia_h200_bench.json \
        --kernels benchmarks/results/step/e72a8ce/kernels_nvidia_h200.json [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from averis import provenance, quantize_model, recipes  # noqa: E402
from averis.models.qwen3 import build_qwen3  # noqa: E402
from averis.nn.convert import quantized_layers  # noqa: E402

ACT_BYTES = 2  # BF16 activations, gradients and fake-quantized copies
STAT_READS = {"none": ("amax",), "mean": ("column statistics",), "hadamard": ("amax of H(x)",),
              "mean_hadamard": ("column statistics", "amax of H(x - mean)")}
SOURCES = {"x": ("fprop_x", "wgrad_x"), "dy": ("dgrad_dy", "wgrad_dy"), "w": ("fprop_w", "dgrad_w")}


def source_bytes(specs: list, elements: int, in_bytes: int) -> int | None:
    """Bytes the statistics and quantization passes of one source move (None: a transform not modelled)."""
    quantized = [s for s in specs if s.quantized]
    if any(s.transform == "lowrank" for s in quantized):
        return None
    stats = {kind for s in quantized for kind in STAT_READS[s.transform]}
    # operands: fprop and dgrad W read one tensor when both use the same 16x16 tiles; otherwise each its own layout
    tiled_once = len(quantized) == 2 and quantized[0] == quantized[1] and quantized[0].tile_rows > 1
    passes = 1 if tiled_once else len(quantized)
    return elements * (len(stats) * in_bytes + passes * (in_bytes + ACT_BYTES))


def step_bytes(recipe_name: str, preset: str, tokens: int, vocab: int) -> dict:
    """Quantization bytes per step of the recipe on the preset's model, by source kind ("<recipe>-torch", bench_step's
    naive path, has its recipe's floor)."""
    recipe = recipes.get(recipe_name.removesuffix("-torch"))
    with torch.device("meta"):
        model = build_qwen3(preset, vocab_size=vocab)
    if recipe.quantizes:
        quantize_model(model, recipe)
    out = {"x": 0, "dy": 0, "w": 0, "linears": 0}
    modelled = True
    seen_groups: set[int] = set()
    for layer in quantized_layers(model).values():
        st = layer.averis_state
        out["linears"] += 1
        n, k = layer.weight.shape
        group = st.share[0]
        for src, names in SOURCES.items():
            if src == "x" and group and group in seen_groups:
                continue  # the group's X: counted with its first member
            elements, in_bytes = {"x": (tokens * k, ACT_BYTES), "dy": (tokens * n, ACT_BYTES),
                                  "w": (n * k, layer.weight.element_size())}[src]
            b = source_bytes([st.recipe.operand(name) for name in names], elements, in_bytes)
            modelled = modelled and b is not None
            out[src] += b or 0
        if group:
            seen_groups.add(group)
    return out if modelled else {**out, "x": None, "dy": None, "w": None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", type=Path, required=True, help="a bench_step.py result JSON (graph_ms per recipe)")
    ap.add_argument("--kernels", type=Path, help="a bench_kernels.py JSON with the bw section: its copy bandwidth")
    ap.add_argument("--bandwidth-gbps", type=float, help="the copy bandwidth in GB/s (instead of --kernels)")
    ap.add_argument("--vocab", type=int, default=16384, help="bench_step.py's vocabulary")
    ap.add_argument("--out", type=Path, help="write step_floor_<device>_<preset>.json and .md here")
    args = ap.parse_args()
    if not args.step.is_file():
        sys.exit(f"--step: no such file {args.step}; give a bench_step.py result JSON")
    step = json.loads(args.step.read_text())
    if args.bandwidth_gbps:
        bw, bw_from = args.bandwidth_gbps, "--bandwidth-gbps"
    elif args.kernels and args.kernels.is_file():
        kern = json.loads(args.kernels.read_text())
        if "bandwidth" not in kern:
            sys.exit(f"--kernels: {args.kernels} has no bandwidth section; run bench_kernels.py --sections bw")
        bw, bw_from = kern["bandwidth"]["copy_GBps"], f"{args.kernels} (commit {kern.get('commit')})"
    else:
        sys.exit("give the copy bandwidth: --kernels a bench_kernels.py JSON with its bw section, or --bandwidth-gbps")
    rows = {r["recipe"]: r for r in step["rows"]}
    if "bf16" not in rows or not rows["bf16"].get("graph_ms"):
        sys.exit(f"{args.step}: no graphed bf16 row; the floor is the bf16 step plus the quantization passes")
    tokens = step["batch"] * step["seq"]
    bf16_ms = rows["bf16"]["graph_ms"]
    table = []
    for name, r in rows.items():
        by = step_bytes(name, step["preset"], tokens, args.vocab)
        row = {"recipe": name, "linears": by["linears"], "graph_ms": r.get("graph_ms")}
        if by["x"] is not None:
            total = by["x"] + by["dy"] + by["w"]
            row.update(bytes_x=by["x"], bytes_dy=by["dy"], bytes_w=by["w"], bytes=total,
                       floor_extra_ms=total / (bw * 1e9) * 1e3)
            row["floor_ms"] = bf16_ms + row["floor_extra_ms"]
            if row["graph_ms"]:
                row["measured_extra_ms"] = row["graph_ms"] - bf16_ms
                row["above_floor_ms"] = row["graph_ms"] - row["floor_ms"]
        table.append(row)
    floors = {r["recipe"]: r.get("floor_ms") for r in table}
    for r in table:
        for ref in ("bf16", "nvfp4"):
            if r.get("floor_ms") and floors.get(ref):
                r[f"floor_vs_{ref}"] = r["floor_ms"] / floors[ref]
    res = {"device": step["device"], "preset": step["preset"], "step_commit": step["commit"],
           "commit": provenance.commit(), "command": shlex.join(["python", *sys.argv]), "copy_GBps": bw,
           "copy_bandwidth_from": bw_from, "tokens_per_step": tokens, "rows": table}
    md = markdown(res, args.step)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"step_floor_{provenance.slug(step['device'])}_{step['preset']}"  # a preset may hold a dot
        (args.out / f"{stem}.json").write_text(json.dumps(res, indent=1))
        (args.out / f"{stem}.md").write_text(md + "\n")
        print(f"wrote {args.out / stem}.json and .md")
    return 0


def _f(v, spec: str) -> str:
    return spec.format(v) if isinstance(v, (int, float)) else "n/a"


def markdown(res: dict, step_path: Path) -> str:
    out = [f"{res['device']}, {res['preset']} preset, {res['tokens_per_step']:,} tokens a step; step measured at "
           f"{res['step_commit']} ({step_path}); floor counted at {res['commit']} with: {res['command']}; copy "
           f"bandwidth {res['copy_GBps']:.0f} GB/s from {res['copy_bandwidth_from']}.\n",
           "| recipe | quantized linears | quantization MB (X / dY / W) | floor, extra ms | measured graphed ms "
           "| floor ms | above the floor ms | measured extra / floor extra | floor vs nvfp4 | measured vs nvfp4 |",
           "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    nv = next((r for r in res["rows"] if r["recipe"] == "nvfp4"), {})
    for r in res["rows"]:
        mb = ("n/a" if "bytes" not in r else
              f"{r['bytes'] / 1e6:,.0f} ({r['bytes_x'] / 1e6:,.0f} / {r['bytes_dy'] / 1e6:,.0f} / "
              f"{r['bytes_w'] / 1e6:,.0f})")
        ratio = (r["measured_extra_ms"] / r["floor_extra_ms"]
                 if r.get("floor_extra_ms") and r.get("measured_extra_ms") is not None else None)
        vs_nv = r["graph_ms"] / nv["graph_ms"] if r.get("graph_ms") and nv.get("graph_ms") else None
        out.append(f"| {r['recipe']} | {r['linears']} | {mb} | {_f(r.get('floor_extra_ms'), '{:.2f}')} | "
                   f"{_f(r.get('graph_ms'), '{:.2f}')} | {_f(r.get('floor_ms'), '{:.2f}')} | "
                   f"{_f(r.get('above_floor_ms'), '{:+.2f}')} | {_f(ratio, '{:.1f}x')} | "
                   f"{_f(r.get('floor_vs_nvfp4'), '{:.3f}')} | {_f(vs_nv, '{:.3f}')} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
