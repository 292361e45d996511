"""Argument checks shared by the learning rules (errors name the bad value)."""

from __future__ import annotations

import math

import numpy as np

from neurolns.formats import _StrEnum
from neurolns.learning import _kernels as _k


def check_array(name: str, a, kind: str, shape=None) -> np.ndarray:
    """A C-contiguous ndarray of dtype kind ``kind`` ('f' float, 'i' signed int)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy ndarray, got {type(a).__name__}")
    if a.dtype.kind not in kind:
        allowed = {"f": "a float dtype", "i": "a signed integer dtype", "fi": "a float or signed integer dtype"}
        raise TypeError(f"{name} has dtype {a.dtype}; allowed: {allowed.get(kind, kind)}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; it must match the parameter's shape {shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is updated in place through a flat view)")
    return a


def check_writeable(name: str, a: np.ndarray) -> None:
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; the update is in place")


def check_real(name: str, x, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> float:
    """A real number in ``[lo, hi]`` (ends open when asked); returns it as float."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    x = float(x)
    bad = math.isnan(x) or x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi)
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name}={x!r} is out of range; allowed: {left}{lo}, {hi}{right}")
    return x


def check_step(t) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
        raise TypeError(f"t must be an int (the 1-based step count), got {type(t).__name__} {t!r}")
    if t < 1:
        raise ValueError(f"t={t} is out of range; allowed: t >= 1 (the step count is 1-based)")
    return int(t)


def inv_bias_correction(beta: float, t: int) -> float:
    """``1 / (1 − β^t)``: the bias correction of a zero-initialised moving average."""
    return 1.0 / (1.0 - beta**t) if beta > 0.0 else 1.0


# ---------------------------------------------------------------------------
# non-finite input (NaN, ±inf)


class NonFinite(_StrEnum):
    """What a stateful optimizer does with a step whose gradients hold NaN or ±inf.

    ``SKIP`` (default): the whole step is skipped, as ``torch.amp.GradScaler``
    skips it: no parameter, no optimizer state and no step count changes; a
    :class:`RuntimeWarning` names the first offending parameter and the
    optimizer's ``skipped_steps`` counter grows by one.
    ``RAISE``: :class:`ValueError` with the same message, nothing changed.
    """

    SKIP = "skip"
    RAISE = "raise"


#: below this many elements ``np.isfinite(a).all()`` is faster than dispatching the kernel
_FAST_MIN = 1 << 15

_EXPONENT_MASKS = {np.dtype(np.float32): (np.uint32, np.uint32(0x7F800000)),
                   np.dtype(np.float64): (np.uint64, np.uint64(0x7FF0000000000000))}


def _finite_fast(a: np.ndarray) -> bool:
    """True when every element of the float array ``a`` is finite (one streaming pass)."""
    if a.dtype not in _EXPONENT_MASKS:
        return bool(np.isfinite(a).all())
    utype, mask = _EXPONENT_MASKS[a.dtype]
    return _k.max_exponent(a.reshape(-1).view(utype), mask) != mask


def all_finite(a: np.ndarray, *, reference: bool = False) -> bool:
    """True when every element of ``a`` is finite; integer arrays are always finite.

    The fast path, for C-contiguous float32/float64 arrays of at least 2^15
    elements, is one Numba pass over the IEEE bit patterns (the largest
    exponent field of the array is all ones exactly when an element is NaN or
    ±inf), which streams at the memory bandwidth without numpy's temporary
    boolean array; otherwise, or with ``reference=True``, it is
    ``np.isfinite(a).all()``.
    """
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        return True
    if reference or a.size < _FAST_MIN or not a.flags.c_contiguous or a.dtype.kind == "c":
        return bool(np.isfinite(a).all())  # small arrays: numpy's call is cheaper than a kernel dispatch
    return _finite_fast(a)


def nonfinite_message(name: str, a: np.ndarray) -> str:
    """``"<name> holds N non-finite value(s) (NaN or ±inf); the first is <v> at index <i>"``."""
    a = np.asarray(a)
    bad = ~np.isfinite(a)
    count = int(np.count_nonzero(bad))
    flat = int(np.flatnonzero(bad.reshape(-1))[0]) if count else -1
    if count == 0:
        return f"{name} holds no non-finite value"
    index = np.unravel_index(flat, a.shape) if a.ndim > 1 else flat
    index = tuple(int(i) for i in index) if isinstance(index, tuple) else index
    return (f"{name} holds {count} non-finite value(s) (NaN or ±inf) of {a.size}; "
            f"the first is {a.reshape(-1)[flat]} at index {index}")


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise :class:`ValueError` naming ``name``, the count and the first index if ``a`` holds NaN or ±inf."""
    if not all_finite(a):
        raise ValueError(nonfinite_message(name, a) + "; allowed: finite values (pass check_finite=False "
                         "to skip this check at your own risk)")


def check_flag(name: str, x) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__} {x!r}")
    return bool(x)
