"""Validation of LNS codes and scales: the one policy every public function follows.

Codes are signed integers with ``|c| <= fmt.max_code`` (:mod:`neurolns.formats`);
scales are finite and strictly positive. Anything else raises, naming the first
bad index and the allowed range, before any output is written. The policy for
every kind of bad input across the library is on the page ``docs/input_policy.md``.

>>> import numpy as np
>>> from neurolns import LNS8
>>> from neurolns.lns import check_codes
>>> check_codes(np.array([3, -127, 0], np.int16), LNS8)
array([   3, -127,    0], dtype=int16)
>>> check_codes(np.array([3, 200]), LNS8)
Traceback (most recent call last):
...
ValueError: codes holds 1 value(s) out of range for LNS8(γ=8, bias=64, underflow=zero); the first is 200 at index (1,); allowed: -127 <= code <= 127
"""

from __future__ import annotations

import numpy as np

from neurolns.formats import LNSFormat

__all__ = ["check_codes", "check_scale", "first_index"]


def first_index(mask: np.ndarray) -> tuple:
    """Index tuple of the first ``True`` of ``mask`` in C order (``()`` for 0-d)."""
    mask = np.asarray(mask)
    if mask.ndim == 0:
        return ()
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _code_range_error(c: np.ndarray, fmt: LNSFormat, name: str) -> ValueError:
    bad = (c > fmt.max_code) | (c < -fmt.max_code)
    idx = first_index(bad)
    value = int(c[idx]) if c.ndim else int(c)
    return ValueError(
        f"{name} holds {int(bad.sum())} value(s) out of range for {fmt}; the first is {value} "
        f"at index {idx}; allowed: {-fmt.max_code} <= code <= {fmt.max_code}"
    )


def check_codes(codes, fmt: LNSFormat, *, name: str = "codes") -> np.ndarray:
    """``codes`` as an integer ndarray whose every element is a valid code of ``fmt``.

    Parameters
    ----------
    codes : array_like of int
        Signed codes ``c`` with ``|c| <= fmt.max_code`` (0 is exact zero).
    fmt : LNSFormat
    name : str
        How the error message calls the argument.

    Returns
    -------
    numpy.ndarray
        ``codes`` itself when it already is an integer ndarray (no copy).

    Raises
    ------
    TypeError
        If ``codes`` is not of an integer dtype (floats and bools are refused:
        a float code is almost always a value passed where a code was meant).
    ValueError
        If any ``|c| > fmt.max_code``; the message counts them and names the
        first (in C order) with its index.
    """
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    c = np.asarray(codes)
    if c.dtype.kind not in "iu" or c.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer array, got dtype {c.dtype}")
    if c.size == 0:
        return c
    info = np.iinfo(c.dtype)
    if info.min >= -fmt.max_code and info.max <= fmt.max_code:
        return c  # the dtype cannot hold a bad code
    lo, hi = (int(v) for v in (c.min(), c.max()))
    if lo < -fmt.max_code or hi > fmt.max_code:
        raise _code_range_error(c, fmt, name)
    return c


def check_scale(scale, *, name: str = "scale") -> np.ndarray:
    """``scale`` as a float64 array whose every element is finite and ``> 0``.

    Raises
    ------
    TypeError
        If ``scale`` is not real (complex, strings, objects).
    ValueError
        If an element is zero, negative, NaN or infinite (naming the first).

    >>> check_scale([1.0, 0.25])
    array([1.  , 0.25])
    >>> check_scale(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: scale must be finite and > 0; got -1.0 at index ()
    """
    if type(scale) is float or type(scale) is int:  # the common case, without array overhead
        if 0 < scale < float("inf"):
            return np.asarray(float(scale))
        raise ValueError(f"{name} must be finite and > 0; got {float(scale)!r} at index ()")
    try:
        s = np.asarray(scale)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a real number or array, got {type(scale).__name__}") from exc
    if s.dtype.kind not in "iuf" or s.dtype == np.bool_:
        raise TypeError(f"{name} must be a real number or array, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    bad = ~(np.isfinite(s) & (s > 0))
    if bad.any():
        idx = first_index(bad)
        raise ValueError(f"{name} must be finite and > 0; got {float(s[idx])!r} at index {idx}")
    return s
