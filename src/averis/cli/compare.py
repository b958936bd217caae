"""``averis compare``: the same data, seed and schedule under several recipes, then the loss-gap report."""

from __future__ import annotations


def run(args) -> int:
    from ..train.compare import compare
    from ..train.report import write_report
    from ._runargs import callback_args, callbacks_from_args, config_from_args

    cfg = config_from_args(args)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [cfg.train.seed]
    results = compare(cfg, recipes, seeds, args.out, jobs=args.jobs, time_budget_s=args.time_budget,
                      callbacks=callbacks_from_args(args), child_args=callback_args(args))
    failed = [r for r in results if r.get("status") not in ("done", "stopped", "diverged")]
    if not args.no_report:
        summary = write_report(args.out, baseline=args.baseline)
        print(summary["markdown"])
        print("averis compare: wrote " + ", ".join(summary["files"]))
    return 1 if failed else 0


def register(sub) -> None:
    from ._runargs import add_run_args

    p = sub.add_parser("compare", help="train several recipes on identical data and schedule; report the gaps")
    p.add_argument("--recipes", required=True, help="comma-separated recipe names, e.g. bf16,nvfp4,averis")
    p.add_argument("--seeds", help="comma-separated seeds (runs go to OUT/<recipe>/seed<k>/)")
    p.add_argument("--out", default="runs/compare", help="folder of the sub-runs and the report")
    p.add_argument("--jobs", type=int, default=1, help="sub-runs trained side by side as processes")
    p.add_argument("--time-budget", type=float, default=0, metavar="SECONDS",
                   help="stop (with checkpoints) after this long; run the same command again to continue")
    p.add_argument("--baseline", default="bf16", help="the recipe gaps are measured against")
    p.add_argument("--no-report", action="store_true")
    add_run_args(p)
    p.set_defaults(func=run)
