"""Float64 reference paths of LNS addition: plain numpy, written for clarity.

The sum of two LNS values with exponent fields ``m1 >= m2`` (same scale) is

.. math::  m = m_1 + \\Phi^{\\pm}(d), \\qquad d = m_1 - m_2 \\ge 0,

with the Gaussian logarithms in codes (``γ`` codes per octave, ``z = -d/γ``)

.. math::  \\Phi^{+}(d) = \\gamma\\, s_b(z) = \\gamma \\log_2(1 + 2^{z}),\\qquad
           \\Phi^{-}(d) = \\gamma\\, d_b(z) = \\gamma \\log_2(1 - 2^{z}),

``Φ+`` for operands of equal sign, ``Φ-`` for opposite signs (the sign is that
of the larger operand; ``d = 0`` with opposite signs is exact zero). The three
modes differ only in how ``Φ±(d)`` becomes an integer:

* ``exact``    ``rint(Φ±(d))`` -- correctly rounded;
* ``lut``      linear interpolation in a table of ``Φ±`` sampled every ``2**s``
  codes, then ``rint``; ``Φ-`` for ``d < γ`` (the singularity at 0) from a
  small exact table;
* ``mitchell`` Mitchell's linear approximations ``2**f ≈ 1 + f`` and
  ``log2(1 + f) ≈ f`` in fixed point, truncating shifts as in hardware;
  ``Φ-`` for ``d < γ`` from the same small exact table.

The Numba kernels look the same ``Φ±`` up in integer tables built from the
functions here (:func:`correction_tables`), so the tests compare the kernels'
results with :func:`add_codes_reference`, which evaluates the formulas per
element, and both with a float64 oracle (decode, add, encode).

References: Arnold et al., "Arithmetic co-transformations in the real and
complex logarithmic number systems", IEEE Trans. Computers 47(7), 1998
(Gaussian logarithms, the ``d_b`` singularity); Mitchell, "Computer
multiplication and division using binary logarithms", IRE Trans. EC-11, 1962.
"""

from __future__ import annotations

import math

import numpy as np

from neurolns.formats import LNSFormat, Underflow
from neurolns.lns._exact import gauss_log_rint

_LN2 = math.log(2.0)


def phi_plus(d, gamma: int) -> np.ndarray:
    """``γ log2(1 + 2**(-d/γ))`` in float64 (codes); ``d >= 0``."""
    d = np.asarray(d, dtype=np.float64)
    return gamma * np.log1p(np.exp2(-d / gamma)) / _LN2


def phi_minus(d, gamma: int) -> np.ndarray:
    """``γ log2(1 - 2**(-d/γ))`` in float64 (codes); ``-inf`` at ``d = 0``.

    Written with ``expm1`` so that ``1 - 2**z`` keeps its digits near ``z = 0``.
    """
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return gamma * np.log(-np.expm1(-d * _LN2 / gamma)) / _LN2


def cutoff(gamma: int) -> int:
    """Smallest ``d`` from which ``rint(Φ+(d)) = rint(Φ-(d)) = 0``.

    Beyond it the smaller operand no longer moves the larger one's code. Both
    ``|Φ±(d)| < 1/2`` once ``2**(-d/γ) < 1 - 2**(-1/(2γ))``.
    """
    x = -math.expm1(-_LN2 / (2.0 * gamma))  # 1 - 2**(-1/(2γ)), below 2**(1/(2γ)) - 1
    d = max(1, int(math.floor(-gamma * math.log2(x))) - 2)
    while gauss_log_rint(d, gamma, False) != 0 or gauss_log_rint(d, gamma, True) != 0:
        d += 1
    return d


