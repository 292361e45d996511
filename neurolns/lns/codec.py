"""Encoding real values to LNS codes and decoding them back.

A value ``x`` is stored as the signed code ``c`` with

.. math::  x \\approx \\operatorname{sign}(c)\\,\\sigma\\,2^{(|c|-\\beta)/\\gamma},
           \\qquad e = |c| - \\beta = \\operatorname{round}(\\gamma \\log_2 |x/\\sigma|)

Rounding happens in the log domain (:class:`~neurolns.formats.Rounding`):
nearest (``rint``, ties to even) or stochastic (unbiased: ``E[e] = γ log2|x/σ|``).
Out-of-range values saturate at the largest code, never wrap; values below the
smallest code flush to zero or saturate (:class:`~neurolns.formats.Underflow`).

Special values: NaN raises :class:`ValueError` (how many, and where the first
is); ±inf saturates to ±largest magnitude with a :class:`RuntimeWarning`, as
numpy warns on overflow rather than raising. Exact zero is the code 0.

The scale ``σ``: ``scale=None`` picks a power of two per tensor (or per channel
with ``channel_axis``) that maps ``max|x|`` onto the top exponent code; a number
or an array broadcastable to ``x`` is used as given. With ``scale=1`` the codes
are the plain fixed-point ``log2`` of the input, with ``F = log2 γ`` fractional
bits — the grid of the ``xlns`` package.

References: Zhao et al., LNS-Madam, IEEE Trans. Computers 71(12), 2022.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from neurolns.formats import LNSFormat, Rounding
from neurolns.lns import _codec_kernels as _k
from neurolns.lns._exact import exp2_floor, exp2_table
from neurolns.lns._reference import decode_reference, encode_reference, log2_scale_of, wider_than_float64
from neurolns.lns.checks import check_codes, check_scale, first_index

__all__ = ["encode", "decode", "encode_codes", "decode_codes", "choose_scale", "quantize", "as_rng"]

#: formats up to this width decode through a table of 2**(bits-1) float64 entries
_TABLE_MAX_BITS = 20


def _check_format(fmt) -> LNSFormat:
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    return fmt


def _as_float_array(x) -> np.ndarray:
    """float32/float64 view of the input; ints and bools become float64, float16 float32."""
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind in "iub":
        return arr.astype(np.float64)
    if kind == "f":
        if arr.dtype == np.float16:
            return arr.astype(np.float32)
        if arr.dtype.itemsize > 8:
            return arr.astype(np.float64)
        return arr
    raise TypeError(f"cannot encode an array of dtype {arr.dtype}; allowed: integer, bool or float")


def as_rng(seed) -> np.random.Generator:
    """A numpy Generator from ``None``, an int, a SeedSequence or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def choose_scale(x, fmt: LNSFormat, *, channel_axis: int | None = None) -> np.ndarray:
    """Power-of-two scale that maps ``max|x|`` (finite values) onto the top code.

    ``σ = 2**k``, ``k = ceil(log2 max|x| - e_max/γ)``: the largest magnitude
    encodes at or just below ``e_max``, so nothing saturates and the format's
    whole dynamic range lies below the maximum. All-zero (or non-finite) data
    get ``σ = 1``.

    Parameters
    ----------
    x : array_like
    fmt : LNSFormat
    channel_axis : int, optional
        One scale per index along this axis (e.g. 0 for the output channels of
        a weight matrix); the result keeps ``x.ndim`` dimensions for
        broadcasting. ``None``: one scale for the tensor (a 0-d array).

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import choose_scale
    >>> float(choose_scale(np.array([0.5, -3.0]), LNS8))   # 3 <= 2**-6 * 2**(63/8)
    0.015625
    """
    fmt = _check_format(fmt)
    xf = _as_float_array(x)
    if channel_axis is None:
        # one pass over the float's bits (no abs/isfinite temporaries)
        amax = np.asarray(_k.finite_absmax(xf) if xf.size else 0.0, dtype=np.float64)
    else:
        a = np.abs(xf).astype(np.float64, copy=False)
        a = np.where(np.isfinite(a), a, 0.0)
        if a.ndim == 0:
            raise ValueError("channel_axis needs an array with at least one dimension")
        ax = channel_axis % a.ndim if -a.ndim <= channel_axis < a.ndim else None
        if ax is None:
            raise ValueError(f"channel_axis={channel_axis} is out of range for an array of ndim {a.ndim}")
        axes = tuple(i for i in range(a.ndim) if i != ax)
        amax = a.max(axis=axes, keepdims=True) if a.size else np.zeros([1] * a.ndim)
    return np.ldexp(1.0, scale_exponent(amax, fmt)).astype(np.float64)


