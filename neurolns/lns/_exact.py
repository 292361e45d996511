"""Exact constants of the codec, computed once with high-precision decimal arithmetic.

Everything the codec decides — which code a float encodes to, which float a
code decodes to — is decided here, once per format, with :mod:`decimal`
(correctly rounded ``**``, ``ln`` and ``exp``, any precision) and Python
integers, and then looked up. No ``log2``/``exp2`` of libm, numpy's SIMD
dispatch, Numba, torch or CUDA enters a code or a decoded value, so they are
the same on every machine by construction.

Three kinds of constant:

* **Rounding thresholds of the mantissa** (:func:`threshold_ceilings`). For
  ``x = 2^E (1 + m/2^M)`` (``M`` mantissa bits, ``m`` an integer) and a
  power-of-two scale, ``rint(γ log2 x) = γE + #{k : m ≥ T_k}`` with
  ``T_k = (2^((k+½)/γ) − 1)·2^M``, ``k = 0..γ−1``. ``T_k`` is irrational
  (``(2k+1)/(2γ)`` is never an integer), so ``m ≥ T_k ⟺ m ≥ ⌈T_k⌉``: the
  integer ceilings decide every input exactly and there are no ties.
* **Decoded values** (:func:`exp2_floor`, :func:`round_exp2`). The value of
  exponent code ``e = qγ + r`` is ``2^q · 2^(r/γ)``. With
  ``H_r = ⌊2^(r/γ) · 2^K⌋`` known exactly (``K`` = 128 bits), ``2^(r/γ)·2^K =
  H_r + θ`` with ``0 < θ < 1`` for ``r > 0`` (irrational), so rounding to any
  binary format is decided by the bits of ``H_r`` alone: the round bit set
  means the discarded part is above one half, never equal to it.
* **The exact exponent of one value** (:func:`exact_exponent`), for the rare
  inputs a float computation cannot decide (non-power-of-two scales,
  stochastic rounding): ``t = γ log2(x/σ)`` evaluated with decimal ``ln`` at
  increasing precision until the decision is certain (Ziv's strategy).

"Exactly known" means: the decimal value carries an error bound, and every
decision checks that the bound cannot change it, else precision is raised.

References: J.-M. Muller et al., *Handbook of Floating-Point Arithmetic*, 2nd
ed., 2018 (correct rounding, Ziv's strategy); IEEE 754-2019.
"""

from __future__ import annotations

import decimal
import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

__all__ = ["threshold_ceilings", "exp2_floor", "round_exp2", "exp2_table", "exact_exponent"]

#: bits of the fixed-point values 2^(r/γ)·2^K from which every decoded value is rounded
_K = 128
#: decimal digits of the first attempt; doubled while a decision is not certain
_DIGITS = 60
_MAX_DIGITS = 4000


def _ctx(digits: int) -> decimal.Context:
    return decimal.Context(prec=digits, rounding=decimal.ROUND_HALF_EVEN, Emax=10**9, Emin=-(10**9))


def _pow2_frac(num: int, den: int, digits: int) -> decimal.Decimal:
    """``2^(num/den)`` to ``digits`` significant digits (correctly rounded by :mod:`decimal`).

    ``den`` is a power of two, so ``num/den`` is an exact (terminating) decimal.
    """
    ctx = _ctx(digits)
    expo = ctx.divide(decimal.Decimal(num), decimal.Decimal(den))  # exact: den = 2^n
    return ctx.power(decimal.Decimal(2), expo)


def _sequence_pow2(count: int, den: int, digits: int) -> list:
    """``[2^(j/den) for j in range(count)]``, each with relative error below
    ``(j+1)·10^(1−digits)``: one correctly rounded root, then products."""
    ctx = _ctx(digits)
    root = _pow2_frac(1, den, digits)
    out = [decimal.Decimal(1)]
    v = decimal.Decimal(1)
    for _ in range(1, count):
        v = ctx.multiply(v, root)
        out.append(v)
    return out


