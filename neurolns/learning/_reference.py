"""Float64 numpy reference paths of the learning rules.

Plain, vectorised transcriptions of the formulas, used when a public function is
called with ``reference=True`` and by the tests as the oracle of the Numba
kernels in :mod:`neurolns.learning._kernels`. Storage dtypes follow the
arguments; arithmetic is float64. ``sign(x) = -1 if x < 0 else +1``.
"""

from __future__ import annotations

import numpy as np


def sign1(x: np.ndarray) -> np.ndarray:
    """One-bit sign as float64: ``-1`` where ``x < 0``, else ``+1`` (so sign(0) = +1)."""
    return np.where(np.asarray(x) < 0, -1.0, 1.0)


def normalised_grad(g, v, beta, inv_bc, g_bound):
    """``(ĝ, v_new)`` in float64; ``ĝ := 0`` where ``g/sqrt(v̂)`` is not finite (0/0)."""
    g = np.asarray(g, dtype=np.float64)
    v_new = beta * np.asarray(v, dtype=np.float64) + (1.0 - beta) * (g * g)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gh = g / np.sqrt(v_new * inv_bc)
    gh = np.where(np.abs(gh) < np.inf, gh, 0.0)
    return np.clip(gh, -g_bound, g_bound), v_new


def madam(w, g, v, lr, beta, inv_bc, g_bound, p_max):
    gh, v_new = normalised_grad(g, v, beta, inv_bc, g_bound)
    w64 = w.astype(np.float64)
    w_new = np.clip(w64 * np.exp(-lr * gh * np.sign(w64)), -p_max, p_max)
    w[...] = w_new
    v[...] = v_new


def lns_madam(c, g, v, beta, inv_bc, g_bound, k, cap):
    """LNS-Madam with the normalisation in float64 (as the kernel), codes in int64."""
    gh, v_new = normalised_grad(g, v, beta, inv_bc, g_bound)
    q = np.rint(gh).astype(np.int64)
    c64 = c.astype(np.int64)
    s = np.where(c64 > 0, 1, -1)
    m = np.clip(np.abs(c64) - k * q * s, 1, cap)
    c[...] = np.where(c64 == 0, 0, s * m)
    v[...] = v_new


def hash32(x):
    """The ``lowbias32`` hash of :func:`neurolns.learning._kernels.hash32` on int64 numpy arrays,
    int64 torch tensors (the torch ``LNSMadam`` uses it as is) or ints: only ``& ^ >> << * +``."""
    m = 0xFFFFFFFF

    def mul32(a, c):  # a·c mod 2^32 from 16-bit halves: no int64 overflow
        return ((a & 0xFFFF) * c + ((((a >> 16) * (c & 0xFFFF)) & 0xFFFF) << 16)) & m

    x = x & m
    x = x ^ (x >> 16)
    x = mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def lns_madam_frac(c, g, v, beta, inv_bc, g_bound, k, cap, key):
    """LNS-Madam with a step of ``k`` (float) code steps, stochastically rounded per element."""
    gh, v_new = normalised_grad(g, v, beta, inv_bc, g_bound)
    d = float(k) * np.rint(gh).reshape(-1)
    fl = np.floor(d)
    r = hash32(hash32(np.arange(c.size, dtype=np.int64) ^ key) ^ hash32(key ^ 0x85EBCA6B)) >> 8
    step = (fl + (r.astype(np.float64) < (d - fl) * 16777216.0)).reshape(c.shape)
    c64 = c.astype(np.int64)
    s = np.where(c64 > 0, 1, -1)
    m = np.clip(np.abs(c64) - step.astype(np.int64) * s, 1, cap)
    c[...] = np.where(c64 == 0, 0, s * m)
    v[...] = v_new


def pack_signs(x) -> np.ndarray:
    return np.packbits(np.asarray(x) < 0, axis=-1, bitorder="little")


def unpack_signs(packed, n) -> np.ndarray:
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=n, bitorder="little")
    return (1 - 2 * bits.astype(np.int8)).astype(np.int8)


def vote(signs_2d: np.ndarray, abstain: bool) -> np.ndarray:
    total = np.asarray(signs_2d, dtype=np.int64).sum(axis=0)
    tie = 0 if abstain else 1
    return np.where(total > 0, 1, np.where(total < 0, -1, tie)).astype(np.int8)


def signum(w, g, m, lr, beta):
    m_new = beta * m.astype(np.float64) + (1.0 - beta) * g.astype(np.float64)
    m[...] = m_new
    w[...] = w.astype(np.float64) - lr * sign1(m_new)


def ef_sign(w, g, e, lr):
    if w.size == 0:
        return
    p = lr * g.astype(np.float64) + e.astype(np.float64)
    delta = (np.abs(p).sum() / p.size) * sign1(p)
    w[...] = w.astype(np.float64) - delta
    e[...] = p - delta


def code_step(c, s, k, cap):
    c64 = c.astype(np.int64)
    sg = np.where(c64 > 0, 1, -1)
    m = np.clip(np.abs(c64) - k * np.asarray(s, dtype=np.int64) * sg, 1, cap)
    c[...] = np.where(c64 == 0, 0, sg * m)
