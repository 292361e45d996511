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
exactly, not merely almost always. Float32 input with γ <= 8 (LNS8) takes a
cheaper exact path: the exponent field of ``(x·2**(-1/(2γ)))**γ`` in float64
is ``rint(γ log2|x|)`` plus a constant (:func:`_encode_pow_chunk`). Decoding at
one scale looks the codes, viewed as unsigned integers, up in a table of the
values of all ``2**bits`` code patterns in the output dtype.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neurolns._jit import _DISABLED, jit, pick, pjit, prange, serial_twin, use_parallel

#: γ above this take the log2 path (the bucket table has 2γ entries)
_FAST_MAX_GAMMA = 1 << 16
#: streaming kernels go parallel from this many elements: below it the serial
#: loop finishes before threads are worth waking (and on a shared machine a
#: parallel loop waits for its slowest thread)
_PARALLEL_MIN = 1 << 20
#: outputs at least this large (half the 32 MiB last-level cache of the machine
#: the figures come from) are written with non-temporal stores
_STREAM_MIN_BYTES = 1 << 24


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
    args = (x, 2.0 ** (-0.5 / gamma), npow, i32(1022 + gamma * int(ls) - bias), i32(max_code),
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
_decode_table_serial = serial_twin(_decode_table_kernel)
decode_exp2_serial = serial_twin(decode_exp2_kernel)


def encode_kernel(x, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out):
    """Fill ``out`` with the codes of ``x``; returns (number of NaN, number of ±inf).

    Nearest rounding at power-of-two scales of float32/float64 input takes the
    bit-level kernel (float32 at γ <= 8 and one scale: :func:`_encode_pow_chunk`);
    everything else the ``log2`` kernel. All give the codes of
    :func:`neurolns.lns._reference.encode_reference`.
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
    if x.dtype == np.float32 and g <= 8 and log2_scale.size == 1 and _pow_path_exact(log2_scale[0], g, bias):
        return _encode_f32_small_gamma(x, log2_scale[0], g, bias, e_max + bias, saturate_small, out)
    if x.dtype == np.float32:
        xi, mant_bits, exp_mask, exp_bias = x.view(np.int32), 23, 0xFF, 127
    else:
        xi, mant_bits, exp_mask, exp_bias = x.view(np.int64), 52, 0x7FF, 1023
    j0, t_next, t_prev, t_after, guard, shift = _mantissa_tables(g, mant_bits)
    return pick(_encode_bits_kernel, _encode_bits_serial, xi.size)(xi, mant_bits, exp_mask, exp_bias, j0, t_next, t_prev, t_after, guard, shift,
                               x, log2_scale, g, bias, e_min, e_max, saturate_small, out)


# -- decode --------------------------------------------------------------------------
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


def pattern_values(table, scale: float, code_dtype, out_dtype) -> np.ndarray:
    """Values of every bit pattern of 8- or 16-bit ``code_dtype``, indexed by its unsigned view.

    ``±(table[|c|]·σ)`` in float64, then cast to ``out_dtype``: the roundings
    of the reference. Patterns past the table (``|c| > max_code``, never valid
    codes) decode to 0.
    """
    bits = 8 * np.dtype(code_dtype).itemsize
    signed = np.arange(1 << bits, dtype=np.int64)
    signed = np.where(signed >= 1 << (bits - 1), signed - (1 << bits), signed)
    mag = np.abs(signed)
    top = table.size - 1
    vals = np.where(mag <= top, table[np.minimum(mag, top)], 0.0) * scale
    vals = np.where(signed < 0, -vals, vals).astype(out_dtype)
    vals.setflags(write=False)
    return vals


def decode_lut(codes, values, out):
    """``out[i] = values[unsigned(codes[i])]`` with ``values`` from :func:`pattern_values`.

    Outputs of :data:`_STREAM_MIN_BYTES` or more, which would not stay in the
    cache anyway, are written with non-temporal stores.
    """
    u = codes.view(np.uint8 if codes.dtype.itemsize == 1 else np.uint16)
    stream = out.nbytes >= _STREAM_MIN_BYTES
    if codes.size >= _PARALLEL_MIN and use_parallel(codes.size):
        _decode_lut_parallel(u, values, out, 16, stream)
    else:
        _decode_lut_chunk(u, values, out, stream)


def decode_kernel(codes, table, scale, out):
    """``out[i] = sign(c) · table[|c|] · scale`` with ``table[m] = 2**((m-β)/γ)``, ``table[0] = 0``."""
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
