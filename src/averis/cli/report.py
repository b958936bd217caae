"""``averis report RUN_DIR``: loss-gap table, paired statistics across seeds (markdown + JSON) and PNG curves."""

from __future__ import annotations


def run(args) -> int:
    from ..train.report import write_report

    meta = {}
    for item in args.meta or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--meta {item!r}: give KEY=VALUE, e.g. --meta device='NVIDIA H100 80GB HBM3'")
        meta[key.strip()] = value.strip()
    summary = write_report(args.run_dir, args.out, baseline=args.baseline, plots=not args.no_plots,
                           paired=args.paired_against, meta=meta)
    print(summary["markdown"])
    print("averis report: wrote " + ", ".join(summary["files"]))
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="loss-gap table and plots for the runs under RUN_DIR",
                       description="Find every run below RUN_DIR (a folder with metrics.jsonl and config.yaml, as "
                                   "`averis train` and `averis compare` write them), pair each with the baseline "
                                   "run of the same seed and write the loss-gap table (report.md, report.json) "
                                   "and the loss and gap curves (loss_curves.png, gap_curves.png).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a folder of runs (e.g. a compare's --out)")
    p.add_argument("--out", help="where report.md/json and PNGs go (default RUN_DIR)")
    p.add_argument("--baseline", default="bf16", help="the recipe the gaps are measured against (default bf16)")
    p.add_argument("--paired-against", metavar="RECIPE[,RECIPE]",
                   help="paired statistics (per-seed gap differences, 95%% t-interval, sign count) of every recipe "
                        "against these recipes; default nvfp4 when it ran; '' for none")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE",
                   help="a note for the top of report.md and report.json's meta (device, commit, ...); repeatable")
    p.add_argument("--no-plots", action="store_true", help="only the tables, no PNG curves")
    p.set_defaults(func=run)
