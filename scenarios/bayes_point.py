"""Bayes point: does a single network approach the ensemble vote as its normalised margin grows?

After Bernstein's neural-network–Bayes-point-machine correspondence: the
majority vote of many networks that all fit the training set approximates a
Bayes point machine; the claim tested here is that one network trained to a
large *normalised margin* ``(f_y − max_{j≠y} f_j)/(Πₖ‖W_k‖_F·‖x‖)`` agrees with
that vote more and more as its margin grows.

1. An ensemble of ``--ensemble`` (default 51) bias-free ReLU MLPs 64-128-10 on
   scikit-learn's digits, different seeds, each trained to 100% training
   accuracy at the smallest target margin (networks that just fit the data);
   their majority vote (ties to the lowest class) on the test set.
2. Single networks with normalised-margin control: Nero-style constraints keep
   every neuron's weight vector (each row of each ``W_k``) at unit norm after
   every step, so ``Πₖ‖W_k‖_F`` is a constant, and the loss is the squared
   multi-class hinge ``Σ_{j≠y} max(0, γ − (f̂_y − f̂_j))²`` on the normalised
   outputs ``f̂ = f/(Πₖ‖W_k‖_F‖x‖)``: training stops pushing once every
   training example has normalised margin γ, so γ sets the margin.
3. Per family (float32 weights; LNS8 forward weights on fp32 masters through
   the straight-through quantizer, margins measured with the LNS8 weights):
   test error and agreement with the ensemble vote against the achieved
   normalised margin (median over the training set).

Writes to ``--out`` (default ``results/bayes_point/``): ``singles.csv`` (one
row per network), ``summary.csv`` (per family and target: means over seeds),
``runs.json`` and ``bayes_point.png``.

Examples
--------
.. code-block:: bash

    neurolns run bayes-point --quick
    neurolns run bayes-point --ensemble 51 --seeds 2
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from neurolns.cli.common import ArgumentParser, OutputDir, checked, int_range, interrupted

#: target normalised margins (Frobenius) of the single networks; the first also trains the ensemble
TARGETS = (0.001, 0.002, 0.004, 0.007, 0.012)
HIDDEN = 128


def build(seed: int, lns: bool):
    """Bias-free ReLU MLP 64-HIDDEN-10 with unit-norm rows (LNS8 forward weights if ``lns``)."""
    import torch
    from torch import nn

    from neurolns import LNS8
    from neurolns.torch import convert

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, HIDDEN, bias=False), nn.ReLU(), nn.Linear(HIDDEN, 10, bias=False))
    project(model)
    if lns:
        convert(model, LNS8)
    return model


def project(model) -> None:
    """Nero-style constraint: every row of every weight matrix to unit Euclidean norm (in place)."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() == 2:
                w.div_(w.norm(dim=1, keepdim=True).clamp_min(1e-12))


def normalised_outputs(model, x):
    """``f(x)/(Πₖ‖W_k‖_F·‖x‖)`` with the forward (for LNS layers: quantized) weights, differentiable."""
    import torch

    from neurolns.torch.modules import lns_modules

    lns = set(lns_modules())
    prod = 1.0
    for m in model.modules():
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and w.dim() == 2:
            prod = prod * (m._fwd_param("weight") if m in lns else w).norm()
    return model(x) / (prod * x.norm(dim=1, keepdim=True))


def hinge(fhat, y, gamma: float):
    """Squared multi-class hinge ``mean_i Σ_{j≠y_i} max(0, γ − (f̂_y − f̂_j))²`` (scaled by 1/γ² to be O(1))."""
    import torch

    fy = fhat.gather(1, y[:, None])
    gap = torch.relu(gamma - (fy - fhat)).scatter(1, y[:, None], 0.0)
    return (gap**2).sum(1).mean() / gamma**2


def train(model, x, y, gamma: float, *, steps: int, lr: float = 0.02, until: str = "margin") -> dict:
    """Full-batch Adam on the hinge at margin ``γ``, rows projected to unit norm after every step.

    Stops after ``steps``, or as soon as every training example is classified
    correctly (``until="fit"``: the ensemble's networks that just fit the data)
    or has normalised margin ``≥ γ`` (``until="margin"``: the hinge is zero).
    """
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    used = steps
    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        fhat = normalised_outputs(model, x)
        with torch.no_grad():
            fy = fhat.gather(1, y[:, None]).squeeze(1)
            margin = fy - fhat.scatter(1, y[:, None], -math.inf).amax(1)
            done = bool((margin > 0).all()) if until == "fit" else bool((margin >= gamma).all())
        if done:
            used = t
            break
        hinge(fhat, y, gamma).backward()
        opt.step()
        project(model)
    return {"steps": used}


