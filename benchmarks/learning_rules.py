"""Throughput of the learning-rule kernels against the memory-bandwidth bound.

LNS-Madam is a streaming update: per synapse it reads the code, the float32
gradient and the float32 second moment, and writes the code and the moment
back. Bytes counted per synapse: codes read + write (2 × 1 or 2 × 2 bytes),
gradient read (4), moment read + write (8): 14 bytes for int8 codes, 16 for
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
(4+4 r/w, 4 r, 4+4 r/w = 20 bytes) and pack_signs (4 bytes read, 1/8 written).

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


@pjit
def _parallel_copy(dst, src):
    for i in prange(src.size):
        dst[i] = src[i]


def _serial_lns(codes, g, v, fmt):
    """The serial LNS-Madam kernel, called as lns_madam_update calls it (t = 5)."""
    from neurolns.learning import _kernels

    f32 = np.float32
    beta = 0.999
    _kernels.lns_madam_serial(codes, g, v, f32(beta), f32(1.0 - beta), f32(1.0 / (1.0 - beta**5)), f32(10.0),
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
    vs = {k: np.zeros(n, np.float32) for k in list(fmts) + ["madam"]}
    step = {"t": 0}

    def lns_step(label):
        step["t"] += 1
        lns_madam_update(codes[label], g, vs[label], step["t"], fmt=fmts[label])

    def madam_step():
        step["t"] += 1
        madam_update(w, g, vs["madam"], step["t"], p_max=10.0)

    jobs = {
        "copy np": lambda: np.copyto(dst, src),
        "copy prange": lambda: _parallel_copy(dst, src),
        **{label: (lambda label=label: lns_step(label)) for label in fmts},
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
        frac = n * (2 * codes[label].itemsize + 4 + 8) / t / 1e9 / bw
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
        nbytes = 2 * c.itemsize + 4 + 8
        report(f"LNS-Madam {label}: CPU ns per synapse (1 thread)", 1e9 * cpu / m, "ns")
        report(f"  compute ceiling on {threads} threads: fraction of bound", threads * m * nbytes / cpu / 1e9 / bw, "")
    report("Madam float32 (float64 exp): fraction of bandwidth bound", n * 20 / best["madam"] / 1e9 / bw, "")
    report("pack_signs float32 -> bits: fraction of bandwidth bound", n * (4 + 1 / 8) / best["pack"] / 1e9 / bw, "")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
