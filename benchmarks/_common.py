"""Shared helpers for the benchmark scripts: timing and the bandwidth baseline.

Every benchmark prints its figures as ratios against a baseline measured in the
same run (numpy float32, torch FP32, Brian2, or the memory bandwidth measured
here), so that numbers from a loaded or different machine stay comparable.
"""
from __future__ import annotations

import os
import platform
import time
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
