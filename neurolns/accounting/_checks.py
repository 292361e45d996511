"""Checks of the counts, sizes and byte figures the accounting prices.

A count is a real number ``>= 0`` and finite (a negative or NaN count would be
priced as negative or NaN energy); a size (elements, channels, a batch, a
kernel width) is moreover a whole number. Errors name the argument and the
allowed range: ``TypeError`` for what is not a real number (bools included),
``ValueError`` for a value out of range.
"""

from __future__ import annotations

import math
from numbers import Real

__all__ = ["check_count", "check_size", "check_sizes"]


def check_count(name: str, n, *, minimum: float = 0) -> float | int:
    """``n`` unchanged if it is a finite real number ``>= minimum``.

    >>> check_count("macs", 2.5)
    2.5
    >>> check_count("macs", -2)
    Traceback (most recent call last):
    ...
    ValueError: macs=-2 is out of range; allowed: a finite number >= 0
    """
    if isinstance(n, bool) or not isinstance(n, Real):
        raise TypeError(f"{name} must be a real number, got {type(n).__name__} {n!r}")
    if not (math.isfinite(n) and n >= minimum):
        raise ValueError(f"{name}={n!r} is out of range; allowed: a finite number >= {minimum}")
    return n


def check_size(name: str, n, *, minimum: int = 0) -> int:
    """``n`` as an int if it is a whole number ``>= minimum`` (``3.0`` passes, ``2.5`` does not).

    >>> check_size("batch", 4.0)
    4
    >>> check_size("batch", 2.5)
    Traceback (most recent call last):
    ...
    ValueError: batch=2.5 is out of range; allowed: a whole number >= 0
    """
    check_count(name, n, minimum=-math.inf)
    if n != int(n) or n < minimum:
        raise ValueError(f"{name}={n!r} is out of range; allowed: a whole number >= {minimum}")
    return int(n)


def check_sizes(name: str, seq, *, minimum: int = 0) -> list:
    """Every entry of the sequence ``seq`` through :func:`check_size`, named ``name[i]``."""
    if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
        raise TypeError(f"{name} must be a sequence of whole numbers, got {type(seq).__name__} {seq!r}")
    return [check_size(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(seq)]
