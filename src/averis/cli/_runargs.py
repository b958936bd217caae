"""Arguments shared by ``averis train`` and ``averis compare``: config file, overrides, common shortcuts."""

from __future__ import annotations

from ..train.config import RunConfig, load_config


def add_run_args(p) -> None:
    p.add_argument("--config", help="YAML or TOML run config (default: the built-in tiny demo)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="dotted overrides: --set optim.lr=3e-4 train.batch_size=8 (repeatable)")
    p.add_argument("--max-steps", type=int, help="= train.max_steps")
    p.add_argument("--seed", type=int, help="= train.seed")
    p.add_argument("--device", help="= train.device (auto, cpu, cuda)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    return load_config(args.config, overrides)
