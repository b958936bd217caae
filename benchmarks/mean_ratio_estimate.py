"""The adaptive split's statistic against the exact one, per site, on SmolLM2-135M (CPU, one batch of 2 x 256
tokens of the corpus): the mean ratio R = ||mean|| / rms(token) estimated from the column statistics as
averis.qgemm.operand.decide_split does (each channel's spread from its range over 2 sqrt(2 ln N)), and the
exact R, for every linear layer's input X and output gradient dY; medians and ranges over each site's layers.

    python benchmarks/mean_ratio_estimate.py > benchmarks/results/mean_path/mean_ratio_estimate.txt
"""

import collections
import math
import shlex
import statistics
import sys

import torch

from averis import provenance
from averis.analysis.loading import load_model
from averis.data.sources import corpus_text
from averis.recipes.sites import site_of


def ratios(t: torch.Tensor) -> tuple[float, float]:
    t = t.detach().float().reshape(-1, t.shape[-1])
    mu = t.mean(0)
    sigma = (t.amax(0) - t.amin(0)) / (2 * math.sqrt(2 * math.log(t.shape[0])))
    estimate = float(mu.square().sum() / (mu.square().sum() + sigma.square().sum())) ** 0.5
    exact = float(mu.square().sum() / t.square().mean(0).sum()) ** 0.5
    return estimate, exact


def main() -> None:
    torch.set_num_threads(2)
    print(f"commit {provenance.commit()}; device cpu; command python {shlex.join(sys.argv)}")
    model, tok, _ = load_model("smollm2-135m")
    ids = torch.tensor(tok.encode(corpus_text("austen", 40000))[:512]).reshape(2, 256)
    rows = collections.defaultdict(list)
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and "lm_head" not in name:
            site = site_of(name)
            m.register_forward_hook(lambda mod, inp, out, s=site: rows[("X", s)].append(ratios(inp[0])))
            m.register_full_backward_hook(lambda mod, gi, go, s=site: rows[("dY", s)].append(ratios(go[0])))
    model(ids, labels=ids).loss.backward()
    print("| source | site | layers | estimated R: median [min, max] | exact R: median |")
    print("| --- | --- | ---: | --- | ---: |")
    for (src, site), v in sorted(rows.items()):
        est = [a for a, _ in v]
        print(f"| {src} | {site} | {len(v)} | {statistics.median(est):.3f} [{min(est):.3f}, {max(est):.3f}] | "
              f"{statistics.median(b for _, b in v):.3f} |")


if __name__ == "__main__":
    main()
