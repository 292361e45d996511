"""Checks that user data are finite, naming the first bad element.

Shared by the simulator's trainer and checkpoints, the system-identification
fits and the accounting (numpy only, so ``import neurolns`` stays light).

>>> import numpy as np
>>> from neurolns._finite import check_finite
>>> check_finite("X", np.array([[1.0, 2.0], [np.nan, 4.0]]))
Traceback (most recent call last):
...
ValueError: X holds 1 non-finite value(s) (NaN or ±inf); the first is nan at index (1, 0); allowed: finite numbers
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_finite"]


def check_finite(name: str, a) -> np.ndarray:
    """``a`` as an ndarray, after checking that every element is finite.

    Integer and bool arrays pass without a scan (they cannot hold NaN or inf).

    Raises
    ------
    TypeError
        If ``a`` is not numeric (strings, objects, complex).
    ValueError
        If an element is NaN or ±inf: the message counts them and gives the
        first one (C order) with its index.
    """
    arr = np.asarray(a)
    if arr.dtype.kind in "biu":
        return arr
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        flat = int(np.argmax(bad))
        idx = tuple(int(i) for i in np.unravel_index(flat, arr.shape)) if arr.ndim else ()
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or ±inf); the first is "
                         f"{float(arr.reshape(-1)[flat])!r} at index {idx}; allowed: finite numbers")
    return arr
