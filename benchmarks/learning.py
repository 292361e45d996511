"""Training-step speed of the Numba/BLAS rate simulator against torch FP32 on CPU.

One training step (forward, softmax cross-entropy, backward, optimizer update)
of the digits MLP 64-256-10 on a batch of 64, timed for:

* torch FP32 + Adam (the baseline, ``torch.set_num_threads(T)``);
* neurolns.sim FP32 + Adam, and LNS8 (γ=8 forward, γ=128 update grid) +
  LNS-Madam, with BLAS limited to the same ``T`` threads;
* majority vote over K=5 simulated workers (5 shard gradients, packed signs, vote).

Each figure is printed as a ratio to the torch step measured in the same run
(goal for LNS8 LNS-Madam: ≤ 2×): the four steps are timed one call each in
turn, per round (3,000 rounds; 250 with ``--quick``), each round gives one
ratio per step, and the figure is the median over the rounds with the
quartiles. Times in µs are medians too.

Then the optimizer update alone on the same MLP's parameters (LNS-Madam on
``update_format(LNS8)`` codes), with the once-per-step finiteness check of
``LNSMadam.step`` and without it (the pure update with ``check_finite=False``),
so the cost of the non-finite policy is visible: the check is one streaming
pass over each gradient (medians over the same number of rounds).

    .venv/bin/python benchmarks/learning.py [--quick] [--threads 1] [--batch 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, median_spread, report, timed_rounds  # noqa: E402


def torch_step(x, y, hidden):
    import torch

    from neurolns.models.mlp import build_torch

    model = build_torch(x.shape[1], hidden, 10, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()

    return step


def sim_step(x, y, hidden, rule, weights):
    from neurolns.models.mlp import build_sim
    from neurolns.sim import Trainer

    tr = Trainer(build_sim(x.shape[1], hidden, 10, weights=weights, seed=0), rule, batch_size=len(x))
    return lambda: tr.step(x, y)


CASES = [
    ("sim FP32 Adam step / torch", "adam", "fp32", None),
    ("sim LNS8 LNS-Madam step / torch", "lns-madam", "lns", 2.0),
    ("sim FP32 majority vote K=5 step / torch", "majority-vote", "fp32", None),
]


def step_ratios(threads: int = 1, batch: int = 64, hidden: int = 256, rounds: int = 3000) -> dict:
    """Per-round times of the torch FP32 Adam step and the simulator steps of ``CASES``
    (``"times"``, by rule, ``"torch"`` for the baseline) and the per-round ratios of each
    simulator step to the torch step of the same round (``"ratios"``, by rule)."""
    import torch

    from neurolns.sim.trainer import _blas_limit

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 64), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    jobs = {"torch": torch_step(x, y, (hidden,))}
    jobs.update({rule: sim_step(x, y, (hidden,), rule, weights) for _, rule, weights, _ in CASES})
    with _blas_limit(threads):
        for fn in jobs.values():  # compile, allocate optimizer state, warm the caches
            for _ in range(20):
                fn()
        # one call of each in turn per round: a neighbour's load hits every step alike
        times = timed_rounds(jobs, rounds)
    return {"times": times, "ratios": {rule: times[rule] / times["torch"] for _, rule, _, _ in CASES}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    args = p.parse_args(argv)
    rounds = 250 if args.quick else 3000

    print(machine_line())
    print(f"MLP 64-{args.hidden}-10, batch {args.batch}, {args.threads} thread(s) for torch and BLAS; "
          f"{rounds} rounds, median [quartiles] over the rounds")
    r = step_ratios(args.threads, args.batch, args.hidden, rounds)
    report("torch FP32 Adam step (baseline)", float(np.median(r["times"]["torch"])) * 1e6, "us")
    for name, rule, _, goal in CASES:
        med, lo, hi = median_spread(r["ratios"][rule])
        if goal is None:
            report(name, med, "x")
        else:
            report(name, med, "x", goal=f"<= {goal}x", ok=med <= goal)
        print(f"    quartiles {lo:.3f}-{hi:.3f}")
        report(f"  ({rule} step time)", float(np.median(r["times"][rule])) * 1e6, "us")
    update_with_and_without_check(args.hidden, rounds)
    return 0


def update_with_and_without_check(hidden: int, rounds: int) -> None:
    """LNS-Madam update of the MLP's parameters: LNSMadam.step (checks every gradient
    first) against the same pure updates with check_finite=False."""
    from neurolns.formats import LNS8
    from neurolns.learning import LNSMadam, lns_madam_update, update_format
    from neurolns.learning._checks import all_finite

    fmt = update_format(LNS8)
    rng = np.random.default_rng(1)
    shapes = [(64, hidden), (hidden,), (hidden, 10), (10,)]
    codes = [rng.integers(-fmt.max_code, fmt.max_code + 1, s).astype(fmt.code_dtype) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    opt = LNSMadam([c.copy() for c in codes], fmt=fmt)
    raw = [c.copy() for c in codes]
    vs = [np.zeros(s) for s in shapes]
    t = {"t": 0}

    def unchecked():
        t["t"] += 1
        for c, g, v in zip(raw, grads, vs):
            lns_madam_update(c, g, v, t["t"], fmt=fmt, check_finite=False)

    times = timed_rounds({"step": lambda: opt.step(grads), "unchecked": unchecked,
                          "check": lambda: [all_finite(g) for g in grads]}, rounds)
    med = {k: float(np.median(v)) for k, v in times.items()}
    n = sum(c.size for c in codes)
    print(f"LNS-Madam update alone, {n} synapses (the MLP's parameters)")
    report("  LNSMadam.step, with the finite check", med["step"] * 1e6, "us")
    report("  pure updates, check_finite=False", med["unchecked"] * 1e6, "us")
    report("  the finite check alone", med["check"] * 1e6, "us")
    report("  step with check / without", float(np.median(times["step"] / times["unchecked"])), "x")


if __name__ == "__main__":
    sys.exit(main())
