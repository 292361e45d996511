"""Float64 reference paths of the codec: plain numpy, written for clarity.

The Numba kernels in :mod:`neurolns.lns._codec_kernels` must give the same codes
and values; the tests compare the two on millions of values and on edge cases.
"""

from __future__ import annotations

import numpy as np

from neurolns.formats import LNSFormat, Rounding, Underflow


def encode_reference(x, fmt: LNSFormat, log2_scale, rounding: Rounding, u=None) -> np.ndarray:
    """Codes of ``x`` (any float array) at scale ``2**log2_scale`` (broadcastable).

    ``t = γ (log2|x| - log2 σ)``; nearest: ``e = rint(t)``; stochastic:
    ``e = floor(t) + [u < t - floor(t)]``. ``e > e_max`` saturates (±inf too);
    ``e < e_min`` flushes to zero or saturates to ``e_min`` per ``fmt.underflow``.
    NaN gives code 0 (the caller raises before using it).
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = fmt.gamma * (np.log2(a) - np.asarray(log2_scale, dtype=np.float64))
        if rounding == Rounding.NEAREST:
            e = np.rint(t)
        else:
            fl = np.floor(t)
            e = fl + (np.asarray(u, dtype=np.float64).reshape(x.shape) < (t - fl))
    e = np.where(np.isposinf(a), fmt.e_max, e)
    e = np.minimum(e, fmt.e_max)
    small = e < fmt.e_min
    if fmt.underflow == Underflow.SATURATE:
        e = np.where(small, fmt.e_min, e)
        small = np.zeros_like(small)
    zero = (a == 0) | np.isnan(a) | small
    m = np.where(zero, 0, e + fmt.bias)
    m = np.where(np.isfinite(m), m, 0).astype(np.int64)
    return np.where(x < 0, -m, m).astype(fmt.code_dtype)


def decode_reference(codes, fmt: LNSFormat, scale=1.0) -> np.ndarray:
    """Values ``sign(c) · σ · 2**((|c| - β)/γ)`` in float64 (0 for ``c = 0``).

    Formats spanning more octaves than float64 (:func:`wider_than_float64`) are
    evaluated as ``ldexp(σ · 2**(r/γ), q)`` with ``|c| − β = qγ + r``, so that
    ``2**((|c| − β)/γ)`` alone never overflows when the value itself is in range."""
    c = np.asarray(codes).astype(np.int64)
    m = np.abs(c)
    s = np.asarray(scale, dtype=np.float64)
    if wider_than_float64(fmt):
        q, r = np.divmod(m - fmt.bias, fmt.gamma)
        with np.errstate(over="ignore", under="ignore"):
            v = np.ldexp(np.exp2(r / fmt.gamma) * s, q)
        return np.sign(c) * np.where(m == 0, 0.0, v)
    v = np.where(m == 0, 0.0, np.exp2((m - fmt.bias) / fmt.gamma))
    return np.sign(c) * v * s


def wider_than_float64(fmt: LNSFormat) -> bool:
    """True when the format's exponents reach beyond ±1000 octaves, where ``2**(e/γ)`` alone
    can leave float64 although ``σ·2**(e/γ)`` is in range (e.g. 16 bits at γ = 8)."""
    return max(fmt.e_max, -fmt.e_min) > 1000 * fmt.gamma


def regrid_reference(codes, src: LNSFormat, dst: LNSFormat, rounding: Rounding, u=None) -> np.ndarray:
    """Re-express codes of ``src`` in ``dst`` at the same scale.

    The exponent ``e·γ_dst/γ_src`` is exact when ``γ_dst ≥ γ_src``; otherwise it is
    rounded in the log domain (nearest: ties to even; or stochastic), then
    saturated and underflowed per ``dst``.
    """
    c = np.asarray(codes).astype(np.int64)
    m = np.abs(c)
    t = (m - src.bias).astype(np.float64) * (dst.gamma / src.gamma)
    if rounding == Rounding.NEAREST:
        e = np.rint(t)
    else:
        fl = np.floor(t)
        e = fl + (np.asarray(u, dtype=np.float64).reshape(c.shape) < (t - fl))
    e = np.minimum(e, dst.e_max)
    small = e < dst.e_min
    if dst.underflow == Underflow.SATURATE:
        e = np.where(small, dst.e_min, e)
        small = np.zeros_like(small)
    out = np.where((m == 0) | small, 0, e + dst.bias).astype(np.int64)
    return np.where(c < 0, -out, out).astype(dst.code_dtype)
