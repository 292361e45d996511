"""Shared helpers for the benchmark scripts: timing and the bandwidth baseline.

Every benchmark prints its figures as ratios against a baseline measured in the
same run (numpy float32, torch FP32, Brian2, or the memory bandwidth measured
here), so that numbers from a loaded or different machine stay comparable.
"""
from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


def best_time(fn: Callable[[], object], *, repeat: int = 5, number: int = 1, warmup: int = 1) -> float:
    """Best wall time in seconds of ``number`` calls of ``fn`` over ``repeat`` trials."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def copy_baseline(n_bytes: int = 1 << 28) -> tuple[Callable[[], object], int]:
    """The copy the bandwidth bound is measured with: ``np.copyto`` of ``n_bytes`` of
    float64 into a reused destination, and the bytes it moves per call (read + write)."""
    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    return (lambda: np.copyto(dst, src)), 2 * src.nbytes


def memory_bandwidth_gbs(n_bytes: int = 1 << 28, repeat: int = 5) -> float:
    """Copy bandwidth in GB/s (bytes read + bytes written) of ``np.copyto``.

    This is the bound a streaming kernel is held to: a kernel that reads R and
    writes W bytes per element cannot beat ``(R + W) / bandwidth`` per element.
    """
    copy, nbytes = copy_baseline(n_bytes)
    return nbytes / best_time(copy, repeat=repeat) / 1e9


def best_of_rounds(jobs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best wall time in seconds of each job, timed once per round in turn, after one
    untimed call each (compilation, first touch of every page). A machine shared with
    other work then loads the baseline and the kernels alike."""
    for fn in jobs.values():
        fn()
    best = {k: float("inf") for k in jobs}
    for _ in range(rounds):
        for k, fn in jobs.items():
            best[k] = min(best[k], best_time(fn, repeat=1, warmup=0))
    return best


def timed_rounds(jobs: dict[str, Callable[[], object]], rounds: int) -> dict[str, np.ndarray]:
    """Wall time in seconds of each job in every round: one untimed call each first
    (compilation, first touch of every page), then each job timed once per round in
    turn, so that a machine shared with other work loads them alike and a ratio of two
    jobs taken within one round compares them under the same load."""
    for fn in jobs.values():
        fn()
    times = {k: np.empty(rounds) for k in jobs}
    for r in range(rounds):
        for k, fn in jobs.items():
            t0 = time.perf_counter()
            fn()
            times[k][r] = time.perf_counter() - t0
    return times


def median_spread(values) -> tuple[float, float, float]:
    """Median and the lower and upper quartiles of ``values``."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(med), float(q1), float(q3)


def copy_jobs(n_bytes: int, threads: int) -> tuple[dict[str, Callable[[], object]], int]:
    """Two copies of ``n_bytes`` of float64 on ``threads`` threads, and the bytes each
    moves per call (read + write).

    * ``"copy np"``: ``threads`` Python threads, each ``np.copyto`` of one contiguous
      slice (numpy releases the GIL for the copy, which is a ``memcpy``); with one
      thread, a plain ``np.copyto``;
    * ``"copy prange"``: a Numba ``prange`` loop run with ``numba.set_num_threads(threads)``.

    A kernel held to the bandwidth bound is compared with the faster of the two, on as
    many threads as the kernel itself runs: a parallel kernel against a one-thread copy
    would count the second core's share of the bandwidth as the kernel's merit.
    """
    import numba

    from neurolns._jit import pjit, prange

    @pjit
    def parallel_copy(dst, src):
        for i in prange(src.size):
            dst[i] = src[i]

    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    bounds = np.linspace(0, src.size, threads + 1).astype(np.int64)
    slices = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def copy_np():
        if pool is None:
            np.copyto(dst, src)
            return
        for f in [pool.submit(np.copyto, d, s) for d, s in slices]:
            f.result()

    def copy_prange():
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            parallel_copy(dst, src)
        finally:
            numba.set_num_threads(before)

    return {"copy np": copy_np, "copy prange": copy_prange}, 2 * src.nbytes


def bound_fractions(times: dict[str, np.ndarray], key: str, nbytes: float, copy_bytes: int) -> np.ndarray:
    """Per round, the fraction of the bandwidth bound job ``key`` reached: the time the
    round's faster copy (``copy_jobs``) would take to move the job's ``nbytes``, over the
    job's time in the same round."""
    copy = np.minimum(times["copy np"], times["copy prange"])
    return nbytes * copy / copy_bytes / times[key]


def kernel_threads() -> int:
    """Threads a Numba parallel kernel of neurolns runs on in this process."""
    import numba

    return numba.get_num_threads()


def machine_line() -> str:
    """One line naming the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def report(name: str, value: float, unit: str, *, goal: str = "", ok: bool | None = None) -> None:
    """Print one benchmark figure in a fixed layout."""
    verdict = "" if ok is None else ("  [meets goal]" if ok else "  [MISSES goal]")
    goal = f"  (goal {goal})" if goal else ""
    print(f"{name:<58s} {value:>12.4g} {unit:<10s}{goal}{verdict}")
