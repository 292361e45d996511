"""Numba kernels of the codec (encode, decode, regrid).

Each kernel works on flat arrays; the scale arrives as a flat array that is
either of length 1 (per-tensor) or of the same length as the data (already
broadcast by the caller). Reference paths: :mod:`neurolns.lns._reference`.

Speed (``benchmarks/lns_kernels.py``): a ``log2`` per element costs about ten
times the memory traffic of encoding, so nearest rounding at a power-of-two
scale reads the float's exponent and mantissa bits instead. With
``x = 2**E (1 + m/2**M)`` (``M`` = 23 or 52 mantissa bits),
``rint(γ log2 x) = γE + j(m)`` where ``j(m)`` counts the thresholds
``T_k = (2**((k + 1/2)/γ) - 1) 2**M`` at or below ``m``. A table indexed by the
top ``log2 γ + 1`` mantissa bits gives the count at the start of the bucket
and the one threshold that can lie inside it, so ``j`` is one lookup and one
comparison. Mantissas within a guard band of a threshold (relative distance
below ``2**-36``, and the two float32 neighbours of each threshold) take the
float64 ``log2`` path of the reference, so the codes are the reference's
exactly, not merely almost always. Decoding at one scale looks the signed
codes up in a table of ``±σ 2**((|c|-β)/γ)`` in the output dtype.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neurolns._jit import jit, pick, pjit, prange, serial_twin

#: γ above this take the log2 path (the bucket table has 2γ entries)
_FAST_MAX_GAMMA = 1 << 16
#: signed decode tables up to this many entries (2·max_code + 1)
_SIGNED_TABLE_MAX = 1 << 17
#: streaming kernels go parallel from this many elements: below it the serial
#: loop finishes before threads are worth waking (and on a shared machine a
#: parallel loop waits for its slowest thread)
_PARALLEL_MIN = 1 << 20


@jit
def _encode_one(v, ls, gamma, bias, e_min, e_max, saturate_small, stochastic, u):
    """Code of one value (see encode_reference); returns (code, is_nan, is_inf)."""
    if v != v:
        return 0, 1, 0
    a = abs(v)
    if a == 0.0:
        return 0, 0, 0
    is_inf = 0
    if a == np.inf:
        e = e_max
        is_inf = 1
    else:
        t = gamma * (np.log2(a) - ls)
        if stochastic:
            fl = np.floor(t)
            ef = fl + (1.0 if u < t - fl else 0.0)
        else:
            ef = np.rint(t)
        if ef > e_max:
            e = e_max
        elif ef < e_min:
            if saturate_small:
                e = e_min
            else:
                return 0, 0, 0
        else:
            e = np.int64(ef)
    m = e + bias
    return (m if v > 0 else -m), 0, is_inf


@pjit
def _encode_log2_kernel(x, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out):
    """Codes of ``x`` through ``log2`` (any scale, stochastic rounding); returns (NaN count, ±inf count)."""
    n = x.size
    per_tensor = log2_scale.size == 1
    n_nan = 0
    n_inf = 0
    for i in prange(n):
        ls = log2_scale[0] if per_tensor else log2_scale[i]
        ui = u[i] if stochastic else 0.0
        c, isn, isi = _encode_one(np.float64(x[i]), ls, gamma, bias, e_min, e_max, saturate_small, stochastic, ui)
        out[i] = c
        n_nan += isn
        n_inf += isi
    return n_nan, n_inf


@pjit
def _decode_table_kernel(codes, table, scale, out):
    """``out[i] = sign(c) · table[|c|] · scale`` with ``table[m] = 2**((m-β)/γ)``, ``table[0] = 0``."""
    n = codes.size
    per_tensor = scale.size == 1
    for i in prange(n):
        c = np.int64(codes[i])
        s = scale[0] if per_tensor else scale[i]
        v = table[c] if c >= 0 else -table[-c]
        out[i] = v * s


@pjit
def decode_exp2_kernel(codes, gamma, bias, scale, out):
    """Decode without a table (formats too wide to tabulate)."""
    n = codes.size
    per_tensor = scale.size == 1
    for i in prange(n):
        c = np.int64(codes[i])
        s = scale[0] if per_tensor else scale[i]
        if c == 0:
            out[i] = 0.0
        else:
            v = np.exp2((abs(c) - bias) / gamma) * s
            out[i] = v if c > 0 else -v


# -- encode by exponent and mantissa bits ----------------------------------------
@lru_cache(maxsize=32)
def _mantissa_tables(gamma: int, mant_bits: int):
    """Bucket tables for :func:`_encode_bits_kernel`: (j0, t_next, t_prev, t_after, guard, shift).

    Per bucket: ``j0`` thresholds lie at or below its start, ``t_next`` is the
    first one above (it may lie inside the bucket), ``t_prev`` the last one at or
    below, ``t_after`` the one after ``t_next`` (for the guard band only).

    ``T_k`` is computed in float64 as ``(2**((k+1/2)/γ) - 1)·2**M``: its error
    (below ``2**-52`` relative) is far inside the guard band.
    """
    idx_bits = gamma.bit_length()  # log2 γ + 1: at most one threshold per bucket
    shift = mant_bits - idx_bits
    k = np.arange(gamma, dtype=np.float64)
    thr = np.ceil((np.exp2((k + 0.5) / gamma) - 1.0) * 2.0 ** mant_bits).astype(np.int64)
    lo = np.arange(1 << idx_bits, dtype=np.int64) << shift
    j0 = np.searchsorted(thr, lo, side="right").astype(np.int64)  # thresholds <= bucket start
    big = np.int64(1) << 62
    t_next = np.where(j0 < gamma, thr[np.minimum(j0, gamma - 1)], big)
    t_prev = np.where(j0 > 0, thr[np.maximum(j0 - 1, 0)], -big)
    t_after = np.where(j0 + 1 < gamma, thr[np.minimum(j0 + 1, gamma - 1)], big)
    guard = max(1, 1 << max(0, mant_bits - 36))
    return j0, t_next, t_prev, t_after, guard, shift


@pjit
def _encode_bits_kernel(xi, mant_bits, exp_mask, exp_bias, j0, t_next, t_prev, t_after, guard, shift,
                        x, log2_scale, gamma, bias, e_min, e_max, saturate_small, out):
    """Nearest rounding at integral ``log2 σ`` from the float's bits (see module notes).

    ``xi`` is ``x`` viewed as signed integers of the same width. Zeros,
    subnormals, inf/NaN and guard-band mantissas go through :func:`_encode_one`.
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
        slow = ex == 0 or ex == exp_mask
        if not slow:
            bk = m >> shift
            tn = t_next[bk]
            tp = t_prev[bk]
            slow = (m - tp < guard) or (abs(tn - m) <= guard) or (t_after[bk] - m <= guard)
        if slow:
            c, isn, isi = _encode_one(np.float64(x[i]), ls, float(gamma), bias, e_min, e_max,
                                      saturate_small, False, 0.0)
            out[i] = c
            n_nan += isn
            n_inf += isi
            continue
        j = j0[bk] + (1 if m >= tn else 0)
        e = gamma * (ex - exp_bias - np.int64(ls)) + j
        if e > e_max:
            e = e_max
        elif e < e_min:
            if saturate_small:
                e = e_min
            else:
                out[i] = 0
                continue
        f = e + bias
        out[i] = -f if b < 0 else f
    return n_nan, n_inf