def lut_step_log2(gamma: int, table_size: int) -> int:
    """``s`` such that the table samples every ``2**s`` codes and covers ``[0, cutoff]``
    with at most ``table_size`` entries (``s = 0``: every code is sampled)."""
    span = cutoff(gamma)
    s = 0
    while -(-span // (1 << s)) + 1 > table_size:
        s += 1
    return s


def default_table_size(gamma: int) -> int:
    """Default LUT entries per function: ``2**ceil(log2(cutoff(γ)/sqrt(γ)))``, at least 8.

    Linear interpolation of ``Φ+`` with a sample spacing of ``h`` octaves errs
    by at most ``γ h² ln2 / 32`` codes (``|s_b''| ≤ ln2/4``); this size keeps
    the spacing near ``1/sqrt γ`` octave, so the interpolation error stays
    below a code and the result within one code of the correctly rounded sum
    (checked exhaustively for LNS8/12/16 in the tests).
    """
    n = cutoff(gamma) / math.sqrt(gamma)
    return max(8, 1 << int(math.ceil(math.log2(n))))


#: fractional bits of the stored samples of the lookup-table adder (fixed point, as in
#: hardware): 2^-24 code is far below the interpolation error, and the samples are
#: decided exactly, so the table is the same on every machine
LUT_SAMPLE_BITS = 24


def _sample_plus(d, gamma):
    """``Φ+`` at sample points ``d``, rounded exactly to :data:`LUT_SAMPLE_BITS` fractional bits."""
    return gauss_log_rint(d, gamma, True, LUT_SAMPLE_BITS) / float(1 << LUT_SAMPLE_BITS)


def _sample_minus(d, gamma):
    """``Φ−`` at sample points ``d ≥ 1``, rounded exactly to :data:`LUT_SAMPLE_BITS` fractional bits."""
    return gauss_log_rint(d, gamma, False, LUT_SAMPLE_BITS) / float(1 << LUT_SAMPLE_BITS)


def _lut_interp(d, gamma: int, step_log2: int, fn, first: int) -> np.ndarray:
    """Linear interpolation of ``fn`` sampled at ``d = first + k·2**s``; float64 codes."""
    d = np.asarray(d, dtype=np.int64)
    h = 1 << step_log2
    rel = np.maximum(d - first, 0)
    k = rel >> step_log2
    frac = (rel & (h - 1)) / h
    lo = fn(first + k * h, gamma)
    hi = fn(first + (k + 1) * h, gamma)
    return lo + frac * (hi - lo)


def _mitchell_antilog(d, gamma: int) -> np.ndarray:
    """``γ · 2**(-d/γ)`` by Mitchell: ``(γ + f) >> -I`` with ``-d = I·γ + f``, ``0 <= f < γ``."""
    u = -np.asarray(d, dtype=np.int64)
    f_bits = gamma.bit_length() - 1
    i = u >> f_bits  # floor(-d/γ) <= 0
    f = u & (gamma - 1)
    sh = np.minimum(-i, 62)
    return (gamma + f) >> sh


def correction_reference(d, gamma: int, mode: str, same_sign, table_size: int | None = None) -> np.ndarray:
    """Integer correction ``Φ±(d)`` of one mode, per element, in int64.

    ``same_sign`` selects ``Φ+`` (True) or ``Φ-`` (False) and broadcasts with
    ``d``. ``Φ-(0)`` is returned as a large negative number (the caller turns
    the result into exact zero).
    """
    d = np.asarray(d, dtype=np.int64)
    same = np.broadcast_to(np.asarray(same_sign, dtype=bool), d.shape)
    span = cutoff(gamma)
    big = -(1 << 40)
    with np.errstate(invalid="ignore"):
        ex_minus = np.where(d > 0, gauss_log_rint(np.maximum(d, 1), gamma, False), big)
    if mode == "exact":
        plus = gauss_log_rint(d, gamma, True)
        minus = ex_minus
    elif mode == "lut":
        s = lut_step_log2(gamma, table_size or default_table_size(gamma))
        plus = np.rint(_lut_interp(d, gamma, s, _sample_plus, 0))
        # Φ- is interpolated from d = γ on; below, the small exact table.
        minus = np.where(d < gamma, ex_minus, np.rint(_lut_interp(np.maximum(d, gamma), gamma, s, _sample_minus, gamma)))
    elif mode == "mitchell":
        x = _mitchell_antilog(d, gamma)  # γ · 2**z in codes, truncated
        plus = x  # log2(1 + x) ≈ x on [1, 2)
        # For d >= γ, 1 - x lies in [1/2, 1): log2 ≈ -1 + (2(1 - x) - 1) = -2x.
        minus = np.where(d < gamma, ex_minus, -2 * x)
    else:
        raise ValueError(f"unknown add mode {mode!r}")
    # Past the table's end the smaller operand no longer counts (as in hardware).
    plus = np.where(d >= span, 0, plus)
    minus = np.where(d >= span, 0, minus)
    return np.where(same, plus, minus).astype(np.int64)


def add_codes_reference(ca, cb, fmt: LNSFormat, mode: str = "exact", table_size: int | None = None,
                        shift_b=0) -> np.ndarray:
    """Codes of ``a + b`` (numpy broadcasting) in ``fmt``, evaluated per element.

    ``shift_b`` (integer, broadcastable) is added to ``|cb|`` before the sum:
    ``b``'s scale is ``2**(shift_b/γ)`` times ``a``'s. The result saturates at
    ``max_code`` and underflows per ``fmt.underflow``; ``x + (-x)`` is exact zero.
    """
    ca, cb = np.broadcast_arrays(np.asarray(ca, dtype=np.int64), np.asarray(cb, dtype=np.int64))
    ma = np.abs(ca)
    mb = np.abs(cb) + np.asarray(shift_b, dtype=np.int64)
    a_big = ma >= mb
    mbig = np.where(a_big, ma, mb)
    sbig = np.where(a_big, np.sign(ca), np.sign(cb))
    d = np.abs(ma - mb)
    same = np.sign(ca) == np.sign(cb)
    m = mbig + correction_reference(d, fmt.gamma, mode, same, table_size)
    cancel = (~same) & (d == 0)
    m = np.minimum(m, fmt.max_code)
    low = m < 1
    if fmt.underflow == Underflow.SATURATE:
        m = np.where(low, 1, m)
    else:
        m = np.where(low, 0, m)
    out = np.where(cancel, 0, sbig * m)
    # A zero operand returns the other one (b re-expressed on a's scale).
    b_alone = np.sign(cb) * np.minimum(mb, fmt.max_code)
    if fmt.underflow == Underflow.SATURATE:
        b_alone = np.where((cb != 0) & (mb < 1), np.sign(cb), b_alone)
    else:
        b_alone = np.where(mb < 1, 0, b_alone)
    out = np.where(ca == 0, b_alone, out)
    out = np.where(cb == 0, ca, out)
    return out.astype(fmt.code_dtype)


def add_oracle(ca, cb, fmt: LNSFormat, shift_b=0) -> np.ndarray:
    """Correctly rounded ``a + b`` through float64 values: decode, add, encode.

    Independent of the Gaussian-log formulas: both values are decoded relative
    to the larger field ``M`` (so wide formats cannot overflow float64), added,
    and re-encoded as ``M + rint(γ log2|s|)`` (``rint(x + M) = rint(x) + M``
    for an integer ``M``). Exact for formats up to about 20 bits, where
    float64 holds every such sum with digits to spare.
    """
    ca, cb = np.broadcast_arrays(np.asarray(ca, dtype=np.int64), np.asarray(cb, dtype=np.int64))
    g = fmt.gamma
    ma = np.abs(ca)
    mb = np.abs(cb) + np.asarray(shift_b, dtype=np.int64)
    big = np.maximum(np.where(ca == 0, mb, ma), np.where(cb == 0, ma, mb))
    va = np.where(ca == 0, 0.0, np.sign(ca) * np.exp2((ma - big) / g))
    vb = np.where(cb == 0, 0.0, np.sign(cb) * np.exp2((mb - big) / g))
    s = va + vb
    with np.errstate(divide="ignore", invalid="ignore"):
        m = big + np.rint(g * np.log2(np.abs(s)))
    m = np.minimum(m, fmt.max_code)
    low = m < 1
    if fmt.underflow == Underflow.SATURATE:
        m = np.where(low & (s != 0), 1, m)
        low = s == 0
    m = np.where(low | (s == 0), 0, m)
    m = np.where(np.isfinite(m), m, 0).astype(np.int64)
    return (np.sign(s).astype(np.int64) * m).astype(fmt.code_dtype)
