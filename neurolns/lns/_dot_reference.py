"""Float64/numpy reference of the hardware LNS dot product, written for clarity.

Same semantics as :func:`neurolns.lns._dot_kernels.exact_matmul_kernel`: products
are taken in ascending ``k`` order, each adds ``±2**(q + frac)`` to partial sum
``r`` of its output (``e = q·γ + r``), a partial sum that would leave the
accumulator's range saturates (and is counted), a product below the LSB is
dropped (and counted). Vectorised over the outputs, looped over ``k``.
"""

from __future__ import annotations

import numpy as np


def exact_matmul_reference(ea, sa, za, eb, sb, zb, gamma: int, bits: int, frac: int):
    """Hardware-style ``A @ B`` on unpacked operands.

    Parameters
    ----------
    ea, sa, za : (M, K) int arrays
        Exponent codes on the grid ``γ``, sign bits (1 = negative) and zero flags of ``A``.
    eb, sb, zb : (K, N) int arrays
        The same for ``B``.
    gamma, bits, frac : int
        Grid, accumulator width and fractional bits.

    Returns
    -------
    out : (M, N) float64, ``Σ_r ps[r] 2**(r/γ - frac)``
    overflows, underflows : int
    """
    ea = np.asarray(ea, dtype=np.int64)
    eb = np.asarray(eb, dtype=np.int64)
    m, k_len = ea.shape
    n = eb.shape[1]
    hi = (1 << (bits - 1)) - 1
    lo = -hi - 1
    ps = np.zeros((m, n, gamma), dtype=object)  # python ints: no silent int64 overflow
    ii, jj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    over = under = 0
    for k in range(k_len):
        e = ea[:, k, None] + eb[None, k, :]
        live = ~(np.asarray(za)[:, k, None] | np.asarray(zb)[None, k, :])
        q = np.floor_divide(e, gamma)
        r = e - q * gamma
        sh = q + frac
        dropped = live & (sh < 0)
        under += int(dropped.sum())
        live &= ~dropped
        neg = (np.asarray(sa)[:, k, None] ^ np.asarray(sb)[None, k, :]).astype(bool)
        for i, j in zip(ii[live], jj[live]):
            v = 1 << int(min(sh[i, j], bits - 1))  # a product alone past the top saturates
            t = ps[i, j, r[i, j]] + (-v if neg[i, j] else v)
            if t > hi or t < lo:
                over += 1
                t = hi if t > hi else lo
            ps[i, j, r[i, j]] = t
    w = np.exp2(np.arange(gamma) / gamma - frac)
    out = np.array([[float(sum(float(ps[i, j, r]) * w[r] for r in range(gamma))) for j in range(n)]
                    for i in range(m)]).reshape(m, n)
    return out, over, under
