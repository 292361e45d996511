"""Numba kernels of the learning rules (the fast paths).

Madam has a scalar kernel (one synapse) and two loop kernels over flat
arrays: a serial one and a ``prange`` one, picked by
:func:`neurolns._jit.use_parallel`; LNS-Madam has a serial loop and a
``prange`` over contiguous slices that runs it (so each slice stays vectorised). Arithmetic is float64 per element whatever
the storage dtype, in the same order as the
numpy paths of :mod:`neurolns.learning._reference`, so integer results (codes,
packed bits) agree bit for bit and float results to the last float32 ulp (``exp``
may differ in the last float64 ulp between libm and numpy). No kernel uses
fastmath: LLVM neither reassociates nor fuses multiply-adds, as numpy does not.

Sign convention used by every kernel: ``sign(x) = -1`` if ``x < 0`` else ``+1``
(so ``sign(0) = +1``; a sign is one bit). A packed bit is 1 for a negative sign.
"""

from __future__ import annotations

import math

import numpy as np

from neurolns._jit import jit, pjit, prange

# --------------------------------------------------------------------------
# Madam (float weights)


@jit
def _normalised_grad(g, v, beta, inv_bc, g_bound):
    """Return (ĝ, v_new): Adam-style second moment, bias-corrected, 0/0 -> 0."""
    v_new = beta * v + (1.0 - beta) * (g * g)
    gh = g / math.sqrt(v_new * inv_bc)
    # not finite: 0/0 (every g so far was 0) or a non-finite input passed unchecked: no move
    gh = gh if abs(gh) < math.inf else 0.0
    if gh > g_bound:
        gh = g_bound
    elif gh < -g_bound:
        gh = -g_bound
    return gh, v_new


@jit
def _madam_one(w, g, v, lr, beta, inv_bc, g_bound, p_max):
    gh, v_new = _normalised_grad(g, v, beta, inv_bc, g_bound)
    s = 1.0 if w > 0.0 else (-1.0 if w < 0.0 else 0.0)
    w_new = w * math.exp(-lr * gh * s)
    if w_new > p_max:
        w_new = p_max
    elif w_new < -p_max:
        w_new = -p_max
    return w_new, v_new


@jit
def madam_serial(w, g, v, lr, beta, inv_bc, g_bound, p_max):
    for i in range(w.size):
        w[i], v[i] = _madam_one(np.float64(w[i]), np.float64(g[i]), np.float64(v[i]), lr, beta, inv_bc, g_bound, p_max)


@pjit
def madam_parallel(w, g, v, lr, beta, inv_bc, g_bound, p_max):
    for i in prange(w.size):
        w[i], v[i] = _madam_one(np.float64(w[i]), np.float64(g[i]), np.float64(v[i]), lr, beta, inv_bc, g_bound, p_max)


# --------------------------------------------------------------------------
# LNS-Madam (integer codes on the update grid)


@jit(inline="always")
def _lns_madam_q(g, v, q, beta, omb, inv_bc, g_bound):
    """Normalisation of one block: ``v`` updated in place, ``q = rint(clamp(ĝ))`` into ``q``."""
    for i in range(g.size):
        gi = np.float64(g[i])
        v_new = beta * v[i] + omb * (gi * gi)
        v[i] = v_new
        gh = gi / np.sqrt(v_new * inv_bc)
        # not finite: 0/0 (every g so far was 0) or a non-finite input passed unchecked: no move
        gh = gh if abs(gh) < np.inf else 0.0
        q[i] = np.rint(min(max(gh, -g_bound), g_bound))


@jit(inline="always")
def _lns_madam_codes(c, q, ft, k, cap):
    """Signed-form code update of one block from ``q``."""
    one = ft(1.0)
    for i in range(c.size):
        ci = c[i]
        pos = ci > 0
        new = min(max(ft(ci) - k * ft(q[i]), one if pos else -cap), cap if pos else -one)
        c[i] = new if ci != 0 else ft(0.0)  # never reaches 0 (a synapse cannot die); 0 stays 0


#: elements per block of the LNS-Madam kernel (its ``q`` buffer stays in L1)
LNS_MADAM_BLOCK = 256


