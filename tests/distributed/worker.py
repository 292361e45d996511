"""One rank of the distributed tests (started as a subprocess by test_majority_vote.py).

usage: worker.py RANK WORLD INIT_FILE OUT_DIR CONFIG_JSON

Trains a small MLP under DDP with the majority-vote hook and, every step,
checks the gradient DDP hands to the optimizer against the vote computed from
all ranks' full local gradients gathered separately (the reference).
With ``nan_at: [step, rank]`` that rank's input is NaN at that step, so its
whole gradient is NaN: the reference is then zeros on every rank and no
worker's momentum moves.
"""
import json
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from neurolns.torch.distributed import MajorityVoteState, majority_vote_hook


def main() -> None:
    rank, world = int(sys.argv[1]), int(sys.argv[2])
    init_file, out_dir, cfg = sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=cfg.get("timeout", 20)))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(13, 17), nn.Tanh(), nn.Linear(17, 5))
    shadow = nn.Sequential(nn.Linear(13, 17), nn.Tanh(), nn.Linear(17, 5))  # computes local grads
    shadow.load_state_dict(model.state_dict())
    ddp = DDP(model, bucket_cap_mb=cfg.get("bucket_cap_mb", 25))
    state = MajorityVoteState(exchange=cfg["exchange"], momentum=cfg.get("momentum", 0.0), ties=cfg.get("ties", "plus"),
                              error_feedback=cfg.get("error_feedback", False))
    ddp.register_comm_hook(state, majority_vote_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    beta = cfg.get("momentum", 0.0)
    ref_m = [[torch.zeros_like(p) for p in model.parameters()] for _ in range(world)]
    mismatches, bytes_per_step = 0, []
    for step in range(cfg["steps"]):
        if cfg.get("die_at") == step and rank == 1:
            os._exit(3)
        g = torch.Generator().manual_seed(1000 * step + rank)
        x = torch.randn(8, 13, generator=g)
        y = torch.randint(0, 5, (8,), generator=g)
        if cfg.get("nan_at") == [step, rank]:
            x[0, 0] = float("nan")
        # reference: every rank's full local gradient, gathered separately
        shadow.zero_grad()
        nn.functional.cross_entropy(shadow(x), y).backward()
        local = [p.grad.detach().clone() for p in shadow.parameters()]
        gathered = [[torch.empty_like(t) for _ in range(world)] for t in local]
        for t, outs in zip(local, gathered):
            dist.all_gather(outs, t)
        expected = []
        skip = any(not torch.isfinite(t).all() for outs in gathered for t in outs)
        for i, p in enumerate(model.parameters()):
            if skip:  # some worker's gradient is NaN: every rank skips, no momentum moves
                expected.append(torch.zeros_like(p))
                continue
            total = torch.zeros_like(p)
            for k in range(world):
                d = gathered[i][k]
                if beta:
                    ref_m[k][i].mul_(beta).add_(d, alpha=1.0 - beta)
                    d = ref_m[k][i]
                total += torch.where(d < 0, -1.0, 1.0)
            tie = 1.0 if cfg.get("ties", "plus") == "plus" else 0.0
            expected.append(torch.where(total > 0, 1.0, torch.where(total < 0, -1.0, tie)))
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        if cfg.get("error_feedback"):
            # the mean of scaled signs (not a vote): only the skipped step has a reference (zeros)
            expected = expected if skip else [p.grad for p in model.parameters()]
        for p, e in zip(model.parameters(), expected):
            mismatches += int((p.grad != e).sum())
        opt.step()
        shadow.load_state_dict(model.state_dict())
        bytes_per_step.append(state.last_step_bytes)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    all_params = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(all_params, flat)
    identical = all(torch.equal(all_params[0], q) for q in all_params)
    n_params = flat.numel()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"mismatches": mismatches, "identical": identical, "bytes": bytes_per_step,
                   "n_params": n_params, "steps": state.step, "skipped": state.skipped_buckets,
                   "finite": bool(torch.isfinite(flat).all())}, f)
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


if __name__ == "__main__":
    main()
