"""``averis report RUN_DIR``: loss-gap table (markdown + JSON) and PNG curves for the runs under a folder."""

from __future__ import annotations


def run(args) -> int:
    from ..train.report import write_report

    summary = write_report(args.run_dir, args.out, baseline=args.baseline, plots=not args.no_plots)
    print(summary["markdown"])
    print("averis report: wrote " + ", ".join(summary["files"]))
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="loss-gap table and plots for the runs under RUN_DIR")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", help="where report.md/json and PNGs go (default RUN_DIR)")
    p.add_argument("--baseline", default="bf16")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=run)