def predict(model, x):
    import torch

    with torch.no_grad():
        return model(x).argmax(1)


def vote(preds, n_classes: int = 10):
    """Majority vote of ``(members, n)`` class predictions; ties go to the lowest class."""
    import torch

    counts = torch.zeros(preds.shape[1], n_classes, dtype=torch.int64)
    counts.scatter_add_(1, preds.T.contiguous(), torch.ones_like(preds.T))
    return counts.argmax(1)


def measure(model, data, ref_vote) -> dict:
    from neurolns.torch.dynamics import normalised_margin

    xtr, ytr, xte, yte = data
    m_tr = normalised_margin(model, xtr, ytr, "frobenius")
    p = predict(model, xte)
    return {"train_acc": float((predict(model, xtr) == ytr).float().mean()),
            "margin_median": float(m_tr.median()), "margin_min": float(m_tr.min()),
            "margin_spectral_median": float(normalised_margin(model, xtr, ytr, "spectral").median()),
            "test_error": float((p != yte).float().mean()),
            "agreement": float((p == ref_vote).float().mean())}


def load():
    import torch

    from neurolns.data import load_digits

    d = load_digits()
    return (torch.tensor(d.x_train), torch.tensor(d.y_train), torch.tensor(d.x_test), torch.tensor(d.y_test))


def _parse(argv):
    p = ArgumentParser(prog="neurolns run bayes-point", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="ensemble of 11, one seed per target, float family only "
                                                        "plus LNS8 at two targets")
    p.add_argument("--ensemble", type=int_range(1), default=None, help="ensemble size (default 51, quick 11); odd")
    p.add_argument("--seeds", type=int_range(1), default=None,
                   help="single networks per target and family (default 2, quick 1)")
    p.add_argument("--targets", default=None, help="comma-separated target normalised margins")
    p.add_argument("--steps", type=int_range(1), default=1000, help="most full-batch steps per network")
    p.add_argument("--families", default="float,lns8", help="comma-separated: float, lns8")
    p.add_argument("--seed", type=int, default=0, help="first seed of the ensemble")
    p.add_argument("--out", default="results/bayes_point")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.ensemble = args.ensemble if args.ensemble is not None else (11 if args.quick else 51)
    args.seeds = args.seeds if args.seeds is not None else (1 if args.quick else 2)
    try:
        args.targets = tuple(float(t) for t in args.targets.split(",")) if args.targets else (
            TARGETS[::2] if args.quick else TARGETS)
    except ValueError:
        p.error(f"--targets {args.targets!r}: allowed: comma-separated floats > 0")
    if not args.targets or any(not 0 < t < float("inf") for t in args.targets):
        p.error(f"--targets {args.targets} is out of range; allowed: comma-separated finite floats > 0")
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    if not args.families or any(f not in ("float", "lns8") for f in args.families):
        p.error(f"--families {args.families}: allowed: float, lns8")
    args.out = checked(p, OutputDir, args.out)
    return args


