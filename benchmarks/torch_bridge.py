"""Speed of the PyTorch bridge: an LNS8 LNS-Madam training step against an FP32 Adam step,
and LNS fake-quantization throughput against the memory bandwidth, on CPU and (when
present) CUDA.

Figures (ratios against baselines measured in the same run):

* step ratio = time of one training step of the model converted to LNS8 with
  ``storage="lns"`` (quantized forward, straight-through backward, LNS-Madam
  on the update grid) / time of one FP32 Adam step of the same model and batch.
  Goals: ≤ 1.5× on CPU, ≤ 1.3× on a GPU.
* compiled step ratios = time of one training step whose model is compiled with
  ``torch.compile(model, fullgraph=True)`` (forward and backward; the optimizer
  runs eager) / the eager FP32 Adam step, and / the compiled FP32 Adam step
  (model compiled the same way and ``torch.compile(opt.step)``), for the LNS8
  model (``storage="lns"``, LNS-Madam) with LNS8 weights only and with LNS8
  weights, activations and gradients; beside them the same LNS8 steps eager.
* quantize throughput = bytes read + written by ``quantize`` (float32 in and
  out, 8 bytes per element) per second, as a fraction of the copy bandwidth of
  the same device (``np.copyto`` on CPU, a device-to-device ``copy_`` on a GPU).

Run: ``.venv/bin/python benchmarks/torch_bridge.py [--quick] [--device cpu|cuda|all] [--no-compile]``.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common import best_of_rounds, best_time, machine_line, memory_bandwidth_gbs, report  # noqa: E402
from neurolns import LNS8  # noqa: E402
from neurolns.torch import LNSMadam, convert, quantize  # noqa: E402


def _models():
    """(name, builder, input shape, classes): the MNIST-1D CNN of the scenarios, an MLP, a small 2-D CNN."""
    from neurolns.models.cnn1d import build_torch as cnn1d

    def mlp():
        return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))

    def cnn2d():
        return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 8 * 8, 10))

    return [("MNIST-1D CNN, batch 256", lambda: cnn1d(seed=0), (256, 40)),
            ("MLP 784-1024-1024-10, batch 256", mlp, (256, 784)),
            ("CNN 32x32x3, batch 64", cnn2d, (64, 3, 32, 32))]


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _step_fn(model, opt, x, y, dev):
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        _sync(dev)

    return step


def bench_steps(dev, repeat, number):
    goal = 1.5 if dev.type == "cpu" else 1.3
    for name, build, shape in _models():
        torch.manual_seed(0)
        base = build().to(dev)
        lns = copy.deepcopy(base)
        convert(lns, LNS8, storage="lns")
        x = torch.randn(*shape, device=dev)
        y = torch.randint(0, 10, (shape[0],), device=dev)
        jobs = {"adam": _step_fn(base, torch.optim.Adam(base.parameters(), lr=1e-3), x, y, dev),
                "lns": _step_fn(lns, LNSMadam(lns.parameters(), lr=2 / 128), x, y, dev)}
        for fn in jobs.values():  # compile, allocate the optimizer state
            fn()
        # alternate the two steps so that a neighbour's load hits both alike
        best = best_of_rounds(jobs, rounds=repeat * number)
        t_adam, t_lns = best["adam"], best["lns"]
        report(f"[{dev.type}] {name}: FP32 Adam step", t_adam * 1e3, "ms")
        ratio = t_lns / t_adam
        report(f"[{dev.type}] {name}: LNS8 LNS-Madam / Adam", ratio, "x", goal=f"<= {goal}x", ok=ratio <= goal)


def bench_compiled_steps(dev, repeat, number, models):
    """Compiled LNS8 training steps against eager and compiled FP32 Adam steps (same run)."""
    import time

    for name, build, shape in models:
        torch._dynamo.reset()  # each model's compiled graphs start from an empty cache (no recompile limit)
        torch.manual_seed(0)
        base = build().to(dev)
        x = torch.randn(*shape, device=dev)
        y = torch.randint(0, 10, (shape[0],), device=dev)
        adam_c = copy.deepcopy(base)
        opt_c = torch.optim.Adam(adam_c.parameters(), lr=1e-3)
        opt_c.step = torch.compile(opt_c.step)
        jobs = {"adam": _step_fn(base, torch.optim.Adam(base.parameters(), lr=1e-3), x, y, dev),
                "adam compiled": _step_fn(torch.compile(adam_c, fullgraph=True), opt_c, x, y, dev)}
        for tag, kw in (("w", {}), ("wag", {"act_format": LNS8, "grad_format": LNS8})):
            lns = copy.deepcopy(base)
            convert(lns, LNS8, storage="lns", **kw)
            opt = LNSMadam(lns.parameters(), lr=2 / 128)
            jobs[f"lns {tag} eager"] = _step_fn(lns, opt, x, y, dev)
            lns = copy.deepcopy(lns)
            opt = LNSMadam(lns.parameters(), lr=2 / 128)
            jobs[f"lns {tag} compiled"] = _step_fn(torch.compile(lns, fullgraph=True), opt, x, y, dev)
        for k, fn in jobs.items():  # compile (timed once), allocate the optimizer state
            t0 = time.perf_counter()
            fn()
            if "compiled" in k:
                report(f"[{dev.type}] {name}: compile time, {k}", time.perf_counter() - t0, "s")
        best = best_of_rounds(jobs, rounds=repeat * number)
        t_adam, t_adam_c = best["adam"], best["adam compiled"]
        report(f"[{dev.type}] {name}: FP32 Adam step (eager)", t_adam * 1e3, "ms")
        report(f"[{dev.type}] {name}: FP32 Adam compiled / eager", t_adam_c / t_adam, "x")
        for tag, what in (("w", "LNS8 W"), ("wag", "LNS8 W/A/G")):
            t = best[f"lns {tag} compiled"]
            report(f"[{dev.type}] {name}: {what} eager / Adam eager", best[f"lns {tag} eager"] / t_adam, "x")
            report(f"[{dev.type}] {name}: {what} compiled / Adam eager", t / t_adam, "x")
            report(f"[{dev.type}] {name}: {what} compiled / Adam compiled", t / t_adam_c, "x")


def _device_bandwidth_gbs(dev, n_bytes):
    if dev.type == "cpu":
        return memory_bandwidth_gbs(n_bytes)
    src = torch.ones(n_bytes // 4, device=dev)
    dst = torch.empty_like(src)

    def copy_():
        dst.copy_(src)
        _sync(dev)

    return 2 * src.numel() * 4 / best_time(copy_, repeat=5, warmup=2) / 1e9


def bench_quantize(dev, n, repeat):
    bw = _device_bandwidth_gbs(dev, 8 * n)
    report(f"[{dev.type}] copy bandwidth (baseline)", bw, "GB/s")
    x = torch.randn(n, device=dev)
    backends = ["auto", "torch"] if dev.type == "cpu" else ["torch"]
    for backend in backends:
        def q():
            quantize(x, LNS8, check_nan=False, backend=backend)
            _sync(dev)

        t = best_time(q, repeat=repeat, warmup=1)
        gbs = 8 * n / t / 1e9
        report(f"[{dev.type}] quantize LNS8 float32 ({backend}), {n / 1e6:.0f}M values", gbs, "GB/s")
        report(f"[{dev.type}] quantize ({backend}) / copy bandwidth", gbs / bw, "fraction")
    for dt in (torch.bfloat16, torch.float16):
        xd = x.to(dt)

        def qd():
            quantize(xd, LNS8, check_nan=False)
            _sync(dev)

        t = best_time(qd, repeat=repeat, warmup=1)
        report(f"[{dev.type}] quantize LNS8 {str(dt)[6:]} / copy bandwidth", 4 * n / t / 1e9 / bw, "fraction")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller tensors")
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile figures")
    ap.add_argument("--only-compile", action="store_true", help="only the torch.compile figures")
    args = ap.parse_args(argv)
    repeat, number, n = (3, 3, 1 << 22) if args.quick else (7, 10, 1 << 24)
    print(machine_line(), f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    devs = []
    if args.device in ("cpu", "all"):
        devs.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devs.append(torch.device("cuda"))
        print("GPU:", torch.cuda.get_device_name(0))
    elif args.device == "cuda":
        print("no CUDA device: nothing to measure")
        return 1
    for dev in devs:
        if not args.only_compile:
            bench_steps(dev, repeat, number)
            bench_quantize(dev, n, repeat)
        if not args.no_compile:
            bench_compiled_steps(dev, repeat, number, _models()[:1] if args.quick else _models())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
