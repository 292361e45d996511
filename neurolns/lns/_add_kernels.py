"""Numba kernels of LNS addition.

Every mode reduces to ``m = max(m_a, m_b) + Φ±(d)`` with an integer correction
looked up by ``d = |m_a - m_b|`` in two tables (``plus`` for equal signs,
``minus`` for opposite signs) that :mod:`neurolns.lns.add` builds from the
float64 reference formulas (:mod:`neurolns.lns._add_reference`). The last entry
of each table is 0 and every ``d`` past it uses it: there the smaller operand
no longer moves the sum. Kernels work on flat arrays; ``shift`` is a flat int64
array of length 1 (one scale ratio) or of the data's length.
"""

from __future__ import annotations

import numpy as np

from neurolns._jit import jit, pjit, prange


@jit
def _add_one(ca, cb, shift, plus, minus, max_code, saturate_small):
    """Code of ``a + b`` for one pair (``|b|``'s field moved by ``shift``)."""
    if cb == 0:
        return ca
    mb = abs(cb) + shift
    if ca == 0:
        m = mb
        neg = cb < 0
    else:
        ma = abs(ca)
        if ma >= mb:
            d = ma - mb
            m = ma
            neg = ca < 0
        else:
            d = mb - ma
            m = mb
            neg = cb < 0
        last = plus.size - 1
        k = d if d < last else last
        if (ca < 0) == (cb < 0):
            m += plus[k]
        else:
            if d == 0:
                return 0  # x + (-x) is exact zero in every mode
            m += minus[k]
    if m > max_code:
        m = max_code
    elif m < 1:
        if saturate_small:
            m = 1
        else:
            return 0
    return -m if neg else m


@jit
def add_kernel(ca, cb, shift, plus, minus, max_code, saturate_small, out):
    """Serial loop: ``out[i] = ca[i] + cb[i]`` in codes."""
    one = shift.size == 1
    for i in range(ca.size):
        s = shift[0] if one else shift[i]
        out[i] = _add_one(
            int(ca[i]), int(cb[i]), int(s), plus, minus, max_code, saturate_small
        )


@pjit
def add_kernel_parallel(ca, cb, shift, plus, minus, max_code, saturate_small, out):
    """Parallel loop (``prange``) of :func:`add_kernel` for large arrays."""
    one = shift.size == 1
    for i in prange(ca.size):
        s = shift[0] if one else shift[i]
        out[i] = _add_one(
            int(ca[i]), int(cb[i]), int(s), plus, minus, max_code, saturate_small
        )


@jit
def add_pairs_kernel(ca, cb, table, off, out):
    """8-bit formats: ``out[i] = table[ca[i] + off, cb[i] + off]``, the sum of every
    code pair tabulated once (64 KiB) by :func:`add_kernel` itself."""
    for i in range(ca.size):
        out[i] = table[np.int64(ca[i]) + off, np.int64(cb[i]) + off]


@pjit
def add_pairs_kernel_parallel(ca, cb, table, off, out):
    """Parallel loop of :func:`add_pairs_kernel` for large arrays."""
    for i in prange(ca.size):
        out[i] = table[np.int64(ca[i]) + off, np.int64(cb[i]) + off]


@jit
def sequential_sum_kernel(codes, shift, plus, minus, max_code, saturate_small, out):
    """Row-wise running LNS sum: ``acc = acc + x[j]`` one element at a time.

    ``codes`` is 2-D (rows, n); ``out[i]`` the code of row ``i``'s sum, held in
    the addends' format (no extra precision), as a naive LNS accumulator
    does; ``shift[i, j]`` moves each addend's field onto the sum's scale.
    """
    for i in range(codes.shape[0]):
        acc = 0
        for j in range(codes.shape[1]):
            acc = _add_one(acc, int(codes[i, j]), int(shift[i, j]), plus, minus, max_code, saturate_small)
        out[i] = acc
