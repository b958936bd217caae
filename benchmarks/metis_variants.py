"""Which part of the Metis operand costs SmolLM2-135M's loss? Forward-only loss increase of metis variants.

Each variant changes how the low-rank part of an activation, Q(U) diag(S) Q(V)^T, is quantized
(averis.qgemm.operand._lowrank_operand, swapped for the run); the residual is always NVFP4.  The
loss increase is that of `averis fidelity` (quantized forward of every linear layer but lm_head vs
full precision) on the same text.  Writes metis_variants_<device>.json and prints a table.

Usage: python benchmarks/metis_variants.py [--tokens 1024] [--seq-len 512] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from averis.analysis.fidelity import mean_loss, quantized_loss  # noqa: E402
from averis.analysis.loading import load_model  # noqa: E402
from averis.analysis.text import text_batches  # noqa: E402
from averis.qgemm import lowrank_split  # noqa: E402  (the r x r SVD routed as in the layers)
from averis.qgemm import operand as F  # noqa: E402


def lowrank_variant(quant_u: bool, quant_v: bool, uv_axis: int = 0, rank: int | None = None):
    """A replacement for qgemm.operand._lowrank_operand: U / V quantized or not, along their length (axis 0)
    or along the rank (axis 1), at the recipe's rank or another."""
    def operand(a, spec, recipe, generator):
        r = recipe.lowrank_rank if rank is None else rank
        u, s, v, residual = lowrank_split(a, r, recipe.lowrank_power_iters, generator)
        qu = F.quantize_operand(u, spec, generator, axis=uv_axis) if quant_u else u
        qv = F.quantize_operand(v, spec, generator, axis=uv_axis) if quant_v else v
        return (qu * s) @ qv.T + F.quantize_operand(residual, spec, generator)
    return operand


VARIANTS = {
    "metis as built (U, V in NVFP4 along their length)": lowrank_variant(True, True),
    "U, V in NVFP4 along the rank axis": lowrank_variant(True, True, uv_axis=1),
    "U, V unquantized (FP32)": lowrank_variant(False, False),
    "U unquantized, V NVFP4": lowrank_variant(False, True),
    "U NVFP4, V unquantized": lowrank_variant(True, False),
    "rank 1, U, V unquantized": lowrank_variant(False, False, rank=1),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer, label = load_model(args.model, device=device)
    batches = text_batches(tokenizer, tokens=args.tokens, seq_len=args.seq_len, batch_size=1)
    fp = mean_loss(model, batches)
    rows = [{"variant": name, "loss_increase_pct": 100 * (quantized_loss(model, name, batches) / fp - 1)}
            for name in ("nvfp4", "averis")]
    real = F._lowrank_operand
    try:
        for name, operand in VARIANTS.items():
            F._lowrank_operand = operand
            rows.append({"variant": name, "loss_increase_pct": 100 * (quantized_loss(model, "metis", batches) / fp
                                                                      - 1)})
            print(f"  {name}: {rows[-1]['loss_increase_pct']:+.2f}%", flush=True)
    finally:
        F._lowrank_operand = real
    lines = [f"{label}, {args.tokens} tokens (rows of {args.seq_len}), {device}: full-precision loss {fp:.4f}", "",
             "| forward quantization | loss increase |", "| --- | ---: |"]
    lines += [f"| {r['variant']} | {r['loss_increase_pct']:+.2f}% |" for r in rows]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"metis_variants_{device}.json"
    path.write_text(json.dumps({"model": label, "tokens": args.tokens, "seq_len": args.seq_len, "device": device,
                                "torch": torch.__version__, "python": platform.python_version(),
                                "fp_loss": fp, "rows": rows}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
