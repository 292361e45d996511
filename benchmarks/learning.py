"""Training-step speed of the Numba/BLAS rate simulator against torch FP32 on CPU.

One training step (forward, softmax cross-entropy, backward, optimizer update)
of the digits MLP 64-256-10 on a batch of 64, timed for:

* torch FP32 + Adam (the baseline, ``torch.set_num_threads(T)``);
* neurolns.sim FP32 + Adam, and LNS8 (γ=8 forward, γ=128 update grid) +
  LNS-Madam, with BLAS limited to the same ``T`` threads;
* majority vote over K=5 simulated workers (5 shard gradients, packed signs, vote).

Each figure is printed as a ratio to the torch step measured in the same run
(goal for LNS8 LNS-Madam: ≤ 2×). ``--quick`` takes fewer repeats.

    .venv/bin/python benchmarks/learning.py [--quick] [--threads 1] [--batch 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of_rounds, machine_line, report  # noqa: E402


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
    from neurolns.sim.trainer import _blas_limit

    tr = Trainer(build_sim(x.shape[1], hidden, 10, weights=weights, seed=0), rule, batch_size=len(x))
    return lambda: tr.step(x, y)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    repeat, number = (5, 50) if args.quick else (15, 200)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 64), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    hidden = (args.hidden,)

    print(machine_line())
    print(f"MLP 64-{args.hidden}-10, batch {args.batch}, {args.threads} thread(s) for torch and BLAS")
    from neurolns.sim.trainer import _blas_limit

    cases = [
        ("sim FP32 Adam step / torch", "adam", "fp32", None),
        ("sim LNS8 LNS-Madam step / torch", "lns-madam", "lns", 2.0),
        ("sim FP32 majority vote K=5 step / torch", "majority-vote", "fp32", None),
    ]
    jobs = {"torch": torch_step(x, y, hidden)}
    jobs.update({rule: sim_step(x, y, hidden, rule, weights) for _, rule, weights, _ in cases})
    with _blas_limit(args.threads):
        for fn in jobs.values():  # compile, allocate optimizer state, warm the caches
            for _ in range(20):
                fn()
        # one call of each in turn per round: a neighbour's load hits every step alike
        best = best_of_rounds(jobs, rounds=repeat * number)
    base = best["torch"]
    report("torch FP32 Adam step (baseline)", base * 1e6, "us")
    for name, rule, weights, goal in cases:
        t = best[rule]
        if goal is None:
            report(name, t / base, "x")
        else:
            report(name, t / base, "x", goal=f"<= {goal}x", ok=t / base <= goal)
        report(f"  ({rule} step time)", t * 1e6, "us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
