"""Speed of the LNS kernels against the baselines measured in the same run.

Prints: the copy bandwidth on as many threads as the kernels use; encode/decode
throughput of 10**7 float32 values and their fraction of the bandwidth bound
(goal >= 50%); elementwise mul/add throughput (goal >= 50% of the bound for mul),
each with a fresh output array per call and with ``out=`` reusing one buffer as
the copy baseline reuses its destination (a fresh array pays its page faults);
fast-mode matmul 512x512 @ 512x512 against numpy float32 matmul, decode included
(goal <= 1.5x); exact-mode (hardware partial sums) matmul in GMAC/s (goal
>= 0.5 on 2 cores); elementwise add against the ``xlns`` package's ``xlnsnp``
array (goal >= 20x faster).

The bound of a streaming kernel that reads R and writes W bytes per element is
``(R + W) / bandwidth`` per element; the fraction printed is bound time over
measured time. The kernels run on Numba's threads (``numba.get_num_threads()``,
all cores by default), so the copy that measures the bandwidth runs on as many
threads: the faster of a threaded ``np.copyto`` (one contiguous slice per
thread) and a Numba ``prange`` copy (``_common.copy_jobs``). The copies and the
kernels are timed in interleaved rounds (15; 5 with ``--quick``); each round
gives one fraction per kernel (its time against that round's copy), and the
figure printed is the median over the rounds with the quartiles. Matmul and
the xlns comparison print medians of repeated calls.

Run: ``.venv/bin/python benchmarks/lns_kernels.py [--quick]``.
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


def _cpu_time(fn, repeat: int) -> float:
    """Median CPU time (all threads of this process) of one call, divided by the core
    count: the wall time ``fn`` would take alone on this machine if it kept every
    core busy. On a shared machine it separates the kernel from the neighbours'
    load (it cannot remove their effect on caches and memory bandwidth)."""
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return float(np.median(times)) / (os.cpu_count() or 1)


def _median_time(fn, repeat: int) -> float:
    """Median wall time of one call over ``repeat`` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


#: bytes read + written per element by each streaming kernel (float32 values, LNS8 codes)
STREAMING_BYTES = {"encode": 5, "decode": 5, "mul": 3}


