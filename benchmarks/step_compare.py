"""The training step of two source trees, side by side in one run (GPU): is a change slower under any recipe?

Runs each tree's own ``benchmarks/bench_step.py`` (the ``bench`` preset, torch.compile, one fixed batch) for
one recipe at a time, alternating the trees recipe by recipe and round by round so that drift of the
machine hits both alike, and writes ``step_compare_<device>.json`` (device, commit, command, every
measurement, the median per tree and the ratio of each tree to the first) and a bar chart.

    python3 benchmarks/step_compare.py --trees before=.carry/before,after=. \\
        --recipes bf16,nvfp4,nvidia,averis,averis_rht,metis --modes graph --rounds 2 --out DIR
    python3 benchmarks/step_compare.py --trees "folded=.,exact=.:--exact-gemm" ...   # one tree, two settings
    python3 benchmarks/step_compare.py --markdown DIR/step_compare_<device>.json   # the table again

A tree is ``name=folder`` or ``name=folder:extra bench_step arguments``; the folder holds ``src/averis`` and
``benchmarks/bench_step.py`` (e.g. ``git archive REV src
benchmarks | tar -x -C .carry/before``).  The commit comes from AVERIS_COMMIT or ``git rev-parse``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # a plain checkout runs it too
from averis import provenance  # noqa: E402


def log(*a):
    print(*a, flush=True)


def run_one(tree: Path, extra: list[str], recipe: str, args) -> dict:
    """One bench_step.py run of one tree and recipe: its row (ms per step per mode, losses, errors)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "benchmarks/bench_step.py", "--recipes", recipe, "--modes", args.modes,
               "--steps", str(args.steps), "--batch", str(args.batch), "--seq", str(args.seq), "--out", out,
               *extra]
        env = {**os.environ, "PYTHONPATH": f"{tree.resolve() / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        found = list(Path(out).glob("step_*.json"))
        if proc.returncode or not found:
            log(proc.stdout[-2000:], proc.stderr[-3000:])
            return {"error": f"exit {proc.returncode}", "seconds": time.perf_counter() - t0}
        res = json.loads(found[0].read_text())
        row = res["rows"][0]
        row["seconds"] = time.perf_counter() - t0
        row["device"] = res["device"]
        return row


def summarize(res: dict) -> None:
    trees = [t["name"] for t in res["trees"]]
    base = trees[0]
    res["summary"] = []
    for recipe in res["recipes"]:
        for mode in res["modes"]:
            entry = {"recipe": recipe, "mode": mode}
            for t in trees:
                ms = [m[f"{mode}_ms"] for m in res["runs"] if m["tree"] == t and m["recipe"] == recipe
                      and f"{mode}_ms" in m]
                entry[f"{t}_ms"] = statistics.median(ms) if ms else None
                entry[f"{t}_ms_all"] = ms
            for t in trees[1:]:
                if entry[f"{t}_ms"] and entry[f"{base}_ms"]:
                    entry[f"{t}_vs_{base}"] = entry[f"{t}_ms"] / entry[f"{base}_ms"]
            res["summary"].append(entry)


def markdown(res: dict) -> str:
    trees = [t["name"] for t in res["trees"]]
    base = trees[0]
    head = (f"Device: {res['device']}; commit {res['commit']}; `{res['command']}`; bench preset, batch "
            f"{res['batch']} x {res['seq']}, median of {res['steps']} steps per run, {res['rounds']} runs per tree "
            f"(alternating), median over runs.\n")
    cols = [f"{t} ms" for t in trees] + [f"{t} / {base}" for t in trees[1:]]
    out = [head, "| recipe | mode | " + " | ".join(cols) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in cols) + " |"]
    for e in res["summary"]:
        cells = [f"{e[f'{t}_ms']:.2f}" if e[f"{t}_ms"] else "-" for t in trees]
        cells += [f"{e[f'{t}_vs_{base}']:.3f}" if e.get(f"{t}_vs_{base}") else "-" for t in trees[1:]]
        out.append(f"| {e['recipe']} | {e['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trees = [t["name"] for t in res["trees"]]
    rows = [e for e in res["summary"] if all(e[f"{t}_ms"] for t in trees)]
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 2, 3.6))
    width = 0.8 / len(trees)
    for i, t in enumerate(trees):
        ax.bar([j + i * width for j in range(len(rows))], [e[f"{t}_ms"] for e in rows], width, label=t)
    ax.set_xticks([j + width * (len(trees) - 1) / 2 for j in range(len(rows))])
    ax.set_xticklabels([f"{e['recipe']}\n{e['mode']}" for e in rows])
    ax.set_ylabel("ms per training step")
    ax.set_title(f"training step, bench preset ({res['device']})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", default="before=.carry/before,after=.", help="name=folder,... (the first is the base)")
    ap.add_argument("--recipes", default="bf16,nvfp4,nvidia,averis,averis_rht,metis")
    ap.add_argument("--modes", default="graph")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/step_compare"))
    ap.add_argument("--markdown", type=Path, metavar="JSON", help="print the table of a results JSON and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    trees = []
    for item in args.trees.split(","):
        name, _, spec = item.partition("=")
        folder, _, extra = spec.partition(":")
        if not (Path(folder) / "benchmarks" / "bench_step.py").is_file():
            sys.exit(f"--trees: {folder} has no benchmarks/bench_step.py (give name=folder of a source tree)")
        trees.append({"name": name, "path": folder, "args": extra.split()})
    res = {"device": None, "commit": provenance.commit(), "command": "python3 " + " ".join(sys.argv), "trees": trees,
           "recipes": args.recipes.split(","), "modes": args.modes.split(","), "rounds": args.rounds,
           "steps": args.steps, "batch": args.batch, "seq": args.seq, "runs": []}
    args.out.mkdir(parents=True, exist_ok=True)
    for recipe in res["recipes"]:
        for rnd in range(args.rounds):
            order = trees if rnd % 2 == 0 else trees[::-1]
            for t in order:
                row = run_one(Path(t["path"]), t["args"], recipe, args)
                row.update(tree=t["name"], recipe=recipe, round=rnd)
                res["device"] = res["device"] or row.get("device")
                res["runs"].append(row)
                times = ", ".join(f"{m} {row[f'{m}_ms']:.2f} ms" for m in res["modes"] if f"{m}_ms" in row)
                log(f"{recipe:11s} round {rnd} {t['name']:8s} {times or row.get('error')} ({row['seconds']:.0f} s)")
        summarize(res)
        dev = provenance.slug(res["device"])
        path = args.out / f"step_compare_{dev}.json"
        path.write_text(json.dumps(res, indent=1))  # partial results survive a time-out
    log(markdown(res))
    plot(res, args.out / f"step_compare_{dev}.png")
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
