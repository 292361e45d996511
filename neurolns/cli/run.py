"""``neurolns run NAME [options]``: start one of the scenarios.

Each scenario is a module of ``neurolns.scenarios`` (the ``scenarios/`` folder)
with ``main(argv) -> int``; the options after NAME go to it unchanged, so
``neurolns run lns-vs-float --help`` shows the scenario's own options
(``neurolns run NAME -- --help`` works too).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from neurolns.cli.common import EXIT_USAGE, UsageError

#: scenario name on the command line -> module in neurolns.scenarios
SCENARIOS = {
    "lns-vs-float": ("lns_vs_float", "train one model under FP32 and LNS/sign rules, compare accuracy"),
    "energy": ("energy_footprint", "energy and memory of training/inference per number format"),
    "cuba": ("cuba_vs_brian2", "the CUBA spiking benchmark in neurolns (float and LNS8) and Brian2"),
    "stdp": ("stdp_weights", "STDP weight distributions under additive, soft-bound and log-domain rules"),
    "sysid": ("sysid_retina", "fit sign-constrained retina circuit models (Bagherian et al. 2021)"),
    "majority-vote": ("majority_vote_ddp", "1-bit majority-vote training on torch.distributed"),
    "edge-of-stability": ("edge_of_stability", "sharpness vs 2/η under full-batch GD, LNS, Adam, Madam, signs"),
    "bayes-point": ("bayes_point", "single nets vs an ensemble vote against normalised margin"),
    "lr-transfer": ("lr_transfer", "does a rate tuned on a small MLP transfer across width and depth, per optimizer"),
}


def available() -> dict[str, tuple[str, str]]:
    """The scenarios present in this installation."""
    return {
        name: spec
        for name, spec in SCENARIOS.items()
        if importlib.util.find_spec(f"neurolns.scenarios.{spec[0]}") is not None
    }


def register(sub) -> None:
    names = available()
    listing = "\n".join(f"  {n:<15s} {d}" for n, (_, d) in names.items())
    p = sub.add_parser(
        "run",
        help="run a scenario (lns-vs-float, energy, cuba, ...)",
        description=f"Run a scenario; options after NAME go to the scenario "
        f"(neurolns run NAME --help lists them).\n\nscenarios:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=True,
    )
    p.add_argument("name", nargs="?", help="scenario name")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    # everything after NAME, --help included, belongs to the scenario: without REMAINDER
    # the run parser would answer `neurolns run NAME --help` with its own help
    p.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(handler=run, accepts_extra=True)


def run(args, extra) -> int:
    names = available()
    if args.list or args.name is None:
        for n, (_, d) in names.items():
            print(f"{n:<15s} {d}")
        return 0
    if args.name not in names:
        allowed = ", ".join(names) or "(none installed)"
        print(f"neurolns run: error: unknown scenario {args.name!r}; available: {allowed}", file=sys.stderr)
        return EXIT_USAGE
    options = list(args.options) + list(extra)
    if options[:1] == ["--"]:  # `neurolns run NAME -- --help`, the older spelling
        options = options[1:]
    module = importlib.import_module(f"neurolns.scenarios.{names[args.name][0]}")
    try:
        return int(module.main(options) or 0)
    except UsageError as exc:
        print(f"neurolns run {args.name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
