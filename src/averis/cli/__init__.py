"""The ``averis`` command: one sub-command per module of this package.

Each module listed in SUBCOMMANDS defines ``register(subparsers)``, which adds its
parser and sets ``func`` (called with the parsed args; returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

SUBCOMMANDS = ("demo", "train", "compare", "report", "eval", "data", "analyze", "fidelity", "bench")


class UserError(Exception):
    """A problem the user can fix (bad config, missing file): printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="averis", description="Stable FP4 training of LLMs, and why it works")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"averis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        if importlib.util.find_spec(f"averis.cli.{name}") is not None:
            importlib.import_module(f"averis.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for results that record it
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError, TypeError) as err:
        print(f"averis {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"averis {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
