"""Speed of the LNS kernels against the baselines measured in the same run.

Prints: the memory bandwidth of a numpy copy; encode/decode throughput of 10**7
float32 values and their fraction of the bandwidth bound (goal >= 50%);
elementwise mul/add throughput (goal >= 50% of the bound for mul), each with a
fresh output array per call and with ``out=`` reusing one buffer as the copy
baseline reuses its destination (a fresh array pays its page faults); the copy
and these kernels are timed in interleaved rounds (best of each kept); fast-mode
matmul 512x512 @ 512x512 against numpy float32 matmul, decode included
(goal <= 1.5x); exact-mode (hardware partial sums) matmul in GMAC/s (goal
>= 0.5 on 2 cores); elementwise add against the ``xlns`` package's
``xlnsnp`` array (goal >= 20x faster).

The bound of a streaming kernel that reads R and writes W bytes per element is
``(R + W) / bandwidth`` per element; the fraction printed is bound time over
measured time. Run: ``.venv/bin/python benchmarks/lns_kernels.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_of_rounds, best_time, copy_baseline, machine_line, report  # noqa: E402


def _cpu_time(fn, repeat: int) -> float:
    """Best CPU time (all threads of this process) of one call, divided by the core
    count: the wall time ``fn`` would take alone on this machine if it kept every
    core busy. On a shared machine it separates the kernel from the neighbours'
    load (it cannot remove their effect on caches and memory bandwidth)."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best / (os.cpu_count() or 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (a smoke run)")
    args = p.parse_args(argv)

    from neurolns import LNS8
    from neurolns.lns import add, choose_scale, decode_codes, encode, encode_codes, matmul, mul

    n = 10**6 if args.quick else 10**7
    size = 256 if args.quick else 512
    rep = 3 if args.quick else 7

    print(machine_line())
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machines run slower)")

    rng = np.random.default_rng(0)
    x = rng.normal(size=n).astype(np.float32)
    scale = float(choose_scale(x, LNS8))
    codes_out = np.empty(n, dtype=LNS8.code_dtype)
    values_out = np.empty(n, dtype=np.float32)
    codes = encode_codes(x, LNS8, scale)
    a = encode(x, LNS8)
    b = encode(rng.normal(size=n).astype(np.float32), LNS8)
    # the bound and the streaming kernels, each with a fresh output per call (as numpy
    # allocates) and with out= reusing one buffer (as the copy baseline does), timed
    # in interleaved rounds; the best time of each is kept
    copy, copy_bytes = copy_baseline(1 << (26 if args.quick else 28))
    jobs = {
        "copy": copy,
        "encode fresh": lambda: encode_codes(x, LNS8, scale),
        "encode out": lambda: encode_codes(x, LNS8, scale, out=codes_out),
        "decode fresh": lambda: decode_codes(codes, LNS8, scale, dtype=np.float32),
        "decode out": lambda: decode_codes(codes, LNS8, scale, out=values_out),
        "mul fresh": lambda: mul(a, b),
        "mul out": lambda: mul(a, b, out=codes_out),
    }
    best = best_of_rounds(jobs, rounds=5 if args.quick else 15)
    bw = copy_bytes / best["copy"] / 1e9
    report("memory bandwidth (numpy copy, read + write)", bw, "GB/s")

    def frac(t, nbytes):
        return nbytes * n / t / 1e9 / bw

    def streaming(name, key, nbytes):
        report(name, n / best[f"{key} out"] / 1e9, "Gvalue/s")
        for label, t in (("fresh output per call", best[f"{key} fresh"]), ("out= (one buffer reused)", best[f"{key} out"])):
            report(f"  fraction of bound, {label}", frac(t, nbytes), "", goal=">= 0.5", ok=frac(t, nbytes) >= 0.5)
        report("  same with out=, from CPU time (as if alone)", frac(_cpu_time(jobs[f"{key} out"], rep), nbytes), "")

    streaming(f"encode {n:.0e} float32 -> LNS8 codes (4 B in + 1 B out)", "encode", 5)
    t_enc_auto = best_time(lambda: encode(x, LNS8), repeat=rep)
    report("  encode() with the automatic scale (extra max pass)", frac(t_enc_auto, 5), "of bound")
    streaming(f"decode {n:.0e} LNS8 codes -> float32 (1 B in + 4 B out)", "decode", 5)
    streaming("elementwise mul, LNS8 (2 B in + 1 B out)", "mul", 3)
    add(a[:10], b[:10])
    t_add = best_time(lambda: add(a, b), repeat=rep)
    report("elementwise add (exact), LNS8", frac(t_add, 3), "of bound")
    report("  same, from CPU time (as if alone)", frac(_cpu_time(lambda: add(a, b), rep), 3), "")

    wa = rng.normal(size=(size, size)).astype(np.float32)
    wb = rng.normal(size=(size, size)).astype(np.float32)
    la, lb = encode(wa, LNS8, channel_axis=0), encode(wb, LNS8)
    t_np = best_time(lambda: wa @ wb, repeat=rep)
    matmul(la, lb)
    t_fast = best_time(lambda: matmul(la, lb), repeat=rep)
    ratio = t_fast / t_np
    report(f"matmul fast {size}x{size}@{size}x{size} / numpy float32", ratio, "x", goal="<= 1.5", ok=ratio <= 1.5)
    macs = size**3
    matmul(la[:4, :8], lb[:8, :4], mode="exact")
    t_exact = best_time(lambda: matmul(la, lb, mode="exact"), repeat=max(2, rep // 2))
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
    t_x = best_time(lambda: xa + xb, repeat=rep)
    t_o = best_time(lambda: add(ea, eb), repeat=rep)
    report(f"elementwise add, {m} values: xlns.xlnsnp time / ours", t_x / t_o, "x", goal=">= 20",
           ok=t_x / t_o >= 20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