def _certain_floor(v: decimal.Decimal, err: decimal.Decimal) -> int | None:
    """``⌊v*⌋`` for every ``v*`` within ``err`` of ``v``, or None if an integer lies in between.

    The sums are exact: they are taken at a precision that holds every digit of
    ``v`` and ``err`` (the default decimal context keeps only 28)."""
    digits = max(len(v.as_tuple().digits), len(err.as_tuple().digits))
    span = max(v.adjusted(), err.adjusted()) - min(v.as_tuple().exponent, err.as_tuple().exponent) + 2
    ctx = _ctx(max(digits, span) + 10)
    lo = math.floor(ctx.subtract(v, err))
    hi = math.floor(ctx.add(v, err))
    return lo if lo == hi else None


@lru_cache(maxsize=64)
def threshold_ceilings(gamma: int, mant_bits: int) -> np.ndarray:
    """``⌈T_k⌉`` for ``T_k = (2^((2k+1)/(2γ)) − 1)·2^M``, ``k = 0..γ−1`` (int64, read-only).

    A mantissa field ``m`` (``0 ≤ m < 2^M``) of ``x = 2^E(1 + m/2^M)`` has
    ``rint(γ log2 x) = γE + #{k : m ≥ ⌈T_k⌉}`` exactly.

    >>> threshold_ceilings(1, 23)            # 2^(1/2) = 1.4142135623..., times 2^23
    array([3474676])
    >>> int(threshold_ceilings(1, 23)[0]) - 1 < (2 ** 0.5 - 1) * 2 ** 23 < int(threshold_ceilings(1, 23)[0])
    True
    """
    gamma, mant_bits = int(gamma), int(mant_bits)
    if gamma < 1 or gamma & (gamma - 1):
        raise ValueError(f"gamma={gamma} must be a power of two >= 1")
    digits = _DIGITS + len(str(2 * gamma))
    scale = decimal.Decimal(1 << mant_bits)
    seq = _sequence_pow2(2 * gamma, 2 * gamma, digits)
    out = np.empty(gamma, dtype=np.int64)
    for k in range(gamma):
        j = 2 * k + 1
        # error of seq[j] (relative (j+1)·10^(1−digits), value < 2) scaled by 2^M, with margin
        err = decimal.Decimal(4 * (j + 2)) * scale * decimal.Decimal(10) ** (1 - digits)
        d = digits
        v = seq[j]
        while True:
            t = _ctx(d + 20).multiply(_ctx(d + 20).subtract(v, 1), scale)
            fl = _certain_floor(t, err)
            if fl is not None:
                out[k] = fl + 1  # T_k is irrational: never an integer, so ⌈T_k⌉ = ⌊T_k⌋ + 1
                break
            d *= 2
            if d > _MAX_DIGITS:  # pragma: no cover - would need T_k within 10^-4000 of an integer
                raise ArithmeticError(f"threshold {k} of gamma={gamma} undecided at {_MAX_DIGITS} digits")
            v = _pow2_frac(j, 2 * gamma, d)
            err = decimal.Decimal(4) * scale * decimal.Decimal(10) ** (1 - d)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def exp2_floor(gamma: int) -> tuple:
    """``H_r = ⌊2^(r/γ)·2^K⌋`` for ``r = 0..γ−1`` as Python ints (``K`` = 128), exact.

    >>> exp2_floor(2)[1] == math.isqrt(2 << 256)   # ⌊√2 · 2^128⌋
    True
    """
    gamma = int(gamma)
    digits = _DIGITS + len(str(gamma))
    scale = decimal.Decimal(1 << _K)
    seq = _sequence_pow2(gamma, gamma, digits)
    out = [1 << _K]
    for r in range(1, gamma):
        err = decimal.Decimal(4 * (r + 2)) * 2 * scale * decimal.Decimal(10) ** (1 - digits)
        v, d = seq[r], digits
        while True:
            fl = _certain_floor(_ctx(d + 50).multiply(v, scale), err)
            if fl is not None:
                out.append(fl)
                break
            d *= 2
            if d > _MAX_DIGITS:  # pragma: no cover
                raise ArithmeticError(f"2^({r}/{gamma}) undecided at {_MAX_DIGITS} digits")
            v = _pow2_frac(r, gamma, d)
            err = decimal.Decimal(8) * scale * decimal.Decimal(10) ** (1 - d)
    return tuple(out)


