"""1-bit majority-vote training on torch.distributed against FP32 DDP SGD.

Trains the MNIST-1D CNN (``neurolns.models.cnn1d``) with DDP on ``W`` CPU
processes (gloo): once with the FP32 all-reduce and SGD with momentum, once
with the majority-vote hook (signs with per-worker momentum, SGD without it),
and prints test accuracy, bytes sent per step and step time. ``--byzantine F``
makes a fraction ``F`` of the workers send flipped signs; ``--sweep-byzantine``
runs the robustness experiment of Bernstein et al. (ICLR 2019) and plots
accuracy against ``F``.

Launch it like any DDP script::

    torchrun --standalone --nproc_per_node=3 scenarios/majority_vote_ddp.py --method vote
    neurolns run majority-vote --workers 3          # starts torchrun itself, both methods

Without torchrun's environment the script is the launcher: it starts
``torchrun`` (``python -m torch.distributed.run``) for each method and collects
the results from ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from neurolns.cli.common import ArgumentParser, OutputDir, checked, float_range, int_range, interrupted

DEFAULTS = {"vote_lr": 4e-3, "sgd_lr": 0.1, "momentum": 0.9}


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="neurolns run majority-vote", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=None, help="processes W, >= 2 (launcher mode; default 3, quick 2)")
    p.add_argument("--method", choices=["vote", "fp32", "both"], default="both", help="what to train (default both)")
    p.add_argument("--exchange", choices=["allgather", "two-phase"], default="allgather")
    p.add_argument("--momentum", type=float_range(0.0, 1.0), default=DEFAULTS["momentum"],
                   help="β of the momentum (both methods)")
    p.add_argument("--vote-lr", type=float_range(0.0), default=DEFAULTS["vote_lr"], help="step η of the sign update")
    p.add_argument("--sgd-lr", type=float_range(0.0), default=DEFAULTS["sgd_lr"], help="learning rate of FP32 SGD")
    p.add_argument("--epochs", type=int_range(1), default=None, help="default 30, quick 3")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning-rate schedule over all steps (default cosine, for both methods)")
    p.add_argument("--batch-size", type=int_range(1), default=96, help="global batch (split over the workers)")
    p.add_argument("--samples", type=int_range(10), default=None, help="MNIST-1D samples (80/20 split; default 5000, "
                                                                      "quick 2000)")
    p.add_argument("--byzantine", type=float, default=0.0, help="fraction of workers that flip their signs")
    p.add_argument("--sweep-byzantine", action="store_true", help="run the robustness sweep over F (vote only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a small, fast version (2 workers, 3 epochs, 2000 samples); explicit options win")
    p.add_argument("--out", default="results/majority_vote_ddp", help="results folder")
    return p


# ----------------------------------------------------------------------------- worker
def _worker(args) -> int:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    from neurolns.data import load_mnist1d
    from neurolns.models.cnn1d import build_torch
    from neurolns.torch.distributed import (ByteCountState, MajorityVoteState, fp32_allreduce_hook,
                                            majority_vote_hook, ring_bytes)

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    data = load_mnist1d(num_samples=args.samples, seed=42)
    x_train, y_train = torch.tensor(data.x_train), torch.tensor(data.y_train)
    x_test, y_test = torch.tensor(data.x_test), torch.tensor(data.y_test)
    model = build_torch(length=x_train.shape[1], n_classes=data.n_classes, seed=args.seed)
    ddp = DDP(model)
    if args.method == "vote":
        n_bad = int(round(args.byzantine * world))
        state = MajorityVoteState(exchange=args.exchange, momentum=args.momentum, flip_signs=rank < n_bad)
        ddp.register_comm_hook(state, majority_vote_hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=args.vote_lr)
    else:
        state = ByteCountState()
        ddp.register_comm_hook(state, fp32_allreduce_hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=args.sgd_lr, momentum=args.momentum)
    steps_per_epoch = len(x_train) // args.batch_size
    sched = None
    if args.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.epochs * steps_per_epoch))
    shard = args.batch_size // world
    if shard < 1:
        raise SystemExit(f"--batch-size {args.batch_size} is smaller than the number of workers {world}")
    history, step_times, n_params = [], [], sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(x_train), generator=gen)  # same on every rank
        ddp.train()
        losses = []
        for start in range(0, len(perm) - args.batch_size + 1, args.batch_size):
            idx = perm[start + rank * shard: start + (rank + 1) * shard]
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(ddp(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step_times.append(time.perf_counter() - t0)
            losses.append(loss.item())
        ddp.eval()
        with torch.no_grad():
            acc = float((model(x_test).argmax(1) == y_test).float().mean())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"), "test_acc": acc})
        if rank == 0:
            print(f"[{args.method} W={world}] epoch {epoch:3d}  loss {history[-1]['train_loss']:.4f}  "
                  f"test acc {acc:.4f}  bytes/step {state.last_step_bytes}", flush=True)
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        tag = _tag(args.method, args.byzantine)
        result = {"method": args.method, "workers": world, "exchange": args.exchange if args.method == "vote" else "all_reduce",
                  "byzantine": args.byzantine, "n_params": n_params, "bytes_per_step": state.last_step_bytes,
                  "fp32_bytes_per_step": ring_bytes("all_reduce", 4 * n_params, world),
                  "step_time_s": float(np.median(step_times[5:] or step_times)), "history": history,
                  "test_acc": history[-1]["test_acc"], "seed": args.seed}
        (out / f"{tag}.json").write_text(json.dumps(result, indent=1))
    # every rank done before any tears its connections down: a gloo pair closed under a peer still
    # finishing can abort that peer's process at exit ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()
    # Even after the barrier, gloo's threads can still abort the interpreter's exit under load
    # (std::terminate from a joinable thread in a static destructor, rc -6) once every result is
    # written; leave without running those destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _tag(method: str, byzantine: float) -> str:
    return method if not byzantine else f"{method}_byz{byzantine:.2f}"


# ----------------------------------------------------------------------------- launcher
def _launch(args, method: str, byzantine: float, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.workers}",
           os.path.abspath(__file__), "--method", method, "--byzantine", str(byzantine), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"torchrun failed for method {method!r} (exit code {proc.returncode})")
    return json.loads((Path(args.out) / f"{_tag(method, byzantine)}.json").read_text())


def _forward_flags(args) -> list[str]:
    flags = []
    for name in ("exchange", "momentum", "vote_lr", "sgd_lr", "epochs", "schedule", "batch_size", "samples", "seed", "out"):
        flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return flags


def _print_table(rows: list[dict]) -> None:
    print(f"\n{'method':<10s} {'W':>2s} {'F':>5s} {'test acc':>9s} {'bytes/step':>11s} {'FP32 bytes':>11s} "
          f"{'ratio':>7s} {'step ms':>8s}")
    for r in rows:
        ratio = r["fp32_bytes_per_step"] / max(r["bytes_per_step"], 1)
        print(f"{r['method']:<10s} {r['workers']:>2d} {r['byzantine']:>5.2f} {r['test_acc']:>9.4f} "
              f"{r['bytes_per_step']:>11d} {r['fp32_bytes_per_step']:>11d} {ratio:>6.1f}x {1e3 * r['step_time_s']:>8.2f}")


def _write(rows: list[dict], out: Path, name: str) -> None:
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "workers", "byzantine", "test_acc", "bytes_per_step", "fp32_bytes_per_step", "step_time_s"])
        for r in rows:
            w.writerow([r["method"], r["workers"], r["byzantine"], r["test_acc"], r["bytes_per_step"],
                        r["fp32_bytes_per_step"], r["step_time_s"]])


def _plot(rows: list[dict], out: Path, name: str, sweep: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if sweep:
        fs = [r["byzantine"] for r in rows]
        ax.plot(fs, [100 * r["test_acc"] for r in rows], "o-", label="majority vote")
        ax.axvline(0.5, color="gray", ls="--", lw=1, label="half the workers adversarial")
        ax.set_xlabel("fraction of workers sending flipped signs")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"MNIST-1D CNN, W={rows[0]['workers']} workers")
    else:
        for r in rows:
            ax.plot([h["epoch"] for h in r["history"]], [100 * h["test_acc"] for h in r["history"]],
                    label=f"{r['method']} (F={r['byzantine']:.2f})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"MNIST-1D CNN, W={rows[0]['workers']} workers")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    # --quick fills only what the user left out: an explicit value is never rewritten
    for key, full, quick in (("workers", 3, 2), ("epochs", 30, 3), ("samples", 5000, 2000)):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if not (0.0 <= args.byzantine <= 1.0):
        p.error(f"--byzantine {args.byzantine} is out of range; allowed: 0 <= F <= 1")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        if args.method == "both":
            p.error("under torchrun pass --method vote or --method fp32")
        return _worker(args)
    if args.workers < 2:
        p.error(f"--workers {args.workers} is out of range; allowed: >= 2")
    if args.batch_size < args.workers:
        p.error(f"--batch-size {args.batch_size} is out of range; allowed: >= --workers ({args.workers})")
    out_dir = checked(p, OutputDir, args.out)
    out = out_dir.path
    flags = _forward_flags(args)
    rows = []
    try:
        if args.sweep_byzantine:
            fractions = sorted({k / args.workers for k in range(0, args.workers)})
            for f in fractions:
                rows.append(_launch(args, "vote", f, flags))
            name = "byzantine_sweep"
        else:
            methods = ["fp32", "vote"] if args.method == "both" else [args.method]
            for m in methods:
                rows.append(_launch(args, m, args.byzantine if m == "vote" else 0.0, flags))
            name = "comparison"
    except KeyboardInterrupt:
        # each finished training already wrote its own JSON into the folder (the workers' output)
        raise interrupted(out_dir, lambda: None, len(rows), "training") from None
    _print_table(rows)
    _write(rows, out, name)
    _plot(rows, out, name, args.sweep_byzantine)
    print(f"\nresults written to {out}/{name}.json, .csv and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
