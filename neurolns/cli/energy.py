"""``neurolns energy MODEL``: energy and memory of one inference or training step per number format.

MODEL is a model of ``neurolns.models`` (``mlp``, ``cnn1d``, ``resnet18``) or a
user's ``path/to/file.py:factory`` (``factory()`` returns a ``torch.nn.Module``).
Prints a table, and writes JSON and a PNG of stacked bars when asked.
"""
from __future__ import annotations

import argparse

from neurolns.cli.common import UsageError, int_range

#: model name -> (module of neurolns.models, default input shape with batch 1)
MODELS = {
    "mlp": ("mlp", (1, 64)),
    "cnn1d": ("cnn1d", (1, 40)),
    "resnet18": ("resnet", (1, 3, 32, 32)),
}

#: format -> recipe key used for training steps
TRAINING_RECIPES = {"fp32": "fp32-adam", "bf16": "bf16", "lns8": "lns8-full"}


def register(sub) -> None:
    p = sub.add_parser(
        "energy",
        help="energy and memory of a model per number format (fp32, bf16, int8, lns8, ...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help=f"one of {', '.join(MODELS)} or path/to/file.py:factory")
    p.add_argument("--input-shape", default=None,
                   help="input shape, batch first, comma-separated (default: the model's, batch 1)")
    p.add_argument("--formats", default="fp32,bf16,int8,lns8", help="comma-separated formats (default %(default)s)")
    p.add_argument("--train", action="store_true",
                   help="one training step (fp32: Adam; bf16: mixed precision; lns8: LNS-Madam + 1-bit exchange)")
    p.add_argument("--workers", type=int_range(1), default=1, help="data-parallel workers for --train (default 1)")
    p.add_argument("--rule", default=None,
                   help="update rule for --train in place of each format's (sgd, adam, madam, lns_madam, signum, "
                        "fromage, nero, agd, dualised)")
    p.add_argument("--preset", default="horowitz45", help="energy preset (horowitz45, 7nm)")
    p.add_argument("--energy-toml", default=None, help="TOML file of entries overriding the preset")
    p.add_argument("--json", default=None, help="write the report as JSON here")
    p.add_argument("--png", default=None, help="write stacked bars (compute vs memory) here")
    p.add_argument("--by-layer", action="store_true",
                   help="also print each layer's counts (MACs, mul, add, cmp, bytes) and energy (first format)")
    p.add_argument("--measure", action="store_true",
                   help="calibrate against a measured FP32 run when CodeCarbon or Zeus is installed")
    p.set_defaults(handler=run)


def load_model(spec: str):
    """A torch model from a name of :data:`MODELS` or ``path/to/file.py:factory``; returns (model, default shape)."""
    import importlib
    import importlib.util
    from pathlib import Path

    if spec in MODELS:
        mod_name, shape = MODELS[spec]
        module = importlib.import_module(f"neurolns.models.{mod_name}")
        return module.build_torch(), shape
    if ":" not in spec:
        raise ValueError(f"unknown model {spec!r}; allowed: {', '.join(MODELS)} or path/to/file.py:factory")
    path, factory = spec.rsplit(":", 1)
    if not Path(path).is_file():
        raise ValueError(f"model file {path!r} does not exist")
    mod_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    if not hasattr(module, factory):
        raise ValueError(f"{path} has no attribute {factory!r}")
    return getattr(module, factory)(), None


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--input-shape {text!r} must be comma-separated integers, e.g. 1,3,32,32") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"--input-shape {text!r}: allowed: positive integers, batch first")
    return shape


def check_output_file(path: str, flag: str) -> None:
    """Refuse an output file that cannot be written, before any work.

    Parameters
    ----------
    path : str
        The file to be written.
    flag : str
        The option that named it, for the message.

    Raises
    ------
    UsageError
        When the file's folder does not exist or the file cannot be opened for writing.
    """
    import os
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; allowed: a file path")
    if not p.parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {p.parent} does not exist")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    if not existed:  # the check leaves nothing behind
        os.unlink(p)


def load_energy_toml(energy_model, path: str, base):
    """``energy_model.from_toml(path, base=base)`` with a missing or malformed file as a one-line user error.

    Parameters
    ----------
    energy_model : type
        :class:`neurolns.accounting.EnergyModel` (passed in so that this module imports nothing heavy).
    path : str
        The TOML file.
    base : EnergyModel
        The preset it overrides.

    Returns
    -------
    EnergyModel

    Raises
    ------
    UsageError
        When the file cannot be read or is not valid TOML of energy entries.
    """
    try:
        return energy_model.from_toml(path, base=base)
    except OSError as exc:
        raise UsageError(f"--energy-toml {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, TypeError, KeyError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise UsageError(f"--energy-toml {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def run(args, extra) -> int:
    """The ``energy`` handler: a user error is one line on stderr and exit code 2."""
    import sys

    from neurolns.cli.common import EXIT_USAGE

    try:
        return _run(args)
    except UsageError as exc:
        print(f"neurolns energy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args) -> int:
    from neurolns.accounting import (
        EnergyModel,
        Recipe,
        counts_table,
        format_table,
        get_recipe,
        inference_energy,
        plot_energy_bars,
        reports_to_json,
        training_step_energy,
    )
    from neurolns.accounting.energy import format_key
    from neurolns.torch.counting import count_torch, measure_baseline

    # output files first: a path that cannot be written must not cost the run
    for flag, path in (("--json", args.json), ("--png", args.png)):
        if path:
            check_output_file(path, flag)
    try:
        model, default_shape = load_model(args.model)
        if args.input_shape:
            shape = parse_shape(args.input_shape)
        elif default_shape is not None:
            shape = default_shape
        else:
            raise ValueError("--input-shape is needed for a model given as path:factory")
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        keys = [format_key(f) for f in formats]
        emodel = EnergyModel.preset(args.preset)
        if args.energy_toml:
            emodel = load_energy_toml(EnergyModel, args.energy_toml, emodel)
        try:
            counts = count_torch(model, input_shape=shape, training=args.train)
        except RuntimeError as exc:  # the forward pass refused the shape (torch reports it as RuntimeError)
            raise UsageError(f"--input-shape {','.join(map(str, shape))} does not fit {args.model}: "
                             f"{str(exc).splitlines()[0]}") from None
        reports = []
        for f, k in zip(formats, keys):
            if args.train:
                if k in TRAINING_RECIPES:
                    recipe = get_recipe(TRAINING_RECIPES[k])
                else:
                    recipe = Recipe(f"{k.upper()} + FP32-master Adam", compute=f, rule="adam", exchange="allreduce",
                                    master="fp32", weight_copy=True, state="fp32")
                if args.rule:
                    recipe = Recipe(f"{k.upper()} + {args.rule}", compute=recipe.compute, rule=args.rule,
                                    exchange=recipe.exchange, master=recipe.master, weight_copy=recipe.weight_copy,
                                    grad=recipe.grad, state=recipe.state)
                reports.append(training_step_energy(counts, recipe, emodel, workers=args.workers))
            else:
                reports.append(inference_energy(counts, f, emodel))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    what = "training step" if args.train else "inference"
    print(f"{args.model}: {what}, input {tuple(shape)}, {counts.params:,} parameters, "
          f"{reports[0].macs:,.0f} MACs, energy model {emodel.name}")
    print(format_table(reports))
    if args.by_layer:
        print(f"\ncounts per layer (bytes at {formats[0]}):")
        print(counts_table(counts, formats[0]))
        print(f"\nenergy per layer ({reports[0].recipe.name}):")
        for name, e in reports[0].by_layer().items():
            print(f"  {name:<30s} {e.total * 1e-6:12.4f} µJ  (compute {e.compute * 1e-6:.4f} µJ)")
    measured = None
    if args.measure:
        measured = measure_baseline(model, shape, training=args.train)
        print(measured["note"])
        if measured.get("joules"):
            base = (training_step_energy(counts, "fp32-adam", emodel, workers=1) if args.train
                    else inference_energy(counts, "fp32", emodel))
            scale = measured["joules"] / (base.total.total * 1e-12)
            print(f"calibration: measured / simulated FP32 = {scale:.4g}")
            for r in reports:
                print(f"  {r.recipe.name:<28s} {r.total.total * 1e-12 * scale:.4g} J (simulated ratio to FP32 "
                      f"{r.total.total / base.total.total:.3f} times the measured FP32 run)")
    if args.json:
        reports_to_json(reports, args.json, model=args.model, input_shape=list(shape), training=args.train,
                        counts=counts.to_dict(), measured=measured)
        print(f"wrote {args.json}")
    if args.png:
        plot_energy_bars(reports, args.png, title=f"{args.model}: {what}")
        print(f"wrote {args.png}")
    return 0
