"""Edge of stability: sharpness under full-batch training, float and LNS, GD, Adam, Madam, sign descent.

Reproduces Cohen et al. (ICLR 2021): full-batch gradient descent with step η on
a tanh MLP and the square loss ``L = (1/2n) Σ‖f(x) − y‖²`` (one-hot ``y``) on a
fixed subset of scikit-learn's digits; the sharpness ``λ_max(∇²L)`` rises
(progressive sharpening) until it reaches ``2/η`` and then hovers there while
the loss keeps falling, non-monotonically. Then, in the same run, the rows no
one has measured:

=============  ======================================================  ============================
row            training                                                measured against
=============  ======================================================  ============================
gd-η           float32 GD, one row per η                               λ_max(H) vs 2/η
lns8w-gd       GD on fp32 master weights, LNS8 forward weights (STE)   λ_max(H at Q(w)) vs 2/η
lns8wag-gd     same, LNS8 activations and error signals too            λ_max(H at Q(w)) vs 2/η
adam           full-batch Adam (β₁ = 0.9)                              λ_max(P⁻¹H) vs 38/η
madam          full-batch Madam (β = 0.999, no cap)                    λ_max(P⁻¹H) vs 2/η, P = sqrt(v̂)/|w|
lns-madam      full-batch LNS-Madam, LNS8 layers on the γ=128 grid     λ_max(P⁻¹H) vs 2/η, P = sqrt(v̂)/(ln2·|w|)
signsgd        full-batch sign descent                                 λ_max(H) (no linear threshold)
=============  ======================================================  ============================

The Madam threshold is derived in ``docs/dynamics.md``: to first order a
Madam step is gradient descent preconditioned by ``P = sqrt(v̂)/|w|``, so with
``v̂`` and ``|w|`` frozen it is stable while ``λ_max(P⁻¹H) < 2/η``.

``--model cnn`` runs the same rows with the ReLU CNN of
``neurolns.models.cnn1d`` (32 channels) on MNIST-1D.

"Settled ratio" of a row: the median of measured/threshold over the last
``--settle`` fraction of the steps (default the last 40%); the row is at the
edge when it lies within 10% of 1.

Writes to ``--out`` (default ``results/edge_of_stability/``): ``history.csv``
(every tracked step of every row), ``summary.csv`` and ``runs.json`` (settings,
summary, histories) and ``eos.png`` (per row: the tracked sharpness with its
threshold, the loss below).

Examples
--------
.. code-block:: bash

    neurolns run edge-of-stability --quick
    neurolns run edge-of-stability --etas 0.15,0.1,0.075 --steps 2500   # the run recorded in docs/dynamics.md
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurolns.cli.common import ArgumentParser, OutputDir, checked, float_range, int_range, interrupted

#: defaults (full run) and --quick
FULL = {"n": 1000, "width": 200, "steps": 2000, "every": 50, "etas": (0.15, 0.1, 0.075), "adam_lr": 2e-3,
        "madam_lr": 0.01, "lnsmadam_lr": 1 / 128, "sign_lr": 1e-3}
QUICK = {"n": 200, "width": 48, "steps": 500, "every": 25, "etas": (0.2, 0.1), "adam_lr": 3e-3,
         "madam_lr": 0.01, "lnsmadam_lr": 1 / 128, "sign_lr": 1e-3}


@dataclass(frozen=True)
class Row:
    """One training run of the comparison."""

    name: str
    optimizer: str  # "gd", "adam", "madam", "lns-madam", "signsgd"
    lr: float
    lns: str = "none"  # "none", "w" (LNS8 weights, fp32 master), "wag" (+ activations, gradients), "grid"

    def __post_init__(self):
        if self.optimizer not in ("gd", "adam", "madam", "lns-madam", "signsgd"):
            raise ValueError(f"optimizer={self.optimizer!r} is not known; allowed: gd, adam, madam, lns-madam, signsgd")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr={self.lr!r} is out of range; allowed: a finite float > 0")
        if self.lns not in ("none", "w", "wag", "grid"):
            raise ValueError(f"lns={self.lns!r} is not known; allowed: none, w, wag, grid")


def rows(etas, cfg, only=None) -> list[Row]:
    """The rows of a run: float GD per η, then LNS GD at the middle η, Adam, Madam, LNS-Madam, sign descent."""
    mid = sorted(etas)[len(etas) // 2]
    out = [Row(f"gd-{eta:g}", "gd", eta) for eta in etas]
    out += [Row("lns8w-gd", "gd", mid, "w"), Row("lns8wag-gd", "gd", mid, "wag"),
            Row("adam", "adam", cfg["adam_lr"]), Row("madam", "madam", cfg["madam_lr"]),
            Row("lns-madam", "lns-madam", cfg["lnsmadam_lr"], "grid"), Row("signsgd", "signsgd", cfg["sign_lr"])]
    if only:
        keep = [r for r in out if any(r.name == o or r.name.startswith(o + "-") or r.optimizer == o for o in only)]
        if not keep:
            raise ValueError(f"--rows {only} matches no row; rows: {', '.join(r.name for r in out)}")
        out = keep
    return out


def square_loss(out, target):
    """``(1/2n) Σ_i ‖f(x_i) − y_i‖²`` (Cohen et al.'s square loss, a mean over examples)."""
    return 0.5 * ((out - target) ** 2).sum(1).mean()


def load(n: int, model: str = "mlp"):
    """The first ``n`` training examples and one-hot targets as float32 tensors: digits (pixels in [0, 1])
    for the MLP, MNIST-1D (generated, 5,000 samples) for the CNN."""
    import torch

    from neurolns.data import load_digits, load_mnist1d

    d = load_digits() if model == "mlp" else load_mnist1d(num_samples=5000)
    if n > d.n_train:
        raise ValueError(f"n={n} is out of range; allowed: 10 <= n <= {d.n_train}")
    x = torch.tensor(d.x_train[:n], dtype=torch.float32)
    y = torch.tensor(d.y_train[:n], dtype=torch.int64)
    return x, y, torch.nn.functional.one_hot(y, 10).float()


def build(row: Row, width: int, seed: int, model: str = "mlp", in_features: int = 64):
    """The model of the row (LNS layers where asked) and its optimizer: the tanh MLP
    in-width-width-10, or the MNIST-1D ReLU CNN of ``neurolns.models.cnn1d`` with ``width`` channels."""
    import torch
    from torch import nn

    from neurolns import LNS8
    from neurolns.torch import LNSMadam, Madam, SignSGD, convert

    if model == "cnn":
        from neurolns.models.cnn1d import build_torch

        model = build_torch(in_features, channels=width, n_classes=10, seed=seed)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                                  nn.Linear(width, 10))
    if row.lns == "w":
        convert(model, LNS8)
    elif row.lns == "wag":
        convert(model, LNS8, act_format=LNS8, grad_format=LNS8)
    elif row.lns == "grid":
        convert(model, LNS8, storage="lns")
    ps = model.parameters()
    if row.optimizer == "gd":
        opt = torch.optim.SGD(ps, lr=row.lr)
    elif row.optimizer == "adam":
        opt = torch.optim.Adam(ps, lr=row.lr)
    elif row.optimizer == "madam":
        opt = Madam(ps, lr=row.lr, p_scale=math.inf)
    elif row.optimizer == "lns-madam":
        opt = LNSMadam(ps, lr=row.lr)
    else:
        opt = SignSGD(ps, lr=row.lr)
    return model, opt