@jit
def _encode_f32_chunk(xi, t, off, log2g, e_min, e_max, bias, lo_code, marker, out):
    """float32 bits, γ <= 8, one integral ``log2 σ`` (``off = (127 + log2 σ)·γ``).

    ``j`` is the count of the eight (padded) thresholds at or below the mantissa,
    written out so that the loop vectorizes. No guard band is needed: every
    float32 mantissa lies more than ``1e-9`` (relative) from every threshold
    for γ <= 8 (checked with 50-digit arithmetic in the tests), far beyond the
    reference's float64 rounding. Subnormals, inf and NaN get ``marker`` and are
    counted; the caller redoes them on the log2 path.
    """
    t0 = t[0]
    t1 = t[1]
    t2 = t[2]
    t3 = t[3]
    t4 = t[4]
    t5 = t[5]
    t6 = t[6]
    t7 = t[7]
    n_special = np.int32(0)
    for i in range(xi.size):
        b = xi[i]
        ex = (b >> 23) & 0xFF
        m = b & 0x7FFFFF
        j = (np.int32(m >= t0) + np.int32(m >= t1) + np.int32(m >= t2) + np.int32(m >= t3)
             + np.int32(m >= t4) + np.int32(m >= t5) + np.int32(m >= t6) + np.int32(m >= t7))
        e = (ex << log2g) - off + j
        f = min(e, e_max) + bias
        f = f if e >= e_min else lo_code
        nonzero = (b & 0x7FFFFFFF) != 0
        f = f if nonzero else np.int32(0)
        # exponent field 0 (subnormal; ±0 was handled) or 255 (inf/NaN): (ex + 1) & 255 <= 1
        special = np.int32(((ex + np.int32(1)) & np.int32(0xFF)) <= np.int32(1)) & np.int32(nonzero)
        n_special += special
        s = b >> 31
        c = (f ^ s) - s
        out[i] = marker if special else c
    return n_special


@pjit
def _encode_f32_parallel(xi, t, off, log2g, e_min, e_max, bias, lo_code, marker, out, counts):
    """:func:`_encode_f32_chunk` over ``counts.size`` contiguous chunks in parallel
    (each chunk's loop stays vectorized, which a ``prange`` over elements loses)."""
    nchunk = counts.size
    size = (xi.size + nchunk - 1) // nchunk
    for c in prange(nchunk):
        lo = c * size
        hi = min(xi.size, lo + size)
        counts[c] = _encode_f32_chunk(xi[lo:hi], t, off, log2g, e_min, e_max, bias, lo_code, marker, out[lo:hi])