def plot(singles, ens, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for fam, mk in (("float", "o"), ("lns8", "s")):
        rs = [r for r in singles if r["family"] == fam]
        if not rs:
            continue
        m = [r["margin_median"] for r in rs]
        a1.scatter(m, [100 * r["agreement"] for r in rs], marker=mk, label=f"single net, {fam}")
        a2.scatter(m, [100 * r["test_error"] for r in rs], marker=mk, label=f"single net, {fam}")
    a1.axhline(100 * ens["member_agreement_mean"], ls=":", color="gray", label="ensemble members (mean)")
    a2.axhline(100 * ens["vote_test_error"], ls="--", color="k", label=f"ensemble vote ({ens['size']} nets)")
    a2.axhline(100 * ens["member_test_error_mean"], ls=":", color="gray", label="ensemble members (mean)")
    for ax, lab in ((a1, "agreement with the ensemble vote, test (%)"), (a2, "test error (%)")):
        ax.set_xscale("log")
        ax.set_xlabel("normalised margin (median over train, Frobenius)")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("digits, bias-free ReLU MLP 64-128-10, Nero-style unit rows (measured)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    import torch

    args = _parse(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        data = load()
        xtr, ytr, xte, yte = data
        seeds = range(args.seed, args.seed + args.ensemble)
        if not args.no_progress:
            from tqdm import tqdm

            seeds = tqdm(seeds, desc="ensemble", unit="net")
        members, preds = [], []
        for s in seeds:
            net = build(s, lns=False)
            info = train(net, xtr, ytr, args.targets[0], steps=args.steps, until="fit")
            preds.append(predict(net, xte))
            members.append({"seed": s, **info, "train_acc": float((predict(net, xtr) == ytr).float().mean()),
                            "test_error": float((preds[-1] != yte).float().mean())})
        preds = torch.stack(preds)
        ref = vote(preds)
        for m, p in zip(members, preds):
            m["agreement"] = float((p == ref).float().mean())
        ens = {"size": args.ensemble, "vote_test_error": float((ref != yte).float().mean()),
               "member_test_error_mean": float(np.mean([m["test_error"] for m in members])),
               "member_agreement_mean": float(np.mean([m["agreement"] for m in members])),
               "members_at_100pct_train": int(sum(m["train_acc"] == 1.0 for m in members)),
               "target": args.targets[0]}
        print(f"ensemble of {args.ensemble}: vote test error {100 * ens['vote_test_error']:.2f}%, members "
              f"{100 * ens['member_test_error_mean']:.2f}% (mean), agreement with the vote "
              f"{100 * ens['member_agreement_mean']:.2f}%, {ens['members_at_100pct_train']} at 100% train", flush=True)
        jobs = [(fam, g, s) for fam in args.families for g in args.targets for s in range(args.seeds)]
        if args.quick and "lns8" in args.families:  # LNS8 at the smallest and largest target only
            jobs = [j for j in jobs if j[0] == "float" or j[1] in (args.targets[0], args.targets[-1])]
        if not args.no_progress:
            from tqdm import tqdm

            jobs = tqdm(jobs, desc="single nets", unit="net")
        singles = []
        for fam, g, s in jobs:
            seed = 10_000 + args.seed + s
            net = build(seed, lns=fam == "lns8")
            info = train(net, xtr, ytr, g, steps=args.steps)
            singles.append({"family": fam, "target": g, "seed": seed, **info, **measure(net, data, ref)})
    except KeyboardInterrupt:
        # the tables set single nets against the finished ensemble: a part of it is not written
        raise interrupted(args.out, what="complete comparison") from None
    finally:
        torch.set_num_threads(threads)
    summary = []
    for fam in args.families:
        for g in args.targets:
            rs = [r for r in singles if r["family"] == fam and r["target"] == g]
            if rs:
                summary.append({"family": fam, "target": g, "n": len(rs),
                                **{k: float(np.mean([r[k] for r in rs])) for k in
                                   ("margin_median", "margin_min", "train_acc", "test_error", "agreement", "steps")}})
    out = args.out.path
    config = {k: v for k, v in vars(args).items()}
    config["out"] = str(out)
    config["targets"] = list(args.targets)
    config["model"] = f"bias-free ReLU MLP 64-{HIDDEN}-10, unit-norm rows"
    (out / "runs.json").write_text(json.dumps({"config": config, "ensemble": ens, "members": members,
                                               "singles": singles, "summary": summary}, indent=1))
    for name, rows in (("singles.csv", singles), ("summary.csv", summary)):
        with open(out / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    plot(singles, ens, out / "bayes_point.png")
    print(f"\n{'family':>6s}  {'target':>7s}  {'margin':>8s}  {'train':>6s}  {'test err':>8s}  {'agree':>6s}")
    for r in summary:
        print(f"{r['family']:>6s}  {r['target']:7.3f}  {r['margin_median']:8.4f}  {100 * r['train_acc']:5.1f}%  "
              f"{100 * r['test_error']:7.2f}%  {100 * r['agreement']:5.1f}%")
    for fam in args.families:
        rs = [r for r in summary if r["family"] == fam]
        ms = np.array([r["margin_median"] for r in rs])
        ag = np.array([r["agreement"] for r in rs])
        ok = ms > 0
        if ok.sum() >= 2 and np.ptp(ag[ok]) > 0:
            rho = np.corrcoef(np.log(ms[ok]), ag[ok])[0, 1]
            print(f"{fam}: agreement from {100 * rs[0]['agreement']:.1f}% (smallest margin) to "
                  f"{100 * rs[-1]['agreement']:.1f}% (largest); correlation with log margin {rho:+.2f}")
    print(f"results written to {out}/ (runs.json, singles.csv, summary.csv, bayes_point.png) "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