@jit
def lns_madam_serial(c, g, v, beta, omb, inv_bc, g_bound, ft, k, cap):
    """One LNS-Madam step over flat arrays, in place (codes ``c`` and float64 state ``v``).

    ``beta, omb = 1-β, inv_bc, g_bound`` are float64 and the whole normalisation
    runs in float64: for float32 (or narrower) gradients ``g²`` can neither
    underflow nor overflow there (``|g| ∈ [2^-149, 2^128)``), so ``ĝ`` is the same
    for a gradient history scaled by any power of two, and every operation is
    one correctly rounded IEEE operation in the order of the numpy reference and
    the torch path, so the three agree bit for bit.
    ``ft`` is the float type of the code arithmetic (float32 when every
    ``|c| < 2**24``, exact; else float64) and ``k, cap`` are of that type.
    Signed form of the update: ``c ← clamp(c − k·round(ĝ), 1, cap)`` for
    ``c > 0`` and ``clamp(c − k·round(ĝ), −cap, −1)`` for ``c < 0`` (the sign of
    ``c`` times the clamped magnitude ``|c| − k·round(ĝ)·sign(c)``); 0 stays 0.

    The work runs in blocks of :data:`LNS_MADAM_BLOCK`: the float64
    normalisation of a block into a small ``q`` buffer, then the code update.
    Each loop then has one element width and LLVM vectorises both; fused into
    one loop (int16 codes, float32 g, float64 v) it did not, at 1.6× the time.
    """
    n = c.size
    q = np.empty(LNS_MADAM_BLOCK, np.float32)
    for lo in range(0, n, LNS_MADAM_BLOCK):
        hi = min(n, lo + LNS_MADAM_BLOCK)
        _lns_madam_q(g[lo:hi], v[lo:hi], q[:hi - lo], beta, omb, inv_bc, g_bound)
        _lns_madam_codes(c[lo:hi], q[:hi - lo], ft, k, cap)