def scale_threshold(fmt: LNSFormat, precision: int) -> tuple[int, float]:
    """``(Q, thr)`` with ``e_max = Qγ + R`` and ``thr`` the largest ``precision``-bit
    float ``≤ 2^(R/γ)`` (exactly, from :func:`neurolns.lns._exact.exp2_floor`)."""
    q, r = divmod(fmt.e_max, fmt.gamma)
    if r == 0:
        return q, 1.0
    h = exp2_floor(fmt.gamma)[r]  # ⌊2^(r/γ)·2^128⌋; 2^(r/γ) is irrational, so truncation rounds down
    n = h >> (128 - (precision - 1))
    return q, float(np.ldexp(float(n), -(precision - 1)))


def scale_exponent(amax, fmt: LNSFormat) -> np.ndarray:
    """``k = ⌈log2 amax − e_max/γ⌉`` decided exactly (0 where ``amax`` is 0), clipped to
    ``[-1022, 1023]`` so that ``2**k`` is a normal float64.

    With ``amax = 2^E·μ`` (``1 ≤ μ < 2``) and ``e_max = Qγ + R``:
    ``k = E − Q + [μ > 2^(R/γ)]``, and ``μ > 2^(R/γ)`` holds exactly when ``μ``
    exceeds the largest float64 at or below ``2^(R/γ)`` (``μ`` is a float64).
    No ``log2`` is evaluated, so the scale is the same on every machine.
    """
    amax = np.asarray(amax, dtype=np.float64)
    mant, ex = np.frexp(amax)  # amax = mant·2^ex, mant in [0.5, 1): μ = 2·mant, E = ex − 1
    q, thr = scale_threshold(fmt, 53)
    k = (ex - 1) - q + (2.0 * mant > thr)
    k = np.where(amax > 0, k, 0)
    return np.clip(k, -1022, 1023).astype(np.int64)


def _resolve_scale(x: np.ndarray, fmt: LNSFormat, scale, channel_axis) -> np.ndarray:
    if scale is None:
        return choose_scale(x, fmt, channel_axis=channel_axis)
    if channel_axis is not None:
        raise ValueError("give either scale or channel_axis, not both (channel_axis picks scales)")
    s = check_scale(scale)
    try:
        shape = np.broadcast_shapes(s.shape, x.shape)
    except ValueError:
        raise ValueError(f"scale of shape {s.shape} does not broadcast to the data's shape {x.shape}") from None
    if shape != x.shape:
        raise ValueError(f"scale of shape {s.shape} would broadcast the data's shape {x.shape} to {shape}")
    return s


def _flat_scale(s: np.ndarray, shape) -> np.ndarray:
    """Scale as a flat array: length 1 when per-tensor, else broadcast to ``shape``."""
    if s.size == 1:
        return s.reshape(1)
    return np.ascontiguousarray(np.broadcast_to(s, shape)).reshape(-1)


def _raise_nan(x: np.ndarray, n_nan: int) -> None:
    first = np.unravel_index(int(np.argmax(np.isnan(x))), x.shape) if x.ndim else ()
    where = f" at index {tuple(int(i) for i in first)}" if x.ndim else ""
    raise ValueError(f"cannot encode NaN: the input holds {n_nan} NaN value(s), the first{where}")


