"""``averis fidelity MODEL``: each recipe's loss increase and per-layer GEMM errors against full precision.

Writes OUT/fidelity.json (everything), OUT/fidelity_layers.csv (one row per recipe and layer),
OUT/fidelity.md (the tables) and OUT/fidelity.png.  --forward-only measures just the forward anchor
(every linear input and weight NVFP4: plain, mean split with FP4 mean, with BF16 mean).
--split measures instead what the Averis mean split changes per layer and site (amax, block-scale
inflation, quantization error of X and dY, errors of Y, dX and dW, with and without the split; the loss of
the ablation recipes): OUT/split_diag.json, split_diag.md and split_diag.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import provenance
from . import UserError
from .analyze import add_text_args, text_source


def run(args) -> int:
    import torch

    from .. import recipes
    from ..analysis.fidelity import forward_anchor, recipe_fidelity
    from ..analysis.fidelity_report import write_fidelity
    from ..analysis.loading import load_model
    from ..analysis.text import text_batches

    if args.tokens % args.seq_len:
        raise UserError(f"--tokens ({args.tokens}) must be a multiple of --seq-len ({args.seq_len})")
    if args.forward_only and args.no_anchor:
        raise UserError("--forward-only with --no-anchor leaves nothing to measure")
    if args.split and (args.forward_only or args.recipes):
        raise UserError("--split measures nvfp4 against averis and the ablation recipes: drop --forward-only and "
                        "--recipes")
    chosen = [recipes.resolve(n) for n in args.recipes or recipes.list()]  # unknown names fail before the model loads
    torch.manual_seed(args.seed)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    text, text_label = text_source(args)
    model, tokenizer, label = load_model(args.model, device=device)
    batches = text_batches(tokenizer, tokens=args.tokens, seq_len=args.seq_len, batch_size=args.batch_size,
                           paths=text)
    meta = {"model": label, "text": text_label,
            "tokens": args.tokens, "seq_len": args.seq_len, "batch_size": args.batch_size, "device": device}
    print(f"averis fidelity: {label}, {args.tokens} tokens in {len(batches)} batches of "
          f"{args.batch_size} x {args.seq_len}", file=sys.stderr)
    if args.split:
        return _split(args, model, batches, meta)
    anchor = None if args.no_anchor else forward_anchor(model, batches)
    if anchor:
        for r in anchor["modes"].values():
            print(f"  forward only, {r['label']}: loss +{r['increase_pct']:.2f}%", file=sys.stderr)
    result = None
    if not args.forward_only:
        result = recipe_fidelity(model, batches, chosen, include=args.include, exclude=args.exclude,
                                 verbose=True)
    out = write_fidelity(Path(args.out), meta, anchor, result, plots=not args.no_plots)
    print(f"averis fidelity: -> {out}/fidelity.md", file=sys.stderr)
    return 0


def _split(args, model, batches, meta) -> int:
    import shlex

    import torch

    from ..analysis.split_diag import split_diagnostic
    from ..analysis.split_diag_report import write_split_diag

    commit = provenance.commit()  # the commit of the code that runs, read before the run
    result = split_diagnostic(model, batches, include=args.include, exclude=args.exclude, threshold=args.threshold,
                              verbose=True)
    device = provenance.device_name(meta["device"])
    command = ["averis", "fidelity", args.model, "--split", "--out", args.out, "--tokens", str(args.tokens),
               "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size), "--threshold", str(args.threshold)]
    command += ["--text", *args.text] if args.text else ["--corpus", args.corpus]
    meta = {**meta, "device": device, "commit": commit, "torch": torch.__version__, "command": shlex.join(command),
            "seconds": result["seconds"]}
    out = write_split_diag(Path(args.out), meta, result, plots=not args.no_plots)
    print(f"averis fidelity --split: -> {out}/split_diag.md", file=sys.stderr)
    return 0


def register(sub) -> None:
    from ..recipes.builtin import ADAPTIVE_THRESHOLD

    p = sub.add_parser("fidelity", help="each recipe's loss increase and per-layer Y/dX/dW error vs full precision",
                       description=__doc__)
    p.add_argument("model", metavar="MODEL", help="smollm2-135m, a .gguf file, a Hugging Face folder or hub id, "
                                                  "or an averis checkpoint")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--recipes", nargs="+", metavar="NAME", help="recipes to measure: built-in names or recipe "
                                                               "files (default: all built-in)")
    add_text_args(p)
    p.add_argument("--forward-only", action="store_true", help="only the forward-only NVFP4 anchor")
    p.add_argument("--no-anchor", action="store_true", help="skip the forward-only anchor")
    p.add_argument("--include", help="regex: only linear layers whose name matches")
    p.add_argument("--exclude", default="lm_head", help="regex: layers to leave out (default lm_head)")
    p.add_argument("--no-plots", action="store_true", help="only the tables, no PNG plot")
    p.add_argument("--split", action="store_true", help="what the mean split changes, per layer and site "
                                                        "(split_diag.md/json/png)")
    p.add_argument("--threshold", type=float, default=ADAPTIVE_THRESHOLD,
                   help=f"the adaptive rule's threshold the --split report applies: split where the mean ratio R "
                        f"is at least this (default {ADAPTIVE_THRESHOLD}, averis_adaptive's)")
    p.set_defaults(func=run, forward_only=False, split=False)
