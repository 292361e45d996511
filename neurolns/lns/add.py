"""Addition and subtraction of LNS values: exact, table (LUT) and Mitchell modes.

Adding in a logarithmic number system needs the Gaussian logarithms. With
exponent fields ``m_1 >= m_2`` and ``d = m_1 - m_2`` (codes, ``γ`` per octave)

.. math::  m_{1} \\oplus m_{2} = m_1 + \\Phi^{\\pm}(d), \\qquad
           \\Phi^{+}(d) = \\gamma \\log_2(1 + 2^{-d/\\gamma}), \\quad
           \\Phi^{-}(d) = \\gamma \\log_2(1 - 2^{-d/\\gamma}),

``Φ+`` when the signs agree, ``Φ-`` when they differ; the result takes the
sign of the larger operand. The modes (:class:`AddMode`) differ in how ``Φ±``
is evaluated; their worst-case errors against the correctly rounded sum are
given by :func:`add_error_bound` (exhaustive over every ``d``) and in
``docs/lns.md``:

* ``"exact"``: ``rint(Φ±(d))``, the code nearest (in the log domain) to the true
  sum: error 0 codes (at most half a code from the real sum, in log2 units
  ``0.5/γ`` octave).
* ``"lut"``: ``Φ±`` sampled every ``2**s`` codes (``table_size`` entries per
  function, default :func:`default_table_size`) and linearly interpolated, as
  LNS adders do; ``Φ-`` near its singularity (``d < γ``, one octave) comes
  from a small exact table. At the default size: within 1 code of exact.
* ``"mitchell"``: Mitchell's ``2**f ≈ 1+f``, ``log2(1+f) ≈ f`` in fixed point
  (no table but the exact ``Φ-`` for ``d < γ``): about ``0.12 γ`` codes
  (1 code for LNS8, 8 for LNS12, 125 for LNS16).

In every mode ``x + (-x)`` is exact zero, results saturate at the largest
code and small results flush to zero or saturate per the format's
:class:`~neurolns.formats.Underflow`.

References: Arnold et al., IEEE Trans. Computers 47(7), 1998; Mitchell, IRE
Trans. EC-11, 1962; Zhao et al., LNS-Madam, IEEE Trans. Computers 71(12), 2022.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neurolns._jit import use_parallel
from neurolns.lns.checks import check_codes, first_index
from neurolns.formats import LNSFormat, Underflow, _StrEnum
from neurolns.lns import _add_kernels as _k
from neurolns.lns import _add_reference as _ref

__all__ = [
    "AddMode",
    "add",
    "sub",
    "add_codes",
    "correction_tables",
    "add_error_bound",
    "default_table_size",
]

#: Largest Gaussian-log table (entries per function) the kernels use; formats
#: with a finer γ (above about 2**17) take the per-element float64 path.
_MAX_TABLE = 1 << 22
#: Formats up to this width add through a table of every code pair.
_PAIR_TABLE_BITS = 8
#: Element count from which the add kernels run in parallel. Higher than the
#: package default: the serial loop is a few ns per element, and on a shared
#: machine a parallel loop waits for its slowest thread.
_PARALLEL_MIN = 1 << 20


class AddMode(_StrEnum):
    """How the Gaussian logarithm ``Φ±`` of an LNS sum is evaluated."""

    EXACT = "exact"
    LUT = "lut"
    MITCHELL = "mitchell"


@lru_cache(maxsize=64)
def _cutoff(gamma: int) -> int:
    return _ref.cutoff(gamma)


def _check_format(fmt) -> LNSFormat:
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    return fmt


def _check_table_size(mode: AddMode, table_size) -> int | None:
    if table_size is None:
        return None
    if mode != AddMode.LUT:
        raise ValueError(f"table_size applies to mode 'lut' only, got mode {mode.value!r}")
    if isinstance(table_size, bool) or not isinstance(table_size, (int, np.integer)):
        raise TypeError(f"table_size must be an int, got {type(table_size).__name__}")
    if not 2 <= int(table_size) <= _MAX_TABLE:
        raise ValueError(f"table_size={table_size} is out of range; allowed: 2 <= table_size <= {_MAX_TABLE}")
    return int(table_size)


def default_table_size(fmt: LNSFormat) -> int:
    """Default entries of the ``"lut"`` tables for ``fmt`` (a power of two).

    ``2**ceil(log2(d_max / sqrt(γ)))`` (at least 8) with ``d_max`` the distance in codes
    past which the smaller operand no longer counts; 16 for LNS8 (γ=8), 64 for
    LNS12 (γ=64), 512 for LNS16 (γ=1024).

    >>> from neurolns import LNS8, LNS16
    >>> from neurolns.lns import default_table_size
    >>> default_table_size(LNS8), default_table_size(LNS16)
    (16, 512)
    """
    return _ref.default_table_size(_check_format(fmt).gamma)


@lru_cache(maxsize=16)
def _pair_table(fmt: LNSFormat, mode: AddMode, table_size: int | None) -> np.ndarray:
    """``table[i, j]`` = code of ``(i - M) + (j - M)`` (``M = max_code``), from the kernel."""
    c = np.arange(-fmt.max_code, fmt.max_code + 1, dtype=fmt.code_dtype)
    ca = np.repeat(c, c.size)
    cb = np.tile(c, c.size)
    plus, minus = _tables(fmt.gamma, mode, table_size)
    out = np.empty(ca.size, dtype=fmt.code_dtype)
    _k.add_kernel(ca, cb, np.zeros(1, dtype=np.int64), plus, minus, fmt.max_code,
                  fmt.underflow == Underflow.SATURATE, out)
    t = out.reshape(c.size, c.size)
    t.setflags(write=False)
    return t


@lru_cache(maxsize=64)
def _tables(gamma: int, mode: AddMode, table_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    span = _cutoff(gamma)
    d = np.arange(span + 1, dtype=np.int64)
    plus = _ref.correction_reference(d, gamma, mode.value, True, table_size).astype(np.int32)
    minus = _ref.correction_reference(d, gamma, mode.value, False, table_size)
    minus[0] = 0  # never read: d = 0 with opposite signs is exact zero
    minus = minus.astype(np.int32)
    for t in (plus, minus):
        t.setflags(write=False)
    return plus, minus


def correction_tables(fmt: LNSFormat, mode: AddMode | str = "exact", table_size: int | None = None):
    """The integer corrections ``Φ+(d)`` and ``Φ-(d)`` of a mode, ``d = 0..d_max``.

    ``a + b = max + Φ±(|m_a - m_b|)``; entries past ``d_max`` are 0. These
    are what an LNS adder's ROM would hold after its interpolator; the kernels
    index them directly, which is bit-identical to evaluating the mode.

    Returns
    -------
    plus, minus : numpy.ndarray of int32, read-only (``minus[0]`` is unused).

    Examples
    --------
    >>> from neurolns import LNS8
    >>> from neurolns.lns import correction_tables
    >>> plus, minus = correction_tables(LNS8, "exact")
    >>> plus[:4], minus[1:4]              # 8·log2(1 + 2**(-d/8)), 8·log2(1 - 2**(-d/8))
    (array([8, 8, 7, 7], dtype=int32), array([-29, -21, -17], dtype=int32))
    """
    fmt = _check_format(fmt)
    mode = AddMode(mode)
    table_size = _check_table_size(mode, table_size)
    return _tables(fmt.gamma, mode, table_size)


def add_error_bound(fmt: LNSFormat, mode: AddMode | str = "exact", table_size: int | None = None) -> int:
    """Worst-case distance, in codes, of ``mode``'s sum from the correctly rounded one.

    Computed exhaustively: the sum differs from the exact mode's only through
    ``Φ±(d)``, so the bound is ``max_d |Φ±_mode(d) - rint(Φ±(d))|`` over every
    ``d`` and both sign cases (saturation and underflow can only shrink it).

    Examples
    --------
    >>> from neurolns import LNS8
    >>> from neurolns.lns import add_error_bound
    >>> [add_error_bound(LNS8, m) for m in ("exact", "lut", "mitchell")]
    [0, 1, 1]
    """
    fmt = _check_format(fmt)
    mode = AddMode(mode)
    table_size = _check_table_size(mode, table_size)
    if fmt.gamma > 1 << 17:
        raise ValueError(f"add_error_bound tabulates every d; gamma={fmt.gamma} is too fine (allowed: <= 131072)")
    p, m = _tables(fmt.gamma, mode, table_size)
    pe, me = _tables(fmt.gamma, AddMode.EXACT, None)
    return int(max(np.abs(p.astype(np.int64) - pe).max(), np.abs(m[1:].astype(np.int64) - me[1:]).max()))


def add_codes(ca, cb, fmt: LNSFormat, *, mode: AddMode | str = "exact", table_size: int | None = None,
              shift=0, reference: bool = False) -> np.ndarray:
    """Codes of ``a + b`` for raw code arrays of one format (the hot path of :func:`add`).

    Parameters
    ----------
    ca, cb : array_like of int
        Signed codes (numpy broadcasting).
    fmt : LNSFormat
    mode : {"exact", "lut", "mitchell"}
    table_size : int, optional
        Entries per table of mode ``"lut"`` (default :func:`default_table_size`).
    shift : int or array_like of int
        ``b``'s scale is ``2**(shift/γ)`` times ``a``'s: its field is moved by
        ``shift`` codes before the sum (exact, no rounding).
    reference : bool
        Evaluate the float64 reference formulas per element instead of the kernel.

    Returns
    -------
    numpy.ndarray of ``fmt.code_dtype``, the broadcast shape.

    Examples
    --------
    >>> from neurolns import LNS8
    >>> from neurolns.lns import add_codes, encode_codes, decode_codes
    >>> c = add_codes(encode_codes([3.0, 3.0], LNS8), encode_codes([0.1, 1.0], LNS8), LNS8)
    >>> c, decode_codes(c, LNS8).round(4)     # 3.0844 + 0.0964 rounds back to 3.0844
    (array([77, 80], dtype=int8), array([3.0844, 4.    ]))
    """
    fmt = _check_format(fmt)
    mode = AddMode(mode)
    table_size = _check_table_size(mode, table_size)
    a = np.asarray(ca)
    b = np.asarray(cb)
    for name, arr in (("ca", a), ("cb", b)):
        check_codes(arr, fmt, name=name)
    sh = _check_shift(shift, fmt)
    shape = np.broadcast_shapes(a.shape, b.shape, sh.shape)
    if reference or _cutoff(fmt.gamma) + 1 > _MAX_TABLE:
        return _ref.add_codes_reference(
            np.broadcast_to(a, shape), b, fmt, mode.value, table_size, sh
        ).reshape(shape)
    fa = np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1)
    fb = np.ascontiguousarray(np.broadcast_to(b, shape)).reshape(-1)
    if sh.size == 1:
        fs = sh.reshape(1)
    else:
        fs = np.ascontiguousarray(np.broadcast_to(sh, shape)).reshape(-1)
    out = np.empty(fa.size, dtype=fmt.code_dtype)
    parallel = fa.size >= _PARALLEL_MIN and use_parallel(fa.size)
    if fmt.bits <= _PAIR_TABLE_BITS and fs.size == 1 and fs[0] == 0 and fa.size > 1 << 12:
        kern = _k.add_pairs_kernel_parallel if parallel else _k.add_pairs_kernel
        kern(fa, fb, _pair_table(fmt, mode, table_size), fmt.max_code, out)
        return out.reshape(shape)
    plus, minus = _tables(fmt.gamma, mode, table_size)
    kern = _k.add_kernel_parallel if parallel else _k.add_kernel
    kern(fa, fb, fs, plus, minus, fmt.max_code, fmt.underflow == Underflow.SATURATE, out)
    return out.reshape(shape)


def _check_shift(shift, fmt: LNSFormat) -> np.ndarray:
    """Integer code shifts as int64, refused past ``±2**31`` (the kernels add them to
    codes in int64; any real scale ratio of float64 scales is far inside)."""
    sh = np.asarray(shift)
    if sh.dtype.kind not in "iu" or sh.dtype == np.bool_:
        raise TypeError(f"shift must be an integer or an integer array, got dtype {sh.dtype}")
    lim = 1 << 31
    if sh.size and (int(sh.min()) < -lim or int(sh.max()) > lim):
        bad = (sh < -lim) | (sh > lim)
        idx = first_index(bad)
        raise ValueError(f"shift={int(sh[idx])} at index {idx} is out of range; allowed: {-lim} <= shift <= {lim}")
    return sh.astype(np.int64)


def _align(a, b):
    """``b``'s codes and the field shift that put it on ``a``'s format and scale."""
    from neurolns.lns.codec import encode_codes

    fmt = a.format
    if b.format != fmt:
        b = b.astype(fmt)
    ratio = np.asarray(b.scale / a.scale, dtype=np.float64)
    mant, ex = np.frexp(ratio)  # exact, unlike log2/exp2: a power of two has mantissa 1/2
    if np.all(mant == 0.5):
        return b.codes, (ex.astype(np.int64) - 1) * fmt.gamma
    # Not a power-of-two ratio: b is rounded once onto a's scale grid.
    shape = np.broadcast_shapes(a.shape, b.shape)
    s = np.broadcast_to(a.scale, shape)
    return encode_codes(np.broadcast_to(b.decode(), shape), fmt, s), np.zeros((), dtype=np.int64)


def add(a, b, *, mode: AddMode | str = "exact", table_size: int | None = None):
    """Elementwise ``a + b`` of two :class:`~neurolns.lns.LNSArray` (numpy broadcasting).

    The result has ``a``'s format and scale. When ``b``'s scale is ``a``'s
    times an exact power of two ``2**k`` (the usual case: both are powers of
    two), ``b`` is aligned exactly by moving its field ``γ·k`` codes; otherwise
    ``b`` is first rounded (nearest) onto ``a``'s scale grid. A ``b`` in
    another format is first converted with ``b.astype(a.format)``.

    Parameters
    ----------
    a, b : LNSArray
    mode : {"exact", "lut", "mitchell"}
        See :class:`AddMode` and the module notes for each mode's error bound.
    table_size : int, optional
        Entries per Gaussian-log table of mode ``"lut"``.

    Returns
    -------
    LNSArray

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode
    >>> from neurolns.lns.add import add
    >>> a = encode(np.array([3.0, 1.0, 0.5, 2.0]), LNS8, scale=1.0)
    >>> b = encode(np.array([1.0, -1.0, 0.5, -0.3]), LNS8, scale=1.0)
    >>> add(a, b).decode().round(4)                    # 3.0844 + 1 = 4.0844 -> 4
    array([4.    , 0.    , 1.    , 1.6818])
    >>> add(a, b, mode="mitchell").decode().round(4)   # one code low
    array([3.668 , 0.    , 1.    , 1.6818])
    """
    from neurolns.lns.array import LNSArray

    if not isinstance(a, LNSArray) or not isinstance(b, LNSArray):
        raise TypeError(f"add expects two LNSArrays, got {type(a).__name__} and {type(b).__name__}")
    cb, shift = _align(a, b)
    codes = add_codes(a.codes, cb, a.format, mode=mode, table_size=table_size, shift=shift)
    return LNSArray(codes, a.format, a.scale, _trusted=True)


def sub(a, b, *, mode: AddMode | str = "exact", table_size: int | None = None):
    """Elementwise ``a - b``: :func:`add` of ``a`` and ``-b`` (negation is exact).

    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode
    >>> from neurolns.lns.add import sub
    >>> a = encode(np.array([3.0, 2.0]), LNS8, scale=1.0)
    >>> sub(a, a).decode()                   # exact zero in every mode
    array([0., 0.])
    """
    from neurolns.lns.array import LNSArray

    if not isinstance(b, LNSArray):
        raise TypeError(f"sub expects two LNSArrays, got {type(a).__name__} and {type(b).__name__}")
    return add(a, -b, mode=mode, table_size=table_size)
