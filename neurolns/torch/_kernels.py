"""Numba kernels of the bridge's CPU hot paths (zero-copy on CPU tensors' numpy views).

Reference paths: :func:`neurolns.torch.modules.grid_magnitudes` and the torch
operations of :class:`neurolns.torch.modules._MasterForward` (plain torch, run
on every device); the tests compare the two.
"""

from __future__ import annotations

import numpy as np

from neurolns._jit import jit, pjit, prange


@jit
def _grid_one(w, gamma, bias, e_min, e_max, ls, table, s):
    """Forward value of one grid value: sign(w)·table[rint(γ(log2|w| − ls)) + β]·s (0 stays 0)."""
    if w == 0.0 or w != w:
        return np.float32(0.0)
    t = np.rint((np.log2(np.float32(abs(w))) - ls) * gamma)
    if t < e_min:
        t = e_min
    elif t > e_max:
        t = e_max
    v = table[np.int64(t) + bias] * s
    return -v if w < 0 else v


@jit
def grid_forward_serial(w, gamma, bias, e_min, e_max, ls, table, s, out):
    for i in range(w.size):
        out[i] = _grid_one(w[i], gamma, bias, e_min, e_max, ls, table, s)


@pjit
def grid_forward_parallel(w, gamma, bias, e_min, e_max, ls, table, s, out):
    for i in prange(w.size):
        out[i] = _grid_one(w[i], gamma, bias, e_min, e_max, ls, table, s)