def run_row(row: Row, data, *, width: int, steps: int, every: int, seed: int, progress: bool = True,
            model: str = "mlp") -> dict:
    """Train one row full-batch for ``steps`` steps, tracking every ``every`` steps."""
    import torch

    from neurolns.torch.dynamics import Tracker

    x, y, y1 = data
    model, opt = build(row, width, seed, model, int(x.shape[1]))
    quantities = ["sharpness", "update_size"]
    if row.optimizer in ("adam", "madam", "lns-madam"):
        quantities.append("preconditioned")
    if row.optimizer == "lns-madam":
        quantities.append("codes")
    tracker = Tracker(quantities, every=every, loss_fn=square_loss, data=(x, y1),
                      sharpness_kwargs={"iters": 20, "tol": 1e-3})
    it = range(steps + 1)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=row.name, unit="step", leave=False)
    t0 = time.perf_counter()
    for t in it:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = square_loss(out, y1)
        if not torch.isfinite(loss):
            tracker.history.append({"step": t, "loss": float("nan"), "diverged": True})
            break
        loss.backward()
        acc = float((out.detach().argmax(1) == y).float().mean())
        tracker.before_step(t, model, opt)
        opt.step()
        tracker.after_step(t, model, opt, loss=float(loss.detach()), train_acc=acc)
    return {"row": row.name, "optimizer": row.optimizer, "lr": row.lr, "lns": row.lns,
            "history": tracker.history, "seconds": time.perf_counter() - t0}


