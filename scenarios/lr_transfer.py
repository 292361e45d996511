"""Learning-rate transfer across width and depth: does a rate tuned on a small MLP work on a large one?

For every optimizer, every learning rate of a log grid (factors of 2) and
every network of two sweeps, one MLP is trained from the same initial
weights and example order per seed:

* a **width sweep** (``--widths``, at the smallest of ``--depths``) and
* a **depth sweep** (``--depths``, at the smallest of ``--widths``);

depth = number of weight layers (``depth − 1`` hidden layers of the given
width, ``neurolns.models.mlp.build_torch``). Optimizers:

==========  ===========================================================  ==================
name        rule                                                         rate grid
==========  ===========================================================  ==================
sgd         SGD (``torch.optim.SGD``)                                    2^-5 … 2^2
adam        Adam (``torch.optim.Adam``)                                  2^-11 … 2^-4
madam       Madam (``neurolns.torch.Madam``, p_scale 10)                 2^-7 … 2^0
lns-madam   LNS-Madam on LNS8 layers (η = k/128 octave)                  2^-6 … 2^1
fromage     Fromage (``neurolns.torch.Fromage``)                         2^-7 … 2^0
nero        Nero (``neurolns.torch.Nero``)                               2^-7 … 2^0
dualised    dualised update with momentum = Muon (``neurolns.torch.Muon``)  2^-7 … 2^0
agd         AGD (``neurolns.torch.AGD`` on ``agd_prepare_``'s net)      none: one point
==========  ===========================================================  ==================

The default run takes 7 rates per grid, widths 64–512, depths 2–8, 6 epochs;
``--quick`` keeps 5 rates per grid (the middle ones), 2 widths, 2 depths, 3 epochs.
A network in both sweeps (smallest width at smallest depth) is trained once.

Writes to ``--out`` (default ``results/lr_transfer``): ``runs.csv`` (one row
per run), ``summary.json`` (configuration, per-optimizer shifts, timing),
``shifts.csv`` (the table: per optimizer and sweep, the best rate of the
smallest and of the largest network, the shift in octaves
``log2(best_large/best_small)`` and the training loss lost at the largest
network by reusing the small network's best rate) and ``lr_transfer.png``
(final training loss against rate, one curve per width in the first row and
per depth in the second, one column per optimizer).

Examples
--------
.. code-block:: bash

    neurolns run lr-transfer --quick
    neurolns run lr-transfer --dataset mnist1d --widths 64,256,1024 --depths 2,4,8 --seeds 2
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from neurolns.cli.common import ArgumentParser, OutputDir, checked, int_range, interrupted

#: optimizer -> (lowest exponent of its rate grid 2^e, what it is)
OPTIMIZERS = {
    "sgd": (-5, "SGD"),
    "adam": (-11, "Adam"),
    "madam": (-7, "Madam (p_scale 10)"),
    "lns-madam": (-6, "LNS-Madam, LNS8 layers"),
    "fromage": (-7, "Fromage"),
    "nero": (-7, "Nero"),
    "dualised": (-7, "dualised update + momentum (Muon)"),
    "agd": (None, "AGD (no learning rate)"),
}
GRID_POINTS = 8


def lr_grid(name: str, points: int = GRID_POINTS) -> list[float]:
    """The rates of ``name``: ``points`` powers of two (the middle ones of its 8-point grid); ``[nan]`` for AGD."""
    lo = OPTIMIZERS[name][0]
    if lo is None:
        return [math.nan]
    skip = (GRID_POINTS - points) // 2
    return [2.0 ** (lo + skip + i) for i in range(points)]


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated ints, got {text!r}") from None
    if not vals or vals[0] < (2 if what == "--depths" else 1):
        raise argparse.ArgumentTypeError(f"{what}={text!r} is out of range; allowed: ints >= "
                                         f"{2 if what == '--depths' else 1}")
    return vals


def _parse(argv):
    p = ArgumentParser(prog="neurolns run lr-transfer", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["digits", "mnist1d"], default="digits")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS), help="comma-separated; default: all")
    p.add_argument("--widths", type=lambda s: _ints(s, "--widths"), default=None,
                   help="hidden widths (default 64,128,256,512; quick 64,256)")
    p.add_argument("--depths", type=lambda s: _ints(s, "--depths"), default=None,
                   help="weight layers (default 2,4,8; quick 2,4)")
    p.add_argument("--seeds", type=int_range(1), default=1, help="number of seeds (0..N-1)")
    p.add_argument("--epochs", type=int_range(1), default=None, help="default 6 (quick 3)")
    p.add_argument("--batch-size", type=int_range(1), default=64)
    p.add_argument("--points", type=int_range(1, GRID_POINTS), default=None,
                   help=f"rates per grid, <= {GRID_POINTS} (default 7, quick 5)")
    p.add_argument("--threads", type=int_range(1), default=1,
                   help="torch CPU threads (default 1: 2 threads were 14-40x slower on a shared 2-core machine)")
    p.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    p.add_argument("--out", default="results/lr_transfer")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    a.optimizers = [o.strip() for o in a.optimizers.split(",") if o.strip()]
    bad = [o for o in a.optimizers if o not in OPTIMIZERS]
    if bad or not a.optimizers:
        p.error(f"unknown optimizer(s) {bad}; allowed: {', '.join(OPTIMIZERS)}")
    a.widths = a.widths or ([64, 256] if a.quick else [64, 128, 256, 512])
    a.depths = a.depths or ([2, 4] if a.quick else [2, 4, 8])
    a.epochs = a.epochs if a.epochs is not None else (3 if a.quick else 6)
    a.points = a.points if a.points is not None else (5 if a.quick else 7)
    a.out = checked(p, OutputDir, a.out)
    return a


def load_data(name: str, quick: bool):
    from neurolns.data import load_digits, load_mnist1d

    if name == "digits":
        return load_digits()
    return load_mnist1d(num_samples=2000 if quick else 5000)


def architectures(widths, depths) -> list[tuple[int, int]]:
    """Distinct ``(width, depth)``: the width sweep at the smallest depth, the depth sweep at the smallest width."""
    d0, w0 = min(depths), min(widths)
    return list(dict.fromkeys([(w, d0) for w in widths] + [(w0, d) for d in depths]))


def _sweep_key(sweep: str, size: int, widths, depths) -> dict:
    return {"width": size, "depth": min(depths)} if sweep == "width" else {"width": min(widths), "depth": size}


def build(name: str, n_in: int, n_out: int, width: int, depth: int, seed: int, lr: float):
    """The MLP for one run and its optimizer."""
    import torch

    from neurolns.models.mlp import build_torch
    from neurolns.torch import AGD, Fromage, Muon, Nero, agd_prepare_
    from neurolns.torch.scenario import make_torch_optimizer

    net = build_torch(n_in, (width,) * (depth - 1), n_out, seed=seed)
    if name == "agd":  # the network AGD is derived for: no biases, orthogonal init, √2·ReLU
        agd_prepare_(net, torch.Generator().manual_seed(seed))
        return net, AGD(net.parameters())
    method = {"sgd": "fp32-sgd", "adam": "fp32-adam", "madam": "madam", "lns-madam": "lns8-lnsmadam"}.get(name)
    if method is not None:
        return net, make_torch_optimizer(method, net, lr=lr)
    cls = {"fromage": Fromage, "nero": Nero, "dualised": Muon}[name]
    return net, cls(net.parameters(), lr=lr)


def train_one(data, name: str, width: int, depth: int, lr: float, seed: int, *, epochs: int, batch_size: int) -> dict:
    """Train one MLP; returns the final full-training-set loss (``nan`` if it diverged), test accuracy, seconds."""
    import torch
    from torch import nn

    t0 = time.perf_counter()
    xtr = torch.as_tensor(np.array(data.x_train, np.float32))
    ytr = torch.as_tensor(np.array(data.y_train, np.int64))
    net, opt = build(name, xtr.shape[1], int(data.n_classes), width, depth, seed, lr)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.Generator(np.random.PCG64(seed))
    diverged = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # skipped non-finite steps: the loss records them
        for _ in range(epochs):
            order = torch.as_tensor(rng.permutation(len(xtr)))
            for s in range(0, len(xtr), batch_size):
                idx = order[s:s + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(xtr[idx]), ytr[idx])
                if not torch.isfinite(loss):
                    diverged = True
                    break
                loss.backward()
                opt.step()
            if diverged:
                break
    with torch.no_grad():
        train_loss = float(loss_fn(net(xtr), ytr))
        xte = torch.as_tensor(np.array(data.x_test, np.float32))
        acc = float((net(xte).argmax(1) == torch.as_tensor(np.array(data.y_test, np.int64))).float().mean())
    if diverged or not math.isfinite(train_loss):
        train_loss = math.nan
    return {"train_loss": train_loss, "test_acc": acc, "seconds": time.perf_counter() - t0}


def _mean_loss(runs, **key) -> dict[float, float]:
    """Rate -> mean final training loss over seeds (``inf`` if any seed diverged)."""
    out: dict[float, list] = {}
    for r in runs:
        if all(r[k] == v for k, v in key.items()):
            out.setdefault(r["lr"], []).append(r["train_loss"])
    return {lr: (float(np.mean(v)) if all(math.isfinite(x) for x in v) else math.inf) for lr, v in out.items()}


def shifts(runs, optimizers, widths, depths) -> list[dict]:
    """Per optimizer and sweep: best rates of the smallest and largest network, shift in octaves,
    loss lost at the largest network by reusing the smallest one's best rate (AGD: its loss at each end)."""
    rows = []
    for name in optimizers:
        for sweep, sizes in (("width", widths), ("depth", depths)):
            if len(sizes) < 2:
                continue
            ends = []
            for size in (sizes[0], sizes[-1]):
                ends.append(_mean_loss(runs, optimizer=name, **_sweep_key(sweep, size, widths, depths)))
            (small, large) = ends
            if name == "agd":
                ls, ll = next(iter(small.values())), next(iter(large.values()))
                rows.append({"optimizer": name, "sweep": sweep, "small": sizes[0], "large": sizes[-1],
                             "best_lr_small": None, "best_lr_large": None, "shift_octaves": 0.0,
                             "loss_small": ls, "loss_large_best": ll, "loss_large_reused": ll, "loss_lost": 0.0})
                continue
            bs, bl = min(small, key=small.get), min(large, key=large.get)
            row = {"optimizer": name, "sweep": sweep, "small": sizes[0], "large": sizes[-1],
                   "best_lr_small": bs, "best_lr_large": bl, "shift_octaves": math.log2(bl / bs),
                   "loss_small": small[bs], "loss_large_best": large[bl], "loss_large_reused": large[bs],
                   "loss_lost": large[bs] - large[bl]}
            rows.append(row)
    return rows


