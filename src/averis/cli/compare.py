"""``averis compare``: the same data, seed and schedule under several recipes, then the loss-gap report."""

from __future__ import annotations


def run(args) -> int:
    import time

    from ..progress import clock
    from ..train.compare import compare
    from ..train.report import write_report
    from ._runargs import callback_args, callbacks_from_args, config_from_args

    start = time.time()
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
    print(f"averis compare: {len(results)} run{'s' * (len(results) != 1)} trained in {clock(time.time() - start)}"
          + (f", {len(failed)} failed (see their train.log)" if failed else ""))
    return 1 if failed else 0


def register(sub) -> None:
    from ..train.quant import recipe_names
    from ._runargs import add_run_args

    p = sub.add_parser(
        "compare", help="train several recipes on identical data and schedule; report the gaps (the main job)",
        description="Train the same model under several recipes (default bf16, nvfp4 and averis) from the same "
                    "initial weights, on the same batches in the same order, then write the loss-gap table and "
                    "curves against the baseline (OUT/report.md, loss_curves.png, gap_curves.png). With no "
                    "--config: a tiny Qwen3-style model on the public-domain text shipped in the package (about "
                    "3 minutes on two CPU cores; a larger model on a GPU). Finished runs are skipped and "
                    "unfinished ones resumed, so the same command continues an interrupted comparison.")
    p.add_argument("--recipes", default="bf16,nvfp4,averis",
                   help="comma-separated built-in recipes (" + ", ".join(recipe_names()) + ") or recipe files "
                        "(path/to/recipe.yaml); default bf16,nvfp4,averis")
    p.add_argument("--seeds", help="comma-separated seeds (runs go to OUT/<recipe>/seed<k>/)")
    p.add_argument("--out", default="runs/compare", help="folder of the sub-runs and the report (default runs/compare)")
    p.add_argument("--jobs", type=int, default=0,
                   help="runs trained side by side as processes (default: on a CPU all of them while there are "
                        "at most cores + 1, else one a core, sharing all cores but one, at least one thread each; "
                        "on a GPU up to 4, fewer once a run runs out of GPU memory beside others, which then runs "
                        "again; 1: one after another in this process)")
    p.add_argument("--time-budget", type=float, default=0, metavar="SECONDS",
                   help="stop (with checkpoints) after this long; run the same command again to continue")
    p.add_argument("--baseline", default="bf16",
                   help="the recipe the gaps are measured against, run by run of the same seed (default bf16)")
    p.add_argument("--no-report", action="store_true", help="train only; `averis report OUT` writes the report later")
    add_run_args(p)
    p.set_defaults(func=run)
