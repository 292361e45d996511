"""Argument checks shared by the learning rules (errors name the bad value)."""

from __future__ import annotations

import math

import numpy as np


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
