"""``omtsdb`` entry point. Each sub-command lives in its own module exposing
``register(subparsers)``; that function adds its parser and sets ``func`` to a callable taking
the parsed namespace and returning the exit code."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from omtsdb import __version__
from omtsdb.errors import OmtsdbError

# Modules that contribute sub-commands, in help order.
COMMAND_MODULES = (
    "omtsdb.cli.serve",
    "omtsdb.cli.tsdb_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omtsdb", description=__doc__)
    parser.add_argument("--version", action="version", version=f"omtsdb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # not written yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except OmtsdbError as e:
        print(f"omtsdb {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