def check_out(out, shape, dtype) -> np.ndarray:
    """Validate an ``out=`` argument (numpy's rules, no casting): an ndarray of exactly
    ``dtype`` and ``shape``, writeable. Raises TypeError or ValueError naming the bad value."""
    dtype = np.dtype(dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}; expected {dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}; expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def _same_elements(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` are C-contiguous views of the same elements (same start, size, itemsize)."""
    return (a.flags.c_contiguous and b.flags.c_contiguous and a.itemsize == b.itemsize and a.size == b.size
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def out_buffer(out, n: int, dtype, inputs=(), *, elementwise: bool = False) -> tuple[np.ndarray, bool]:
    """Flat buffer of ``n`` elements a kernel writes to, and whether it is ``out`` itself.

    ``out`` (already checked) is written directly when it is C-contiguous and
    overlaps none of ``inputs``; with ``elementwise=True`` (a kernel that reads
    element ``i`` of every input before writing element ``i``), being exactly
    one of the inputs is allowed too (in-place). Otherwise a temporary is
    returned, to be copied into ``out`` afterwards, as numpy does for overlapping
    operands.
    """
    if out is None:
        return np.empty(n, dtype=dtype), False
    if out.flags.c_contiguous and not any(
        np.may_share_memory(out, a) and not (elementwise and _same_elements(out, a)) for a in inputs
    ):
        return out.reshape(-1), True
    return np.empty(n, dtype=dtype), False


def encode_codes(
    x,
    fmt: LNSFormat,
    scale=1.0,
    *,
    rounding: Rounding | str = Rounding.NEAREST,
    seed=None,
    reference: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Codes of ``x`` at the given scale (the hot path under :func:`encode`).

    ``c = sign(x)·(e + β)`` with ``e = round(γ·(log2|x| − log2 σ))`` clamped to
    ``[e_min, e_max]`` (below ``e_min``: 0, or ``e_min`` with underflow
    ``"saturate"``), ``σ`` in the units of ``x``.

    Parameters
    ----------
    x : array_like
        Integer, bool, float16/32/64 input of any shape (0-d and empty too).
    fmt : LNSFormat
    scale : float or array_like
        Positive scale broadcastable to ``x`` (default 1: plain fixed-point log2).
    rounding : {"nearest", "stochastic"}
    seed : None, int or numpy.random.Generator
        Source of the uniform numbers of stochastic rounding; the same seed
        gives the same codes.
    reference : bool
        Use the float64 numpy reference path instead of the Numba kernel.
    out : numpy.ndarray, optional
        Where to write the codes: ``fmt.code_dtype``, the shape of ``x``
        (TypeError/ValueError otherwise). Reusing a buffer saves the page
        faults of a fresh array on every call. On a NaN error its contents
        are unspecified.

    Returns
    -------
    numpy.ndarray of ``fmt.code_dtype`` with the shape of ``x`` (``out`` when given).

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNSFormat
    >>> from neurolns.lns import encode_codes
    >>> encode_codes([3.0, 0.1, -1.0, 0.0], LNSFormat(bits=8, gamma=8))  # ±(e + 64)
    array([ 77,  37, -64,   0], dtype=int8)
    >>> buf = np.empty(2, np.int8)
    >>> encode_codes(np.array([3.0, -1.0]), LNSFormat(bits=8, gamma=8), out=buf) is buf
    True
    """
    fmt = _check_format(fmt)
    rounding = Rounding(rounding)
    x = _as_float_array(x)
    if out is not None:
        check_out(out, x.shape, fmt.code_dtype)
    s = _resolve_scale(x, fmt, scale, None)
    u = as_rng(seed).random(x.size) if rounding == Rounding.STOCHASTIC else np.zeros(1)
    if reference:
        codes = encode_reference(x, fmt, s, rounding, u)
        n_nan = int(np.isnan(x).sum())
        n_inf = int(np.isinf(x).sum())
        if out is not None:
            np.copyto(out, codes)
            codes = out
    else:
        log2s, pow2 = log2_scale_of(s)
        flat = np.ascontiguousarray(x).reshape(-1)
        buf, direct = out_buffer(out, flat.size, fmt.code_dtype, (flat,))
        n_nan, n_inf = _k.encode_kernel(
            flat, _flat_scale(s, x.shape), _flat_scale(log2s, x.shape), pow2, float(fmt.gamma), fmt.bias,
            fmt.e_min, fmt.e_max, fmt.underflow.value == "saturate", rounding == Rounding.STOCHASTIC, u, buf,
        )
        codes = buf.reshape(x.shape)
        if out is not None:
            if not direct:
                np.copyto(out, codes)
            codes = out
    if n_nan:
        _raise_nan(x, int(n_nan))
    if n_inf:
        warnings.warn(
            f"{int(n_inf)} infinite value(s) saturated to the largest magnitude of {fmt}",
            RuntimeWarning,
            stacklevel=2,
        )
    return codes


def decode_table(fmt: LNSFormat, dtype=np.float64) -> np.ndarray:
    """``table[m]`` = the correctly rounded ``2**((m - β)/γ)`` in ``dtype`` for
    ``m = 1..max_code``, ``table[0] = 0`` (read-only; cached per format).

    Computed once from exact integers (:func:`neurolns.lns._exact.exp2_table`),
    never with ``exp2``: the same bits on every machine. Entries below the
    dtype's range are 0 or subnormal, above it ``inf`` (IEEE rounding).

    >>> from neurolns import LNS8
    >>> decode_table(LNS8)[[0, 64, 72, 77]]
    array([0.        , 1.        , 2.        , 3.08442165])
    """
    return exp2_table(fmt.gamma, fmt.bias, fmt.max_code, np.dtype(dtype).name, 0)


def _value_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype whose correctly rounded table serves ``dtype``: itself for float32/float64."""
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


@lru_cache(maxsize=16)
def _pattern_values(fmt: LNSFormat, log2_scale: int, code_dtype: np.dtype, dtype: np.dtype) -> np.ndarray:
    """Values of every bit pattern of ``code_dtype`` at the scale ``2**log2_scale``, correctly
    rounded in ``dtype`` (see :func:`_k.pattern_values`); 16 tables of 16-bit codes in float64
    hold 8 MiB at most."""
    table = exp2_table(fmt.gamma, fmt.bias, fmt.max_code, _value_dtype(dtype).name, int(log2_scale))
    return _k.pattern_values(table, 1.0, code_dtype, dtype)


def _raise_bad_codes(c: np.ndarray, fmt: LNSFormat) -> None:
    check_codes(c, fmt)  # raises with the first bad index
    raise AssertionError("unreachable: a kernel counted a bad code that check_codes accepts")  # pragma: no cover


def _decode_pow2_normal(fmt: LNSFormat, fs: np.ndarray, dtype: np.dtype) -> bool:
    """Whether ``table[m]·σ`` stays in ``dtype``'s normal range for every code (then the
    product of the correctly rounded table and a power-of-two ``σ`` is exact)."""
    fi = np.finfo(dtype)
    lo_e = (1 - fmt.bias) / fmt.gamma  # log2 of the smallest magnitude, at scale 1
    hi_e = fmt.e_max / fmt.gamma
    ls = np.log2(fs)  # exact for powers of two
    return bool(lo_e + ls.min() >= fi.minexp + 1 and hi_e + ls.max() < fi.maxexp - 1)


def decode_codes(codes, fmt: LNSFormat, scale=1.0, *, dtype=None, reference: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Values of raw codes: ``x = sign(c) · σ · 2**((|c| - β)/γ)`` (0 for ``c = 0``), in the units of ``σ``.

    Parameters
    ----------
    codes : array_like of int
    fmt : LNSFormat
    scale : float or array_like
        ``σ``, broadcastable to ``codes`` (default 1).
    dtype : float dtype, optional
        Of the result: float64 by default, ``out.dtype`` when ``out`` is given.
    reference : bool
        Use the float64 numpy reference path instead of the Numba kernel.
    out : numpy.ndarray, optional
        Where to write the values: a float array of the codes' shape (and of
        ``dtype`` when both are given); TypeError/ValueError otherwise.

    Returns
    -------
    numpy.ndarray of ``dtype`` with the shape of ``codes`` (``out`` when given).
    With a power-of-two ``σ`` every value is the correctly rounded
    ``σ·2**((|c| - β)/γ)`` in ``dtype`` (float32 and float64; ties to even,
    subnormals rounded once, overflow to ``inf``). With any other ``σ`` it is
    the correctly rounded float64 ``2**((|c| - β)/γ)`` times ``σ`` in float64
    (one more rounding, at most half an ulp), then rounded to ``dtype``.

    Raises
    ------
    TypeError
        If ``codes`` is not an integer array or ``dtype`` not a float dtype.
    ValueError
        If a code lies outside ``±fmt.max_code`` (naming the first, by index;
        ``out`` is then left in an unspecified state), or ``scale`` is not
        finite and positive, or does not broadcast to the codes.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import decode_codes
    >>> decode_codes([77, 37, -64, 0], LNS8).round(6)
    array([ 3.084422,  0.096388, -1.      ,  0.      ])
    >>> buf = np.empty(2, np.float32)
    >>> decode_codes(np.array([64, -72], np.int8), LNS8, out=buf)
    array([ 1., -2.], dtype=float32)
    """
    fmt = _check_format(fmt)
    c = np.asarray(codes)
    if c.dtype.kind not in "iu" or c.dtype == np.bool_:
        raise TypeError(f"codes must be an integer array, got dtype {c.dtype}")
    if dtype is None:
        dtype = out.dtype if isinstance(out, np.ndarray) else np.float64
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a float dtype, got {dtype}")
    if out is not None:
        check_out(out, c.shape, dtype)
    s = check_scale(scale)
    try:
        shape = np.broadcast_shapes(c.shape, s.shape)
    except ValueError:
        shape = None
    if shape != c.shape:
        raise ValueError(f"scale of shape {s.shape} does not broadcast to the codes' shape {c.shape}")
    if reference:
        check_codes(c, fmt)
        values = decode_reference(c, fmt, s, _value_dtype(dtype)).astype(dtype, copy=False)
        if out is None:
            return values
        np.copyto(out, values)
        return out
    flat = np.ascontiguousarray(c).reshape(-1)
    buf, direct = out_buffer(out, flat.size, dtype, (flat,))
    fs = _flat_scale(s, c.shape)
    log2s, pow2 = log2_scale_of(fs)
    vdt = _value_dtype(dtype)
    if pow2 and fs.size == 1 and fmt.bits <= _TABLE_MAX_BITS:
        ls = int(log2s[0])
        if flat.dtype.kind == "i" and flat.dtype.itemsize <= 2 and flat.size > 4 << (8 * flat.dtype.itemsize):
            # 8/16-bit codes: look the bit patterns up (a table of 2**bits values, scale folded in)
            bad = _k.decode_lut(flat, _pattern_values(fmt, ls, flat.dtype, dtype), fmt.max_code, buf)
        else:
            table = exp2_table(fmt.gamma, fmt.bias, fmt.max_code, vdt.name, ls)
            bad = _k.decode_kernel(flat, table, np.ones(1), fmt.max_code, buf)
    elif pow2 and fmt.bits <= _TABLE_MAX_BITS and _decode_pow2_normal(fmt, fs, vdt):
        bad = _k.decode_kernel(flat, decode_table(fmt, vdt), fs, fmt.max_code, buf)
    elif pow2 and fs.size == 1:  # too wide to tabulate: correctly rounded mantissas, exact ldexp
        mant = exp2_table(fmt.gamma, 0, fmt.gamma - 1, vdt.name, 0)[:fmt.gamma].copy()
        mant[0] = 1.0
        bad = _k.decode_wide(flat, mant, fmt.gamma, fmt.bias, int(log2s[0]), vdt, fmt.max_code, buf)
    elif not pow2 and fmt.bits <= _TABLE_MAX_BITS and not wider_than_float64(fmt):
        bad = _k.decode_kernel(flat, decode_table(fmt), fs, fmt.max_code, buf)
    else:  # rare: per-element scales at the edge of the range, or wide formats at odd scales
        check_codes(flat, fmt)
        np.copyto(buf, decode_reference(flat, fmt, np.broadcast_to(s, c.shape).reshape(-1), vdt), casting="unsafe")
        bad = 0
    if bad:
        _raise_bad_codes(c, fmt)
    values = buf.reshape(c.shape)
    if out is None:
        return values
    if not direct:
        np.copyto(out, values)
    return out


def encode(
    x,
    fmt: LNSFormat,
    *,
    scale=None,
    channel_axis: int | None = None,
    rounding: Rounding | str = Rounding.NEAREST,
    seed=None,
    reference: bool = False,
):
    """Encode real values into an :class:`~neurolns.lns.LNSArray`.

    Parameters
    ----------
    x : array_like
        Integer, bool or float16/32/64 input of any shape.
    fmt : LNSFormat
    scale : None, float or array_like
        ``None`` picks a power-of-two scale (:func:`choose_scale`), per tensor
        or per channel along ``channel_axis``; a number or array broadcastable
        to ``x`` is used as given (``scale=1``: the plain log2 grid).
    channel_axis : int, optional
        With ``scale=None``: one power-of-two scale per index along this axis.
    rounding : {"nearest", "stochastic"}
        Log-domain rounding; stochastic is unbiased in the log domain.
    seed : None, int or numpy.random.Generator
        For stochastic rounding: the same seed gives the same codes.
    reference : bool
        Use the float64 reference path (slow; for tests and debugging).

    Returns
    -------
    LNSArray

    Raises
    ------
    ValueError
        If ``x`` holds NaN (the message counts them and gives the first index),
        or the scale is not positive, finite and broadcastable.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNSFormat
    >>> from neurolns.lns import encode
    >>> a = encode(np.array([3.0, 0.1]), LNSFormat(bits=8, gamma=8), scale=1)
    >>> a.exponents                      # round(8 log2 3) = 13, round(8 log2 0.1) = -27
    array([ 13, -27])
    >>> a.decode().round(6)
    array([3.084422, 0.096388])
    """
    from neurolns.lns.array import LNSArray

    fmt = _check_format(fmt)
    xf = _as_float_array(x)
    s = _resolve_scale(xf, fmt, scale, channel_axis)
    codes = encode_codes(xf, fmt, s, rounding=rounding, seed=seed, reference=reference)
    return LNSArray(codes, fmt, s, _trusted=True)


def decode(a, dtype=None, *, out: np.ndarray | None = None) -> np.ndarray:
    """Values of an :class:`~neurolns.lns.LNSArray`: ``x = sign(c) · σ · 2**((|c| - β)/γ)``.

    Parameters
    ----------
    a : LNSArray
    dtype : float dtype, optional
        Of the result: float64 by default, ``out.dtype`` when ``out`` is given.
    out : numpy.ndarray, optional
        Where to write the values (a float array of ``a.shape``), as in
        :func:`decode_codes`.

    Returns
    -------
    numpy.ndarray of ``dtype`` with the shape of ``a``, in the units of its scale
    (``out`` when given).

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import decode, encode
    >>> buf = np.empty(2, np.float32)
    >>> decode(encode(np.array([1.0, -2.0]), LNS8), out=buf)
    array([ 1., -2.], dtype=float32)
    """
    from neurolns.lns.array import LNSArray

    if not isinstance(a, LNSArray):
        raise TypeError(f"decode expects an LNSArray, got {type(a).__name__}; for raw codes use decode_codes")
    return decode_codes(a.codes, a.format, a.scale, dtype=dtype, out=out)


def quantize(x, fmt: LNSFormat, **kwargs) -> np.ndarray:
    """``decode(encode(x, fmt, **kwargs))`` in the dtype of ``x`` (float64 for integers).

    The numpy "fake quantization": the nearest value of the format.

    >>> from neurolns import LNS8
    >>> from neurolns.lns import quantize
    >>> quantize([3.0], LNS8, scale=1.0)
    array([3.08442165])
    """
    xf = _as_float_array(x)
    return decode(encode(xf, fmt, **kwargs), dtype=xf.dtype)
