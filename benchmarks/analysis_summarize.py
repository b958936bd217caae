"""Per-site summary of an ``averis analyze`` result (the numbers quoted in docs/analysis/*/README.md).

    python benchmarks/analysis_summarize.py docs/analysis/smollm2/stats.json > docs/analysis/smollm2/summary.txt
"""

from __future__ import annotations

import json
import statistics
import sys

from averis.analysis.analyze import select, sites

KEYS = {
    "R": lambda r: r["mean_ratio"],
    "cos(mu,v1)": lambda r: r["cos_mean_v1"],
    "E_mean": lambda r: r["energy_mean"],
    "E_spike": lambda r: r["energy_spike"],
    "outl_mean": lambda r: r["outlier_mean"],
    "outl_spike": lambda r: r["outlier_spike"],
    "outl_tail": lambda r: r["outlier_tail"],
    "mean_dominant": lambda r: r["outlier_mean_dominant"],
    "nvfp4_err": lambda r: r["quant"]["nvfp4"]["plain"]["rel_error"],
    "nvfp4_err_-mean": lambda r: r["quant"]["nvfp4"]["mean_bf16"]["rel_error"],
    "nvfp4_err_-mean_fp4mu": lambda r: r["quant"]["nvfp4"]["mean_fp4"]["rel_error"],
    "nvfp4_expl_by_mean": lambda r: r["quant"]["nvfp4"]["error_explained_by_mean"],
    "nvfp4_centred_err": lambda r: r["quant"]["nvfp4"]["plain"]["rel_error_centred"],
    "nvfp4_centred_err_-mean": lambda r: r["quant"]["nvfp4"]["mean_bf16"]["rel_error_centred"],
    "mxfp4_expl_by_mean": lambda r: r["quant"]["mxfp4"]["error_explained_by_mean"],
}


def describe(rows: list[dict], key: str) -> str:
    vals = [KEYS[key](r) for r in rows]
    return f"median {statistics.median(vals):.3f}  min {min(vals):.3f}  max {max(vals):.3f}"


def main(path: str) -> None:
    data = json.load(open(path))
    layers = data["layers"]
    for kind in ("input", "grad_output"):
        for site in sites(layers, kind):
            rows = select(layers, kind, site)
            groups = {"all blocks": rows, "blocks >= 1": [r for r in rows if r["block"] >= 1],
                      "last 5 blocks": rows[-5:]}
            for label, group in groups.items():
                print(f"== {kind} {site}, {label} ({len(group)} layers)")
                for key in KEYS:
                    if key.startswith(("nvfp4", "mxfp4")) and not group[0].get("quant"):
                        continue
                    print(f"  {key:<26} {describe(group, key)}")
    aligned = [r for r in layers if r["kind"] == "input" and r["block"] is not None]
    high = sum(r["cos_mean_v1"] > 0.99 for r in aligned)
    print(f"== inputs with |cos(mu, v1)| > 0.99: {high} of {len(aligned)}")
    low = [(r["name"], round(r["cos_mean_v1"], 3), round(r["absmax"], 1)) for r in aligned if r["cos_mean_v1"] < 0.9]
    print(f"== inputs with |cos(mu, v1)| < 0.9 (name, cos, absmax): {low}")


if __name__ == "__main__":
    main(sys.argv[1])