def plot(path: Path, runs, optimizers, widths, depths, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(optimizers), figsize=(2.6 * len(optimizers), 5.4), squeeze=False,
                             sharey="row")
    for j, name in enumerate(optimizers):
        for i, (sweep, sizes) in enumerate((("width", widths), ("depth", depths))):
            ax = axes[i, j]
            cmap = plt.get_cmap("viridis")
            for k, size in enumerate(sizes):
                m = _mean_loss(runs, optimizer=name, **_sweep_key(sweep, size, widths, depths))
                if not m:
                    continue
                colour = cmap(k / max(1, len(sizes) - 1))
                if name == "agd":
                    ax.plot([k], [m[next(iter(m))]], "o", color=colour, label=f"{sweep} {size}")
                    continue
                lrs = sorted(m)
                ax.plot(lrs, [m[x] if math.isfinite(m[x]) else np.nan for x in lrs], "o-", ms=3, color=colour,
                        label=f"{sweep} {size}")
            if name == "agd":
                ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
                ax.set_xlabel(sweep)
            else:
                ax.set_xscale("log", base=2)
                ax.set_xlabel("learning rate")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(name)
            if j == 0:
                ax.set_ylabel(f"final train loss ({sweep} sweep)")
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_runs(out: Path, runs: list[dict]) -> None:
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(runs[0]))
        w.writeheader()
        w.writerows(runs)


