"""Number formats: the logarithmic number system and the float/int baselines.

Every format is a frozen dataclass validated in ``__post_init__``; every mode is
a ``str`` enum, so ``Rounding("nearest")`` and ``Rounding.NEAREST`` are the same
thing and a typo raises a :class:`ValueError` naming the allowed values.

The LNS word
------------
A ``B``-bit LNS value is one sign bit and a ``(B-1)``-bit exponent field ``m``.
neurolns stores the word as a *signed* integer code ``c = s * m`` (``s = ±1``):
``m = |c|`` in ``[1, 2**(B-1) - 1]`` for non-zero values and ``c = 0`` for exact
zero. The represented value is

.. math::  x = \\operatorname{sign}(c)\\, \\sigma\\, 2^{(|c| - \\beta)/\\gamma}

with ``σ`` the scale (a power of two per tensor or per channel), ``γ`` the base
factor (base ``2**(1/γ)``) and ``β`` the exponent bias. The integer
``e = |c| - β`` is the exponent code. This signed layout is a bijection of the
hardware's sign-magnitude word (:meth:`LNSFormat.to_word` gives that word), and
it makes negation a sign flip and multiplication an integer add of ``|c|``.

References: Zhao et al., "LNS-Madam", IEEE Trans. Computers 71(12), 2022 (B=8,
γ=8); the ``xlns`` package uses the same grid with ``F = log2 γ`` fractional bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

__all__ = [
    "Rounding",
    "Underflow",
    "LNSFormat",
    "FloatFormat",
    "IntFormat",
    "FP32",
    "FP16",
    "BF16",
    "FP8_E4M3",
    "FP8_E5M2",
    "INT8",
    "INT32",
    "LNS8",
    "LNS12",
    "LNS16",
    "parse_format",
    "resolve_format",
]

_MIN_BITS, _MAX_BITS = 2, 32
_MAX_GAMMA = 1 << 20


class _StrEnum(str, Enum):
    """A ``str`` enum whose failed lookups name the allowed values."""

    @classmethod
    def _missing_(cls, value):
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{value!r} is not a valid {cls.__name__}; allowed: {allowed}")

    def __str__(self) -> str:  # print the value, as users typed it
        return self.value


class Rounding(_StrEnum):
    """How a real value is rounded to an exponent code (in the log domain).

    ``NEAREST``: ``e = rint(γ log2|x/σ|)`` (ties to even).
    ``STOCHASTIC``: ``e = floor(t) + [u < t - floor(t)]`` with ``t = γ log2|x/σ|``
    and ``u ~ U[0, 1)``, so ``E[e] = t``: unbiased in the log domain.
    """

    NEAREST = "nearest"
    STOCHASTIC = "stochastic"


class Underflow(_StrEnum):
    """What happens to a non-zero value whose code falls below the smallest one.

    ``ZERO`` flushes it to exact zero; ``SATURATE`` keeps it at the smallest
    magnitude (and its sign). Exact zero always encodes to the zero code.
    """

    ZERO = "zero"
    SATURATE = "saturate"


def _check_int_at_least(name: str, value, lo: int) -> int:
    """An int (numpy ints too, bool not) ``>= lo``, returned as int; ``ValueError`` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}={value!r} is out of range; allowed: an int >= {lo}")
    return int(value)


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} is out of range; allowed: {lo} <= {name} <= {hi}")


