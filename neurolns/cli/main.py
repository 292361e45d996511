"""Entry point of the ``neurolns`` command: a thin dispatcher over subcommands.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; modules import their heavy dependencies inside the
handler so that ``neurolns --help`` stays fast.

Exit codes: 0 on success, 2 for a user error (one line on stderr, see
:mod:`neurolns.cli.common`), 130 after Ctrl-C.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import neurolns
from neurolns.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, ArgumentParser, UsageError

#: subcommand modules, in the order ``--help`` lists them
SUBCOMMANDS = ("format", "run", "energy")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
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
    try:
        return int(args.handler(args, extra) or 0)
    except UsageError as exc:
        # a mistake the handler found after parsing (a file, a shape, a device): one line, as argparse's
        print(f"neurolns {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        # the scenario saved what was finished and says where (common.interrupted); no traceback
        print(str(exc) or "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
