"""Fake quantisation of activations, error signals and forward weights to any format.

:func:`fake_quantize` rounds a float32 array to the values of a format and
returns them as float32 (the "fake quantisation" of QPyTorch and torchao):

* :class:`~neurolns.formats.LNSFormat` — :func:`neurolns.lns.quantize`, a
  per-tensor power-of-two scale chosen from the finite values, rounding in
  the log domain (correctly rounded, or stochastic: unbiased in the log domain);
* :class:`~neurolns.formats.FloatFormat` — the nearest value with the format's
  exponent range and ``mantissa_bits`` (ties to even; subnormals kept; past the
  largest finite value ±inf, or ± the largest value for ``finite_only``
  formats such as FP8 E4M3). FP32 is the identity. BF16 and FP16 equal torch's
  ``x.to(torch.bfloat16)`` / ``x.to(torch.float16)`` (a test holds this);
* :class:`~neurolns.formats.IntFormat` — symmetric per-tensor quantisation,
  ``s = max|x| / (2^{b-1} − 1)``, ``q = clip(round(x/s))`` (ties to even), value ``s·q``.

Stochastic rounding (``rounding="stochastic"``) rounds up with probability
equal to the distance from the lower neighbour in the format's own grid
(log-domain for LNS, linear for float and integer formats), so the rounding is
unbiased in that grid.

NaN passes through as NaN (it is masked around the rounding) in every format,
which is the simulator's policy for non-finite activations
(``docs/input_policy.md``).
"""

from __future__ import annotations

import numpy as np

from neurolns.formats import FloatFormat, IntFormat, LNSFormat, Rounding

__all__ = ["fake_quantize", "check_quant_format"]


def check_quant_format(name: str, fmt):
    """``fmt`` if it is a format the quantisers know or ``None``, else ``TypeError`` naming ``name``."""
    if fmt is None or isinstance(fmt, (LNSFormat, FloatFormat, IntFormat)):
        return fmt
    raise TypeError(f"{name} must be an LNSFormat, FloatFormat, IntFormat or None (float32), "
                    f"got {type(fmt).__name__} {fmt!r}")


def _uniform(rng, shape) -> np.ndarray:
    return np.random.default_rng(rng).random(shape)


def _float_round(x: np.ndarray, fmt: FloatFormat, rounding: Rounding, rng) -> np.ndarray:
    """Round finite float64 ``x`` to ``fmt``'s grid (exact float64 arithmetic: every
    quantum is a power of two and every quotient below 2^53)."""
    bias = (1 << (fmt.exponent_bits - 1)) - 1
    emin = 1 - bias
    _, e = np.frexp(x)  # |x| = m·2^e, m in [0.5, 1): the leading bit has weight 2^(e-1)
    q = np.ldexp(1.0, np.maximum(e - 1, emin) - fmt.mantissa_bits)
    t = x / q
    if rounding is Rounding.STOCHASTIC:
        r = np.floor(t + _uniform(rng, x.shape))
    else:
        r = np.rint(t)
    y = r * q
    big = np.abs(y) > fmt.max_magnitude
    if big.any():
        y[big] = np.sign(y[big]) * (fmt.max_magnitude if fmt.finite_only else np.inf)
    return y


def _int_round(x: np.ndarray, fmt: IntFormat, rounding: Rounding, rng) -> np.ndarray:
    qmax = float((1 << (fmt.bits - 1)) - 1)
    amax = float(np.abs(x).max()) if x.size else 0.0
    if amax == 0.0 or not np.isfinite(amax):
        finite = x[np.isfinite(x)]
        amax = float(np.abs(finite).max()) if finite.size else 0.0
        if amax == 0.0:
            return np.where(np.isfinite(x), 0.0, x)
    s = amax / qmax
    t = np.clip(x / s, -qmax, qmax)
    r = np.floor(t + _uniform(rng, x.shape)) if rounding is Rounding.STOCHASTIC else np.rint(t)
    return np.clip(r, -qmax, qmax) * s


def fake_quantize(x, fmt, *, rounding: Rounding | str = "nearest", rng=None) -> np.ndarray:
    """``x`` rounded to the values of ``fmt``, as float32 (NaN kept).

    Parameters
    ----------
    x : array_like of float
    fmt : LNSFormat, FloatFormat, IntFormat or None
        ``None`` (and FP32) return ``x`` as float32 unchanged.
    rounding : {"nearest", "stochastic"}
    rng : None, int or numpy.random.Generator
        Source of the uniform draws of stochastic rounding.

    Returns
    -------
    numpy.ndarray, float32

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns.formats import BF16, INT8, LNS8
    >>> x = np.array([1.0, 1.00390625, 1.01171875, np.nan], np.float32)   # 1, 1 + 2^-8, 1 + 3·2^-8
    >>> fake_quantize(x, BF16)       # ties to even: 1 + 2^-8 -> 1, 1 + 3·2^-8 -> 1 + 2^-6
    array([1.      , 1.      , 1.015625,      nan], dtype=float32)
    >>> fake_quantize(np.array([127.0, -0.4, 0.6]), INT8)
    array([127.,  -0.,   1.], dtype=float32)
    """
    fmt = check_quant_format("fmt", fmt)
    rounding = Rounding(rounding)
    a = np.ascontiguousarray(x, dtype=np.float32)
    if fmt is None or (isinstance(fmt, FloatFormat) and fmt.exponent_bits == 8 and fmt.mantissa_bits == 23):
        return a
    nan = np.isnan(a)
    has_nan = bool(nan.any())
    if isinstance(fmt, LNSFormat):
        from neurolns.lns import quantize

        # 0 does not change the finite max |x| the per-tensor scale is chosen from
        src = np.where(nan, np.float32(0), a) if has_nan else a
        kw = {"rounding": rounding, "seed": rng} if rounding is Rounding.STOCHASTIC else {}
        out = quantize(src, fmt, **kw).astype(np.float32)
    else:
        src = np.where(nan, 0.0, a.astype(np.float64))
        finite = np.isfinite(src)
        if isinstance(fmt, FloatFormat):
            y = src.copy()
            y[finite] = _float_round(src[finite], fmt, rounding, rng)
            if fmt.finite_only:  # no infinities in the format: they saturate
                y[~finite] = np.sign(src[~finite]) * fmt.max_magnitude
        else:
            y = _int_round(src, fmt, rounding, rng)
        out = y.astype(np.float32)
    if has_nan:
        out[nan] = np.nan
    return out
