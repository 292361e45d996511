"""Speed of the system-identification pipeline, as ratios to baselines measured here.

* Bipolar features: images per second, and the time against one float32 BLAS
  product of the same patch matrix with the kernel matrix (the floor: the
  patch cutting and the ReLU are the overhead).
* Fitting: time per optimizer step (batch 20, 28 types) for each method,
  against one forward pass of the same batch (the step's floor is about
  forward + backward ≈ 2–3 forward passes, plus the optimizer).

Run: ``.venv/bin/python benchmarks/sysid.py [--quick]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, machine_line, report  # noqa: E402

from neurolns.sysid import FitConfig, bipolar_features, fit_circuit, kernel_bank, make_dataset, white_noise_images  # noqa: E402
from neurolns.sysid.bank import bank_kernels  # noqa: E402
from neurolns.sysid.model import _forward, _internal  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args(argv)
    n_img = 200 if args.quick else 1000
    steps = 300 if args.quick else 2000
    repeat = 2 if args.quick else 5
    print(machine_line())

    bank = kernel_bank(28)
    x = white_noise_images(n_img, seed=0)
    K, _ = bank_kernels(bank)
    patches = np.random.default_rng(0).standard_normal((n_img * 100, 121)).astype(np.float32)
    t_blas = best_time(lambda: patches @ K, repeat=repeat)
    t_feat = best_time(lambda: bipolar_features(x, bank), repeat=repeat)
    report("bipolar features, 28 types, 100x100 images", n_img / t_feat, "images/s")
    report("  time / BLAS product of the same patches (baseline)", t_feat / t_blas, "x")

    d = make_dataset("circuit2", n_train=2000, n_test=100, seed=0, n_types=28)
    Xb = np.ascontiguousarray(d.X_train[:20])
    params = _internal(d.w_true, d.model)
    t_fwd = best_time(lambda: _forward(Xb, params, d.model, 0.0), repeat=repeat, number=50)
    report("forward pass, batch 20 (baseline)", t_fwd * 1e6, "us")
    for method in ("madam", "abs-adam", "adam"):
        cfg = FitConfig(method=method, max_steps=steps, eval_every=steps, patience=1)
        fit_circuit(d.X_train, d.y_train, d.model, FitConfig(method=method, max_steps=5))  # compile / load kernels
        t0 = time.perf_counter()
        fit_circuit(d.X_train, d.y_train, d.model, cfg)
        per_step = (time.perf_counter() - t0) / steps
        report(f"fit step, {method}", per_step * 1e6, "us")
        report(f"  step / forward pass", per_step / t_fwd, "x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
