"""Numba kernels of the codec (encode, decode, regrid).

Each kernel works on flat arrays; the scale arrives as a flat array that is
either of length 1 (per-tensor) or of the same length as the data (already
broadcast by the caller). Reference paths: :mod:`neurolns.lns._reference`.
"""

from __future__ import annotations

import numpy as np

from neurolns._jit import jit, pjit, prange


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
def encode_kernel(x, log2_scale, gamma, bias, e_min, e_max, saturate_small, stochastic, u, out):
    """Fill ``out`` with the codes of ``x``; returns (number of NaN, number of ±inf)."""
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
def decode_kernel(codes, table, scale, out):
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
