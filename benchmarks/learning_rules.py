"""Throughput of the learning-rule kernels against the memory-bandwidth bound.

LNS-Madam is a streaming update: per synapse it reads the code, the float32
gradient and the float64 second moment, and writes the code and the moment
back. Bytes counted per synapse: codes read + write (2 × 1 or 2 × 2 bytes),
gradient read (4), moment read + write (16): 22 bytes for int8 codes, 24 for
int16. The bound is those bytes divided by the copy bandwidth measured in the
same run: the best of ``np.copyto`` (one thread) and a Numba ``prange`` copy
(all threads), so the fraction is never flattered by a weak baseline. The copies
and the kernels are timed in interleaved rounds so that a machine shared with
other work loads both alike; the best time of each is kept.

Also printed: the CPU time of the serial kernel per synapse (process time, so
other work on the machine does not inflate it) and the compute ceiling it
implies on all threads, as a fraction of the same bound: on a shared machine
the wall-clock fraction falls when the kernel does not get every core, the
ceiling does not. And, as ratios to the same bound, Madam on float32 weights
with a float64 moment (4+4 r/w, 4 r, 8+8 r/w = 28 bytes) and pack_signs (4 bytes
read, 1/8 written).

The finiteness check: the int16 update is also timed with the check the
optimizers make once per step (one pass over the gradient, as
``LNSMadam.step``) and with the pure function's default ``check_finite=True``
(gradient and moment); the fractions keep counting only the update's bytes,
so they show what the check costs.

Usage::

    .venv/bin/python benchmarks/learning_rules.py            # 10^8 synapses
    .venv/bin/python benchmarks/learning_rules.py --quick    # 10^7
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_of_rounds, machine_line, report  # noqa: E402

from neurolns._jit import pjit, prange  # noqa: E402
from neurolns.formats import LNS8  # noqa: E402
from neurolns.learning import lns_madam_update, madam_update, pack_signs, update_format  # noqa: E402
from neurolns.learning._checks import all_finite  # noqa: E402


@pjit
def _parallel_copy(dst, src):
    for i in prange(src.size):
        dst[i] = src[i]


def _serial_lns(codes, g, v, fmt):
    """The serial LNS-Madam kernel, called as lns_madam_update calls it (t = 5)."""
    from neurolns.learning import _kernels

    f32, f64 = np.float32, np.float64
    beta = 0.999
    _kernels.lns_madam_serial(codes, g, v, f64(beta), f64(1.0 - beta), f64(1.0 / (1.0 - beta**5)), f64(10.0),
                              f32, f32(1.0), f32(fmt.max_code))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^7 synapses instead of 10^8")
    ap.add_argument("--n", type=int, default=None, help="number of synapses (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (best of each is kept)")
    args = ap.parse_args(argv)
    n = args.n or (10**7 if args.quick else 10**8)

    print(machine_line())
    print(f"synapses: {n:.3g}; bandwidth and kernels timed in {args.rounds} interleaved rounds, best of each kept")
    print("load average at start (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    rng = np.random.default_rng(0)
    g = rng.standard_normal(n, dtype=np.float32)
    w = rng.standard_normal(n, dtype=np.float32)
    src = np.ones(min(n, 1 << 25), dtype=np.float64)  # up to 256 MiB, well past the caches
    dst = np.empty_like(src)
    fmts = {"int8 codes (LNS8 γ=8)": LNS8, "int16 codes (update grid of LNS8, γ=128)": update_format(LNS8)}
    codes = {k: rng.integers(-f.max_code, f.max_code + 1, size=n).astype(f.code_dtype) for k, f in fmts.items()}
    vs = {k: np.zeros(n) for k in list(fmts) + ["madam"]}
    step = {"t": 0}
    checked = list(fmts)[1]  # the int16 update grid

    def lns_step(label, check="none"):
        step["t"] += 1
        if check == "grad":  # what LNSMadam.step does: one pass over the gradient, then the unchecked update
            assert all_finite(g)
        lns_madam_update(codes[label], g, vs[label], step["t"], fmt=fmts[label], check_finite=check == "all")

    def madam_step():
        step["t"] += 1
        madam_update(w, g, vs["madam"], step["t"], p_max=10.0, check_finite=False)

    jobs = {
        "copy np": lambda: np.copyto(dst, src),
        "copy prange": lambda: _parallel_copy(dst, src),
        **{label: (lambda label=label: lns_step(label)) for label in fmts},
        "checked grad": lambda: lns_step(checked, "grad"),
        "checked all": lambda: lns_step(checked, "all"),
        "finite pass": lambda: all_finite(g),
        "madam": madam_step,
        "pack": lambda: pack_signs(g),
    }
    best = best_of_rounds(jobs, args.rounds)

    bw_np = 2 * src.nbytes / best["copy np"] / 1e9
    bw_par = 2 * src.nbytes / best["copy prange"] / 1e9
    bw = max(bw_np, bw_par)
    report("copy bandwidth, np.copyto (1 thread)", bw_np, "GB/s")
    report("copy bandwidth, numba prange copy", bw_par, "GB/s")
    ok = True
    for label, f in fmts.items():
        t = best[label]
        frac = n * (2 * codes[label].itemsize + 4 + 16) / t / 1e9 / bw
        ok &= frac >= 0.70
        report(f"LNS-Madam {label}: synapses/s", n / t, "1/s")
        report(f"LNS-Madam {label}: fraction of bandwidth bound", frac, "", goal=">= 0.70", ok=frac >= 0.70)
    # Compute ceiling, independent of what else runs on the machine: CPU time of
    # the serial kernel per synapse, scaled to all threads, against the same bound.
    threads = numba.config.NUMBA_NUM_THREADS
    for label, f in fmts.items():
        m = min(n, 10**7)
        c, gg, vv = codes[label][:m], g[:m], vs[label][:m]
        cpu = float("inf")
        for _ in range(args.rounds):
            t0 = time.process_time()
            _serial_lns(c, gg, vv, f)
            cpu = min(cpu, time.process_time() - t0)
        nbytes = 2 * c.itemsize + 4 + 16
        report(f"LNS-Madam {label}: CPU ns per synapse (1 thread)", 1e9 * cpu / m, "ns")
        report(f"  compute ceiling on {threads} threads: fraction of bound", threads * m * nbytes / cpu / 1e9 / bw, "")
    nb16 = n * (2 * 2 + 4 + 16) / 1e9 / bw
    report(f"LNS-Madam {checked}, no finite check: fraction of bound", nb16 / best[checked], "")
    report("  + the optimizer's check (gradient, once per step): fraction of bound", nb16 / best["checked grad"], "")
    report("  + check_finite=True (gradient and moment): fraction of bound", nb16 / best["checked all"], "")
    report("  finite check of the float32 gradient alone: GB/s read", n * 4 / best["finite pass"] / 1e9, "GB/s")
    report("  the optimizer's check: share of the checked update's time", best["finite pass"] / best["checked grad"], "")
    report("Madam float32 (float64 exp, float64 v): fraction of bandwidth bound", n * 28 / best["madam"] / 1e9 / bw, "")
    report("pack_signs float32 -> bits: fraction of bandwidth bound", n * (4 + 1 / 8) / best["pack"] / 1e9 / bw, "")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