@dataclass(frozen=True)
class LNSFormat:
    """A ``bits``-bit logarithmic number format with base ``2**(1/gamma)``.

    Parameters
    ----------
    bits : int
        Total width ``B`` including the sign bit, 2..32. The exponent field has
        ``B-1`` bits; its value 0 is reserved for exact zero.
    gamma : int
        Base factor ``γ``, a power of two in 1..2**20: the exponent code counts
        steps of ``1/γ`` octave, so the relative resolution is ``2**(1/γ) - 1``.
        ``γ = 2**F`` matches the ``xlns`` package with ``F`` fractional bits.
    bias : int, optional
        Exponent bias ``β``; ``e = |c| - β``. Defaults to ``2**(B-2)``, which
        centres the exponent range on 1 (e in ``[1-β, 2**(B-1)-1-β]``).
    underflow : Underflow or str
        ``"zero"`` (default) or ``"saturate"``; see :class:`Underflow`.

    Examples
    --------
    >>> from neurolns import LNSFormat
    >>> f = LNSFormat(bits=8, gamma=8)
    >>> f.e_min, f.e_max
    (-63, 63)
    >>> round(f.max_magnitude, 3), round(f.resolution, 5)
    (234.753, 0.09051)
    """

    bits: int = 8
    gamma: int = 8
    bias: int | None = None
    underflow: Underflow = Underflow.ZERO

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, _MIN_BITS, _MAX_BITS)
        _check_int("gamma", self.gamma, 1, _MAX_GAMMA)
        if self.gamma & (self.gamma - 1):
            raise ValueError(
                f"gamma={self.gamma} is not a power of two; allowed: 1, 2, 4, ..., {_MAX_GAMMA} "
                "(the hardware dot product splits exponents into quotient and remainder by γ)"
            )
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "gamma", int(self.gamma))
        if self.bias is None:
            object.__setattr__(self, "bias", 1 << (self.bits - 2))
        else:
            _check_int("bias", self.bias, 0, self.max_code)
            object.__setattr__(self, "bias", int(self.bias))
        object.__setattr__(self, "underflow", Underflow(self.underflow))

    # -- code space ---------------------------------------------------------
    @property
    def max_code(self) -> int:
        """Largest exponent-field value ``2**(B-1) - 1`` (the largest ``|c|``)."""
        return (1 << (self.bits - 1)) - 1

    @property
    def e_min(self) -> int:
        """Smallest exponent code ``1 - β`` (field value 1; 0 is zero)."""
        return 1 - self.bias

    @property
    def e_max(self) -> int:
        """Largest exponent code ``2**(B-1) - 1 - β``."""
        return self.max_code - self.bias

    @property
    def frac_bits(self) -> int:
        """``F = log2 γ``: fractional bits of the fixed-point log2 (xlns's F)."""
        return self.gamma.bit_length() - 1

    @property
    def code_dtype(self) -> np.dtype:
        """Narrowest signed integer dtype that holds every code ``±max_code``."""
        if self.bits <= 8:
            return np.dtype(np.int8)
        if self.bits <= 16:
            return np.dtype(np.int16)
        return np.dtype(np.int32)

    # -- value range (scale 1) --------------------------------------------
    @property
    def max_magnitude(self) -> float:
        """Largest magnitude at scale 1: ``2**(e_max/γ)``."""
        return float(2.0 ** (self.e_max / self.gamma))

    @property
    def min_magnitude(self) -> float:
        """Smallest non-zero magnitude at scale 1: ``2**(e_min/γ)``."""
        return float(2.0 ** (self.e_min / self.gamma))

    @property
    def dynamic_range_db(self) -> float:
        """``20 log10(max/min)`` in dB; independent of the scale."""
        return 20.0 * math.log10(2.0) * (self.e_max - self.e_min) / self.gamma

    @property
    def resolution(self) -> float:
        """Relative spacing of adjacent codes, ``2**(1/γ) - 1`` (the worst-case
        relative rounding error of nearest rounding is half of it in log2)."""
        return float(2.0 ** (1.0 / self.gamma) - 1.0)

    @property
    def name(self) -> str:
        return f"LNS{self.bits}"

    def __str__(self) -> str:
        return f"LNS{self.bits}(γ={self.gamma}, bias={self.bias}, underflow={self.underflow.value})"

    # -- conversions --------------------------------------------------------
    def to_word(self, codes) -> np.ndarray:
        """The hardware sign-magnitude word: sign bit ``B-1`` then the field ``|c|``.

        Returned as the narrowest *unsigned* dtype of width ``≥ B``.
        """
        codes = np.asarray(codes)
        udt = {1: np.uint8, 2: np.uint16, 4: np.uint32}[self.code_dtype.itemsize]
        mag = np.abs(codes.astype(np.int64))
        return (((codes < 0).astype(np.int64) << (self.bits - 1)) | mag).astype(udt)

    def from_word(self, words) -> np.ndarray:
        """Inverse of :meth:`to_word`."""
        words = np.asarray(words).astype(np.int64)
        mag = words & self.max_code
        neg = (words >> (self.bits - 1)) & 1
        return np.where(neg == 1, -mag, mag).astype(self.code_dtype)


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE-style binary floating-point baseline (for tables and accounting).

    Parameters
    ----------
    name : str
    exponent_bits, mantissa_bits : int
        Widths of the exponent and stored mantissa fields.
    finite_only : bool
        True for formats such as FP8 E4M3 that spend the all-ones exponent on
        finite values (no infinities, one NaN pattern).
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    finite_only: bool = False

    def __post_init__(self) -> None:
        _check_int("exponent_bits", self.exponent_bits, 2, 15)
        _check_int("mantissa_bits", self.mantissa_bits, 0, 112)

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def max_magnitude(self) -> float:
        bias = (1 << (self.exponent_bits - 1)) - 1
        if self.finite_only:  # E4M3: exponent 1111 usable, mantissa 111 is NaN
            return float(2.0 ** ((1 << self.exponent_bits) - 1 - bias) * (2 - 2.0 ** (1 - self.mantissa_bits)))
        return float(2.0 ** ((1 << self.exponent_bits) - 2 - bias) * (2 - 2.0 ** -self.mantissa_bits))

    @property
    def min_magnitude(self) -> float:
        """Smallest positive subnormal."""
        bias = (1 << (self.exponent_bits - 1)) - 1
        return float(2.0 ** (1 - bias - self.mantissa_bits))

    @property
    def min_normal(self) -> float:
        bias = (1 << (self.exponent_bits - 1)) - 1
        return float(2.0 ** (1 - bias))

    @property
    def dynamic_range_db(self) -> float:
        return 20.0 * math.log10(self.max_magnitude / self.min_magnitude)

    @property
    def resolution(self) -> float:
        """Largest relative spacing among normal numbers, ``2**-mantissa_bits``."""
        return float(2.0 ** -self.mantissa_bits)


