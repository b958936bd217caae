"""Host time of one quantized linear's forward + backward on the Triton dispatch path, kernels left out.

An eager (not graphed) training step on the GPU is bound by the host: at the bench preset nvfp4 takes 171 ms eager
against 16 ms graphed (benchmarks/results/step/1a11b29), about 2.4 ms of host time per linear layer's forward and
backward.  This measures the part of it that is ours (the Python of averis.nn / qgemm / kernels.dispatch and the
torch calls it makes), on the CPU: every Triton launch is replaced by a no-op (counted) and the tensors are tiny, so
what remains is host work.  Triton's own launcher and the CUDA launches are not in it.

    python benchmarks/host_overhead.py [--recipes bf16,nvfp4,averis] [--json FILE] [--profile RECIPE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ["TRITON_INTERPRET"] = "1"  # the dispatch path takes CPU tensors; the launches below never run a kernel

import torch  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

LAUNCHES = [0]


def _no_launch(self, grid):
    def run(*args, **kwargs):
        LAUNCHES[0] += 1

    return run


InterpretedFunction.__getitem__ = _no_launch  # before averis's kernels are defined

import averis  # noqa: E402
from averis import provenance  # noqa: E402
from averis.nn import quantize_model  # noqa: E402


def measure(recipe: str, calls: int, rounds: int, tokens: int = 32, features: int = 64) -> dict:
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(features, features, bias=False))
    quantize_model(layer, recipe)
    x = torch.randn(tokens, features, requires_grad=True)

    def step():
        layer(x).sum().backward()

    with averis.use_backend("triton"):
        for _ in range(5):
            step()
        LAUNCHES[0] = 0
        best = float("inf")
        for _ in range(rounds):  # the best round: the least disturbed by the machine's other work (a shared VM)
            start = time.perf_counter()
            for _ in range(calls):
                step()
            best = min(best, (time.perf_counter() - start) / calls)
    return {"recipe": recipe, "host_us": best * 1e6, "launches": LAUNCHES[0] / (rounds * calls)}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="bf16,nvfp4,nvidia,averis")
    ap.add_argument("--calls", type=int, default=50, help="layer calls a round")
    ap.add_argument("--rounds", type=int, default=20, help="rounds; the fastest is reported")
    ap.add_argument("--json", help="write the rows here (with device, commit and command)")
    ap.add_argument("--profile", metavar="RECIPE", help="also print cProfile's top functions for this recipe")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = [measure(r, args.calls, args.rounds) for r in args.recipes.split(",")]
    print(f"device {platform.processor() or platform.machine()} (1 thread), commit {provenance.commit()}")
    print("| recipe | host us per forward + backward | Triton launches (not run) |\n| --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['recipe']} | {r['host_us']:.0f} | {r['launches']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": f"cpu {platform.processor() or platform.machine()}, 1 thread",
                       "commit": provenance.commit(), "command": " ".join(["python", *sys.argv]),
                       "torch": torch.__version__, "rows": rows}, f, indent=1)
    if args.profile:
        import cProfile
        import pstats

        with averis.use_backend("triton"):
            layer = quantize_model(torch.nn.Sequential(torch.nn.Linear(64, 64, bias=False)), args.profile)
            x = torch.randn(32, 64, requires_grad=True)
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(50):
                layer(x).sum().backward()
            prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main(sys.argv[1:])
