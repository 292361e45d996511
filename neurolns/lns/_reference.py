"""Float64 reference paths of the codec: plain numpy, written for clarity.

The Numba kernels in :mod:`neurolns.lns._codec_kernels` must give the same codes
and values; the tests compare the two on millions of values and on edge cases.
"""

from __future__ import annotations

import math

import numpy as np

from neurolns.formats import LNSFormat, Rounding, Underflow


#: as the kernels' guard (:data:`neurolns.lns._codec_kernels._GUARD`)
_GUARD = 2.0 ** -42


def log2_scale_of(scale) -> tuple[np.ndarray, bool]:
    """``(log2 σ, all σ are powers of two)``; for powers of two ``log2 σ`` comes
    from ``frexp`` (exact), else from ``np.log2`` (the encoders guard its error)."""
    s = np.asarray(scale, dtype=np.float64)
    if s.size == 1:  # scalar fast path (math.frexp is exact, as np.frexp)
        mant, ex = math.frexp(float(s.reshape(-1)[0]))
        if mant == 0.5:
            return np.full(s.shape, ex - 1, dtype=np.float64), True
        return np.log2(s), False
    mant, ex = np.frexp(s)
    if np.all(mant == 0.5):
        return (ex - 1).astype(np.float64), True
    return np.log2(s), False


def encode_reference(x, fmt: LNSFormat, scale, rounding: Rounding, u=None) -> np.ndarray:
    """Codes of ``x`` (any float array) at scale ``σ`` (positive, broadcastable), exactly.

    ``t = γ log2(|x|/σ)`` (a real number); nearest: ``e = rint(t)``; stochastic:
    ``e = floor(t) + [u < t - floor(t)]``. ``e > e_max`` saturates (±inf too);
    ``e < e_min`` flushes to zero or saturates to ``e_min`` per ``fmt.underflow``.
    NaN gives code 0 (the caller raises before using it).

    ``t`` is evaluated with numpy's float64 ``log2``; values whose decision
    lies within a guard of a rounding boundary are decided again exactly: by
    counting the exact integer thresholds of the 52-bit mantissa
    (:func:`neurolns.lns._exact.threshold_ceilings`) at power-of-two scales,
    else with :func:`neurolns.lns._exact.exact_exponent`, so the codes are exact whatever
    ``log2`` numpy dispatches to (the Numba kernels decide the same values
    another way: thresholds, or Numba's ``log2`` with the same guard).
    """
    from neurolns.lns._exact import exact_exponent, threshold_ceilings

    x = np.asarray(x, dtype=np.float64)
    sig = np.broadcast_to(np.asarray(scale, dtype=np.float64), x.shape)
    ls, _ = log2_scale_of(sig)
    a = np.abs(x)
    g = fmt.gamma
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log2(a)
        t = g * (lg - ls)
        guard = (g * (np.abs(lg) + np.abs(ls)) + 1.0) * _GUARD
        if rounding == Rounding.NEAREST:
            e = np.rint(t)
            undecided = np.abs(np.abs(t - e) - 0.5) < guard
        else:
            uu = np.asarray(u, dtype=np.float64).reshape(x.shape)
            k = np.rint(t)
            near = np.abs(t - k) < guard
            fl = np.floor(t)
            f = t - fl
            e = np.where(near, k, fl + (uu < f))
            undecided = np.where(near, (uu < 2 * guard) | (uu >= 1 - 2 * guard), np.abs(f - uu) < guard)
    undecided &= np.isfinite(a) & (a > 0)
    sig_mant, sig_exp = np.frexp(sig)
    pow2 = sig_mant == 0.5
    by_threshold = undecided & pow2 if rounding == Rounding.NEAREST else np.zeros_like(undecided)
    if by_threshold.any():  # count the exact 52-bit thresholds at or below the mantissa
        mant, ex = np.frexp(a[by_threshold])
        field = (mant * 2.0**53).astype(np.int64) - (1 << 52)
        count = np.searchsorted(threshold_ceilings(g, 52), field, side="right")
        e[by_threshold] = g * (ex - sig_exp[by_threshold]) + count  # log2 σ = sig_exp − 1
        undecided &= ~by_threshold
    for i in zip(*np.nonzero(undecided)) if x.ndim else ([()] if undecided else []):
        e[i] = exact_exponent(float(x[i]), float(sig[i]), g, rounding == Rounding.STOCHASTIC,
                              float(uu[i]) if rounding == Rounding.STOCHASTIC else 0.0)
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


def decode_reference(codes, fmt: LNSFormat, scale=1.0, dtype=np.float64) -> np.ndarray:
    """Values ``sign(c) · σ · 2**((|c| - β)/γ)`` (0 for ``c = 0``), each rounded on its own.

    Power-of-two scales: the correctly rounded value in ``dtype``
    (:func:`neurolns.lns._exact.round_exp2` of ``|c| − β + γ log2 σ``, one
    value at a time from the exact integers ``H_r``). Other scales: the
    correctly rounded float64 ``2**((|c| − β)/γ)`` times ``σ`` in float64, then
    rounded to ``dtype``."""
    from neurolns.lns._exact import _round_exp2_many

    dtype = np.dtype(dtype)
    c = np.asarray(codes).astype(np.int64)
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), c.shape)
    mag = np.abs(c).reshape(-1)
    ls, pow2 = log2_scale_of(s)
    ls = ls.reshape(-1)
    e = mag - fmt.bias
    nz = mag > 0
    v = np.zeros(mag.size, dtype=np.float64)
    if pow2:
        v[nz] = _round_exp2_many(e[nz] + fmt.gamma * ls[nz].astype(np.int64), fmt.gamma, dtype)
    else:
        v[nz] = _round_exp2_many(e[nz], fmt.gamma, np.dtype(np.float64)) * s.reshape(-1)[nz]
    v = v.reshape(c.shape)
    return (np.sign(c) * v).astype(dtype)


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
