"""Exact LNS multiplication and division: an integer add/sub of exponent codes.

.. math::  e_{xy} = e_x + e_y, \\quad s_{xy} = s_x s_y, \\quad \\sigma_{xy} = \\sigma_x \\sigma_y 2^k

No rounding happens: the product of two representable values is representable
up to range. To keep products in range the result is renormalised by a power of
two ``2**k`` (an exact shift of ``k·γ`` codes moved into the scale) that puts the
largest product's exponent at ``e_max`` — what a shared-exponent datapath does.
Products that still fall below ``e_min`` (a dynamic range wider than the
format's) flush to zero or saturate per the format's underflow setting.
Division by an LNS zero saturates to the largest magnitude with a
:class:`RuntimeWarning` (``0/0`` gives 0), since the format has no infinity.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from neurolns._jit import jit, pjit, prange, use_parallel
from neurolns.formats import Underflow

__all__ = ["mul", "div"]


@jit
def _top_field(ca, cb, it, sign_b, c0, none):
    """Largest result field ``|a| ± |b| + c0`` over pairs whose operands are both non-zero.

    ``it`` is the integer type of the arithmetic (int32 for 16-bit codes), and
    every intermediate is cast back to it: Numba would otherwise widen it to
    int64, and the loop would run on half the lanes. Pairs with a zero
    operand count as ``none`` (below any real field).
    """
    top = none
    zero = it(0)
    for i in range(ca.size):
        a = it(ca[i])
        b = it(cb[i])
        f = it(abs(a) + abs(b)) if sign_b > 0 else it(abs(a) - abs(b))
        f = it(f + c0)
        f = f if (a != zero) & (b != zero) else none
        top = max(top, f)
    return top


@jit
def _write_products(ca, cb, it, sign_b, c0, max_code, floor, div0_value, out):
    """Fields ``|a| ± |b| + c0`` (the shift folded into ``c0``), saturated at
    ``max_code``, below 1 set to ``floor`` (0: flush, 1: saturate), with the sign
    of the product. ``b = 0`` gives 0 for a product and ``div0_value`` for a
    quotient; ``a = 0`` gives 0. Selects instead of branches, in type ``it``
    (see :func:`_top_field`), so it vectorises at full width. Element ``i`` of
    ``ca`` and ``cb`` is read before element ``i`` of ``out`` is written, so
    ``out`` may be one of the inputs.
    """
    zero = it(0)
    for i in range(ca.size):
        a = it(ca[i])
        b = it(cb[i])
        f = it(abs(a) + abs(b)) if sign_b > 0 else it(abs(a) - abs(b))
        f = min(it(f + c0), max_code)
        f = f if f > zero else floor
        f = f if b != zero else div0_value
        f = f if a != zero else zero
        out[i] = f if (a ^ b) >= zero else it(-f)


@jit
def _top_sum_u8(ca, cb, div, max_code):
    """8-bit codes: largest ``s = |a| + |b|`` (product) or ``|a| + max_code − |b|``
    (quotient) over pairs with both operands non-zero, 0 if there is none.

    ``s <= 254`` fits a byte, so the loop runs on 32 byte lanes (every result
    cast back to uint8, see :func:`_top_field`). The field is ``s − T`` with
    ``T = β`` (product) or ``max_code − β`` (quotient).
    """
    u8 = np.uint8
    top = u8(0)
    for i in range(ca.size):
        a = ca[i]
        b = cb[i]
        bb = u8(max_code - u8(abs(b))) if div else u8(abs(b))
        s = u8(u8(abs(a)) + bb)
        top = max(top, s if (a != 0) & (b != 0) else u8(0))
    return top


@jit
def _write_products_u8(ca, cb, div, max_code, t_sub, t_add, floor, div0_value, out):
    """8-bit codes on 32 byte lanes: field ``s − T`` (``s`` as in :func:`_top_sum_u8`,
    ``T = t_sub − t_add`` with one of them 0, ``T`` including the shift ``kγ``)
    as ``max(s, t_sub) − t_sub + t_add``: 0 when ``s <= T``, and never past 255
    for non-zero pairs because ``k`` keeps ``s − T <= max_code``. Then as
    :func:`_write_products`: saturated at ``max_code``, 0 replaced by ``floor``,
    ``b = 0`` gives ``div0_value``, ``a = 0`` gives 0, the sign of ``a·b``. Reads
    element ``i`` before writing it, so ``out`` may be an input.
    """
    u8 = np.uint8
    i8 = np.int8
    for i in range(ca.size):
        a = ca[i]
        b = cb[i]
        bb = u8(max_code - u8(abs(b))) if div else u8(abs(b))
        s = u8(u8(abs(a)) + bb)
        f = min(u8(u8(max(s, t_sub) - t_sub) + t_add), max_code)
        f = f if f != u8(0) else floor
        f = f if b != 0 else div0_value
        f = f if a != 0 else u8(0)
        out[i] = i8(f) if (a ^ b) >= 0 else i8(-i8(f))


@jit
def _shift_down_u8(out, d, floor):
    """Written 8-bit product codes, re-expressed ``d`` fields lower (a larger shift):
    ``|c| − d``, at or below 0 set to ``floor``; 0 stays 0, signs stay.

    Exact without the operands: a product field was never saturated at the top
    (its shift kept it at or below ``max_code``), and a field at or below 0 (set
    to ``floor``) stays at or below 0 when shifted further down.
    """
    u8 = np.uint8
    i8 = np.int8
    for i in range(out.size):
        c = out[i]
        m = u8(abs(c))
        m = u8(max(m, d) - d)
        m = m if m != u8(0) else floor
        m = m if c != 0 else u8(0)
        out[i] = i8(m) if c >= 0 else i8(-i8(m))


@jit
def _shift_of(s_top, t0, max_code, gamma):
    """``k``: the smallest shift that puts the field ``s_top − t0`` at or below ``max_code``."""
    return -((max_code - (s_top - t0)) // gamma) if s_top > 0 else 0


@jit
def _mul_u8_blocked(ca, cb, max_code, t0, gamma, floor, out, block):
    """Products of 8-bit codes in one pass over blocks that stay in the cache; returns ``k``.

    Each block's largest sum is found, then its products written with the
    shift ``k`` of the largest sum so far. When a later block needs a larger
    shift, the largest sum of everything left is taken at once, the codes
    already written are shifted down (:func:`_shift_down_u8`, exact) and the
    rest written with the final shift: at worst one more pass over the inputs
    and one over the output, as the two-pass order costs always. Element ``i``
    of the inputs is read before element ``i`` of ``out`` is written, and the
    shift touches only ``out``, so ``out`` may be an input.
    """
    u8 = np.uint8
    n = ca.size
    s_top = 0
    k = 0
    final = False
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        if not final:
            st = np.int64(_top_sum_u8(ca[lo:hi], cb[lo:hi], False, max_code))
            if st > s_top:
                new_k = _shift_of(st, t0, max_code, gamma)
                if s_top > 0 and new_k != k:
                    st = max(st, np.int64(_top_sum_u8(ca[hi:], cb[hi:], False, max_code)))
                    new_k = _shift_of(st, t0, max_code, gamma)
                    _shift_down_u8(out[:lo], u8(min((new_k - k) * gamma, 255)), floor)
                    final = True
                s_top = st
                k = new_k
        t = t0 + k * gamma
        _write_products_u8(ca[lo:hi], cb[lo:hi], False, max_code, u8(min(max(t, 0), 255)), u8(max(-t, 0)),
                           floor, u8(0), out[lo:hi])
    return k


@jit
def _chunk(n, nchunk, ch):
    """Bounds ``(lo, hi)`` of the ``ch``-th of ``nchunk`` contiguous chunks of ``n`` elements."""
    step = (n + nchunk - 1) // nchunk
    lo = min(n, ch * step)
    return lo, min(n, lo + step)


@pjit
def _top_sum_u8_parallel(ca, cb, div, max_code, tops):
    """:func:`_top_sum_u8` of ``tops.size`` contiguous chunks in parallel (one result each)."""
    for ch in prange(tops.size):
        lo, hi = _chunk(ca.size, tops.size, ch)
        tops[ch] = _top_sum_u8(ca[lo:hi], cb[lo:hi], div, max_code)


@pjit
def _write_products_u8_parallel(ca, cb, div, max_code, t_sub, t_add, floor, div0_value, out, chunks):
    """:func:`_write_products_u8` over ``chunks`` contiguous slices in parallel."""
    for ch in prange(chunks):
        lo, hi = _chunk(ca.size, chunks, ch)
        _write_products_u8(ca[lo:hi], cb[lo:hi], div, max_code, t_sub, t_add, floor, div0_value, out[lo:hi])


@pjit
def _top_field_parallel(ca, cb, it, sign_b, c0, none, tops):
    """:func:`_top_field` of ``tops.size`` contiguous chunks in parallel (one result each)."""
    for ch in prange(tops.size):
        lo, hi = _chunk(ca.size, tops.size, ch)
        tops[ch] = _top_field(ca[lo:hi], cb[lo:hi], it, sign_b, c0, none)


@pjit
def _write_products_parallel(ca, cb, it, sign_b, c0, max_code, floor, div0_value, out, chunks):
    """:func:`_write_products` over ``chunks`` contiguous slices in parallel (each loop
    stays vectorised; a ``prange`` over elements would not)."""
    for ch in prange(chunks):
        lo, hi = _chunk(ca.size, chunks, ch)
        _write_products(ca[lo:hi], cb[lo:hi], it, sign_b, c0, max_code, floor, div0_value, out[lo:hi])


#: below this many elements the thread start-up of the parallel kernels does not pay
_PARALLEL_MIN = 1 << 20
#: elements per block of the one-pass 8-bit product (three 64 KiB streams stay in L2)
_BLOCK = 1 << 16


def _field_type(fmt):
    """Integer type of the fields ``|a| ± |b| ± β`` of 9- to 32-bit codes (8-bit codes use
    the byte kernels): int32 up to 16 bits, int64 above."""
    return np.int32 if fmt.bits <= 16 else np.int64


def _mul_codes_u8(ca, cb, fmt, div, floor, div0_value, out, parallel, chunks):
    """8-bit codes on byte lanes (see :func:`_write_products_u8`); returns the shift ``k``.

    On several threads: the largest sum of each chunk in parallel, then the
    products; the second read of the inputs mostly hits the last-level cache.
    On one thread, products take the one-pass block order (:func:`_mul_u8_blocked`);
    quotients keep two passes: a zero divisor's ``max_code`` could not be told
    from a product's when written codes are shifted down.
    """
    u8 = np.uint8
    t0 = fmt.max_code - fmt.bias if div else fmt.bias  # field = s - t0
    if not parallel and not div:
        return int(_mul_u8_blocked(ca, cb, u8(fmt.max_code), fmt.bias, fmt.gamma, u8(floor), out, _BLOCK))
    if parallel:
        tops = np.zeros(chunks, dtype=np.uint8)
        _top_sum_u8_parallel(ca, cb, div, u8(fmt.max_code), tops)
        s_top = int(tops.max())
    else:
        s_top = int(_top_sum_u8(ca, cb, div, u8(fmt.max_code))) if ca.size else 0
    k = int(_shift_of(s_top, t0, fmt.max_code, fmt.gamma))
    t = t0 + k * fmt.gamma
    # t > 254 (a γ wider than the code range) flushes every field, as t = 255 does
    args = (ca, cb, div, u8(fmt.max_code), u8(min(max(t, 0), 255)), u8(max(-t, 0)), u8(floor), u8(div0_value), out)
    if parallel:
        _write_products_u8_parallel(*args, chunks)
    else:
        _write_products_u8(*args)
    return k


def _mul_codes(ca, cb, fmt, sign_b, out, k_min=None):
    """Products (``sign_b=1``) or quotients (``-1``) of flat code arrays; returns (k, zero divisions).

    Result field ``|a| + |b| - β`` (product) or ``|a| - |b| + β`` (quotient),
    shifted down by ``k·γ`` so that the largest lands at or just below
    ``max_code`` — or, for formats wider than 8 bits, by ``k_min·γ`` when that
    is larger: the shift that keeps the result's scale a normal float64 (the
    smallest products then flush, as values below the format's range do).
    """
    floor = 1 if fmt.underflow == Underflow.SATURATE else 0
    div0_value = 0 if sign_b > 0 else fmt.max_code
    n_div0 = int(np.count_nonzero((cb == 0) & (ca != 0))) if sign_b < 0 else 0  # before out may overwrite ca/cb
    parallel = ca.size >= _PARALLEL_MIN and use_parallel(ca.size)
    chunks = 16
    if fmt.bits <= 8:
        return _mul_codes_u8(ca, cb, fmt, sign_b < 0, floor, div0_value, out, parallel, chunks), n_div0
    it = _field_type(fmt)
    none = it(np.iinfo(it).min)
    base = -fmt.bias if sign_b > 0 else fmt.bias
    if not ca.size:
        top = int(none)
    elif parallel:
        tops = np.empty(chunks, dtype=it)
        _top_field_parallel(ca, cb, it, it(sign_b), it(base), none, tops)
        top = int(tops.max())
    else:
        top = int(_top_field(ca, cb, it, it(sign_b), it(base), none))
    k = -((fmt.max_code - top) // fmt.gamma) if top > int(none) else 0
    if k_min is not None:
        k = max(k, int(k_min))
    args = (ca, cb, it, it(sign_b), it(base - k * fmt.gamma), it(fmt.max_code), it(floor), it(div0_value), out)
    if parallel:
        _write_products_parallel(*args, chunks)
    else:
        _write_products(*args)
    return k, n_div0


def _scale_log2_min(a_scale, b_scale, sign_b: int) -> float:
    """``min log2(σ_a·σ_b^sign_b)`` without forming the product (which may leave float64)."""
    return float(np.min(np.log2(a_scale) + sign_b * np.log2(b_scale)))


def _shifted_scale(a_scale, b_scale, sign_b: int, k: int):
    """``σ_a·σ_b^sign_b·2**k`` through mantissas and exponents (the plain product of two
    scales near 2**-1022 would underflow before the shift brings it back), with an error
    that says why when the result itself leaves float64's range."""
    ma, ea = np.frexp(np.asarray(a_scale, dtype=np.float64))
    mb, eb = np.frexp(np.asarray(b_scale, dtype=np.float64))
    m = ma * mb if sign_b > 0 else ma / mb
    with np.errstate(over="ignore", under="ignore"):
        shifted = np.ldexp(m, (ea + sign_b * eb + k).astype(np.int64))
    if not (np.all(np.isfinite(shifted)) and np.all(shifted > 0)):
        raise OverflowError(f"the result's scale, 2**{np.log2(m).max() + np.max(ea + sign_b * eb + k):.0f}, is "
                            "outside float64's range (formats spanning more than about 1000 octaves, e.g. 16 "
                            "bits at gamma 8, can leave it); use operands with scales nearer 1, or a format "
                            "with fewer octaves (fewer bits or a larger gamma)")
    return shifted if np.ndim(shifted) else float(shifted)


