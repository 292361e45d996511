"""Numba kernels of the codec (encode, decode).

Each kernel works on flat arrays; the scale arrives as a flat array that is
either of length 1 (per-tensor) or of the same length as the data (already
broadcast by the caller). Reference paths: :mod:`neurolns.lns._reference`.

Exactness. Every code and every decoded value is decided by constants that
:mod:`neurolns.lns._exact` computes once with high-precision decimal
arithmetic; no ``log2``/``exp2`` of libm (or of numpy's SIMD dispatch) decides
a result, so the results are the same on every CPU:

* Nearest rounding at a power-of-two scale (the common case) reads the float's
  exponent and mantissa bits. With ``x = 2**E (1 + m/2**M)`` (``M`` = 23 or 52
  mantissa bits), ``rint(γ log2 x) = γE + j(m)`` where ``j(m)`` counts the
  exact integer thresholds ``⌈T_k⌉`` at or below ``m``. A table indexed by the
  top ``log2 γ + 1`` mantissa bits gives the count at the start of the bucket
  and the one threshold that can lie inside it: one lookup and one comparison.
  Subnormals are normalised first. No guard band, no fallback.
* float32 input with γ <= 8 (LNS8) at one power-of-two scale takes a cheaper
  path: the exponent field of ``(x·2**(-1/(2γ)))**γ`` in float64 is
  ``rint(γ log2|x|)`` plus a constant (:func:`_encode_pow_chunk`); only IEEE
  multiplications, with a margin proven against every float32 in the tests.
* Other scales and stochastic rounding compute ``t = γ(log2|x| − log2 σ)`` in
  float64 and flag every value within a guard of a rounding boundary
  (:data:`_GUARD`, a thousand times any libm's error); the caller decides the
  flagged few exactly (:func:`neurolns.lns._exact.exact_exponent`).
* Decoding gathers from a table of correctly rounded values in the output
  dtype (:func:`neurolns.lns._exact.exp2_table`). Codes outside the format's
  range are counted (and the caller raises), never read past a table.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from neurolns._jit import _DISABLED, jit, pick, pjit, prange, serial_twin, use_parallel
from neurolns.lns._exact import round_exp2, threshold_ceilings

#: γ above this take the log2 path (the bucket table has 2γ entries)
_FAST_MAX_GAMMA = 1 << 16
#: streaming kernels go parallel from this many elements: below it the serial
#: loop finishes before threads are worth waking (and on a shared machine a
#: parallel loop waits for its slowest thread)
_PARALLEL_MIN = 1 << 20
#: outputs at least this large (half the 32 MiB last-level cache of the machine
#: the figures come from) are written with non-temporal stores
_STREAM_MIN_BYTES = 1 << 24

#: relative guard of the float ``log2`` path: a decision closer than this to a
#: rounding boundary is handed to :func:`neurolns.lns._exact.exact_exponent`.
#: It allows ``2^10`` ulps of error in ``log2`` and in the caller's ``log2 σ``,
#: far more than any libm, SIMD or GPU ``log2`` makes, so a flag never misses.
_GUARD = 2.0 ** -42
#: elements per chunk of the float ``log2`` path (flags are counted per chunk)
_CHUNK = 1 << 12


@jit(inline="always")
def _saturate(e, v, bias, e_min, e_max, saturate_small):
    """Signed biased code of the exponent ``e`` of a non-zero ``v``: saturation and underflow."""
    if e > e_max:
        e = e_max
    elif e < e_min:
        if saturate_small:
            e = e_min
        else:
            return 0
    m = e + bias
    return m if v > 0 else -m


@jit(inline="always")
def _encode_one(v, ls, gamma, bias, e_min, e_max, saturate_small, stochastic, u):
    """Code of one value by the float ``log2``; returns (code, is_nan, is_inf, undecided).

    ``undecided`` marks a value whose float ``t`` lies within the guard of a
    rounding boundary: its code is then decided exactly by the caller.
    Stochastic rounding: ``e = ⌊t⌋ + [u < t − ⌊t⌋]``; when ``t`` is within the
    guard of an integer ``k`` and ``2g ≤ u < 1 − 2g`` the exact result is ``k``
    whichever side of ``k`` the exact ``t`` lies, so grid values decide here.
    """
    if v != v:
        return 0, 1, 0, 0
    a = abs(v)
    if a == 0.0:
        return 0, 0, 0, 0
    if a == np.inf:
        return _saturate(e_max, v, bias, e_min, e_max, saturate_small), 0, 1, 0
    lg = np.log2(a)
    t = gamma * (lg - ls)
    g = (gamma * (abs(lg) + abs(ls)) + 1.0) * _GUARD
    flag = 0
    if stochastic:
        k = np.rint(t)
        if abs(t - k) < g:
            ef = k
            if u < 2.0 * g or u >= 1.0 - 2.0 * g:
                flag = 1
        else:
            fl = np.floor(t)
            f = t - fl
            ef = fl + (1.0 if u < f else 0.0)
            if abs(f - u) < g:
                flag = 1
    else:
        ef = np.rint(t)
        if abs(abs(t - ef) - 0.5) < g:
            flag = 1
    # clamp in float first: t can exceed the int64 range for extreme scales
    ef = min(max(ef, e_min - 1.0), e_max + 1.0)
    return _saturate(np.int64(ef), v, bias, e_min, e_max, saturate_small), 0, 0, flag


@pjit
def _encode_log2_kernel(x, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out, flags):
    """Codes of ``x`` by the float ``log2`` (any scale, stochastic rounding).

    Returns (NaN count, ±inf count); ``flags[ch]`` counts the undecided values
    of chunk ``ch`` (elements ``ch·_CHUNK ...``), which the caller re-decides.
    """
    n = x.size
    per_tensor = log2_scale.size == 1
    n_nan = 0
    n_inf = 0
    for ch in prange(flags.size):
        lo = ch * _CHUNK
        hi = min(n, lo + _CHUNK)
        nf = 0
        for i in range(lo, hi):
            ls = log2_scale[0] if per_tensor else log2_scale[i]
            ui = u[i] if stochastic else 0.0
            c, isn, isi, fl = _encode_one(np.float64(x[i]), ls, gamma, bias, e_min, e_max, saturate_small,
                                          stochastic, ui)
            out[i] = c
            n_nan += isn
            n_inf += isi
            nf += fl
        flags[ch] = nf
    return n_nan, n_inf


@jit
def _undecided_in(x, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, lo, hi, idx):
    """Indices in ``[lo, hi)`` that :func:`_encode_log2_kernel` flags; returns their count."""
    per_tensor = log2_scale.size == 1
    k = 0
    for i in range(lo, hi):
        ls = log2_scale[0] if per_tensor else log2_scale[i]
        ui = u[i] if stochastic else 0.0
        _, _, _, fl = _encode_one(np.float64(x[i]), ls, gamma, bias, e_min, e_max, saturate_small, stochastic, ui)
        if fl:
            idx[k] = i
            k += 1
    return k

# -- encode by exponent and mantissa bits ----------------------------------------
@lru_cache(maxsize=32)
def _mantissa_tables(gamma: int, mant_bits: int):
    """Bucket tables for :func:`_encode_bits_kernel`: (j0, t_next, shift).

    The top ``log2 γ + 1`` mantissa bits pick a bucket; at most one threshold
    ``⌈T_k⌉`` (:func:`neurolns.lns._exact.threshold_ceilings`, exact) lies in
    a bucket, since the thresholds are at least ``2^M ln2 / γ`` apart and a
    bucket is ``2^M / 2^(log2 γ + 1)`` wide. Per bucket: ``j0`` thresholds lie
    at or below its start and ``t_next`` is the first one above it.
    """
    idx_bits = gamma.bit_length()
    shift = mant_bits - idx_bits
    thr = threshold_ceilings(gamma, mant_bits)
    lo = np.arange(1 << idx_bits, dtype=np.int64) << shift
    j0 = np.searchsorted(thr, lo, side="right").astype(np.int64)  # thresholds <= bucket start
    big = np.int64(1) << 62
    t_next = np.where(j0 < gamma, thr[np.minimum(j0, gamma - 1)], big)
    return j0, t_next, shift


@pjit
def _encode_bits_kernel(xi, mant_bits, exp_mask, exp_bias, j0, t_next, shift,
                        log2_scale, gamma, bias, e_min, e_max, saturate_small, out):
    """Nearest rounding at power-of-two scales from the float's bits, exactly (see module notes).

    ``xi`` is the float array viewed as signed integers of the same width;
    ``log2_scale`` holds integers. Subnormals are normalised first (their
    leading bit becomes the hidden bit), so every finite input takes the
    same exact lookup. Returns (NaN count, ±inf count).
    """
    n = xi.size
    per_tensor = log2_scale.size == 1
    mmask = (np.int64(1) << mant_bits) - 1
    n_nan = 0
    n_inf = 0
    for i in prange(n):
        b = np.int64(xi[i])
        ex = (b >> mant_bits) & exp_mask
        m = b & mmask
        ls = log2_scale[0] if per_tensor else log2_scale[i]
        if ex == exp_mask:  # inf or NaN
            if m != 0:
                n_nan += 1
                out[i] = 0
            else:
                n_inf += 1
                f = e_max + bias
                out[i] = -f if b < 0 else f
            continue
        if ex == 0:
            if m == 0:
                out[i] = 0
                continue
            top = 0  # position of the leading bit of a subnormal's mantissa
            while (m >> (top + 1)) != 0:
                top += 1
            ex = top + 1 - mant_bits
            m = (m << (mant_bits - top)) & mmask
        bk = m >> shift
        j = j0[bk] + (1 if m >= t_next[bk] else 0)
        e = gamma * (ex - exp_bias - ls) + j
        out[i] = _saturate(e, b, bias, e_min, e_max, saturate_small)  # b < 0: negative
    return n_nan, n_inf

# -- float32, γ <= 8: the exponent of x**γ ------------------------------------------
if _DISABLED:
    def _f64_bits(z):
        """The bits of a float64 as an int64 (plain-Python twin of the intrinsic)."""
        return np.int64(np.float64(z).view(np.int64))

    def _stream_store(a, i, v):
        """``a[i] = v`` (plain-Python twin of the intrinsic)."""
        a[i] = v

    def _store_fence():
        """Nothing to order in plain Python."""
else:
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _f64_bits(typingctx, z):
        """The bits of a float64 as an int64 (a register bitcast, free in a vector loop)."""
        if not isinstance(z, _types.Float) or z.bitwidth != 64:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], _ir.IntType(64))

        return _types.int64(z), codegen

    @_intrinsic
    def _stream_store(typingctx, a, i, v):
        """``a[i] = v`` (``0 <= i < a.size``, not checked) as a non-temporal store: the
        line goes to memory without being read into the cache first, as a large
        ``memcpy`` (the copy baseline) writes. Follow a loop of them by :func:`_store_fence`."""
        if not isinstance(a, _types.Array) or not isinstance(i, _types.Integer):
            return None

        def codegen(context, builder, signature, args):
            arrty = signature.args[0]
            arr = context.make_array(arrty)(context, builder, args[0])
            ptr = _cgutils.get_item_pointer(context, builder, arrty, arr, [args[1]], wraparound=False,
                                            boundscheck=False)
            val = context.cast(builder, args[2], signature.args[2], arrty.dtype)
            store = builder.store(val, ptr)
            store.set_metadata("nontemporal", builder.module.add_metadata([_ir.Constant(_ir.IntType(32), 1)]))
            return context.get_dummy_value()

        return _types.void(a, i, v), codegen

    @_intrinsic
    def _store_fence(typingctx):
        """A full memory fence: orders the non-temporal stores before later loads and
        stores of any thread that synchronises with this one."""

        def codegen(context, builder, signature, args):
            builder.fence("seq_cst")
            return context.get_dummy_value()

        return _types.void(), codegen


@jit
def _encode_pow_chunk(x, c, npow, off, max_code, lo_code, out):
    """float32 ``x``, γ = 2**npow <= 8, one integral ``log2 σ``; returns the largest exponent field.

    ``z = (x·2**(-1/(2γ)))**γ`` in float64 (``npow`` squarings):
    ``floor(log2 z) + 1 = rint(γ log2|x|)``, and ``floor(log2 z)`` is the
    exponent field of ``z`` minus 1023, so the biased code is
    ``field - off`` (``off = 1022 + γ log2 σ - β``), clamped to
    ``[lo_code, max_code]``. Float32 ``x`` are at least ``1e-9`` (relative) from
    every rounding boundary ``2**((k+1/2)/γ)`` (checked with 50-digit arithmetic
    in the tests); ``z`` carries at most ``15·2**-53`` of relative rounding
    error, far inside that margin, so the code is the reference's exactly.
    ``x**8 < 2**1024`` for every finite float32: no overflow. All arithmetic
    stays in 8-lane int32/float and 4-lane float64 vectors (int32 results are
    cast back after every operation, so Numba does not widen them to int64).

    ``z`` below the normal range (field 0) means ``x`` is 0 or a subnormal with
    a code below ``e_min``: the caller checks that no such ``x`` could reach
    ``e_min`` at this scale. Field 2047 is ±inf (encoded as ±max_code, right) or
    NaN: the caller counts them when the returned maximum field is 2047.
    """
    i32 = np.int32
    top = i32(0)
    for i in range(x.size):
        xv = x[i]
        z = np.float64(xv) * c
        if npow >= 1:
            z = z * z
        if npow >= 2:
            z = z * z
        if npow >= 3:
            z = z * z
        fld = i32((_f64_bits(z) >> 52) & 0x7FF)
        top = max(top, fld)
        f = max(min(i32(fld - off), max_code), lo_code)
        f = f if xv != 0 else i32(0)
        out[i] = i32(-f) if xv < 0 else f
    return top


@pjit
def _encode_pow_parallel(x, c, npow, off, max_code, lo_code, out, tops):
    """:func:`_encode_pow_chunk` over ``tops.size`` contiguous chunks in parallel
    (each chunk's loop stays vectorized, which a ``prange`` over elements loses)."""
    nchunk = tops.size
    size = (x.size + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        lo = min(x.size, ch * size)
        hi = min(x.size, lo + size)
        tops[ch] = _encode_pow_chunk(x[lo:hi], c, npow, off, max_code, lo_code, out[lo:hi])


def _pow_path_exact(ls: float, gamma: int, bias: int) -> bool:
    """Whether :func:`_encode_pow_chunk` is exact at ``σ = 2**ls``: every ``x`` whose
    ``z`` leaves the normal float64 range (``γ log2|x| < -1021.5``) has a biased
    code ``<= 0`` (``β - γ log2 σ <= 1022``), and the offsets fit in int32."""
    return bias - gamma * ls <= 1022 and abs(gamma * ls) < (1 << 28)


def _encode_f32_small_gamma(x, ls, gamma, bias, max_code, saturate_small, out):
    """Codes of float32 ``x`` for γ <= 8 at ``σ = 2**ls`` through :func:`_encode_pow_chunk`."""
    i32 = np.int32
    npow = gamma.bit_length() - 1
    # c = 2^(-1/(2γ)) correctly rounded (not libm's pow: the same bits everywhere)
    args = (x, round_exp2(-1, 2 * gamma), npow, i32(1022 + gamma * int(ls) - bias), i32(max_code),
            i32(1 if saturate_small else 0), out)
    if x.size >= _PARALLEL_MIN and use_parallel(x.size):
        tops = np.zeros(16, dtype=np.int32)
        _encode_pow_parallel(*args, tops)
        top = int(tops.max())
    else:
        top = int(_encode_pow_chunk(*args))
    if top < 0x7FF:
        return 0, 0
    nan = np.isnan(x)
    out[nan] = 0  # as the reference (the caller raises)
    return int(nan.sum()), int(np.isinf(x).sum())

_encode_log2_serial = serial_twin(_encode_log2_kernel)
_encode_bits_serial = serial_twin(_encode_bits_kernel)


def encode_kernel(x, scale, log2_scale, pow2, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out):
    """Fill ``out`` with the codes of ``x``; returns (number of NaN, number of ±inf).

    ``scale`` is the flat scale array, ``log2_scale`` its log2 (exact integers
    when ``pow2``). Nearest rounding at power-of-two scales of float32/float64
    input takes the bit-level kernel (float32 at γ <= 8 and one scale:
    :func:`_encode_pow_chunk`); everything else the ``log2`` kernel, whose
    flagged values are then decided exactly. All give the codes of
    :func:`neurolns.lns._reference.encode_reference`.
    """
    g = int(gamma)
    fast = (not stochastic and pow2 and x.dtype in (np.float32, np.float64) and g <= _FAST_MAX_GAMMA
            and bool(np.all(np.abs(log2_scale) < (1 << 20))))
    if fast:
        ls_int = log2_scale.astype(np.int64)
        if x.dtype == np.float32 and g <= 8 and ls_int.size == 1 and _pow_path_exact(int(ls_int[0]), g, bias):
            return _encode_f32_small_gamma(x, int(ls_int[0]), g, bias, e_max + bias, saturate_small, out)
        if x.dtype == np.float32:
            xi, mant_bits, exp_mask, exp_bias = x.view(np.int32), 23, 0xFF, 127
        else:
            xi, mant_bits, exp_mask, exp_bias = x.view(np.int64), 52, 0x7FF, 1023
        j0, t_next, shift = _mantissa_tables(g, mant_bits)
        return pick(_encode_bits_kernel, _encode_bits_serial, xi.size)(
            xi, mant_bits, exp_mask, exp_bias, j0, t_next, shift, ls_int, g, bias, e_min, e_max, saturate_small, out)
    flags = np.zeros(max(1, -(-x.size // _CHUNK)), dtype=np.int64)
    n_nan, n_inf = pick(_encode_log2_kernel, _encode_log2_serial, x.size)(
        x, log2_scale, float(gamma), bias, e_min, e_max, saturate_small, stochastic, u, out, flags)
    if flags.any():
        _decide_flagged(x, scale, log2_scale, g, bias, e_min, e_max, saturate_small, stochastic, u, out, flags)
    return n_nan, n_inf


def _decide_flagged(x, scale, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out, flags):
    """Re-decide, exactly, the values :func:`_encode_log2_kernel` flagged."""
    from neurolns.lns._exact import exact_exponent

    idx = np.empty(_CHUNK, dtype=np.int64)
    per_tensor = scale.size == 1
    for ch in np.flatnonzero(flags):
        lo = int(ch) * _CHUNK
        k = _undecided_in(x, log2_scale, float(gamma), bias, e_min, e_max, saturate_small, stochastic, u,
                          lo, min(x.size, lo + _CHUNK), idx)
        for i in idx[:k].tolist():
            v = float(x[i])
            e = exact_exponent(v, float(scale[0] if per_tensor else scale[i]), gamma, stochastic,
                               float(u[i]) if stochastic else 0.0)
            e = min(max(e, e_min - 1), e_max + 1)
            out[i] = _saturate(np.int64(e), v, bias, e_min, e_max, saturate_small)


# -- decode --------------------------------------------------------------------------
@jit(inline="always")
def _refused(c, max_code, out, i):
    """Whether code ``c`` lies outside ``±max_code``; if so ``out[i]`` gets NaN (the caller
    counts it and raises afterwards, so a bad code never indexes a table)."""
    if c > max_code or c < -max_code:
        out[i] = np.nan
        return True
    return False


@pjit
def _decode_table_kernel(codes, table, scale, max_code, out):
    """``out[i] = sign(c) · table[|c|] · scale``; codes with ``|c| > max_code`` give NaN
    and are counted (the return value), so a bad code never indexes past the table."""
    per_tensor = scale.size == 1
    bad = 0
    for i in prange(codes.size):
        c = np.int64(codes[i])
        if _refused(c, max_code, out, i):
            bad += 1
            continue
        s = scale[0] if per_tensor else scale[i]
        v = table[c] if c >= 0 else -table[-c]
        out[i] = v * s
    return bad


@pjit
def _decode_wide_kernel(codes, mant, gamma, bias, ls, emin, emax, max_code, out, odd):
    """Formats too wide to tabulate: ``sign(c)·ldexp(mant[r], q + ls)`` with
    ``|c| − β = qγ + r`` and ``mant[r]`` the correctly rounded ``2^(r/γ)``; exact
    while ``q + ls`` stays in the output's normal range. Values outside it are
    marked in ``odd`` (decided exactly by the caller); bad codes give NaN and
    are counted (the return value)."""
    bad = 0
    for i in prange(codes.size):
        c = np.int64(codes[i])
        if _refused(c, max_code, out, i):
            bad += 1
            continue
        if c == 0:
            out[i] = 0.0
            continue
        e = abs(c) - bias
        q = e // gamma
        r = e - q * gamma
        k = q + ls
        if k < emin or k + 1 >= emax:
            odd[i] = 1
            out[i] = 0.0
            continue
        v = math.ldexp(mant[r], int(k))  # int(): plain Python refuses numpy ints
        out[i] = v if c > 0 else -v
    return bad


_decode_table_serial = serial_twin(_decode_table_kernel)
_decode_wide_serial = serial_twin(_decode_wide_kernel)

# -- decode by bit pattern --------------------------------------------------------
def _holds_bad_codes(codes, max_code: int) -> bool:
    """Whether ``codes`` hold a value outside ``±max_code`` (numpy's min and max)."""
    return bool(codes.min() < -max_code or codes.max() > max_code)


@jit
def _decode_lut_chunk(u, table, out, stream):
    """``out[i] = table[u[i]]``: ``u`` are the codes viewed as unsigned integers
    (no sign extension and no negative-index wrap check in the loop). With
    ``stream``, non-temporal stores (for outputs larger than the cache)."""
    if stream:
        for i in range(u.size):
            _stream_store(out, i, table[u[i]])
        _store_fence()
    else:
        for i in range(u.size):
            out[i] = table[u[i]]


@pjit
def _decode_lut_parallel(u, table, out, nchunk, stream):
    """:func:`_decode_lut_chunk` over ``nchunk`` contiguous chunks in parallel."""
    size = (u.size + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        lo = min(u.size, ch * size)
        hi = min(u.size, lo + size)
        _decode_lut_chunk(u[lo:hi], table, out[lo:hi], stream)


#: Codes checked and then gathered per block by :func:`_decode_lut_checked`: the
#: gather reads them again from the L1 cache.
_CHECK_BLOCK = 4096


@jit
def _min_of(c):
    """Smallest element of a non-empty integer array (a vectorised min reduction)."""
    m = c[0]
    for i in range(c.size):
        m = min(m, c[i])
    return m


@jit
def _decode_lut_checked(c, u, table, out, stream, floor):
    """Block by block: if no code of the block is ``floor`` (the dtype's minimum,
    its only invalid pattern) the gather of :func:`_decode_lut_chunk`; returns
    whether one was (``out`` is then partly written). The min reduction runs on
    codes just loaded into the cache, so the check costs almost no memory traffic
    (a test inside the gather loop would stop its vectorisation)."""
    for lo in range(0, c.size, _CHECK_BLOCK):
        hi = min(c.size, lo + _CHECK_BLOCK)
        if _min_of(c[lo:hi]) == floor:
            return True
        _decode_lut_chunk(u[lo:hi], table, out[lo:hi], stream)
    return False


@pjit
def _decode_lut_checked_parallel(c, u, table, out, stream, floor, found):
    """:func:`_decode_lut_checked` over ``found.size`` contiguous chunks in parallel."""
    nchunk = found.size
    size = (c.size + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        lo = min(c.size, ch * size)
        hi = min(c.size, lo + size)
        found[ch] = _decode_lut_checked(c[lo:hi], u[lo:hi], table, out[lo:hi], stream, floor)


def pattern_values(table, scale: float, code_dtype, out_dtype) -> np.ndarray:
    """Values of every bit pattern of 8- or 16-bit ``code_dtype``, indexed by its unsigned view.

    ``±table[|c|]·σ`` cast to ``out_dtype`` (exact when ``table`` is already
    in ``out_dtype`` and ``σ`` is 1). Patterns past the table
    (``|c| > max_code``, never valid codes) give NaN; the caller raises on them.
    """
    bits = 8 * np.dtype(code_dtype).itemsize
    signed = np.arange(1 << bits, dtype=np.int64)
    signed = np.where(signed >= 1 << (bits - 1), signed - (1 << bits), signed)
    mag = np.abs(signed)
    top = table.size - 1
    vals = np.where(mag <= top, table[np.minimum(mag, top)].astype(np.float64) * scale, np.nan)
    vals = np.where(signed < 0, -vals, vals).astype(out_dtype)
    vals.setflags(write=False)
    return vals


def decode_lut(codes, values, max_code: int, out) -> int:
    """``out[i] = values[unsigned(codes[i])]`` with ``values`` from :func:`pattern_values`;
    returns 1 if a code lies outside ``±max_code`` (``out`` then partly written), else 0.

    When the dtype's minimum (−128 or −32768) is its only invalid pattern (int8
    codes of 8-bit formats, int16 codes of 16-bit ones), each block of codes is
    checked (a min reduction) just before it is gathered
    (:func:`_decode_lut_checked`). Otherwise :func:`_holds_bad_codes` checks first. Outputs of
    :data:`_STREAM_MIN_BYTES` or more, which would not stay in the cache
    anyway, are written with non-temporal stores.
    """
    info = np.iinfo(codes.dtype)
    bits = 8 * codes.dtype.itemsize
    u = codes.view(np.uint8 if bits == 8 else np.uint16)
    stream = out.nbytes >= _STREAM_MIN_BYTES
    parallel = codes.size >= _PARALLEL_MIN and use_parallel(codes.size)
    if info.max <= max_code and info.min == -max_code - 1:
        floor = codes.dtype.type(info.min)
        if parallel:
            found = np.zeros(16, dtype=np.bool_)
            _decode_lut_checked_parallel(codes, u, values, out, stream, floor, found)
            return int(found.any())
        return int(_decode_lut_checked(codes, u, values, out, stream, floor))
    if _holds_bad_codes(codes, max_code):
        return 1
    if parallel:
        _decode_lut_parallel(u, values, out, 16, stream)
    else:
        _decode_lut_chunk(u, values, out, stream)
    return 0


def decode_kernel(codes, table, scale, max_code, out) -> int:
    """``out[i] = sign(c) · table[|c|] · scale``; returns the number of codes outside ``±max_code``."""
    return int(pick(_decode_table_kernel, _decode_table_serial, codes.size)(codes, table, scale, max_code, out))


def decode_wide(codes, mant, gamma, bias, ls, dtype, max_code, out) -> int:
    """Decode a format too wide to tabulate at the power-of-two scale ``2**ls`` (see
    :func:`_decode_wide_kernel`); out-of-normal-range values are rounded one by one."""
    from neurolns.lns._exact import _binary_params, round_exp2

    _, emin = _binary_params(dtype)
    emax = int(np.finfo(dtype).maxexp)
    odd = np.zeros(codes.size, dtype=np.uint8)
    bad = pick(_decode_wide_kernel, _decode_wide_serial, codes.size)(
        codes, mant, np.int64(gamma), np.int64(bias), np.int64(ls), np.int64(emin), np.int64(emax),
        np.int64(max_code), out, odd)
    for i in np.flatnonzero(odd).tolist():
        c = int(codes[i])
        v = round_exp2(abs(c) - bias + gamma * ls, gamma, dtype)
        out[i] = v if c > 0 else -v
    return int(bad)

# -- largest finite magnitude (for choosing scales) ----------------------------------
@jit
def _absmax_bits_chunk(xi, mask, inf_bits):
    """Largest ``|x|`` over the finite values, on the float's bits viewed as signed ints.

    Non-negative floats order like their bit patterns, so an integer max (which
    vectorizes, unlike a NaN-aware float max) finds it; ``mask`` clears the sign
    bit, patterns ``>= inf_bits`` (inf, NaN) are skipped.
    """
    m = np.int64(0)
    for i in range(xi.size):
        b = np.int64(xi[i]) & mask
        b = b if b < inf_bits else np.int64(0)
        m = max(m, b)
    return m


@pjit
def _absmax_bits_parallel(xi, mask, inf_bits, out):
    nchunk = out.size
    size = (xi.size + nchunk - 1) // nchunk
    for c in prange(nchunk):
        lo = c * size
        hi = min(xi.size, lo + size)
        out[c] = _absmax_bits_chunk(xi[lo:hi], mask, inf_bits)


def finite_absmax(x: np.ndarray) -> float:
    """``max |x|`` over the finite values of a float32/float64 array (0.0 if none).

    One read of the data, against ``abs``, ``isfinite`` and ``where`` passes in
    float64: the automatic scale of :func:`neurolns.lns.encode` can use it.
    Equals ``np.abs(x[np.isfinite(x)]).max()`` (tested).
    """
    x = np.ascontiguousarray(x).reshape(-1)
    if x.dtype == np.float32:
        xi, mask, inf_bits, back = x.view(np.int32), 0x7FFFFFFF, 0x7F800000, np.int32
    elif x.dtype == np.float64:
        xi, mask, inf_bits, back = x.view(np.int64), 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, np.int64
    else:
        a = np.abs(np.asarray(x, dtype=np.float64))
        a = a[np.isfinite(a)]
        return float(a.max()) if a.size else 0.0
    if x.size >= _PARALLEL_MIN:
        out = np.zeros(16, dtype=np.int64)
        _absmax_bits_parallel(xi, mask, inf_bits, out)
        m = int(out.max())
    else:
        m = int(_absmax_bits_chunk(xi, mask, inf_bits))
    return float(np.array([m], dtype=back).view(x.dtype)[0])
