"""``averis analyze MODEL [MODEL ...]``: mean-bias diagnostics of every linear layer, with report and plots.

One model: OUT/{stats.json, layers.csv, report.md, *.png}.  Several (checkpoints of one run, early to
late): OUT/<label>/... for each, plus OUT/evolution.{json,md,png}.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import UserError


def run(args) -> int:
    from ..analysis.analyze import analyze_model
    from ..analysis.loading import load_model
    from ..analysis.report import write_evolution, write_report
    from ..analysis.text import text_batches

    _check_args(args)
    text, text_label = text_source(args)
    out = Path(args.out)
    results = []
    labels_seen: set[str] = set()
    for spec in args.models:
        print(f"averis analyze: loading {spec}", file=sys.stderr)
        model, tokenizer, label = load_model(spec, device=args.device or _auto_device())
        if tokenizer is None:
            raise UserError(f"{spec} comes without a tokenizer: cannot turn text into tokens")
        label = _unique(label, labels_seen)
        batches = text_batches(tokenizer, tokens=args.tokens, seq_len=args.seq_len, batch_size=args.batch_size,
                               paths=text)
        result = analyze_model(model, batches, grads=args.grads, max_tokens=args.max_tokens, include=args.include,
                               exclude=args.exclude, formats=tuple(args.formats), quantize=not args.no_quant,
                               device=args.device, seed=args.seed, verbose=args.verbose)
        meta = {"model": label, "source": spec, "text": text_label,
                "tokens": args.tokens, "seq_len": args.seq_len, "batch_size": args.batch_size}
        target = out if len(args.models) == 1 else out / label
        write_report(result, target, meta, plots=not args.no_plots)
        print(f"averis analyze: {label}: {len(result['layers'])} layer records -> {target}/report.md",
              file=sys.stderr)
        results.append((label, result))
        del model
    if len(results) > 1:
        write_evolution(results, out, plots=not args.no_plots)
        print(f"averis analyze: evolution over {len(results)} models -> {out}/evolution.md", file=sys.stderr)
    return 0


def _check_args(args) -> None:
    if args.tokens < 16:
        raise UserError(f"--tokens {args.tokens}: too few tokens for statistics (use at least 16)")
    if args.seq_len < 2 or args.tokens % args.seq_len:
        raise UserError(f"--tokens ({args.tokens}) must be a multiple of --seq-len ({args.seq_len})")
    for fmt in args.formats:
        if fmt not in ("nvfp4", "mxfp4"):
            raise UserError(f"unknown format {fmt!r}: use nvfp4 and/or mxfp4")


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _unique(label: str, seen: set[str]) -> str:
    base, n = label, 2
    while label in seen:
        label, n = f"{base}-{n}", n + 1
    seen.add(label)
    return label


def text_source(args) -> tuple[list[str], str]:
    """The text files to read and how the report names them: --text, else the --corpus file (the bundled
    text of that name where the offline corpus is absent)."""
    if args.text:
        return list(args.text), ", ".join(args.text)
    from ..data.sources import corpus_or_bundled

    path, label = corpus_or_bundled(args.corpus)
    return [str(path)], label


def add_text_args(p) -> None:
    p.add_argument("--text", nargs="+", metavar="FILE", help="text files (.txt or .txt.xz); default: the corpus")
    p.add_argument("--corpus", default="austen", help="offline corpus file to read when no --text (default austen; "
                                                      "without the corpus, the bundled text of that name)")
    p.add_argument("--tokens", type=int, default=2048, help="tokens of text to run (default 2048)")
    p.add_argument("--seq-len", type=int, default=512, help="sequence length of each row (default 512)")
    p.add_argument("--batch-size", type=int, default=1, help="sequences per forward pass (default 1)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--seed", type=int, default=0, help="random seed (stochastic rounding; default 0)")


def register(sub) -> None:
    p = sub.add_parser("analyze", help="mean-bias diagnostics of a model's linear-layer inputs (report + plots)",
                       description=__doc__)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="smollm2-135m, a .gguf file, a Hugging Face folder or hub id, or an averis checkpoint "
                        "(several: an evolution across checkpoints)")
    p.add_argument("--out", required=True, help="output folder")
    add_text_args(p)
    p.add_argument("--max-tokens", type=int, default=4096, help="tokens kept per layer for the statistics")
    p.add_argument("--grads", action="store_true", help="also analyze output gradients (LM loss backward)")
    p.add_argument("--include", help="regex: only linear layers whose name matches")
    p.add_argument("--exclude", help="regex: skip linear layers whose name matches")
    p.add_argument("--formats", nargs="+", default=["nvfp4", "mxfp4"],
                   help="FP4 formats of the quantization-error measurement (default nvfp4 mxfp4)")
    p.add_argument("--no-quant", action="store_true", help="skip the FP4 quantization measurements")
    p.add_argument("--no-plots", action="store_true", help="only the tables, no PNG plots")
    p.add_argument("--verbose", "-v", action="store_true", help="a line per layer as it is measured")
    p.set_defaults(func=run)
