"""Dot products, matrix products and sums of LNS arrays: BLAS or the hardware way.

Two ways to multiply-accumulate (:class:`MatmulMode`):

``"fast"``
    Decode both operands to float32 and call BLAS (``numpy.matmul``). The
    products are exact in float32 for formats up to about 12 bits; the sums
    carry float32 rounding.
``"exact"``
    What an LNS processing element does (Dally et al., US 11,886,980;
    Zhao et al., LNS-Madam, 2022). Each product is an integer add of exponent
    codes, ``e = e_a + e_b``, split as ``e = q·γ + r`` with ``0 <= r < γ``;
    ``±2**q`` -- a shift, in units of the accumulator's least significant bit
    -- is added into one of ``γ`` integer partial sums, chosen by ``r``. At the
    end partial sum ``r`` is scaled by the constant ``2**(r/γ)`` and the ``γ``
    terms are added (in float64 here), times the operands' scales:

    .. math::  \\sum_k a_k b_k = \\sigma_a \\sigma_b \\, 2^{-f}
               \\sum_{r=0}^{\\gamma-1} 2^{r/\\gamma}
               \\sum_{k:\\, r_k = r} \\pm 2^{q_k + f}.

    The partial sums live in an :class:`Accumulator` of ``bits`` bits with
    ``frac_bits = f`` fractional bits. A product below the LSB is dropped and
    an addition that leaves the range saturates; both are counted
    (``return_stats=True`` returns an :class:`AccumulatorStats`). With the
    default accumulator (:meth:`Accumulator.exact_for`) nothing is dropped or
    saturated and the result is exact up to the final float64 combine.

:func:`sum` also offers ``"sequential"``: add the elements one by one with
the LNS adder (:func:`neurolns.lns.add`), the naive accumulator whose rounding
drifts over long sums.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass

import numpy as np

from neurolns.formats import LNSFormat, _StrEnum
from neurolns.lns import _dot_kernels as _k

__all__ = ["MatmulMode", "SumMode", "Accumulator", "AccumulatorStats", "matmul", "dot", "sum"]

_MAX_ACC_BITS = 62  # partial sums live in int64 with a bit to spare for one add


class MatmulMode(_StrEnum):
    """``"fast"``: decode to float32 + BLAS; ``"exact"``: hardware partial sums."""

    FAST = "fast"
    EXACT = "exact"


class SumMode(_StrEnum):
    """Modes of :func:`sum`: those of :class:`MatmulMode` plus ``"sequential"``
    (one LNS :func:`~neurolns.lns.add` per element)."""

    FAST = "fast"
    EXACT = "exact"
    SEQUENTIAL = "sequential"


@dataclass(frozen=True)
class Accumulator:
    """The integer partial-sum register of the hardware dot product.

    Parameters
    ----------
    bits : int
        Two's-complement width, sign included, 2..62. The register holds
        integers in ``[-2**(bits-1), 2**(bits-1) - 1]``; an addition past either
        end saturates.
    frac_bits : int
        Position of the least significant bit: one LSB is ``2**-frac_bits``
        (in units of ``2**(e/γ)`` at scale 1), -64..64. A product
        ``2**(q + r/γ)`` with ``q + frac_bits < 0`` is below the LSB and dropped.

    The largest partial sum is ``(2**(bits-1) - 1) · 2**-frac_bits``.

    Examples
    --------
    >>> from neurolns.lns import Accumulator
    >>> acc = Accumulator(bits=24, frac_bits=8)
    >>> acc.lsb, acc.max_value
    (0.00390625, 32767.99609375)
    """

    bits: int = 32
    frac_bits: int = 16

    def __post_init__(self) -> None:
        for name, lo, hi in (("bits", 2, _MAX_ACC_BITS), ("frac_bits", -64, 64)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{name}={v} is out of range; allowed: {lo} <= {name} <= {hi}")
            object.__setattr__(self, name, int(v))

    @property
    def lsb(self) -> float:
        """Weight of the least significant bit, ``2**-frac_bits``."""
        return float(2.0 ** -self.frac_bits)

    @property
    def max_value(self) -> float:
        """Largest partial sum, ``(2**(bits-1) - 1) · lsb``."""
        return float(((1 << (self.bits - 1)) - 1) * 2.0 ** -self.frac_bits)

    @classmethod
    def exact_for(cls, fmt_a: LNSFormat, fmt_b: LNSFormat | None = None, n: int = 1) -> Accumulator:
        """The narrowest register in which ``n`` products of the two formats never
        saturate and never fall below the LSB (capped at 62 bits).

        With ``q = q_a + q_b + carry`` over the formats' exponent ranges
        (``e = q·γ + r`` per operand): ``frac_bits = -q_min`` and
        ``bits = frac_bits + q_max + ceil(log2 n) + 2``.
        Past 62 bits the smallest products are given up first (``frac_bits``
        shrinks).

        >>> from neurolns import LNS8
        >>> from neurolns.lns import Accumulator
        >>> Accumulator.exact_for(LNS8, LNS8, n=512)
        Accumulator(bits=42, frac_bits=16)
        """
        fmt_b = fmt_a if fmt_b is None else fmt_b
        g = max(fmt_a.gamma, fmt_b.gamma)
        qa = [(e * (g // fmt_a.gamma)) // g for e in (fmt_a.e_min, fmt_a.e_max)]
        qb = [(e * (g // fmt_b.gamma)) // g for e in (fmt_b.e_min, fmt_b.e_max)]
        return _exact_accumulator(qa[0] + qb[0], qa[1] + qb[1] + 1, n)


def _exact_accumulator(q_min: int, q_max: int, n: int) -> Accumulator:
    grow = math.ceil(math.log2(max(n, 1)))
    frac = max(0, -q_min)
    bits = frac + q_max + grow + 2
    if bits > _MAX_ACC_BITS:
        frac -= bits - _MAX_ACC_BITS
        bits = _MAX_ACC_BITS
    return Accumulator(bits=max(2, bits), frac_bits=max(-64, min(64, frac)))


@dataclass(frozen=True)
class AccumulatorStats:
    """What the accumulator did during one exact-mode call.

    Attributes
    ----------
    products : int
        Non-zero products accumulated (``M·N·K`` minus those with a zero factor).
    overflows : int
        Additions that saturated a partial sum.
    underflows : int
        Products dropped because they fell below the LSB.
    accumulator : Accumulator
        The register used.
    """

    products: int
    overflows: int
    underflows: int
    accumulator: Accumulator


# -- operand preparation ---------------------------------------------------------------
def _check_lns(x, name):
    from neurolns.lns.array import LNSArray

    if not isinstance(x, LNSArray):
        raise TypeError(f"{name} must be an LNSArray in exact mode, got {type(x).__name__}")
    return x


def _pack(x, contract_axis: int, grid: int):
    """Packed exponents ``2·e + s`` on the grid ``grid`` and the outer scale.

    ``x`` is 2-D; its scale may vary along the contracted axis only by exact
    powers of two (folded into the exponents); the rest factors out as the
    returned per-row (``contract_axis=1``) or per-column (0) scale.
    """
    fmt = x.format
    s = np.broadcast_to(x.scale, x.shape) if x.scale.ndim else x.scale
    if s.ndim:
        outer = s.max(axis=contract_axis, keepdims=True)
        k = np.log2(s / outer)
        if not np.all(k == np.rint(k)):
            raise ValueError(
                "exact mode needs scales that are powers of two apart along the summed axis; "
                "use mode='fast' or re-encode with a per-tensor or per-channel scale"
            )
        fold = (k * grid).astype(np.int64)
        outer = outer.reshape(-1)
    else:
        fold = 0
        outer = s.reshape(1)
    c = x.codes.astype(np.int64)
    e = (np.abs(c) - fmt.bias) * (grid // fmt.gamma) + fold
    zero = c == 0
    return e, (c < 0), zero, outer


def _packed(e, neg, zero, sentinel, dtype):
    p = 2 * e + neg
    return np.where(zero, sentinel, p).astype(dtype)


def _exact_2d(a, b, accumulator):
    """Exact-mode ``a (M, K) @ b (K, N)`` -> float64 (M, N), stats."""
    grid = max(a.format.gamma, b.format.gamma)
    log2g = grid.bit_length() - 1
    ea, na, za, sa = _pack(a, 1, grid)
    eb, nb, zb, sb = _pack(b, 0, grid)
    m, k_len = ea.shape
    n = eb.shape[1]
    live_a, live_b = ea[~za], eb[~zb]
    if live_a.size == 0 or live_b.size == 0:
        acc = accumulator or Accumulator()
        return np.zeros((m, n)), AccumulatorStats(0, 0, 0, acc)
    qa_min, qa_max = int(live_a.min()) >> log2g, int(live_a.max()) >> log2g
    qb_min, qb_max = int(live_b.min()) >> log2g, int(live_b.max()) >> log2g
    # q = q_a + q_b + carry lies in [qa_min + qb_min, qa_max + qb_max + 1]
    acc = accumulator if accumulator is not None else _exact_accumulator(qa_min + qb_min, qa_max + qb_max + 1, k_len)
    hi = (1 << (acc.bits - 1)) - 1
    top = qa_max + qb_max + 1 + acc.frac_bits
    safe = qa_min + qb_min + acc.frac_bits >= 0 and top < acc.bits - 1 and (k_len << top) <= hi
    w = np.exp2(np.arange(grid) / grid - acc.frac_bits)
    out = np.empty((m, n), dtype=np.float64)
    over = np.zeros(m, dtype=np.int64)
    under = np.zeros(m, dtype=np.int64)
    if safe:
        base_a = np.where(za, -1, (ea >> log2g) + acc.frac_bits + qb_min).astype(np.int32)
        v_b = np.where(zb, 0, np.left_shift(1, (eb >> log2g) - qb_min, dtype=np.int64) * np.where(nb, -1, 1))
        _k.exact_matmul_unchecked_kernel(
            base_a, (ea & (grid - 1)).astype(np.int32), na, np.ascontiguousarray(v_b, dtype=np.int64),
            (eb & (grid - 1)).astype(np.int32), log2g, w, out,
        )
    else:
        big = max(int(np.abs(live_a).max()), int(np.abs(live_b).max()))
        dtype = np.int32 if big < (1 << 26) else np.int64
        sentinel = -(1 << 29) if dtype == np.int32 else -(1 << 61)
        pa = np.ascontiguousarray(_packed(ea, na, za, sentinel, dtype))
        pb = np.ascontiguousarray(_packed(eb, nb, zb, sentinel, dtype).T)
        _k.exact_matmul_kernel(pa, pb, log2g, acc.frac_bits, hi, sentinel // 4, w, out, over, under)
    out *= sa[:, None] * sb[None, :]
    products = int((~za).sum(axis=0) @ (~zb).sum(axis=1)) if k_len else 0
    return out, AccumulatorStats(products, int(over.sum()), int(under.sum()), acc)


def _finish(out, out_format):
    if out_format is None:
        return out[()] if out.ndim == 0 else out  # a 0-d result is a numpy scalar, as in numpy
    from neurolns.lns.codec import encode

    if not isinstance(out_format, LNSFormat):
        raise TypeError(f"out_format must be an LNSFormat or None, got {type(out_format).__name__}")
    return encode(out, out_format)


def _as_float32(x):
    from neurolns.lns.array import LNSArray

    if isinstance(x, LNSArray):
        return x.decode(dtype=np.float32)
    return np.asarray(x, dtype=np.float32)


def _unit_decode(x, contract_axis):
    """float32 values at unit scale and the scale factored out along the other axis.

    Valid when ``x`` (2-D) has one power-of-two scale per row (``contract_axis=1``)
    or per column (0), or one per tensor: scaling by a power of two commutes
    with float32 rounding, so ``(σ ⊙ A) @ B = σ · (A @ B)`` exactly.
    Returns ``None`` when the scale varies along the contracted axis.
    """
    from neurolns.lns.codec import decode_codes

    s = x.scale
    if s.ndim == 0:
        outer = s.reshape(1)
    elif s.ndim == x.ndim and s.shape[contract_axis] == 1:  # per row/column: nothing to check
        outer = s.reshape(-1)
    else:
        full = np.broadcast_to(s, x.shape)
        first = full.take([0], axis=contract_axis)
        if not np.all(full == first):
            return None
        outer = first.reshape(-1)
    k = np.log2(outer)
    if not np.all(k == np.rint(k)):
        return None
    return decode_codes(x.codes, x.format, 1.0, dtype=np.float32), outer


def _fast_matmul(a, b):
    """``"fast"`` mode: float32 BLAS on decoded values, a float32 result.

    The scales are powers of two and are applied to the float32 product in
    place, which is exact while the combined scale stays inside float32's
    normal range; otherwise the product is scaled in float64.
    """
    from neurolns.lns.array import LNSArray

    if isinstance(a, LNSArray) and isinstance(b, LNSArray) and a.ndim == 2 and b.ndim in (1, 2):
        ua = _unit_decode(a, 1)
        ub = _unit_decode(b, 0)
        if ua is not None and ub is not None:
            out = np.matmul(ua[0], ub[0])
            outer = ua[1][:, None] * ub[1][None, :] if b.ndim == 2 else ua[1] * ub[1][0]
            lo, hi = float(np.min(outer)), float(np.max(outer))
            if 2.0**-100 <= lo and hi <= 2.0**100:  # far inside float32's range: exact in place
                out *= np.asarray(outer, dtype=np.float32)
                return out
            return (out.astype(np.float64) * outer).astype(np.float32)
    return np.matmul(_as_float32(a), _as_float32(b))


def matmul(a, b, *, mode: MatmulMode | str = "fast", accumulator: Accumulator | None = None,
           out_format: LNSFormat | None = None, return_stats: bool = False):
    """Matrix product ``a @ b`` of LNS arrays (numpy ``matmul`` shapes).

    Parameters
    ----------
    a, b : LNSArray
        In mode ``"fast"`` either may also be a float array. Mode ``"exact"``
        takes ``a`` of shape (K,), (M, K) or (..., K) and ``b`` of shape (K,)
        or (K, N); scales may be per tensor or per channel (e.g. weights
        (out, in) with one scale per row, times activations).
    mode : {"fast", "exact"}
        See the module notes.
    accumulator : Accumulator, optional
        Exact mode only; default :meth:`Accumulator.exact_for` the data (never
        saturates, drops nothing).
    out_format : LNSFormat, optional
        Re-encode the result in this format (nearest rounding, a power-of-two
        per-tensor scale); ``None`` returns float64.
    return_stats : bool
        Exact mode only: also return an :class:`AccumulatorStats`.

    Returns
    -------
    numpy.ndarray (float64) or LNSArray, and an AccumulatorStats with ``return_stats``.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode
    >>> from neurolns.lns.dot import matmul
    >>> w = encode(np.array([[1.0, -2.0], [0.5, 4.0]]), LNS8, channel_axis=0)
    >>> x = encode(np.array([3.0, 1.0]), LNS8)
    >>> matmul(w, x, mode="exact").round(4)         # products 1·3.0844, -2·1, ...
    array([1.0844, 5.5422])
    >>> y, stats = matmul(w, x, mode="exact", return_stats=True)
    >>> stats.products, stats.overflows
    (4, 0)
    """
    mode = MatmulMode(mode)
    if mode == MatmulMode.FAST:
        if accumulator is not None or return_stats:
            raise ValueError("accumulator and return_stats apply to mode='exact' only")
        return _finish(_fast_matmul(a, b), out_format)
    a = _check_lns(a, "a")
    b = _check_lns(b, "b")
    if accumulator is not None and not isinstance(accumulator, Accumulator):
        raise TypeError(f"accumulator must be an Accumulator, got {type(accumulator).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: operands must have at least one dimension (use * for scalars)")
    if b.ndim > 2:
        raise ValueError(f"exact mode takes b of shape (K,) or (K, N), got {b.shape}; use mode='fast'")
    if a.shape[-1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({a.shape[-1]} != {b.shape[0]})")
    lead = a.shape[:-1]
    a2 = a.reshape(-1, a.shape[-1])
    b2 = b.reshape(b.shape[0], -1)
    out, stats = _exact_2d(a2, b2, accumulator)
    out = out.reshape(lead + b.shape[1:])
    res = _finish(out, out_format)
    return (res, stats) if return_stats else res


def dot(a, b, *, mode: MatmulMode | str = "fast", accumulator: Accumulator | None = None,
        out_format: LNSFormat | None = None, return_stats: bool = False):
    """Dot product: for 1-D operands a scalar (0-d), otherwise :func:`matmul`.

    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode
    >>> from neurolns.lns.dot import dot
    >>> a = encode(np.array([1.0, 2.0, -0.5]), LNS8, scale=1.0)
    >>> float(dot(a, a, mode="exact"))
    5.25
    """
    return matmul(a, b, mode=mode, accumulator=accumulator, out_format=out_format, return_stats=return_stats)


def sum(a, axis=None, *, mode: SumMode | str = "fast", accumulator: Accumulator | None = None,
        out_format: LNSFormat | None = None, add_mode: str = "exact", return_stats: bool = False):
    """Sum of an LNSArray over ``axis`` (``None``: all elements).

    Parameters
    ----------
    a : LNSArray
    axis : int, optional
    mode : {"fast", "exact", "sequential"}
        ``"fast"``: decode and ``numpy.sum`` in float64. ``"exact"``: the
        hardware partial-sum accumulator (each element is a product by 1).
        ``"sequential"``: ``acc = acc ⊕ x_k`` with the LNS adder in mode
        ``add_mode``, element by element in the order of the data; the running
        sum is held in ``a``'s format at the power-of-two multiple of ``a``'s
        (largest) scale that puts ``n · max|x|`` under its top code, so it
        cannot saturate; scales along the summed axis must be powers of two
        apart. Rounding at every step makes long sums drift.
    accumulator : Accumulator, optional
        Exact mode; see :func:`matmul`.
    out_format : LNSFormat, optional
        Re-encode the result (nearest); ``None`` returns float64.
    add_mode : {"exact", "lut", "mitchell"}
        The adder of the sequential mode.
    return_stats : bool
        Exact mode: also return an :class:`AccumulatorStats`.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode
    >>> from neurolns.lns.dot import sum as lns_sum
    >>> a = encode(np.array([[1.0, 2.0], [0.5, -4.0]]), LNS8, scale=1.0)
    >>> lns_sum(a, axis=1, mode="exact")
    array([ 3. , -3.5])
    >>> round(float(lns_sum(a, mode="sequential")), 4)   # 1 ⊕ 2 ⊕ 0.5 ⊕ -4, rounded at each step
    -0.3242
    """
    mode = SumMode(mode)
    from neurolns.lns.array import LNSArray

    if not isinstance(a, LNSArray):
        raise TypeError(f"sum expects an LNSArray, got {type(a).__name__}")
    if mode != SumMode.EXACT and (accumulator is not None or return_stats):
        raise ValueError("accumulator and return_stats apply to mode='exact' only")
    if axis is None:
        x = a.reshape(-1)
        axis = 0
        out_shape: tuple = ()
    else:
        if a.ndim == 0 or not -a.ndim <= axis < a.ndim:
            raise ValueError(f"axis={axis} is out of range for an array of ndim {a.ndim}")
        axis %= a.ndim
        x = a
        out_shape = a.shape[:axis] + a.shape[axis + 1:]
    if mode == SumMode.FAST:
        out = np.sum(x.decode(), axis=axis)
        return _finish(np.asarray(out, dtype=np.float64), out_format)
    # rows = everything but the summed axis, columns = the summed axis
    xs = _moveaxis_last(x, axis)
    rows = xs.reshape(int(np.prod(xs.shape[:-1])), xs.shape[-1]) if xs.ndim else xs.reshape(1, 1)
    if mode == SumMode.EXACT:
        from neurolns.lns.array import LNSArray as _A

        one = _A(np.full((rows.shape[1], 1), a.format.bias, dtype=a.format.code_dtype), a.format, 1.0, _trusted=True)
        out, stats = _exact_2d(rows, one, accumulator)
        res = _finish(out.reshape(out_shape), out_format)
        return (res, stats) if return_stats else res
    return _finish(_sequential(rows, add_mode).reshape(out_shape), out_format)


def _moveaxis_last(x, axis):
    from neurolns.lns.array import LNSArray

    codes = np.moveaxis(x.codes, axis, -1)
    s = x.scale
    if s.ndim:
        s = np.moveaxis(np.broadcast_to(s, x.shape), axis, -1)
    return LNSArray(codes, x.format, s, _trusted=True)


def _sequential(rows, add_mode):
    """Row-wise running LNS sums -> float64 values."""
    from neurolns.lns import _add_kernels as _ak
    from neurolns.lns.add import AddMode, _tables
    from neurolns.lns.codec import decode_codes

    fmt = rows.format
    s = np.broadcast_to(rows.scale, rows.shape)
    n = rows.shape[1]
    top = s.max(axis=1) if n else np.ones(rows.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.log2(s / top[:, None])
    if not np.all(k == np.rint(k)):
        raise ValueError("sequential sum needs scales that are powers of two apart along the summed axis")
    vmax = np.abs(rows.decode()).max(axis=1) if n else np.zeros(rows.shape[0])
    # headroom: h octaves so that n·max|x| stays under the sum's top code
    with np.errstate(divide="ignore"):
        h = np.ceil(np.log2(builtins.max(n, 1) * vmax / (top * fmt.max_magnitude)))
    h = np.where(np.isfinite(h), np.maximum(h, 0), 0).astype(np.int64)
    acc_scale = top * np.exp2(h)
    shift = np.ascontiguousarray(((k - h[:, None]) * fmt.gamma).astype(np.int64))
    plus, minus = _tables(fmt.gamma, AddMode(add_mode), None)
    out = np.zeros(rows.shape[0], dtype=fmt.code_dtype)
    codes = np.ascontiguousarray(rows.codes)
    _ak.sequential_sum_kernel(codes, shift, plus, minus, fmt.max_code, fmt.underflow.value == "saturate", out)
    return decode_codes(out, fmt, acc_scale)
