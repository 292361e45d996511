"""Bytes per step and step time of the majority-vote hook against FP32 all-reduce.

For W = 2, 3, 4 gloo processes on this machine, one DDP training step of the
MNIST-1D CNN (and of a wider MLP, where communication weighs more) with:
the FP32 all-reduce hook (the baseline, measured in the same run), the
majority-vote hook with the all-gather exchange, and with the two-phase
exchange. Prints bytes sent per worker per step and their ratio to FP32
(goals: >= 16x fewer for all-gather at W <= 4, >= 16x for two-phase at any W)
and step time as a ratio to FP32.

    python benchmarks/distributed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def _worker(steps: int, model_name: str) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    from neurolns.models.cnn1d import build_torch
    from neurolns.torch.distributed import ByteCountState, MajorityVoteState, fp32_allreduce_hook, majority_vote_hook

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)

    def make():
        if model_name == "cnn":
            return build_torch(seed=0), 40
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)), 256

    results = {}
    for name in ("fp32", "allgather", "two-phase"):
        model, width = make()
        ddp = DDP(model)
        if name == "fp32":
            state = ByteCountState()
            ddp.register_comm_hook(state, fp32_allreduce_hook)
        else:
            state = MajorityVoteState(exchange=name, momentum=0.9)
            ddp.register_comm_hook(state, majority_vote_hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(rank)
        x, y = torch.randn(32, width, generator=g), torch.randint(0, 10, (32,), generator=g)
        times = []
        for i in range(steps):
            dist.barrier()
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        results[name] = {"bytes": state.last_step_bytes, "time": float(np.median(times[3:]))}
        results["n_params"] = sum(p.numel() for p in model.parameters())
    if rank == 0:
        print("RESULT " + json.dumps(results), flush=True)
    dist.destroy_process_group()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--model", default="cnn", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args.steps, args.model)
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import machine_line

    steps = 12 if args.quick else args.steps
    print(f"machine: {machine_line()}", flush=True)
    print(f"{'model':<5s} {'W':>2s} {'params':>8s} {'scheme':<10s} {'bytes/step':>11s} {'FP32/this':>10s} "
          f"{'step ms':>8s} {'time/FP32':>10s}  goal")
    ok = True
    for model in ("cnn", "mlp"):
        for world in (2, 3, 4):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
                   os.path.abspath(__file__), "--worker", "--steps", str(steps), "--model", model]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            line = next((s for s in out.stdout.splitlines() if s.startswith("RESULT ")), None)
            if line is None:
                print(out.stderr[-2000:])
                return 1
            r = json.loads(line[len("RESULT "):])
            base = r["fp32"]
            for name in ("fp32", "allgather", "two-phase"):
                ratio = base["bytes"] / r[name]["bytes"]
                goal = ""
                if name != "fp32":
                    # signs travel in whole bytes: d bits cost ceil(d/8) bytes, so at W=4 the
                    # all-gather ratio is 16 * d / (8 ceil(d/8)), a hair under 16 when 8 does not divide d
                    d = r["n_params"]
                    padding = d / (8 * -(-d // 8))
                    met = ratio >= 16 * padding - 1e-9
                    ok &= met
                    goal = ">=16x " + ("met" if ratio >= 16 else "met up to byte padding" if met else "MISSED")
                print(f"{model:<5s} {world:>2d} {r['n_params']:>8d} {name:<10s} {r[name]['bytes']:>11d} {ratio:>9.1f}x "
                      f"{1e3 * r[name]['time']:>8.2f} {r[name]['time'] / base['time']:>9.2f}x  {goal}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
