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

import warnings

import numba
import numpy as np

from neurolns._jit import jit, pjit, prange
from neurolns.formats import Underflow

__all__ = ["mul", "div"]


@jit
def _top_field(ca, cb, z, sign_b, c0):
    """Largest result field ``|a| ± |b| + c0`` over pairs whose operands are both non-zero.

    ``z`` is a typed zero that sets the integer width of the arithmetic (int16
    for 8-bit codes, so that LLVM vectorises the loop). Pairs with a zero
    operand count as ``-2**14`` (below any real field).
    """
    none = z - (1 << 14)
    top = none
    for i in range(ca.size):
        a = ca[i] + z
        b = cb[i] + z
        aa = a if a >= 0 else -a
        bb = b if b >= 0 else -b
        f = aa + sign_b * bb + c0
        f = f if (a != 0) & (b != 0) else none
        top = f if f > top else top
    return top


@jit
def _write_products(ca, cb, z, sign_b, c0, max_code, floor, div0_value, out, lo, hi):
    """Fields ``|a| ± |b| + c0`` (the shift folded into ``c0``), saturated at
    ``max_code``, below 1 set to ``floor`` (0: flush, 1: saturate), with the sign
    of the product. ``b = 0`` gives 0 for a product and ``div0_value`` for a
    quotient; ``a = 0`` gives 0. Selects instead of branches, so it vectorises.
    """
    for i in range(lo, hi):
        a = ca[i] + z
        b = cb[i] + z
        aa = a if a >= 0 else -a
        bb = b if b >= 0 else -b
        f = aa + sign_b * bb + c0
        f = f if f < max_code else max_code
        f = f if f > 0 else floor
        f = f if b != 0 else div0_value
        f = f if a != 0 else z
        out[i] = f if (a ^ b) >= 0 else -f


@pjit
def _write_products_parallel(ca, cb, z, sign_b, c0, max_code, floor, div0_value, out, chunks):
    n = ca.size
    step = (n + chunks - 1) // chunks
    for c in prange(chunks):
        _write_products(ca, cb, z, sign_b, c0, max_code, floor, div0_value, out, c * step, min(n, (c + 1) * step))


#: below this many elements the thread start-up of the parallel writer does not pay
_PARALLEL_MIN = 1 << 24


def _mul_codes(ca, cb, fmt, sign_b, out):
    """Products (``sign_b=1``) or quotients (``-1``) of flat code arrays; returns (k, zero divisions).

    Result field ``|a| + |b| - β`` (product) or ``|a| - |b| + β`` (quotient),
    shifted down by ``k·γ`` so that the largest lands at or just below
    ``max_code``.
    """
    it = np.int16 if fmt.bits <= 8 else np.int64
    z = it(0)
    base = -fmt.bias if sign_b > 0 else fmt.bias
    top = int(_top_field(ca, cb, z, it(sign_b), it(base))) if ca.size else -(1 << 14)
    k = -((fmt.max_code - top) // fmt.gamma) if top > -(1 << 14) else 0
    floor = 1 if fmt.underflow == Underflow.SATURATE else 0
    div0_value = 0 if sign_b > 0 else fmt.max_code
    args = (ca, cb, z, it(sign_b), it(base - k * fmt.gamma), it(fmt.max_code), it(floor), it(div0_value), out)
    if ca.size >= _PARALLEL_MIN:
        _write_products_parallel(*args, 2 * max(1, numba.get_num_threads()))
    else:
        _write_products(*args, 0, ca.size)
    n_div0 = int(np.count_nonzero((cb == 0) & (ca != 0))) if sign_b < 0 else 0
    return k, n_div0


def _binary(a, b, sign_b: int):
    from neurolns.lns.array import LNSArray

    if not isinstance(a, LNSArray) or not isinstance(b, LNSArray):
        raise TypeError(f"expected two LNSArrays, got {type(a).__name__} and {type(b).__name__}")
    if a.format != b.format:
        raise ValueError(
            f"formats differ ({a.format} vs {b.format}); convert one with .astype(other.format) first"
        )
    fmt = a.format
    shape = np.broadcast_shapes(a.shape, b.shape)
    ca = np.ascontiguousarray(np.broadcast_to(a.codes, shape)).reshape(-1)
    cb = np.ascontiguousarray(np.broadcast_to(b.codes, shape)).reshape(-1)
    out = np.empty(ca.size, dtype=fmt.code_dtype)
    k, n_div0 = _mul_codes(ca, cb, fmt, sign_b, out)
    if n_div0:
        warnings.warn(f"{n_div0} division(s) by zero saturated to the largest magnitude", RuntimeWarning, stacklevel=3)
    scale = a.scale * b.scale if sign_b > 0 else a.scale / b.scale
    scale = scale * 2.0 ** int(k)
    return LNSArray(out.reshape(shape), fmt, scale, _trusted=True)


def mul(a, b):
    """Exact elementwise product of two LNSArrays of the same format (numpy broadcasting).

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode, mul
    >>> a = encode(np.array([3.0, -0.5]), LNS8)
    >>> b = encode(np.array([2.0, 4.0]), LNS8)
    >>> mul(a, b).decode().round(4)       # 3.0844 * 2 and -0.5 * 4, exactly
    array([ 6.1688, -2.    ])
    """
    return _binary(a, b, 1)


def div(a, b):
    """Exact elementwise quotient ``a / b`` (a subtraction of exponent codes)."""
    return _binary(a, b, -1)
