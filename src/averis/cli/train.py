"""``averis train``: train one model under one recipe (defaults: a tiny Qwen3-style model on bundled text)."""

from __future__ import annotations

import json


def run(args) -> int:
    from ..train import Trainer
    from ._runargs import callbacks_from_args, config_from_args

    cfg = config_from_args(args, recipe=args.recipe, out=args.out or _default_out(args))
    trainer = Trainer(cfg, callbacks=callbacks_from_args(args), resume=args.resume)
    summary = trainer.fit()
    if trainer.dist.is_main:
        print(json.dumps({k: summary[k] for k in ("status", "step", "recipe", "val_loss", "last_loss", "seconds")}))
        extra = ", mean_bias.jsonl" if args.analyze_every else ""
        print(f"averis train: run in {cfg.out} (metrics.jsonl, checkpoints/, config.yaml{extra})")
    from ..train.distributed import shutdown

    shutdown()
    return 0 if summary["status"] in ("done", "stopped") else 3


def _default_out(args) -> str | None:
    """runs/<recipe> when neither a config file nor an override names the run folder."""
    named = args.config or any(o.startswith("out=") for o in args.overrides)
    return None if named else f"runs/{args.recipe or 'bf16'}"


def register(sub) -> None:
    from ..train.quant import recipe_names
    from ._runargs import add_run_args

    p = sub.add_parser("train", help="train a model under one recipe (tiny demo by default)",
                       description="Train a model under one FP4 recipe. With no --config: a tiny Qwen3-style "
                                   "model on the bundled public-domain text, 300 steps of 2 x 256 tokens (on one "
                                   "CPU core about half a minute for bf16 and two minutes for an FP4 recipe; on a "
                                   "GPU a larger model). `averis compare` trains several recipes side by side. "
                                   "Under torchrun it runs DDP (or FSDP2 with train.distributed=fsdp).")
    p.add_argument("--recipe", help="a built-in recipe (" + ", ".join(recipe_names()) + ") or a recipe file, "
                                    "path/to/recipe.yaml or .toml (docs/recipes.md); default bf16")
    p.add_argument("--out", help="run folder (default from the config, else runs/<recipe>)")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                   help="continue the run in --out from its latest checkpoint (or from the given one)")
    add_run_args(p)
    p.set_defaults(func=run)
