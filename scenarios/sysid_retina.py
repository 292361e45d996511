"""System identification of a retina circuit: is the sign constraint necessary?

Fits Circuit 2 of Bagherian et al. (KDD 2021) with each method (Madam, which
keeps signs natively; ``w = s·|v|`` with Adam, the paper's method; unconstrained
Adam, the ablation) on nested training sets of growing size, over several
seeds, and writes R_sys and R_supp against the number of images.

Run::

    neurolns run sysid                       # default sweep, a few minutes on 2 cores
    neurolns run sysid --full                # the paper's sizes 60 ... 22,000, 10 seeds
    python scenarios/sysid_retina.py --sizes 340,5500 --seeds 2 --out results/x

Writes ``runs.csv`` (one row per fit), ``summary.csv``, ``results.json`` and
``recovery.png`` into ``--out`` (default ``results/sysid_retina/``).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from neurolns.cli.common import ArgumentParser, OutputDir, checked, float_range, int_range, interrupted
from neurolns.sysid import FitConfig, FitMethod, fit_circuit, make_circuit, make_dataset

PAPER_SIZES = (60, 340, 700, 1400, 2800, 5500, 11000, 22000)
DEFAULT_SIZES = (60, 340, 1400, 5500)
LABELS = {"madam": "Madam (sign-preserving)", "lns-madam": "LNS-Madam (16-bit LNS synapses)", "abs-adam": "Adam on w = s·|v|", "adam": "Adam, unconstrained",
          "adam+signs": "Adam, unconstrained, true-sign start"}


def _ints(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ints") from exc
    if not out or min(out) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be ints >= 2")
    return sorted(set(out))


def _methods(text: str) -> list[str]:
    try:
        return [FitMethod(x.strip()).value for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="neurolns run sysid", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--circuit", default="circuit2",
                   help="ground truth: circuit1, circuit2, circuit3a, circuit3b (or 1, 2, 3a, 3b)")
    p.add_argument("--sizes", type=_ints, default=None,
                   help=f"training-set sizes (comma-separated; default {','.join(map(str, DEFAULT_SIZES))}, "
                        f"quick 60,200, full the paper's)")
    p.add_argument("--seeds", type=int_range(1), default=None, help="seeds per size and method (default 3, quick 1, "
                                                                    "full 10)")
    p.add_argument("--methods", type=_methods, default=["madam", "abs-adam", "adam"],
                   help="comma-separated: madam, lns-madam, abs-adam, adam (default: madam,abs-adam,adam)")
    p.add_argument("--n-types", type=int_range(3, 28), default=28,
                   help="candidate bipolar types in the fitted bank (3..28)")
    p.add_argument("--n-test", type=int_range(1), default=None, help="held-out images (default 2000, quick 300)")
    p.add_argument("--noise", type=float_range(0.0), default=0.0, help="Gaussian response noise (std, absolute)")
    p.add_argument("--l1", type=float_range(0.0), default=None, help="L1 penalty λ (default: FitConfig's)")
    p.add_argument("--init", type=float_range(0.0), default=None,
                   help="initial |w| (default: FitConfig's; 0.2 for circuit1, whose ReLU(· − 10) output is "
                        "silent at smaller weights)")
    p.add_argument("--max-steps", type=int_range(1), default=None, help="optimizer steps per fit (default: FitConfig's)")
    p.add_argument("--informed-adam", action="store_true",
                   help="also fit unconstrained Adam started from the true pathway signs ('adam+signs')")
    p.add_argument("--full", action="store_true", help="the paper's sweep: sizes 60 ... 22,000, 10 seeds "
                                                        "(explicit --sizes/--seeds win)")
    p.add_argument("--quick", action="store_true", help="a smoke run (seconds): sizes 60,200, 1 seed, 300 test images, "
                                                         "600 steps (explicit options win)")
    p.add_argument("--out", type=Path, default=Path("results/sysid_retina"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _summary(runs: list[dict]) -> list[dict]:
    rows = []
    order = list(dict.fromkeys(r["method"] for r in runs))
    keys = sorted({(r["method"], r["n_images"]) for r in runs}, key=lambda k: (order.index(k[0]), k[1]))
    for method, n in keys:
        sel = [r for r in runs if r["method"] == method and r["n_images"] == n]
        row = {"method": method, "n_images": n, "seeds": len(sel)}
        for m in ("r_sys", "r_supp", "test_corr", "test_fev", "wrong_signs", "seconds"):
            v = np.array([r[m] for r in sel], dtype=float)
            row[f"{m}_mean"], row[f"{m}_std"] = float(v.mean()), float(v.std())
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _plot(path: Path, summary: list[dict], methods: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric, name in ((axes[0], "r_sys", "R_sys"), (axes[1], "r_supp", "R_supp")):
        for method in methods:
            rows = [r for r in summary if r["method"] == method]
            n = np.array([r["n_images"] for r in rows])
            mu = np.array([r[f"{metric}_mean"] for r in rows])
            sd = np.array([r[f"{metric}_std"] for r in rows])
            ax.plot(n, mu, "o-", label=LABELS.get(method, method))
            ax.fill_between(n, mu - sd, mu + sd, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("number of training images")
        ax.set_ylabel(name)
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _parse(argv):
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick and args.full:
        p.error("--quick and --full contradict each other; choose one")
    # --quick and --full fill only what the user left out: an explicit value is never rewritten
    preset = ({"sizes": [60, 200], "seeds": 1, "n_test": 300, "max_steps": 600} if args.quick else
              {"sizes": list(PAPER_SIZES), "seeds": 10} if args.full else {})
    for key, default in (("sizes", list(DEFAULT_SIZES)), ("seeds", 3), ("n_test", 2000), ("max_steps", None)):
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, default))
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("l1", args.l1)) if v is not None}
    args.circuit_model = checked(p, make_circuit, args.circuit, flag="--circuit")
    if args.init is not None:
        overrides["init"] = args.init
    elif args.circuit_model.name == "circuit1":
        overrides["init"] = 0.2
    checked(p, FitConfig, **overrides)
    args.overrides = overrides
    args.out = checked(p, OutputDir, args.out)
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    sizes, seeds, overrides, circuit = args.sizes, args.seeds, args.overrides, args.circuit_model
    methods = list(args.methods) + (["adam+signs"] if args.informed_adam else [])
    out = args.out.path
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    runs = []
    bar = tqdm(total=seeds * len(sizes) * len(methods), desc="sysid fits", disable=args.no_progress)
    try:
        _sweep(args, circuit, sizes, seeds, methods, overrides, runs, bar)
    except KeyboardInterrupt:
        bar.close()
        raise interrupted(args.out, lambda: _write(args, out, circuit, sizes, seeds, methods, overrides, runs,
                                                   time.perf_counter() - t_start), len(runs), "fit") from None
    bar.close()
    elapsed = time.perf_counter() - t_start
    summary = _write(args, out, circuit, sizes, seeds, methods, overrides, runs, elapsed)

    print(f"\n{circuit.name}: {args.n_types} candidate types, {seeds} seed(s), noise {args.noise}, {elapsed:.0f} s")
    print(f"{'method':<11s} {'images':>7s} {'R_sys':>14s} {'R_supp':>14s} {'test corr':>10s} {'wrong signs':>11s}")
    for r in summary:
        print(f"{r['method']:<11s} {r['n_images']:>7d} {r['r_sys_mean']:>7.3f} ±{r['r_sys_std']:5.3f} "
              f"{r['r_supp_mean']:>7.3f} ±{r['r_supp_std']:5.3f} {r['test_corr_mean']:>10.4f} {r['wrong_signs_mean']:>11.0f}")
    print(f"wrote {out}/runs.csv, summary.csv, results.json, recovery.png")
    return 0


def _sweep(args, circuit, sizes, seeds, methods, overrides, runs, bar) -> None:
    """Fit every (seed, size, method), appending to ``runs`` as each fit finishes."""
    for seed in range(seeds):
        data = make_dataset(circuit, n_train=max(sizes), n_test=args.n_test, seed=seed, n_types=args.n_types,
                            noise_std=args.noise)
        for n in sizes:
            sub = data.subset(n)
            for method in methods:
                if method == "adam+signs":
                    cfg = FitConfig(method="adam", init_signs="pathway", seed=seed, **overrides)
                else:
                    cfg = FitConfig(method=method, seed=seed, **overrides)
                t0 = time.perf_counter()
                res = fit_circuit(sub.X_train, sub.y_train, sub.model, cfg)
                m = res.evaluate(sub.X_test, sub.y_test, sub.w_true)
                runs.append({"method": method, "n_images": n, "seed": seed, **{k: float(v) for k, v in m.items()},
                             "steps": res.steps, "best_step": res.best_step,
                             "seconds": time.perf_counter() - t0})
                bar.update(1)


def _write(args, out: Path, circuit, sizes, seeds, methods, overrides, runs, elapsed) -> list[dict]:
    """Write runs.csv, summary.csv, results.json and recovery.png of the fits in ``runs``; return the summary."""
    summary = _summary(runs)
    _write_csv(out / "runs.csv", runs)
    _write_csv(out / "summary.csv", summary)
    cfg = FitConfig(**overrides).to_dict()
    cfg.pop("method")
    cfg.pop("lr")
    with open(out / "results.json", "w") as f:
        json.dump({"circuit": circuit.name, "sizes": sizes, "seeds": seeds, "methods": methods,
                   "n_types": args.n_types, "n_test": args.n_test, "noise": args.noise, "fit_config": cfg,
                   "elapsed_s": elapsed, "summary": summary, "runs": runs}, f, indent=1)
    _plot(out / "recovery.png", summary, list(dict.fromkeys(r["method"] for r in runs)),
          f"{circuit.name}: recovery vs training-set size ({args.n_types} candidate types)")
    return summary

if __name__ == "__main__":
    raise SystemExit(main())