def main(argv=None) -> int:
    import torch

    args = _parse(argv)
    archs = architectures(args.widths, args.depths)
    jobs = [(name, w, d, lr, seed) for name in args.optimizers for (w, d) in archs
            for lr in lr_grid(name, args.points) for seed in range(args.seeds)]
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    runs, t0 = [], time.perf_counter()
    try:
        data = load_data(args.dataset, args.quick)
        it = jobs
        if not args.no_progress:
            from tqdm import tqdm

            it = tqdm(jobs, desc="lr-transfer", unit="run")
        for name, w, d, lr, seed in it:
            r = train_one(data, name, w, d, lr, seed, epochs=args.epochs, batch_size=args.batch_size)
            runs.append({"optimizer": name, "width": w, "depth": d, "lr": lr, "seed": seed, **r})
    except KeyboardInterrupt:
        # the shifts need whole grids; the finished runs are kept as runs.csv
        raise interrupted(args.out, lambda: _write_runs(args.out.path, runs), len(runs)) from None
    finally:
        torch.set_num_threads(before)
    wall = time.perf_counter() - t0
    table = shifts(runs, args.optimizers, args.widths, args.depths)
    out = args.out.path
    _write_runs(out, runs)
    with open(out / "shifts.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["optimizer"])
        w.writeheader()
        w.writerows(table)
    per_run = wall / max(1, len(runs))
    config = {"dataset": args.dataset, "optimizers": args.optimizers, "widths": args.widths, "depths": args.depths,
              "seeds": args.seeds, "epochs": args.epochs, "batch_size": args.batch_size, "points": args.points,
              "quick": args.quick, "threads": args.threads}
    (out / "summary.json").write_text(json.dumps(
        {"config": config, "runs": len(runs), "wall_seconds": wall, "seconds_per_run": per_run,
         "shifts": table}, indent=1))
    plot(out / "lr_transfer.png", runs, args.optimizers, args.widths, args.depths,
         f"{args.dataset}: final training loss vs rate, {args.epochs} epochs, {args.seeds} seed(s)")
    print(f"\n{args.dataset}: {len(runs)} runs in {wall:.0f} s ({per_run:.2f} s/run); "
          f"widths {args.widths} at depth {min(args.depths)}, depths {args.depths} at width {min(args.widths)}")
    print(f"{'optimizer':>10s} {'sweep':>6s} {'best lr small':>13s} {'best lr large':>13s} {'shift (oct)':>11s} "
          f"{'loss lost':>9s}")
    for r in table:
        fmt = (lambda x: "-" if x is None else f"{x:.3g}")
        print(f"{r['optimizer']:>10s} {r['sweep']:>6s} {fmt(r['best_lr_small']):>13s} {fmt(r['best_lr_large']):>13s} "
              f"{r['shift_octaves']:+11.0f} {r['loss_lost']:9.4f}")
    print(f"results written to {out}/ (runs.csv, shifts.csv, summary.json, lr_transfer.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