def streaming_fractions(n: int = 10**7, rounds: int = 15, copy_bytes: int = 1 << 28) -> dict:
    """Encode, decode and mul of ``n`` LNS8 values (with ``out=`` and with a fresh output),
    timed in ``rounds`` interleaved rounds with a copy of ``copy_bytes`` on the kernels'
    thread count. Returns the per-round fractions of the bandwidth bound (``"encode out"``,
    ``"encode fresh"``, ...), the per-round copy bandwidth in GB/s (``"bandwidth"``), the
    per-round kernel times (``"times"``), ``"threads"``, ``"rounds"`` and ``"n"``."""
    from neurolns import LNS8
    from neurolns.lns import choose_scale, decode_codes, encode, encode_codes, mul

    rng = np.random.default_rng(0)
    x = rng.normal(size=n).astype(np.float32)
    scale = float(choose_scale(x, LNS8))
    codes_out = np.empty(n, dtype=LNS8.code_dtype)
    values_out = np.empty(n, dtype=np.float32)
    codes = encode_codes(x, LNS8, scale)
    a = encode(x, LNS8)
    b = encode(rng.normal(size=n).astype(np.float32), LNS8)
    threads = kernel_threads()
    copies, moved = copy_jobs(copy_bytes, threads)
    jobs = {
        **copies,
        "encode fresh": lambda: encode_codes(x, LNS8, scale),
        "encode out": lambda: encode_codes(x, LNS8, scale, out=codes_out),
        "decode fresh": lambda: decode_codes(codes, LNS8, scale, dtype=np.float32),
        "decode out": lambda: decode_codes(codes, LNS8, scale, out=values_out),
        "mul fresh": lambda: mul(a, b),
        "mul out": lambda: mul(a, b, out=codes_out),
    }
    times = timed_rounds(jobs, rounds)
    out = {"threads": threads, "rounds": rounds, "n": n, "times": times, "jobs": jobs,
           "bandwidth": moved / np.minimum(times["copy np"], times["copy prange"]) / 1e9}
    for key, nbytes in STREAMING_BYTES.items():
        for variant in ("out", "fresh"):
            out[f"{key} {variant}"] = bound_fractions(times, f"{key} {variant}", nbytes * n, moved)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (a smoke run)")
    args = p.parse_args(argv)

    from neurolns import LNS8
    from neurolns.lns import add, encode, matmul

    n = 10**6 if args.quick else 10**7
    size = 256 if args.quick else 512
    rep = 3 if args.quick else 7
    rounds = 5 if args.quick else 15

    print(machine_line())
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machines run slower)")

    st = streaming_fractions(n, rounds, 1 << (26 if args.quick else 28))
    threads = st["threads"]
    print(f"kernels and copy on {threads} thread(s); {rounds} interleaved rounds, median [quartiles] over rounds")
    bw, bw_lo, bw_hi = median_spread(st["bandwidth"])
    report(f"copy bandwidth, {threads} thread(s), read + write", bw, "GB/s")
    print(f"  quartiles {bw_lo:.3g}-{bw_hi:.3g} GB/s; faster of threaded np.copyto and a prange copy each round")

    def frac_line(label, values, goal=None):
        med, lo, hi = median_spread(values)
        if goal is None:
            report(label, med, "")
        else:
            report(label, med, "", goal=f">= {goal}", ok=med >= goal)
        print(f"    quartiles {lo:.3f}-{hi:.3f}")

    def streaming(name, key):
        report(name, n / np.median(st["times"][f"{key} out"]) / 1e9, "Gvalue/s")
        frac_line("  fraction of bound, fresh output per call", st[f"{key} fresh"], 0.5)
        frac_line("  fraction of bound, out= (one buffer reused)", st[f"{key} out"], 0.5)
        report("  same with out=, from CPU time (as if alone)",
               STREAMING_BYTES[key] * n / _cpu_time(st["jobs"][f"{key} out"], rep) / 1e9 / bw, "")

    def frac(t, nbytes):
        return nbytes * n / t / 1e9 / bw

    rng = np.random.default_rng(0)
    x = rng.normal(size=n).astype(np.float32)
    a = encode(x, LNS8)
    b = encode(rng.normal(size=n).astype(np.float32), LNS8)
    streaming(f"encode {n:.0e} float32 -> LNS8 codes (4 B in + 1 B out)", "encode")
    t_enc_auto = _median_time(lambda: encode(x, LNS8), rep)
    report("  encode() with the automatic scale (extra max pass)", frac(t_enc_auto, 5), "of bound")
    streaming(f"decode {n:.0e} LNS8 codes -> float32 (1 B in + 4 B out)", "decode")
    streaming("elementwise mul, LNS8 (2 B in + 1 B out)", "mul")
    t_add = _median_time(lambda: add(a, b), rep)
    report("elementwise add (exact), LNS8", frac(t_add, 3), "of bound")
    report("  same, from CPU time (as if alone)", frac(_cpu_time(lambda: add(a, b), rep), 3), "")

    wa = rng.normal(size=(size, size)).astype(np.float32)
    wb = rng.normal(size=(size, size)).astype(np.float32)
    la, lb = encode(wa, LNS8, channel_axis=0), encode(wb, LNS8)
    t_np = _median_time(lambda: wa @ wb, rep)
    t_fast = _median_time(lambda: matmul(la, lb), rep)
    ratio = t_fast / t_np
    report(f"matmul fast {size}x{size}@{size}x{size} / numpy float32", ratio, "x", goal="<= 1.5", ok=ratio <= 1.5)
    macs = size**3
    t_exact = _median_time(lambda: matmul(la, lb, mode="exact"), max(3, rep // 2))
    report(f"matmul exact {size}^3 (hardware partial sums)", macs / t_exact / 1e9, "GMAC/s", goal=">= 0.5",
           ok=macs / t_exact / 1e9 >= 0.5)
    t_exact_cpu = _cpu_time(lambda: matmul(la, lb, mode="exact"), 2)
    report("  same, from CPU time (as if alone)", macs / t_exact_cpu / 1e9, "GMAC/s")

    try:
        import xlns
    except ImportError:
        print("xlns not installed: skipping the peer comparison")
        return 0
    m = 10**5 if args.quick else 10**6
    xlns.xlnssetF(3)
    ea, eb = encode(rng.normal(size=m), LNS8, scale=1.0), encode(rng.normal(size=m), LNS8, scale=1.0)
    xa, xb = xlns.xlnsnp(""), xlns.xlnsnp("")
    for xv, ev in ((xa, ea), (xb, eb)):  # the same values in xlns's packed 2x + sign layout
        xv.nd = np.where(ev.codes == 0, np.int64(-(1 << 63)), 2 * ev.exponents + (ev.codes < 0))
    t_x = _median_time(lambda: xa + xb, rep)
    t_o = _median_time(lambda: add(ea, eb), rep)
    report(f"elementwise add, {m} values: xlns.xlnsnp time / ours", t_x / t_o, "x", goal=">= 20",
           ok=t_x / t_o >= 20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