def settled(run: dict, settle: float) -> dict:
    """The measured quantity, its threshold and their median ratio over the last ``settle`` of the steps."""
    hist = [h for h in run["history"] if not h.get("diverged")]
    pre = run["optimizer"] in ("adam", "madam", "lns-madam")
    key = "preconditioned_sharpness" if pre else "sharpness"
    thr_key = "preconditioned_threshold" if pre else "threshold"
    last = hist[-1]["step"] if hist else 0
    tail = [h for h in hist if h["step"] >= (1 - settle) * last and h.get(key) is not None]
    vals = np.array([h[key] for h in tail], dtype=float)
    thr = hist[-1].get(thr_key) if hist else None
    ratio = float(np.median(vals) / thr) if (thr and len(vals)) else None
    return {"row": run["row"], "optimizer": run["optimizer"], "lr": run["lr"], "lns": run["lns"], "measured": key,
            "threshold": thr, "settled_value": float(np.median(vals)) if len(vals) else None,
            "settled_ratio": ratio, "at_edge": None if ratio is None else bool(abs(ratio - 1) <= 0.10),
            "max_ratio": float(vals.max() / thr) if (thr and len(vals)) else None,
            "final_sharpness": hist[-1].get("sharpness") if hist else None,
            "final_loss": hist[-1].get("loss") if hist else None,
            "final_train_acc": hist[-1].get("train_acc") if hist else None,
            "diverged": any(h.get("diverged") for h in run["history"]), "seconds": run["seconds"]}


def plot(runs, summary, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs)
    cols = min(n, 5)
    blocks = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(3.2 * cols, 4.6 * blocks), squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1] * blocks})
    for i, (run, s) in enumerate(zip(runs, summary)):
        b, c = divmod(i, cols)
        top, bottom = axes[2 * b, c], axes[2 * b + 1, c]
        hist = [h for h in run["history"] if not h.get("diverged")]
        steps = [h["step"] for h in hist]
        top.plot(steps, [h.get(s["measured"]) for h in hist], lw=1.2,
                 label="λ_max(P⁻¹H)" if s["measured"].startswith("pre") else "λ_max(H)")
        if s["measured"].startswith("pre"):
            top.plot(steps, [h.get("sharpness") for h in hist], lw=0.8, color="gray", label="λ_max(H)")
        if s["threshold"]:
            label = {"adam": "38/η"}.get(run["optimizer"], "2/η")
            top.axhline(s["threshold"], ls="--", color="k", lw=1, label=label)
        top.set_title(run["row"] + (f"  ratio {s['settled_ratio']:.2f}" if s["settled_ratio"] else ""), fontsize=9)
        top.legend(fontsize=7)
        top.set_yscale("log" if s["measured"].startswith("pre") else "linear")
        bottom.plot(steps, [h["loss"] for h in hist], lw=1, color="tab:red")
        bottom.set_yscale("log")
        bottom.set_xlabel("step")
        if c == 0:
            top.set_ylabel("sharpness")
            bottom.set_ylabel("train loss")
    for j in range(n, blocks * cols):
        b, c = divmod(j, cols)
        axes[2 * b, c].axis("off")
        axes[2 * b + 1, c].axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out: Path, config: dict, runs, summary) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.json").write_text(json.dumps({"config": config, "summary": summary, "runs": runs}, indent=1))
    keys = ["row", "step", "loss", "train_acc", "sharpness", "threshold", "preconditioned_sharpness",
            "preconditioned_threshold", "update_size", "codes_moved", "codes_saturated", "codes_floor", "lr"]
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in runs:
            for h in r["history"]:
                w.writerow({"row": r["row"], **h})
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    plot(runs, summary, out / "eos.png",
         f"{config['data']}, {config['model']}, full batch, square loss (measured)")


