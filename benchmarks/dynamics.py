"""Speed of the sharpness instrument: Lanczos top eigenvalue of the training-loss Hessian on the
128-channel MNIST-1D CNN, against one full-batch gradient of the same model on the same data.

Figures (the ratio against a baseline measured in the same run, and the seconds):

* gradient = one forward + backward pass of the cross-entropy loss over the data
  (best of the rounds);
* sharpness = ``neurolns.torch.dynamics.sharpness`` (Lanczos, ``tol=1e-3``,
  at most 20 Krylov vectors), in seconds and as a multiple of the gradient time,
  with the number of Hessian–vector products it used. Goal: < 10 s on 2 cores.

The data are the first ``--n`` (default 1,000) MNIST-1D training examples, the
model ``neurolns.models.cnn1d.build_torch(channels=128)`` after a few Adam
steps (so that the Hessian is not that of the initialisation).

Run: ``.venv/bin/python benchmarks/dynamics.py [--quick] [--n 1000] [--threads 2]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common import best_of_rounds, machine_line, report  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="300 examples, one round")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.rounds = 300, 1
    torch.set_num_threads(args.threads)
    from neurolns.data import load_mnist1d
    from neurolns.models.cnn1d import build_torch
    from neurolns.torch import dynamics

    d = load_mnist1d(num_samples=max(1250, int(args.n * 1.25) + 1))
    x = torch.tensor(d.x_train[:args.n], dtype=torch.float32)
    y = torch.tensor(d.y_train[:args.n], dtype=torch.int64)
    model = build_torch(40, channels=128, seed=0)
    loss_fn = nn.functional.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    def gradient():
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()

    counter = {"n": 0}
    real = dynamics.lanczos

    def counting(matvec, n, **kw):
        def mv(v):
            counter["n"] += 1
            return matvec(v)
        return real(mv, n, **kw)

    def top():
        counter["n"] = 0
        return dynamics.sharpness(model, loss_fn, (x, y), iters=20, tol=1e-3)

    dynamics.lanczos = counting
    try:
        t = best_of_rounds({"gradient": gradient, "sharpness": top}, args.rounds)
        t0 = time.perf_counter()
        lam = top()
        single = time.perf_counter() - t0
    finally:
        dynamics.lanczos = real
    print(machine_line())
    print(f"MNIST-1D CNN, 128 channels ({sum(q.numel() for q in model.parameters()):,} parameters), "
          f"{args.n} examples, {torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}")
    report("full-batch gradient", t["gradient"], "s")
    report("sharpness (Lanczos top eigenvalue), best of rounds", t["sharpness"], "s", goal="< 10 s",
           ok=t["sharpness"] < 10)
    report("sharpness / gradient", t["sharpness"] / t["gradient"], "x")
    report("Hessian-vector products used", counter["n"], "")
    report("lambda_max (last run; that run's seconds below)", lam, "")
    report("sharpness, last run", single, "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
