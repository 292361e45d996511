"""Numba kernels of the hardware LNS dot product (quotient/remainder accumulation).

Operands arrive *packed*: ``p = 2·e + s`` with ``e`` the exponent code on the
common grid ``γ`` and ``s`` the sign bit (1 for negative); exact zero is a
large negative sentinel, so that a product with a zero factor has an exponent
sum below ``thresh`` and is skipped. ``a`` is (M, K) and ``b`` is given
transposed, (N, K), so both walk their rows contiguously.

For every product ``e = e_a + e_b = q·γ + r`` (``0 <= r < γ``) the kernel adds
``±2**(q + frac)`` (an integer: the product in units of the accumulator's
least significant bit) into partial sum ``r``; at the end
``out = Σ_r ps[r] · w[r]`` with ``w[r] = 2**(r/γ - frac)``. Reference:
:mod:`neurolns.lns._dot_reference`.

Two kernels: :func:`exact_matmul_kernel` follows the register add by add
(saturation and dropped products counted, in ascending ``k`` per output);
:func:`exact_matmul_unchecked_kernel` is for the case the caller proved safe
(nothing can saturate or fall below the LSB): the partial sums are then exact
integers whatever the order of the additions, so it loops ``i, k, j`` with one
``γ``-vector of partial sums per output, which keeps the inner loop free of
data-dependent branches.
"""

from __future__ import annotations

import numpy as np

from neurolns._jit import pjit, prange


@pjit
def exact_matmul_kernel(pa, pb, log2_gamma, frac, hi, thresh, w, out, overflows, underflows):
    """``out[i, j] = Σ_k a[i, k]·b[k, j]`` by γ integer partial sums per output,
    following the register add by add.

    A partial sum that would leave ``[-hi-1, hi]`` saturates; a product below
    the LSB (``q + frac < 0``) is dropped; a shifted product wider than the
    register is clamped to ``2**(bits-1)``. ``overflows[i]``/``underflows[i]``
    count, per output row, the saturated additions and the dropped products.
    """
    m, k_len = pa.shape
    n = pb.shape[0]
    gamma = 1 << log2_gamma
    mask = gamma - 1
    lo = -hi - 1
    top = 0
    while (np.int64(1) << top) <= hi:
        top += 1
    for i in prange(m):
        ps = np.zeros(gamma, dtype=np.int64)
        n_over = 0
        n_under = 0
        for j in range(n):
            ps[:] = 0
            for k in range(k_len):
                xa = np.int64(pa[i, k])
                xb = np.int64(pb[j, k])
                e = (xa >> 1) + (xb >> 1)
                if e < thresh:
                    continue
                sh = (e >> log2_gamma) + frac
                if sh < 0:
                    n_under += 1
                    continue
                v = np.int64(1) << (sh if sh < top else top)
                if (xa ^ xb) & 1:
                    v = -v
                r = e & mask
                t = ps[r] + v
                if t > hi:
                    t = hi
                    n_over += 1
                elif t < lo:
                    t = lo
                    n_over += 1
                ps[r] = t
            acc = 0.0
            for r in range(gamma):
                acc += ps[r] * w[r]
            out[i, j] = acc
        overflows[i] = n_over
        underflows[i] = n_under


@pjit
def exact_matmul_unchecked_kernel(base_a, r_a, neg_a, v_b, r_b, log2_gamma, w, out):
    """Partial sums without range checks (see the module notes).

    ``a``'s quotient enters as a shift ``base_a = q_a + frac + q_b,min`` (-1 marks
    a zero), its remainder ``r_a`` and sign ``neg_a``; ``b`` as the signed
    integer ``v_b = ±2**(q_b - q_b,min)`` (0 for zero) and remainder ``r_b``.
    The product adds ``v_b << (base_a + carry)`` into partial sum
    ``(r_a + r_b) mod γ``, ``carry = (r_a + r_b) >= γ``.
    """
    m, k_len = base_a.shape
    n = v_b.shape[1]
    gamma = 1 << log2_gamma
    mask = gamma - 1
    for i in prange(m):
        ps = np.zeros((n, gamma), dtype=np.int64)
        for k in range(k_len):
            base = np.int64(base_a[i, k])
            if base < 0:
                continue
            ra = np.int64(r_a[i, k])
            if neg_a[i, k]:
                for j in range(n):
                    r = ra + r_b[k, j]
                    ps[j, r & mask] -= v_b[k, j] << (base + (r >> log2_gamma))
            else:
                for j in range(n):
                    r = ra + r_b[k, j]
                    ps[j, r & mask] += v_b[k, j] << (base + (r >> log2_gamma))
        for j in range(n):
            acc = 0.0
            for r in range(gamma):
                acc += ps[j, r] * w[r]
            out[i, j] = acc