def _binary_params(dtype) -> tuple[int, int]:
    """(precision p including the hidden bit, smallest normal exponent) of a binary float dtype."""
    fi = np.finfo(dtype)
    return int(fi.nmant) + 1, int(fi.minexp)


def round_exp2(e: int, gamma: int, dtype=np.float64) -> float:
    """The correctly rounded (ties to even) ``2^(e/γ)`` in ``dtype``, for any integer ``e``.

    Subnormal results are rounded once, to the subnormal grid; results past the
    largest finite value round to ``inf`` per IEEE 754.

    >>> round_exp2(1, 2) == math.sqrt(2.0)                 # sqrt is correctly rounded too
    True
    >>> round_exp2(-1075 * 8, 8), round_exp2(-1074 * 8, 8)  # half the smallest subnormal ties to 0
    (0.0, 5e-324)
    """
    return float(_round_exp2_many(np.array([e], dtype=np.int64), int(gamma), np.dtype(dtype))[0])


def _round_exp2_many(e: np.ndarray, gamma: int, dtype: np.dtype) -> np.ndarray:
    """Vector of correctly rounded ``2^(e_i/γ)`` in ``dtype`` (float64 array of exact values)."""
    p, emin = _binary_params(dtype)
    emax = int(np.finfo(dtype).maxexp)  # values >= 2^emax overflow
    h = exp2_floor(gamma)
    out = np.empty(e.size, dtype=np.float64)
    for i, ei in enumerate(e.tolist()):
        q, r = divmod(int(ei), gamma)
        lead = q  # the value lies in [2^q, 2^(q+1))
        kept = p if lead >= emin else p - (emin - lead)  # bits of the result's significand
        shift = _K - (kept - 1)  # the value is (H_r + θ)·2^(q−K); keep H_r >> shift
        hr = h[r]
        if shift <= 0:  # pragma: no cover - needs p > K: no such dtype
            raise ValueError(f"dtype {dtype} is too wide")
        n = hr >> shift
        half = (hr >> (shift - 1)) & 1 if shift - 1 < hr.bit_length() else 0
        rest = hr & ((1 << (shift - 1)) - 1)
        if r == 0 and half and rest == 0:  # exact tie (2^q itself halfway on the subnormal grid)
            n += n & 1
        else:  # θ > 0 (r > 0) or a plain round bit: the round bit alone decides
            n += half
        expo = q - _K + shift
        if n and n.bit_length() + expo > emax:
            out[i] = np.inf
        else:
            out[i] = math.ldexp(n, expo) if n else 0.0
    return out


@lru_cache(maxsize=64)
def exp2_table(gamma: int, bias: int, max_code: int, dtype_name: str = "float64", log2_scale: int = 0) -> np.ndarray:
    """``table[m] = 2^((m − β)/γ + s)`` correctly rounded in ``dtype`` for ``m = 1..max_code``,
    ``table[0] = 0`` (read-only). ``s`` is the (integral) log2 of a power-of-two scale.

    Normal-range entries are ``ldexp`` of the correctly rounded ``2^(r/γ)``
    (exact); entries that fall into the subnormal range or overflow are rounded
    individually, so every entry is correctly rounded.

    >>> t = exp2_table(8, 64, 127)
    >>> float(t[64]), float(t[72]), float(t[0])
    (1.0, 2.0, 0.0)
    """
    dtype = np.dtype(dtype_name)
    p, emin = _binary_params(dtype)
    emax = int(np.finfo(dtype).maxexp)
    m = np.arange(max_code + 1, dtype=np.int64)
    e = m - bias + np.int64(gamma) * np.int64(log2_scale)
    q = np.floor_divide(e, gamma)
    r = e - q * gamma
    mant = _round_exp2_many(np.arange(gamma, dtype=np.int64), gamma, dtype)  # in [1, 2]
    # 2^(r/γ) may round up to 2.0 exactly: then the binade is q+1, still exact under ldexp
    normal = (q >= emin) & (q + 1 < emax)
    vals = np.zeros(max_code + 1, dtype=np.float64)
    vals[normal] = np.ldexp(mant[r[normal]], q[normal].astype(np.int32))
    odd = ~normal
    odd[0] = False
    if odd.any():
        vals[odd] = _round_exp2_many(e[odd], gamma, dtype)
    vals[0] = 0.0
    t = vals.astype(dtype)
    t.setflags(write=False)
    return t


