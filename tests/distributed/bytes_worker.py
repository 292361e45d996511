"""One rank of the collective-bytes test (started as a subprocess by test_collective_bytes.py).

usage: bytes_worker.py RANK WORLD INIT_FILE OUT_DIR

Trains the same MLP for three DDP steps under each exchange — the FP32
all-reduce hook, the two-phase majority vote and the all-gather majority vote —
and, on the last step (after DDP's bucket rebuild), records for this rank:

* ``wrote``: the bytes the process wrote to its sockets during ``backward()``,
  where the hooks run (``wchar`` of ``/proc/self/io``; gloo's TCP transport
  writes with ``writev``, so these are the bytes actually sent, gloo's message
  headers included), and ``writes``, the write calls that sent them;
* ``calls``: every ``all_reduce`` / ``all_to_all_single`` / ``all_gather``
  the hook called, with the bytes of the tensor it handed over, seen through
  wrappers around those functions of ``torch.distributed``;
* ``counted``: what the hook's own counter (``last_step_bytes``) says it sent.
"""
import json
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from neurolns.torch.distributed import ByteCountState, MajorityVoteState, fp32_allreduce_hook, majority_vote_hook

WRAPPED = ("all_reduce", "all_to_all_single", "all_gather_single", "all_gather_into_tensor")
CALLS: list = []
RECORDING = {"on": False}


def _wrap(name):
    original = getattr(dist, name)

    def wrapper(*args, **kwargs):
        if RECORDING["on"]:
            # all_reduce(tensor, ...); all_to_all_single(output, input, ...); all_gather_*(output, input, ...)
            sent = args[0] if name == "all_reduce" else args[1]
            CALLS.append({"op": name, "bytes": sent.numel() * sent.element_size()})
        return original(*args, **kwargs)

    setattr(dist, name, wrapper)


def io_counters() -> tuple[int, int]:
    """(bytes written, write calls) of this process so far: ``wchar`` and ``syscw``."""
    with open("/proc/self/io") as f:
        fields = dict(line.split(":") for line in f)
    return int(fields["wchar"]), int(fields["syscw"])


def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(512, 2048), nn.Tanh(), nn.Linear(2048, 512))


def main() -> None:
    rank, world = int(sys.argv[1]), int(sys.argv[2])
    init_file, out_dir = sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    for name in WRAPPED:
        if hasattr(dist, name):
            _wrap(name)
    report = {}
    for scheme in ("fp32", "two-phase", "allgather"):
        model = build_model()
        ddp = DDP(model, bucket_cap_mb=64)  # one bucket after the rebuild
        if scheme == "fp32":
            state = ByteCountState()
            ddp.register_comm_hook(state, fp32_allreduce_hook)
        else:
            state = MajorityVoteState(exchange=scheme)
            ddp.register_comm_hook(state, majority_vote_hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)
        for step in range(3):
            g = torch.Generator().manual_seed(1000 * step + rank)
            x = torch.randn(16, 512, generator=g)
            opt.zero_grad()
            loss = ddp(x).square().mean()
            last = step == 2
            dist.barrier()  # the peers' earlier traffic is over before the window opens
            CALLS.clear()
            RECORDING["on"] = last
            before = io_counters()
            loss.backward()  # DDP runs the hook here and waits for its future
            after = io_counters()
            wrote, writes = after[0] - before[0], after[1] - before[1]
            RECORDING["on"] = False
            dist.barrier()
            opt.step()
        report[scheme] = {"wrote": wrote, "writes": writes, "calls": list(CALLS), "counted": state.last_step_bytes,
                          "params": [p.numel() for p in model.parameters()]}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