@pjit
def lns_madam_parallel(c, g, v, beta, omb, inv_bc, g_bound, ft, k, cap, nchunk):
    """:func:`lns_madam_serial` over ``nchunk`` contiguous slices in parallel (each
    slice's loop stays vectorised)."""
    n = c.size
    size = (n + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        lo = min(n, ch * size)
        hi = min(n, lo + size)
        lns_madam_serial(c[lo:hi], g[lo:hi], v[lo:hi], beta, omb, inv_bc, g_bound, ft, k, cap)


# --------------------------------------------------------------------------
# LNS-Madam with a fractional step: stochastic rounding driven by a counter hash

#: the 32-bit mask of the hash
_M32 = 0xFFFFFFFF


@jit(inline="always")
def _mul32(x, c):
    """``x·c mod 2^32`` for ``0 <= x, c < 2^32`` in int64 without overflow (16-bit halves of ``x``)."""
    return ((x & 0xFFFF) * c + ((((x >> 16) * (c & 0xFFFF)) & 0xFFFF) << 16)) & _M32


@jit(inline="always")
def hash32(x):
    """The ``lowbias32`` integer hash (C. Wellons) of a 32-bit value held in an int64:
    ``x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16`` (mod 2^32)."""
    x = x & _M32
    x ^= x >> 16
    x = _mul32(x, 0x7FEB352D)
    x ^= x >> 15
    x = _mul32(x, 0x846CA68B)
    x ^= x >> 16
    return x


@jit
def lns_madam_frac_serial(c, g, v, beta, omb, inv_bc, g_bound, k, cap, key, offset):
    """:func:`lns_madam_serial` for a step of ``k`` code steps that need not be whole.

    ``d = k·round(ĝ)`` (float64) moves the code by ``floor(d) + [r < (d − floor d)·2^24]``,
    ``r = hash32(hash32((offset + i) ^ key) ^ hash32(key ^ 0x85EBCA6B)) >> 8`` the element's
    24-bit draw: stochastic
    rounding, ``E[move] = d`` to within ``2^-24``. The code arithmetic runs in float64
    (exact for every code); ``k`` and ``cap`` are float64.
    """
    n = c.size
    q = np.empty(LNS_MADAM_BLOCK, np.float32)
    two24 = 16777216.0
    key2 = hash32(key ^ 0x85EBCA6B)
    for lo in range(0, n, LNS_MADAM_BLOCK):
        hi = min(n, lo + LNS_MADAM_BLOCK)
        _lns_madam_q(g[lo:hi], v[lo:hi], q[:hi - lo], beta, omb, inv_bc, g_bound)
        for j in range(hi - lo):
            i = lo + j
            ci = c[i]
            if ci == 0:
                continue  # 0 stays 0 (and takes no draw)
            d = k * np.float64(q[j])
            fl = np.floor(d)
            r = hash32(hash32(np.int64(offset + i) ^ key) ^ key2) >> 8
            step = fl + (1.0 if np.float64(r) < (d - fl) * two24 else 0.0)
            x = np.float64(ci) - step
            if ci > 0:
                x = min(max(x, 1.0), cap)
            else:
                x = min(max(x, -cap), -1.0)
            c[i] = x


@pjit
def lns_madam_frac_parallel(c, g, v, beta, omb, inv_bc, g_bound, k, cap, key, nchunk):
    """:func:`lns_madam_frac_serial` over ``nchunk`` contiguous slices in parallel (the draws
    are keyed by the element's index in the whole array, so the result equals the serial one)."""
    n = c.size
    size = (n + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        lo = min(n, ch * size)
        hi = min(n, lo + size)
        lns_madam_frac_serial(c[lo:hi], g[lo:hi], v[lo:hi], beta, omb, inv_bc, g_bound, k, cap, key, lo)


# --------------------------------------------------------------------------
# 1-bit signs: packing and the majority vote


@jit
def pack_signs_kernel(x, out):
    """Bit ``i % 8`` of byte ``i // 8`` is 1 where ``x[i] < 0`` (little bit order)."""
    n = x.size
    nfull = n // 8
    for j in range(nfull):
        b = 0
        base = 8 * j
        for t in range(8):
            if x[base + t] < 0:
                b |= 1 << t
        out[j] = b
    if n % 8:
        b = 0
        for t in range(n - 8 * nfull):
            if x[8 * nfull + t] < 0:
                b |= 1 << t
        out[nfull] = b


@jit
def unpack_signs_kernel(packed, n, out):
    for i in range(n):
        out[i] = -1 if (packed[i >> 3] >> (i & 7)) & 1 else 1


@jit
def vote_kernel(packed, n, abstain, out):
    """Ternary vote per position from packed rows ``packed[k, :]``.

    ``Σ_k sign_k = K - 2·(number of negative bits)``; a tie (even K) gives
    0 when ``abstain`` else +1.
    """
    kw = packed.shape[0]
    for i in range(n):
        j = i >> 3
        t = i & 7
        neg = 0
        for k in range(kw):
            neg += (packed[k, j] >> t) & 1
        total = kw - 2 * neg
        if total > 0:
            out[i] = 1
        elif total < 0:
            out[i] = -1
        else:
            out[i] = 0 if abstain else 1


# --------------------------------------------------------------------------
# sign-driven updates


@jit
def sign_step_serial(w, d, lr):
    """signSGD / vote step: ``w ← w − lr·sign(d)`` (sign(0) = +1)."""
    for i in range(w.size):
        s = -1.0 if d[i] < 0 else 1.0
        w[i] = np.float64(w[i]) - lr * s


@jit
def ternary_step_serial(w, s, lr):
    """``w ← w − lr·s`` for an int8 ternary direction ``s`` in {-1, 0, +1}."""
    for i in range(w.size):
        w[i] = np.float64(w[i]) - lr * np.float64(s[i])


@jit
def signum_serial(w, g, m, lr, beta):
    """Signum: ``m ← β m + (1−β) g``, ``w ← w − lr·sign(m)``."""
    for i in range(w.size):
        mi = beta * np.float64(m[i]) + (1.0 - beta) * np.float64(g[i])
        m[i] = mi
        s = -1.0 if mi < 0 else 1.0
        w[i] = np.float64(w[i]) - lr * s


@jit
def ef_sign_serial(w, g, e, lr):
    """Scaled sign with error feedback (Karimireddy et al. 2019), one tensor."""
    d = w.size
    if d == 0:
        return
    l1 = 0.0
    for i in range(d):
        p = lr * np.float64(g[i]) + np.float64(e[i])
        l1 += abs(p)
    scale = l1 / d
    for i in range(d):
        p = lr * np.float64(g[i]) + np.float64(e[i])
        delta = -scale if p < 0 else scale
        w[i] = np.float64(w[i]) - delta
        e[i] = p - delta


@jit
def code_step_serial(c, s, k, cap):
    """Multiplicative one-bit update on codes: ``|c| ← clamp(|c| − k·s·sign(c), 1, cap)``."""
    for i in range(c.size):
        ci = np.int64(c[i])
        if ci == 0:
            continue
        sg = 1 if ci > 0 else -1
        m = abs(ci) - k * np.int64(s[i]) * sg
        if m > cap:
            m = cap
        elif m < 1:
            m = 1
        c[i] = sg * m


# --------------------------------------------------------------------------
# finiteness: one streaming pass over the IEEE bit patterns


@jit
def max_exponent(u, mask):
    """Largest exponent field ``u & mask`` of IEEE bit patterns ``u`` (uint32 with mask
    ``0x7f800000`` for float32, uint64 with ``0x7ff0000000000000`` for float64).

    It equals ``mask`` exactly when some element is NaN or ±inf. An integer max
    reduction: LLVM vectorises it without fastmath, so the pass runs at the
    memory bandwidth.
    """
    m = mask ^ mask  # zero of the mask's type
    for i in range(u.size):
        x = u[i] & mask
        m = x if x > m else m
    return m
