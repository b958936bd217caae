"""``averis demo``: quantize tensors with a mean bias and print the error of every format."""

from __future__ import annotations

import torch

from ..qgemm import quantize

_CASES = {
    "gaussian": lambda g, n, m: torch.randn(n, m, generator=g),
    "heavy-tailed": lambda g, n, m: torch.distributions.StudentT(2.0).sample((n, m)),
    "mean-shifted": lambda g, n, m: torch.randn(n, m, generator=g) + 4.0 * torch.randn(1, m, generator=g),
}
_FORMATS = (
    ("nvfp4 1x16", dict(fmt="nvfp4")),
    ("nvfp4 16x16", dict(fmt="nvfp4", block_shape=(16, 16))),
    ("nvfp4 1x16, mean removed", dict(fmt="nvfp4", center=True)),
    ("mxfp4 1x32", dict(fmt="mxfp4")),
    ("mxfp4 1x32 ceil", dict(fmt="mxfp4", scale_rule="ceil")),
)


def relative_error(x: torch.Tensor, fmt: str, center: bool = False, **options) -> float:
    mean = x.mean(dim=0, keepdim=True) if center else torch.zeros(1, x.shape[1])
    x_hat = quantize(x - mean, fmt, **options).dequantize() + mean
    return float((x_hat - x).norm() / x.norm())


def run(args) -> int:
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    print(f"relative error ||Q(x) - x|| / ||x|| of a {args.tokens} x {args.channels} tensor "
          f"(mean removal: the Averis split, mean kept in FP32)\n")
    header = f"{'format':<28}" + "".join(f"{c:>15}" for c in _CASES)
    print(header)
    print("-" * len(header))
    for label, options in _FORMATS:
        row = [relative_error(make(g, args.tokens, args.channels), **options) for make in _CASES.values()]
        print(f"{label:<28}" + "".join(f"{e:>15.4f}" for e in row))
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="quantize tensors and print error statistics per FP4 format",
                       description="Quantize random tensors (Gaussian, heavy-tailed, and Gaussian plus a per-channel "
                                   "mean, as LLM activations carry) in every FP4 format and print the relative error "
                                   "of each: what removing the mean does, in a second.")
    p.add_argument("--tokens", type=int, default=1024, help="rows of each tensor (default 1024)")
    p.add_argument("--channels", type=int, default=512, help="columns of each tensor (default 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the tensors (default 0)")
    p.set_defaults(func=run)
