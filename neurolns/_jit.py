"""The one JIT wrapper every neurolns kernel goes through.

Kernels are compiled lazily, on first call (no eager signatures, so
``import neurolns`` compiles nothing), cached on disk (``cache=True``) so a second
process starts warm, and use numpy's error model (division by zero gives inf/nan
as numpy does instead of raising). ``parallel=True`` kernels use ``prange`` and
are worth it only above a size threshold; callers pick the serial or parallel
variant with :func:`use_parallel`.

Set ``NEUROLNS_DISABLE_JIT=1`` to run every kernel as plain Python (slow, but
debuggable); the reference paths never depend on this module.
"""

from __future__ import annotations

import functools
import os

import numba
import numpy as np
from numba import prange  # re-exported for kernels

__all__ = ["jit", "pjit", "prange", "use_parallel", "serial_twin", "pick", "PARALLEL_THRESHOLD"]

_DISABLED = os.environ.get("NEUROLNS_DISABLE_JIT", "") not in ("", "0")

#: Element count above which the parallel variant of a kernel pays for its
#: thread start-up (measured on 2 cores; about 50 µs of overhead per call).
PARALLEL_THRESHOLD = 1 << 16

def _as_python(f):
    """``f`` run as plain Python under Numba's arithmetic: integers wrap and
    floats overflow to inf or nan silently, where numpy scalars would warn."""

    @functools.wraps(f)
    def run(*args, **kwargs):
        with np.errstate(all="ignore"):
            return f(*args, **kwargs)

    run.py_func = f
    return run


_OPTIONS = dict(nopython=True, cache=True, error_model="numpy", nogil=True)


def jit(fn=None, *, fastmath: bool = False, inline: str = "never"):
    """Serial kernel: ``numba.njit(cache=True, error_model='numpy', nogil=True)``.

    ``inline="always"`` makes Numba inline the function's IR into each caller
    instead of compiling it as a function of its own: a small helper shared by
    two kernels then costs no compile of its own at a cold start.
    """

    def wrap(f):
        if _DISABLED:
            return _as_python(f)
        return numba.jit(**_OPTIONS, fastmath=fastmath, inline=inline)(f)

    return wrap(fn) if fn is not None else wrap


def pjit(fn=None, *, fastmath: bool = False):
    """Parallel kernel (``parallel=True``); loops written with :data:`prange`."""

    def wrap(f):
        if _DISABLED:
            return _as_python(f)
        return numba.jit(**_OPTIONS, parallel=True, fastmath=fastmath)(f)

    return wrap(fn) if fn is not None else wrap


def use_parallel(n: int) -> bool:
    """Whether an ``n``-element job should take the parallel kernel."""
    return n >= PARALLEL_THRESHOLD and numba.config.NUMBA_NUM_THREADS > 1


def serial_twin(kernel):
    """The same kernel compiled without ``parallel=True`` (``prange`` runs as ``range``).

    Small inputs run faster serially: a parallel region costs a thread
    start-up that a few thousand elements never repay.
    """
    return jit(getattr(kernel, "py_func", kernel))


def pick(parallel_kernel, serial_kernel, n: int):
    """``parallel_kernel`` for ``n`` elements above :data:`PARALLEL_THRESHOLD`, else the serial one."""
    return parallel_kernel if use_parallel(n) else serial_kernel
