"""Spiking benchmark: CUBA in neurolns against Brian2, as ratios measured in one run.

Figures (Brette et al. 2007 CUBA, ``neurolns.models.cuba``; 40k keeps the
in-degree at 100):

* warm wall time of ``Network.run`` for CUBA 4000 × 1 s, 4000 × 10 s and
  40,000 × 1 s, on one thread and on ``--threads`` threads (default 2; the
  spikes are the same), as the speed-up over Brian2's cython runtime ``run()``
  (goal ≥ 10×) and as the ratio to Brian2's cpp_standalone simulation loop
  (goal ≤ 1.5×); the two thread counts are timed in alternating rounds, so a
  neighbour's load hits both alike;
* first-run time in a fresh process with an empty Numba cache (JIT compile
  included; goal ≤ 5 s; best of three processes) and with the on-disk cache warm, against Brian2's
  first cython run (compilation included when its cache is cold);
* the floor set by the neuron state of a step-by-step update: reading and
  writing back v, ge and gi of every neuron (48 bytes a neuron), what Brian2
  does; a Numba loop that does only that is timed here. neurolns keeps the
  decay of ge and gi as a factor per group (docs/spiking.md, "Factored
  decay") and writes only v (32 bytes a neuron), so its whole step can come
  under this floor.

Usage: ``python benchmarks/spiking.py [--quick] [--no-standalone] [--threads T] [--float32]``
(``--quick``: 4000 × 1 s only; ``--threads 1``: one thread only; ``--float32``:
the 40k case also with float32 neuron state, against Brian2 cython run with
``prefs.core.default_float_dtype = float32``).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _common import machine_line, report  # noqa: E402


from neurolns.models.cuba import CUBAConfig, build_cuba, build_cuba_brian2  # noqa: E402

_FIRST_RUN = """
import time
t0 = time.perf_counter()
from neurolns.models.cuba import CUBAConfig, build_cuba
net = build_cuba(CUBAConfig(), seed=0)
net.run(1.0, progress=False)
print(time.perf_counter() - t0)
"""


def neurolns_warm(n: int, seconds: float, repeat: int, configs=((1, "float64"),)) -> dict:
    """Best warm ``run()`` time per (threads, dtype), the configurations timed in alternating rounds."""
    for T, dtype in configs:
        # compile (or load from the disk cache) outside the timing: the same size, so the
        # same kernel variant (large networks add the pass that prefetches synapse rows)
        build_cuba(CUBAConfig(n=n), seed=99, threads=T, dtype=dtype).run(0.01, progress=False)
    best = {c: float("inf") for c in configs}
    for r in range(repeat):
        for T, dtype in configs:
            net = build_cuba(CUBAConfig(n=n), seed=r, record=True, threads=T, dtype=dtype)
            t0 = time.perf_counter()
            net.run(seconds, progress=False)
            best[(T, dtype)] = min(best[(T, dtype)], time.perf_counter() - t0)
    return best


def state_traffic_floor(n: int, seconds: float, repeat: int = 3) -> float:
    """Best time of the neuron-state traffic of ``seconds`` of CUBA with ``n`` neurons and
    nothing else: each 0.1 ms step reads and writes back three float64 arrays of ``n``."""
    import numba
    import numpy as np

    @numba.njit(nogil=True, error_model="numpy")
    def stream(v, ge, gi, steps):
        for _ in range(steps):
            for k in range(v.shape[0]):
                v[k] = -49.0 + (v[k] + 49.0) * 0.995 + ge[k] * 0.0049 + gi[k] * 0.0049
                ge[k] *= 0.98
                gi[k] *= 0.99

    v, ge, gi = np.zeros(n), np.ones(n), np.ones(n)
    stream(v, ge, gi, 1)
    steps = int(round(seconds / 1e-4))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        stream(v, ge, gi, steps)
        best = min(best, time.perf_counter() - t0)
    return best


def brian2_cython(n: int, seconds: float, repeat: int, dtype: str = "float64") -> tuple[float, float]:
    """(first run() in this process, best warm run()) with the cython target."""
    import brian2 as b2

    b2.prefs.codegen.target = "cython"
    b2.prefs.core.default_float_dtype = b2.float32 if dtype == "float32" else b2.float64
    try:
        times = []
        for r in range(repeat + 1):
            net, _ = build_cuba_brian2(CUBAConfig(n=n), seed=r)
            t0 = time.perf_counter()
            net.run(seconds * b2.second)
            times.append(time.perf_counter() - t0)
    finally:
        b2.prefs.core.default_float_dtype = b2.float64
    return times[0], min(times[1:])


def brian2_standalone_loop(n: int, seconds: float, directory: str) -> float:
    """Best simulation-loop time of two cpp_standalone runs (the second reuses the build)."""
    loops = []
    for seed in (0, 1):
        cmd = [sys.executable, "-m", "neurolns.scenarios.cuba_vs_brian2", "--standalone-worker", directory,
               "--n", str(n), "--seconds", str(seconds), "--worker-seed", str(seed)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        loops.append(json.loads(out.strip().splitlines()[-1])["loop_s"])
    return min(loops)


def first_run(cold: bool, repeat: int = 3) -> float:
    """Best of ``repeat`` fresh processes (each with its own empty Numba cache when ``cold``)."""
    best = float("inf")
    for _ in range(repeat):
        env = dict(os.environ)
        tmp = None
        if cold:
            tmp = tempfile.mkdtemp(prefix="numba_cold_")
            env["NUMBA_CACHE_DIR"] = tmp
        try:
            out = subprocess.run([sys.executable, "-c", _FIRST_RUN], capture_output=True, text=True, env=env,
                                 check=True)
            best = min(best, float(out.stdout.strip().splitlines()[-1]))
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-standalone", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="thread count timed besides 1 (1: one thread only)")
    ap.add_argument("--float32", action="store_true",
                    help="also time float32 neuron state, against Brian2 cython with float32 (40k case)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads={args.threads} is out of range; allowed: >= 1")
    print(machine_line())
    cases = [(4000, 1.0)] if args.quick else [(4000, 1.0), (4000, 10.0), (40000, 1.0)]
    counts = (1,) if args.threads == 1 else (1, args.threads)
    results = {}
    work = tempfile.mkdtemp(prefix="spiking_bench_")
    try:
        for n, sec in cases:
            rep = 2 if sec > 1 or n > 4000 else args.repeat
            configs = [(T, "float64") for T in counts]
            if args.float32 and n > 4000:
                configs += [(T, "float32") for T in counts]
            ours = neurolns_warm(n, sec, rep + 1 if n > 4000 else rep, configs)
            b2_first, b2_warm = brian2_cython(n, sec, rep)
            name = f"CUBA {n // 1000}k x {sec:g} s"
            report(f"{name}: Brian2 cython run() warm", b2_warm, "s")
            row = {"brian2_cython_s": b2_warm, "brian2_cython_first_s": b2_first}
            if any(d == "float32" for _, d in configs):
                _, b2_warm32 = brian2_cython(n, sec, rep, "float32")
                report(f"{name}: Brian2 cython run() warm, float32", b2_warm32, "s")
                row["brian2_cython_float32_s"] = b2_warm32
            for (T, dtype), t in ours.items():
                base = b2_warm if dtype == "float64" else b2_warm32
                tag = f"neurolns {T} thread{'s' if T > 1 else ''}" + (", float32" if dtype == "float32" else "")
                report(f"{name}: {tag} warm run", t, "s")
                report(f"{name}: {tag} speed-up over Brian2 cython" + (" float32" if dtype == "float32" else ""),
                       base / t, "x", goal=">= 10", ok=base / t >= 10)
                row[f"neurolns_{T}t_{dtype}_s"] = t
            ours = {T: t for (T, dtype), t in ours.items() if dtype == "float64"}
            floor = state_traffic_floor(n, sec)
            report(f"{name}: step-by-step neuron-state traffic alone, one thread (48 B/neuron/step)", floor, "s")
            report(f"{name}: neurolns 1 thread / that floor", ours[1] / floor, "x")
            report(f"{name}: Brian2 cython / that floor", b2_warm / floor, "x")
            row["state_traffic_floor_s"] = floor
            if not args.no_standalone and shutil.which("g++"):
                loop = brian2_standalone_loop(n, sec, os.path.join(work, f"sa_{n}_{sec:g}"))
                report(f"{name}: Brian2 cpp_standalone loop", loop, "s")
                for T, t in ours.items():
                    report(f"{name}: neurolns {T} thread{'s' if T > 1 else ''} / standalone loop", t / loop, "x",
                           goal="<= 1.5", ok=t / loop <= 1.5)
                row["brian2_standalone_loop_s"] = loop
            results[name] = row
        cold = first_run(cold=True)
        warm_cache = first_run(cold=False)
        report("first run, CUBA 4k x 1 s, empty Numba cache (incl. JIT)", cold, "s", goal="<= 5", ok=cold <= 5)
        report("first run, CUBA 4k x 1 s, Numba cache on disk", warm_cache, "s")
        first_b2 = results["CUBA 4k x 1 s"]["brian2_cython_first_s"]
        report("Brian2 cython first run() in the process", first_b2, "s")
        report("Brian2 first run / neurolns cold first run", first_b2 / cold, "x")
        results["first_run"] = {"neurolns_cold_s": cold, "neurolns_cached_s": warm_cache, "brian2_cython_first_s": first_b2}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