def _parse(argv):
    p = ArgumentParser(prog="neurolns run edge-of-stability", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller problem (200 examples, width 48, 500 steps)")
    p.add_argument("--etas", default=None, help="comma-separated GD steps (default 0.15,0.1,0.075; quick 0.2,0.1)")
    p.add_argument("--steps", type=int_range(1), default=None)
    p.add_argument("--every", type=int_range(1), default=None, help="track every N steps")
    p.add_argument("--n", type=int, default=None, help="training examples (10..1438 digits, 10..4000 MNIST-1D)")
    p.add_argument("--width", type=int_range(1), default=None, help="MLP width (default 200, quick 48) or CNN channels "
                                                          "(default 32)")
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp",
                   help="mlp: tanh MLP on digits; cnn: the ReLU CNN of neurolns.models.cnn1d on MNIST-1D")
    p.add_argument("--rows", default=None, help="comma-separated subset: gd, lns8w-gd, lns8wag-gd, adam, madam, "
                                                "lns-madam, signsgd (default: all)")
    p.add_argument("--settle", type=float_range(0.0, 1.0), default=0.4,
                   help="fraction of the last steps for the settled ratio")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/edge_of_stability")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.model == "cnn":
        cfg["width"] = 16 if args.quick else 32
    for k in ("steps", "every", "n", "width"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    if args.etas:
        try:
            cfg["etas"] = tuple(float(e) for e in args.etas.split(",") if e.strip())
        except ValueError:
            p.error(f"--etas {args.etas!r}: allowed: comma-separated floats > 0")
        if not cfg["etas"] or any(not (0 < e < float("inf")) for e in cfg["etas"]):
            p.error(f"--etas {args.etas!r} is out of range; allowed: comma-separated finite floats > 0")
    top = 1438 if args.model == "mlp" else 4000
    if not 10 <= cfg["n"] <= top:
        p.error(f"--n {cfg['n']} is out of range; allowed: 10 <= n <= {top}")
    if not 0 < args.settle <= 1:
        p.error(f"--settle {args.settle} is out of range; allowed: (0, 1]")
    args.cfg = cfg
    args.only = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    checked(p, rows, cfg["etas"], cfg, args.only)  # an unknown --rows entry is refused before any data loads
    args.out = checked(p, OutputDir, args.out)
    return args


def main(argv=None) -> int:
    import torch

    args = _parse(argv)
    cfg = args.cfg
    config = {**{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}, "seed": args.seed,
              "settle": args.settle, "quick": args.quick, "loss": "square, (1/2n) sum ||f - y||^2",
              "model": (f"tanh MLP 64-{cfg['width']}-{cfg['width']}-10" if args.model == "mlp" else
                        f"ReLU CNN, {cfg['width']} channels"),
              "data": f"{'digits' if args.model == 'mlp' else 'MNIST-1D'}, first {cfg['n']} train"}
    out = args.out.path
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = []
    try:
        data = load(cfg["n"], args.model)
        plan = rows(cfg["etas"], cfg, args.only)
        for row in plan:
            r = run_row(row, data, width=cfg["width"], steps=cfg["steps"], every=cfg["every"], seed=args.seed,
                        progress=not args.no_progress, model=args.model)
            runs.append(r)
            s = settled(r, args.settle)
            ratio = "—" if s["settled_ratio"] is None else f"{s['settled_ratio']:.3f}"
            print(f"{row.name:>12s}: {s['measured']} settled {s['settled_value']:.4g} / threshold "
                  f"{s['threshold'] if s['threshold'] is None else round(s['threshold'], 4)} = {ratio}, "
                  f"final loss {s['final_loss']:.4f} ({r['seconds']:.0f} s)", flush=True)
    except KeyboardInterrupt:
        raise interrupted(args.out, lambda: write_outputs(out, config, runs, [settled(r, args.settle) for r in runs]),
                          len(runs), "row") from None
    finally:
        torch.set_num_threads(threads)
    summary = [settled(r, args.settle) for r in runs]
    write_outputs(out, config, runs, summary)
    gd = [s for s in summary if s["optimizer"] == "gd" and s["lns"] == "none" and s["settled_ratio"] is not None]
    hits = sum(bool(s["at_edge"]) for s in gd)
    print(f"\nfloat GD at the edge (settled λ_max within 10% of 2/η): {hits} of {len(gd)} step sizes "
          f"(goal: >= 3){' (quick run)' if args.quick else ''}")
    print(f"{'row':>12s}  {'measured':>24s}  {'threshold':>10s}  {'ratio':>6s}  {'max':>6s}  {'loss':>7s}")
    for s in summary:
        thr = "none" if s["threshold"] is None else f"{s['threshold']:.4g}"
        rr = "—" if s["settled_ratio"] is None else f"{s['settled_ratio']:.3f}"
        mx = "—" if s["max_ratio"] is None else f"{s['max_ratio']:.2f}"
        print(f"{s['row']:>12s}  {s['measured']:>24s}  {thr:>10s}  {rr:>6s}  {mx:>6s}  {s['final_loss']:7.4f}")
    print(f"results written to {out}/ (runs.json, history.csv, summary.csv, eos.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
