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

import numpy as np

from neurolns._jit import pjit, prange
from neurolns.formats import Underflow

__all__ = ["mul", "div"]


@pjit
def _mul_kernel(ca, cb, bias, sign_b, max_code, gamma, saturate_small, out):
    """Fields ``|ca| ± (|cb| - β)`` with renormalisation; returns (k, zero divisions)."""
    n = ca.size
    # pass 1: the largest field among non-zero results decides the shift k
    top = np.int64(-(1 << 62))
    for i in prange(n):
        a = np.int64(ca[i])
        b = np.int64(cb[i])
        if a != 0 and b != 0:
            f = abs(a) + sign_b * (abs(b) - bias)
            top = max(top, f)
    k = 0
    if top > -(1 << 62):
        # smallest k with top - k*gamma <= max_code (k may be negative: shift up)
        k = -((max_code - top) // gamma)
    n_div0 = 0
    for i in prange(n):
        a = np.int64(ca[i])
        b = np.int64(cb[i])
        if a == 0:
            out[i] = 0
            continue
        neg = (a < 0) != (b < 0)
        if b == 0:
            if sign_b < 0:  # x / 0 saturates
                n_div0 += 1
                out[i] = -max_code if neg else max_code
            else:
                out[i] = 0
            continue
        f = abs(a) + sign_b * (abs(b) - bias) - k * gamma
        if f > max_code:
            f = max_code
        elif f < 1:
            if saturate_small:
                f = 1
            else:
                out[i] = 0
                continue
        out[i] = -f if neg else f
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
    k, n_div0 = _mul_kernel(
        ca, cb, fmt.bias, sign_b, fmt.max_code, fmt.gamma, fmt.underflow == Underflow.SATURATE, out
    )
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
