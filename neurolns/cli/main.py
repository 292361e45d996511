"""Entry point of the ``neurolns`` command: a thin dispatcher over subcommands.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; modules import their heavy dependencies inside the
handler so that ``neurolns --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import neurolns

#: subcommand modules, in the order ``--help`` lists them
SUBCOMMANDS = ("format", "run", "energy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurolns",
        description="Learning in logarithmic number systems: formats, training scenarios, "
        "energy accounting, spiking networks and system identification.",
    )
    parser.add_argument("--version", action="version", version=f"neurolns {neurolns.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"neurolns.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.handler(args, extra) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
