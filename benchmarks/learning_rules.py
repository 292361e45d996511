"""Throughput of the learning-rule kernels against the memory-bandwidth bound.

LNS-Madam is a streaming update: per synapse it reads the code, the float32
gradient and the float64 second moment, and writes the code and the moment
back. Bytes counted per synapse: codes read + write (2 × 1 or 2 × 2 bytes),
gradient read (4), moment read + write (16): 22 bytes for int8 codes, 24 for
int16. The bound is those bytes divided by the copy bandwidth measured in the
same run, on as many threads as the kernel (``numba.get_num_threads()``, all
cores by default): the faster of a threaded ``np.copyto`` (one contiguous slice
per thread) and a Numba ``prange`` copy (``_common.copy_jobs``), so neither a
weak baseline nor a baseline on fewer cores than the kernel flatters the
fraction. The copies and the kernels are timed in interleaved rounds (7 by
default) so that a machine shared with other work loads both alike; each round
gives one fraction per kernel (its time against that round's copy) and the
figure printed is the median over the rounds, with the quartiles.

Also printed: the CPU time of the serial kernel per synapse (process time, so
other work on the machine does not inflate it; median of the rounds) and the compute ceiling it
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

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (bound_fractions, copy_jobs, kernel_threads, machine_line, median_spread,  # noqa: E402
                     report, timed_rounds)

from neurolns.formats import LNS8  # noqa: E402
from neurolns.learning import lns_madam_update, madam_update, pack_signs, update_format  # noqa: E402
from neurolns.learning._checks import all_finite  # noqa: E402


def _serial_lns(codes, g, v, fmt):
    """The serial LNS-Madam kernel, called as lns_madam_update calls it (t = 5)."""
    from neurolns.learning import _kernels

    f32, f64 = np.float32, np.float64
    beta = 0.999
    _kernels.lns_madam_serial(codes, g, v, f64(beta), f64(1.0 - beta), f64(1.0 / (1.0 - beta**5)), f64(10.0),
                              f32, f32(1.0), f32(fmt.max_code))


#: bytes per synapse of the LNS-Madam update: codes read + written, float32 gradient read,
#: float64 moment read + written
def lns_madam_bytes(code_itemsize: int) -> int:
    return 2 * code_itemsize + 4 + 16


def update_fractions(n: int = 10**8, rounds: int = 7, extras: bool = True) -> dict:
    """LNS-Madam on ``n`` synapses (int8 codes of LNS8 and int16 codes of its update grid),
    timed in ``rounds`` interleaved rounds with a copy on the kernel's thread count. Returns
    the per-round fractions of the bandwidth bound under the format labels of ``FORMATS``,
    the per-round copy bandwidths (``"bandwidth"``, ``"bandwidth np"``, ``"bandwidth
    prange"``, GB/s), the raw ``"times"``, ``"threads"`` and ``"rounds"``. ``extras`` adds
    the checked updates, the finite check alone, Madam and pack_signs to the rounds."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal(n, dtype=np.float32)
    codes = {k: rng.integers(-f.max_code, f.max_code + 1, size=n).astype(f.code_dtype) for k, f in FORMATS.items()}
    vs = {k: np.zeros(n) for k in list(FORMATS) + (["madam"] if extras else [])}
    step = {"t": 0}
    checked = list(FORMATS)[1]  # the int16 update grid

    def lns_step(label, check="none"):
        step["t"] += 1
        if check == "grad":  # what LNSMadam.step does: one pass over the gradient, then the unchecked update
            assert all_finite(g)
        lns_madam_update(codes[label], g, vs[label], step["t"], fmt=FORMATS[label], check_finite=check == "all")

    threads = kernel_threads()
    copies, moved = copy_jobs(8 * min(n, 1 << 25), threads)  # up to 256 MiB, well past the caches
    jobs = {**copies, **{label: (lambda label=label: lns_step(label)) for label in FORMATS}}
    if extras:
        w = rng.standard_normal(n, dtype=np.float32)

        def madam_step():
            step["t"] += 1
            madam_update(w, g, vs["madam"], step["t"], p_max=10.0, check_finite=False)

        jobs.update({
            "checked grad": lambda: lns_step(checked, "grad"),
            "checked all": lambda: lns_step(checked, "all"),
            "finite pass": lambda: all_finite(g),
            "madam": madam_step,
            "pack": lambda: pack_signs(g),
        })
    times = timed_rounds(jobs, rounds)
    out = {"times": times, "threads": threads, "rounds": rounds, "n": n, "moved": moved,
           "bandwidth np": moved / times["copy np"] / 1e9, "bandwidth prange": moved / times["copy prange"] / 1e9,
           "bandwidth": moved / np.minimum(times["copy np"], times["copy prange"]) / 1e9,
           "codes": codes, "g": g, "vs": vs}
    for label in FORMATS:
        out[label] = bound_fractions(times, label, n * lns_madam_bytes(codes[label].itemsize), moved)
    return out


FORMATS = {"int8 codes (LNS8 γ=8)": LNS8, "int16 codes (update grid of LNS8, γ=128)": update_format(LNS8)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^7 synapses instead of 10^8")
    ap.add_argument("--n", type=int, default=None, help="number of synapses (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median over them is printed)")
    args = ap.parse_args(argv)
    n = args.n or (10**7 if args.quick else 10**8)

    print(machine_line())
    print("load average at start (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    r = update_fractions(n, args.rounds)
    threads = r["threads"]
    print(f"synapses: {n:.3g}; copies and kernels on {threads} thread(s), timed in {args.rounds} interleaved rounds; "
          "median [quartiles] over the rounds")
    times = r["times"]

    def med_line(label, values, unit="", goal=None):
        med, lo, hi = median_spread(values)
        if goal is None:
            report(label, med, unit)
        else:
            report(label, med, unit, goal=f">= {goal:.2f}", ok=med >= goal)
        print(f"    quartiles {lo:.4g}-{hi:.4g}")
        return med

    med_line(f"copy bandwidth, threaded np.copyto ({threads} thread(s))", r["bandwidth np"], "GB/s")
    med_line(f"copy bandwidth, numba prange copy ({threads} thread(s))", r["bandwidth prange"], "GB/s")
    bw = float(np.median(r["bandwidth"]))
    ok = True
    for label in FORMATS:
        report(f"LNS-Madam {label}: synapses/s", n / float(np.median(times[label])), "1/s")
        frac = med_line(f"LNS-Madam {label}: fraction of bandwidth bound", r[label], goal=0.70)
        ok &= frac >= 0.70
    # Compute ceiling, independent of what else runs on the machine: CPU time of
    # the serial kernel per synapse, scaled to all threads, against the same bound.
    for label, f in FORMATS.items():
        m = min(n, 10**7)
        c, gg, vv = r["codes"][label][:m], r["g"][:m], r["vs"][label][:m]
        cpus = []
        for _ in range(args.rounds):
            t0 = time.process_time()
            _serial_lns(c, gg, vv, f)
            cpus.append(time.process_time() - t0)
        cpu = float(np.median(cpus))
        nbytes = lns_madam_bytes(c.itemsize)
        report(f"LNS-Madam {label}: CPU ns per synapse (1 thread)", 1e9 * cpu / m, "ns")
        report(f"  compute ceiling on {threads} threads: fraction of bound", threads * m * nbytes / cpu / 1e9 / bw, "")
    checked = list(FORMATS)[1]
    moved = r["moved"]
    nb16 = n * lns_madam_bytes(2)
    report(f"LNS-Madam {checked}, no finite check: fraction of bound", float(np.median(r[checked])), "")
    report("  + the optimizer's check (gradient, once per step): fraction of bound",
           float(np.median(bound_fractions(times, "checked grad", nb16, moved))), "")
    report("  + check_finite=True (gradient and moment): fraction of bound",
           float(np.median(bound_fractions(times, "checked all", nb16, moved))), "")
    report("  finite check of the float32 gradient alone: GB/s read", n * 4 / float(np.median(times["finite pass"])) / 1e9,
           "GB/s")
    report("  the optimizer's check: share of the checked update's time",
           float(np.median(times["finite pass"] / times["checked grad"])), "")
    report("Madam float32 (float64 exp, float64 v): fraction of bandwidth bound",
           float(np.median(bound_fractions(times, "madam", n * 28, moved))), "")
    report("pack_signs float32 -> bits: fraction of bandwidth bound",
           float(np.median(bound_fractions(times, "pack", n * (4 + 1 / 8), moved))), "")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
