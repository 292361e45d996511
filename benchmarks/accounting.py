"""How long accounting takes: a ResNet-18-sized model, one training step (goal < 10 s on CPU).

Baseline, measured in the same run: one real FP32 training step (forward +
backward) of the same model on the CPU at batch 8. The accounting counts the
step at batch 128 on the ``meta`` device and prices it under four recipes.

    .venv/bin/python benchmarks/accounting.py [--quick]
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import best_time, machine_line, report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="one repeat each")
    args = p.parse_args(argv)
    repeat = 1 if args.quick else 3

    from neurolns.accounting import EnergyModel, inference_energy, training_step_energy
    from neurolns.models.resnet import build_torch
    from neurolns.torch.counting import count_torch

    net = build_torch()
    emodel = EnergyModel.preset()
    x = torch.randn(8, 3, 32, 32)
    y = torch.zeros(8, dtype=torch.long)

    def real_step():
        net.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()

    def account_step():
        c = count_torch(net, input_shape=(128, 3, 32, 32), training=True)
        for r in ("fp32-adam", "bf16", "lns8-full"):
            training_step_energy(c, r, emodel, workers=4)
        inference_energy(c, "int8", emodel)

    t_base = best_time(real_step, repeat=repeat, warmup=1)
    t0 = time.perf_counter()
    account_step()  # first call: cold (imports, dispatch caches)
    t_cold = time.perf_counter() - t0
    t_acc = best_time(account_step, repeat=repeat, warmup=0)
    print(machine_line())
    report("baseline: FP32 training step of ResNet-18, batch 8 (CPU)", t_base, "s")
    report("account ResNet-18 training step, batch 128, cold", t_cold, "s", goal="< 10 s", ok=t_cold < 10)
    report("account ResNet-18 training step, batch 128, warm", t_acc, "s", goal="< 10 s", ok=t_acc < 10)
    report("  warm accounting / baseline step", t_acc / t_base, "x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