def _binary(a, b, sign_b: int, out):
    from neurolns.lns.array import LNSArray
    from neurolns.lns.codec import check_out, out_buffer

    if not isinstance(a, LNSArray) or not isinstance(b, LNSArray):
        raise TypeError(f"expected two LNSArrays, got {type(a).__name__} and {type(b).__name__}")
    if a.format != b.format:
        raise ValueError(
            f"formats differ ({a.format} vs {b.format}); convert one with .astype(other.format) first"
        )
    fmt = a.format
    shape = np.broadcast_shapes(a.shape, b.shape)
    if out is not None:
        check_out(out, shape, fmt.code_dtype)
    ca = np.ascontiguousarray(np.broadcast_to(a.codes, shape)).reshape(-1)
    cb = np.ascontiguousarray(np.broadcast_to(b.codes, shape)).reshape(-1)
    buf, direct = out_buffer(out, ca.size, fmt.code_dtype, (ca, cb), elementwise=True)
    # the largest product lands at the top code (k < 0 moves codes up) unless the scale would
    # then fall below float64's normal range (formats spanning > 1000 octaves): shift to k_min
    k_min = math.ceil(-1022.0 - _scale_log2_min(a.scale, b.scale, sign_b))
    k, n_div0 = _mul_codes(ca, cb, fmt, sign_b, buf, k_min=k_min)
    if out is not None:
        if not direct:
            np.copyto(out, buf.reshape(shape))
        buf = out
    if n_div0:
        warnings.warn(f"{n_div0} division(s) by zero saturated to the largest magnitude", RuntimeWarning, stacklevel=3)
    scale = _shifted_scale(a.scale, b.scale, sign_b, int(k))
    return LNSArray(buf if out is not None else buf.reshape(shape), fmt, scale, _trusted=True)