@dataclass(frozen=True)
class IntFormat:
    """A signed integer (fixed-point with a per-tensor scale) baseline."""

    name: str
    bits: int

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, 2, 64)

    @property
    def max_magnitude(self) -> float:
        return float((1 << (self.bits - 1)) - 1)

    @property
    def min_magnitude(self) -> float:
        return 1.0

    @property
    def dynamic_range_db(self) -> float:
        return 20.0 * math.log10(self.max_magnitude / self.min_magnitude)

    @property
    def resolution(self) -> float:
        """Relative spacing at full scale, ``1/max``; it grows to 1 near zero."""
        return 1.0 / self.max_magnitude


FP32 = FloatFormat("FP32", 8, 23)
FP16 = FloatFormat("FP16", 5, 10)
BF16 = FloatFormat("BF16", 8, 7)
FP8_E4M3 = FloatFormat("FP8_E4M3", 4, 3, finite_only=True)
FP8_E5M2 = FloatFormat("FP8_E5M2", 5, 2)
INT8 = IntFormat("INT8", 8)
INT32 = IntFormat("INT32", 32)
LNS8 = LNSFormat(bits=8, gamma=8)
LNS12 = LNSFormat(bits=12, gamma=64)
LNS16 = LNSFormat(bits=16, gamma=1024)

_NAMED = {
    "fp32": FP32, "fp16": FP16, "bf16": BF16, "fp8": FP8_E4M3, "fp8_e4m3": FP8_E4M3,
    "fp8_e5m2": FP8_E5M2, "int8": INT8, "int32": INT32,
    "lns8": LNS8, "lns12": LNS12, "lns16": LNS16,
}


def parse_format(spec: str):
    """Look a format up by name: ``fp32, fp16, bf16, fp8, fp8_e5m2, int8, int32,
    lns8, lns12, lns16`` or ``lns<B>g<γ>`` such as ``lns10g16``.

    >>> parse_format("lns10g16")
    LNSFormat(bits=10, gamma=16, bias=256, underflow=<Underflow.ZERO: 'zero'>)
    """
    if not isinstance(spec, str):
        raise TypeError(f"format spec must be a str, got {type(spec).__name__}")
    key = spec.strip().lower()
    if key in _NAMED:
        return _NAMED[key]
    if key.startswith("lns") and "g" in key:
        b, g = key[3:].split("g", 1)
        if b.isdigit() and g.isdigit():
            return LNSFormat(bits=int(b), gamma=int(g))
    raise ValueError(f"unknown format {spec!r}; allowed: {', '.join(sorted(_NAMED))} or lns<B>g<γ>")


def resolve_format(spec) -> "FloatFormat | IntFormat | LNSFormat":
    """A format object from a format or a name: the names of :func:`parse_format`,
    ``int<b>`` (a ``b``-bit integer) and ``lns<B>`` (LNS8's γ = 8 grid widened to
    ``B`` bits, except the named ``lns8, lns12, lns16``).

    >>> resolve_format("int4").bits, resolve_format("lns10").gamma
    (4, 8)
    """
    if isinstance(spec, (FloatFormat, IntFormat, LNSFormat)):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key.startswith("int") and key[3:].isdigit():
            return IntFormat(f"INT{key[3:]}", int(key[3:]))
        if key.startswith("lns") and key[3:].isdigit():
            return parse_format(key) if key in ("lns8", "lns12", "lns16") else LNSFormat(bits=int(key[3:]), gamma=8)
        return parse_format(key)
    raise TypeError(f"format must be a format object or a name, got {type(spec).__name__} {spec!r}")