@lru_cache(maxsize=8)
def _f32_thresholds(gamma: int) -> np.ndarray:
    """The ``γ`` float32 mantissa thresholds, padded to 8 with never-reached values."""
    k = np.arange(8, dtype=np.float64)
    t = np.where(k < gamma, np.ceil((np.exp2((k + 0.5) / gamma) - 1.0) * 2.0 ** 23), 2.0 ** 30)
    t = t.astype(np.int32)
    t.setflags(write=False)
    return t


def _encode_f32_small_gamma(x, ls, gamma, bias, e_min, e_max, saturate_small, out):
    from neurolns._jit import use_parallel

    i32 = np.int32
    log2g = gamma.bit_length() - 1
    marker = np.int32(np.iinfo(out.dtype).min)  # never a code: |c| <= max_code < 2**(bits-1)
    args = (x.view(np.int32), _f32_thresholds(gamma), i32((127 + int(ls)) * gamma), i32(log2g),
            i32(e_min), i32(e_max), i32(bias), i32(e_min + bias if saturate_small else 0), marker, out)
    if x.size >= _PARALLEL_MIN and use_parallel(x.size):
        counts = np.zeros(16, dtype=np.int64)
        _encode_f32_parallel(*args, counts)
        n_special = int(counts.sum())
    else:
        n_special = int(_encode_f32_chunk(*args))
    n_nan = n_inf = 0
    if n_special:
        idx = np.flatnonzero(out == marker)
        sub = np.empty(idx.size, dtype=out.dtype)
        n_nan, n_inf = pick(_encode_log2_kernel, _encode_log2_serial, idx.size)(np.ascontiguousarray(x[idx]), np.array([float(ls)]), float(gamma),
                                           bias, e_min, e_max, saturate_small, False, np.zeros(1), sub)
        out[idx] = sub
    return n_nan, n_inf


_encode_log2_serial = serial_twin(_encode_log2_kernel)
_encode_bits_serial = serial_twin(_encode_bits_kernel)
_decode_table_serial = serial_twin(_decode_table_kernel)
decode_exp2_serial = serial_twin(decode_exp2_kernel)


def encode_kernel(x, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out):
    """Fill ``out`` with the codes of ``x``; returns (number of NaN, number of ±inf).

    Nearest rounding at power-of-two scales of float32/float64 input takes the
    bit-level kernel; everything else the ``log2`` kernel. Both give the codes
    of :func:`neurolns.lns._reference.encode_reference`.
    """
    g = int(gamma)
    fast = (
        not stochastic
        and x.dtype in (np.float32, np.float64)
        and g <= _FAST_MAX_GAMMA
        and bool(np.all(log2_scale == np.rint(log2_scale)))
        and bool(np.all(np.abs(log2_scale) < (1 << 20)))
    )
    if not fast:
        return pick(_encode_log2_kernel, _encode_log2_serial, x.size)(
            x, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out)
    if x.dtype == np.float32 and g <= 8 and log2_scale.size == 1:
        return _encode_f32_small_gamma(x, log2_scale[0], g, bias, e_min, e_max, saturate_small, out)
    if x.dtype == np.float32:
        xi, mant_bits, exp_mask, exp_bias = x.view(np.int32), 23, 0xFF, 127
    else:
        xi, mant_bits, exp_mask, exp_bias = x.view(np.int64), 52, 0x7FF, 1023
    j0, t_next, t_prev, t_after, guard, shift = _mantissa_tables(g, mant_bits)
    return pick(_encode_bits_kernel, _encode_bits_serial, xi.size)(xi, mant_bits, exp_mask, exp_bias, j0, t_next, t_prev, t_after, guard, shift,
                               x, log2_scale, g, bias, e_min, e_max, saturate_small, out)


# -- decode --------------------------------------------------------------------------
@jit
def _decode_signed_kernel(codes, offset, table, out):
    """``out[i] = table[codes[i] + offset]`` (a table of the signed, scaled values)."""
    for i in range(codes.size):
        out[i] = table[np.int64(codes[i]) + offset]


@pjit
def _decode_signed_kernel_parallel(codes, offset, table, out):
    """Parallel loop of :func:`_decode_signed_kernel` for large arrays."""
    for i in prange(codes.size):
        out[i] = table[np.int64(codes[i]) + offset]


def decode_kernel(codes, table, scale, out):
    """``out[i] = sign(c) · table[|c|] · scale`` with ``table[m] = 2**((m-β)/γ)``, ``table[0] = 0``.

    At one scale, the values of all ``2·max_code + 1`` signed codes are
    tabulated once in the output dtype (the same roundings as the reference:
    ``table[m]·σ`` in float64, negated, then cast), and decoding is a lookup.
    """
    if scale.size == 1 and 2 * table.size - 1 <= _SIGNED_TABLE_MAX and codes.size > 4 * table.size:
        pos = table * scale[0]
        signed = np.concatenate([-pos[:0:-1], pos]).astype(out.dtype)
        kern = _decode_signed_kernel_parallel if codes.size >= _PARALLEL_MIN else _decode_signed_kernel
        kern(codes, table.size - 1, signed, out)
    else:
        pick(_decode_table_kernel, _decode_table_serial, codes.size)(codes, table, scale, out)


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