# -- one value, exactly ---------------------------------------------------------------
def _exact_log2_ratio_power(x: float, sigma: float) -> int | None:
    """``p`` when ``x/σ = 2^p`` exactly, else None."""
    ratio = Fraction(x) / Fraction(sigma)
    num, den = ratio.numerator, ratio.denominator
    if num & (num - 1) == 0 and den & (den - 1) == 0:
        return (num.bit_length() - 1) - (den.bit_length() - 1)
    return None


def exact_exponent(x: float, sigma: float, gamma: int, stochastic: bool = False, u: float = 0.0) -> int:
    """The exponent code of ``|x|`` at scale ``σ``, decided exactly.

    ``t = γ log2(|x|/σ)`` (a real number); nearest: ``rint(t)``; stochastic:
    ``⌊t⌋ + [u < t − ⌊t⌋]``. ``t`` is an integer exactly when ``|x|/σ`` is a
    power of two, and irrational otherwise (so nearest rounding never ties);
    the decimal evaluation is repeated at doubled precision until its error
    bound cannot change the decision. ``x`` finite and non-zero, ``σ > 0``.

    >>> exact_exponent(9.110309078053533, 1.0, 8)     # 8·log2 x = 25.49999999999999...
    25
    """
    a = abs(float(x))
    sigma = float(sigma)
    p = _exact_log2_ratio_power(a, sigma)
    if p is not None:
        return int(gamma) * p
    d = _DIGITS
    da, ds = decimal.Decimal(a), decimal.Decimal(sigma)
    while True:
        ctx = _ctx(d + 10)
        la, ls, l2 = ctx.ln(da), ctx.ln(ds), ctx.ln(decimal.Decimal(2))
        t = ctx.divide(ctx.multiply(decimal.Decimal(int(gamma)), ctx.subtract(la, ls)), l2)
        # each ln is within half an ulp at d+10 digits; the rest adds a few ulps of |t|
        err = (abs(t) + decimal.Decimal(gamma) * (abs(la) + abs(ls) + 1)) * decimal.Decimal(10) ** (-d)
        wide = _ctx(2 * d + 400)  # holds t's digits and u's (a dyadic float: up to ~1100 digits)
        if not stochastic:
            fl = _certain_floor(wide.add(t, decimal.Decimal("0.5")), err)
            if fl is not None:
                return fl
        else:
            fl = _certain_floor(t, err)
            if fl is not None:
                du = decimal.Decimal(float(u))
                gap = _ctx(2000).subtract(_ctx(2000).subtract(t, fl), du)  # exact
                if abs(gap) > err:
                    return fl + (1 if gap > 0 else 0)
        d *= 2
        if d > _MAX_DIGITS:  # pragma: no cover - t is irrational; a float cannot come this close
            raise ArithmeticError(f"log2({a}/{sigma}) undecided at {_MAX_DIGITS} digits")