def mul(a, b, *, out=None):
    """Exact elementwise product of two LNSArrays of the same format (numpy broadcasting).

    Codes ``c = sign(a)·sign(b)·(|a| + |b| − β − kγ)`` at scale
    ``σ_a·σ_b·2**k``, ``k`` the smallest shift that keeps every product's
    field at or below ``max_code`` (values: ``x_a·x_b`` exactly, up to range).

    Parameters
    ----------
    a, b : LNSArray
        Same format; their shapes broadcast.
    out : numpy.ndarray, optional
        Where to write the result's codes: ``fmt.code_dtype`` and the broadcast
        shape (TypeError/ValueError otherwise). It may be ``a.codes`` or
        ``b.codes`` (in place); the returned LNSArray holds ``out``.

    Returns
    -------
    LNSArray

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode, mul
    >>> a = encode(np.array([3.0, -0.5]), LNS8)
    >>> b = encode(np.array([2.0, 4.0]), LNS8)
    >>> mul(a, b).decode().round(4)       # 3.0844 * 2 and -0.5 * 4, exactly
    array([ 6.1688, -2.    ])
    >>> buf = np.empty(2, np.int8)
    >>> mul(a, b, out=buf).codes is buf
    True
    """
    return _binary(a, b, 1, out)


def div(a, b, *, out=None):
    """Exact elementwise quotient ``a / b`` (a subtraction of exponent codes).

    Codes ``sign(a)·sign(b)·(|a| − |b| + β − kγ)`` at scale ``σ_a/σ_b·2**k``,
    ``k`` as in :func:`mul` (values: ``x_a/x_b`` exactly, up to range); a zero
    divisor gives ``±max_code`` with a RuntimeWarning (``0/0`` gives 0).

    Parameters
    ----------
    a, b : LNSArray
        Same format; their shapes broadcast.
    out : numpy.ndarray, optional
        Where to write the result's codes, as in :func:`mul`.

    Returns
    -------
    LNSArray
        The quotients, the same as ``a / b``.

    Examples
    --------
    >>> from neurolns import LNS8
    >>> from neurolns.lns import div, encode
    >>> q = div(encode([3.0, -1.0], LNS8), encode([2.0, 4.0], LNS8))
    >>> q.decode().round(4)               # 3.0844 / 2 and -1 / 4, exactly
    array([ 1.5422, -0.25  ])
    """
    return _binary(a, b, -1, out)
