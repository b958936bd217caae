"""Arguments shared by ``averis train`` and ``averis compare``: config file, overrides, common shortcuts."""

from __future__ import annotations

from ..train.config import GPU_DEFAULTS, RunConfig, load_config


def add_run_args(p) -> None:
    p.add_argument("--config", help="YAML or TOML run config (default: the built-in demo, a tiny model on the "
                                    "bundled text; on a GPU the small model, 16 sequences a step)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="dotted overrides: --set optim.lr=3e-4 train.batch_size=8 (repeatable)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (train.max_steps)")
    p.add_argument("--seed", type=int, help="initial weights, batch order and rounding noise (train.seed)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (train.device; auto: a GPU when there is one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_analyze_args(p)


def add_analyze_args(p) -> None:
    """--analyze-every and its companions (also used by the benchmark scripts)."""
    p.add_argument("--analyze-every", type=int, default=0, metavar="N",
                   help="record mean-bias statistics every N steps (and at step 1) into OUT/mean_bias.jsonl "
                        "(averis.analysis.MeanBiasCallback; does not change training)")
    p.add_argument("--analyze-grads", action="store_true",
                   help="with --analyze-every: also record the output gradients (one extra backward)")
    p.add_argument("--analyze-tokens", type=int, default=1024, metavar="T",
                   help="with --analyze-every: validation tokens measured each time (the same ones every time)")
    p.add_argument("--analyze-formats", default="nvfp4", metavar="F1,F2",
                   help="with --analyze-every: FP4 formats of the quantization-error measurement "
                        "(nvfp4, mxfp4; 'none' skips it, the cheap option)")


def config_from_args(args, **extra: object) -> RunConfig:
    overrides = list(args.overrides)
    for flag, key in (("max_steps", "train.max_steps"), ("seed", "train.seed"), ("device", "train.device")):
        if getattr(args, flag, None) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    for key, value in extra.items():
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.no_progress:
        overrides.append("train.progress=false")
    cfg = load_config(args.config, overrides)
    if args.config is None:
        from ..train.trainer import pick_device

        if pick_device(cfg.train.device).type == "cuda":
            cfg = load_config(None, overrides, base=GPU_DEFAULTS)  # the built-in default, larger on a GPU
    return cfg


def callbacks_from_args(args) -> list:
    """The training callbacks the run arguments ask for: a MeanBiasCallback with --analyze-every N."""
    every = getattr(args, "analyze_every", 0) or 0
    if every < 0:
        raise ValueError(f"--analyze-every {every}: give a number of steps >= 1 (or 0 for none)")
    if getattr(args, "analyze_grads", False) and not every:
        raise ValueError("--analyze-grads needs --analyze-every N")
    if every and args.analyze_tokens < 1:
        raise ValueError(f"--analyze-tokens {args.analyze_tokens}: give at least one sequence of tokens")
    if not every:
        return []
    from ..analysis import MeanBiasCallback

    return [MeanBiasCallback(every=every, grads=bool(args.analyze_grads), tokens=args.analyze_tokens,
                             max_tokens=args.analyze_tokens, formats=_formats(args.analyze_formats))]


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(f.strip() for f in text.split(",") if f.strip() and f.strip() != "none")
    unknown = [f for f in names if f not in ("nvfp4", "mxfp4")]
    if unknown:
        raise ValueError(f"--analyze-formats: unknown format(s) {', '.join(unknown)}; use nvfp4, mxfp4 or none")
    return names


def callback_args(args) -> list[str]:
    """The same request as command-line arguments, for runs started as child processes."""
    every = getattr(args, "analyze_every", 0) or 0
    if not every:
        return []
    return (["--analyze-every", str(every), "--analyze-tokens", str(args.analyze_tokens),
             "--analyze-formats", args.analyze_formats] + (["--analyze-grads"] if args.analyze_grads else []))