# -- Gaussian logarithms of LNS addition ------------------------------------------------
def _gauss_log_decimal(d: int, gamma: int, plus: bool, digits: int) -> tuple[decimal.Decimal, decimal.Decimal]:
    """``Φ±(d) = γ log2(1 ± 2^(−d/γ))`` and an error bound, at ``digits`` digits (``d ≥ 1``
    for ``Φ−``)."""
    ctx = _ctx(digits + 10)
    ln2 = ctx.ln(decimal.Decimal(2))
    z = ctx.exp(ctx.divide(ctx.multiply(decimal.Decimal(-int(d)), ln2), decimal.Decimal(int(gamma))))
    inner = ctx.add(1, z) if plus else ctx.subtract(1, z)
    v = ctx.divide(ctx.multiply(decimal.Decimal(int(gamma)), ctx.ln(inner)), ln2)
    # ln(1 − z) near z = 1 loses the digits that 1 − z cancels: bound relative to 1/(1 − z)
    cond = 1 if plus else ctx.divide(1, inner)
    err = (abs(v) + decimal.Decimal(int(gamma)) * (cond + 1)) * decimal.Decimal(10) ** (-digits)
    return v, err


def gauss_log_rint(d, gamma: int, plus: bool, frac_bits: int = 0) -> np.ndarray:
    """``rint(Φ±(d)·2^F)`` for integer ``d`` (``d ≥ 0``; ``d ≥ 1`` for ``Φ−``), decided exactly.

    ``F = 0`` gives the integer corrections of the exact adder; ``F > 0`` the
    fixed-point samples of a lookup table. ``Φ±(d)·2^F`` is never a
    half-integer (``1 ± 2^(−d/γ)`` lies in ``Q(2^(1/γ))``, a power
    ``2^((k+½)/(2^F γ))`` does not unless it is rational), so there are no
    ties. A float64 evaluation decides every ``d`` whose value is not within
    ``2^-40`` (relative: thousands of ulps) of a half-integer; those few are decided with decimal
    arithmetic.
    """
    d = np.asarray(d, dtype=np.int64)
    g = int(gamma)
    mult = float(1 << frac_bits)
    with np.errstate(divide="ignore"):
        if plus:
            phi = g * np.log1p(np.exp2(-d / g)) / math.log(2.0)
        else:
            phi = g * np.log(-np.expm1(-d * math.log(2.0) / g)) / math.log(2.0)
    phi = phi * mult
    out = np.rint(phi)
    undecided = np.abs(np.abs(phi - out) - 0.5) < (np.abs(phi) + 1.0) * 2.0**-40
    for i in zip(*np.nonzero(undecided)) if d.ndim else ([()] if undecided else []):
        digits = _DIGITS
        while True:
            v, err = _gauss_log_decimal(int(d[i]), g, plus, digits)
            scaled = _ctx(digits + 40).multiply(v, decimal.Decimal(1 << frac_bits))
            fl = _certain_floor(_ctx(digits + 40).add(scaled, decimal.Decimal("0.5")),
                                err * decimal.Decimal(1 << frac_bits))
            if fl is not None:
                out[i] = fl
                break
            digits *= 2
            if digits > _MAX_DIGITS:  # pragma: no cover
                raise ArithmeticError(f"Φ({int(d[i])}) undecided at {_MAX_DIGITS} digits")
    return out.astype(np.int64)


@lru_cache(maxsize=64)
def exp2_direction(gamma: int, bias: int, max_code: int) -> np.ndarray:
    """``sign(2^((m−β)/γ) − table[m])`` for the float64 table of :func:`exp2_table` (int8,
    read-only): +1 where the correctly rounded float64 lies below the exact value, −1
    above, 0 where it is exact (``m − β`` a multiple of γ, and ``table[0]``).

    With it a float64 value ``table[m]·2^s`` (exact) rounds correctly to float32
    even where it lies exactly halfway between two float32 (double rounding):
    the exact value is on the side this sign gives.

    >>> exp2_direction(2, 0, 2).tolist()       # 1, √2 (its float64 is 1.4142135623730951 > √2), 2
    [0, -1, 0]
    """
    h = exp2_floor(int(gamma))
    round_bit = _K - 53  # the table's float64 keeps bits K..K-52 of H_r
    per_r = np.array([0] + [-1 if (h[r] >> round_bit) & 1 else 1 for r in range(1, gamma)], dtype=np.int8)
    m = np.arange(max_code + 1, dtype=np.int64)
    d = per_r[np.mod(m - bias, gamma)]
    d[0] = 0
    d.setflags(write=False)
    return d
