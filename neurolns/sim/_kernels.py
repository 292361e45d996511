"""Numba kernels of the rate-network simulator (the fast paths).

Every kernel here has a float64 numpy twin in :mod:`neurolns.sim._reference`
with the same arguments; the tests compare the two. Matrix products are not
here: they go through BLAS (``numpy.matmul``) on decoded weights, which is the
"fast" product mode of :func:`neurolns.lns.matmul` (decode, then multiply).

Activation kinds are small integers so one compiled kernel serves them all:
0 identity, 1 ReLU, 2 leaky ReLU (slope ``alpha``), 3 tanh, 4 logistic sigmoid.

Non-finite input, as numpy and torch do: NaN propagates through every kernel
(an activation of NaN is NaN, a NaN in ``x`` or ``dy`` gives a NaN gradient, a
max pool over a NaN is NaN, a row of logits holding NaN has a NaN loss and
gradient and its arg-max is its first NaN, like ``numpy.argmax``); ±inf follows
IEEE arithmetic (``relu(-inf) = 0``, ``sigmoid(-inf) = 0``, ``tanh(inf) = 1``).
A NaN is never mapped to 0: a diverged run must show as NaN, not as a dead unit.
"""

from __future__ import annotations

import math

import numpy as np

from neurolns._jit import jit

IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID = 0, 1, 2, 3, 4


@jit
def activation_forward(x, kind, alpha, out):
    """``out = f(x)`` elementwise on flat float32 arrays."""
    for i in range(x.size):
        v = x[i]
        if kind == RELU:
            out[i] = 0.0 if v <= 0 else v  # NaN <= 0 is False: NaN stays NaN
        elif kind == LEAKY_RELU:
            out[i] = v if v > 0 else alpha * v
        elif kind == TANH:
            out[i] = math.tanh(v)
        elif kind == SIGMOID:
            out[i] = 1.0 / (1.0 + math.exp(-v))
        else:
            out[i] = v


@jit
def activation_backward(x, y, dy, kind, alpha, dx):
    """``dx = f'(x) · dy``; tanh and sigmoid use their output ``y``; NaN in ``x`` or ``dy`` gives NaN."""
    for i in range(x.size):
        if x[i] != x[i] or dy[i] != dy[i]:
            dx[i] = np.nan
        elif kind == RELU:
            dx[i] = dy[i] if x[i] > 0 else 0.0
        elif kind == LEAKY_RELU:
            dx[i] = dy[i] if x[i] > 0 else alpha * dy[i]
        elif kind == TANH:
            dx[i] = dy[i] * (1.0 - y[i] * y[i])
        elif kind == SIGMOID:
            dx[i] = dy[i] * y[i] * (1.0 - y[i])
        else:
            dx[i] = dy[i]


@jit
def softmax_xent(logits, labels, dlogits):
    """Mean softmax cross-entropy of ``(N, C)`` logits; writes ``∂loss/∂logits``.

    Returns ``(loss, n_correct)``. Per row, in float64: ``m = max z``,
    ``lse = m + log Σ exp(z - m)``, ``loss_n = lse - z_y``; the gradient is
    ``(softmax(z) - onehot(y)) / N``. ``argmax`` takes the first maximum, or
    the first NaN of a row that holds one (as ``numpy.argmax``); such a row's
    loss and gradient are NaN.
    """
    n, c = logits.shape
    total = 0.0
    correct = 0
    inv_n = 1.0 / n
    for r in range(n):
        m = -np.inf
        best = 0
        for j in range(c):
            v = float(logits[r, j])
            if v > m or (v != v and m == m):  # the first NaN wins and stays
                m = v
                best = j
        s = 0.0
        for j in range(c):
            s += math.exp(float(logits[r, j]) - m)
        lse = m + math.log(s)
        y = labels[r]
        total += lse - float(logits[r, y])
        if best == y:
            correct += 1
        for j in range(c):
            p = math.exp(float(logits[r, j]) - lse)
            dlogits[r, j] = (p - (1.0 if j == y else 0.0)) * inv_n
    return total * inv_n, correct


@jit
def im2col(x, k, stride, pad, cols):
    """``cols[n, t, c*k + j] = x_padded[n, c, t*stride + j]`` (zero padding)."""
    n_b, n_c, length = x.shape
    l_out = cols.shape[1]
    for n in range(n_b):
        for t in range(l_out):
            start = t * stride - pad
            for c in range(n_c):
                base = c * k
                for j in range(k):
                    p = start + j
                    cols[n, t, base + j] = x[n, c, p] if 0 <= p < length else 0.0


@jit
def col2im(dcols, k, stride, pad, dx):
    """Adjoint of :func:`im2col`: scatter-add ``dcols`` back into ``dx``."""
    n_b, n_c, length = dx.shape
    l_out = dcols.shape[1]
    dx[...] = 0.0
    for n in range(n_b):
        for t in range(l_out):
            start = t * stride - pad
            for c in range(n_c):
                base = c * k
                for j in range(k):
                    p = start + j
                    if 0 <= p < length:
                        dx[n, c, p] += dcols[n, t, base + j]


@jit
def codes_to_values(codes, table, scale, out):
    """``out = sign(c) · scale · table[|c|]`` (one table lookup per synapse).

    ``table`` maps a master-format field value to the magnitude of the forward
    format at scale 1, so re-gridding and decoding are one step. Returns -1, or
    the flat index of the first code with ``|c| >= table.size`` (out of the
    format's range: nothing is read out of bounds, the caller raises).
    """
    n = np.int64(table.size)
    for i in range(codes.size):
        c = np.int64(codes[i])
        a = c if c >= 0 else -c
        if a >= n:
            return i
        v = scale * table[a]  # table[0] = 0: code 0 is exact zero
        out[i] = v if c >= 0 else -v
    return -1


@jit
def maxpool_forward(x, k, out, arg):
    """Non-overlapping max pool of width ``k`` along the last axis (``(N, C, L)``).

    A window holding NaN pools to NaN, its index the first NaN (``numpy.argmax``).
    """
    n_b, n_c, l_out = out.shape
    for n in range(n_b):
        for c in range(n_c):
            for t in range(l_out):
                best = x[n, c, t * k]
                bi = t * k
                for j in range(1, k):
                    if best != best:  # the first NaN wins and stays
                        break
                    v = x[n, c, t * k + j]
                    if v > best or v != v:
                        best = v
                        bi = t * k + j
                out[n, c, t] = best
                arg[n, c, t] = bi


@jit
def maxpool_backward(dy, arg, dx):
    """Route each pooled gradient to the input that won the max."""
    n_b, n_c, l_out = dy.shape
    dx[...] = 0.0
    for n in range(n_b):
        for c in range(n_c):
            for t in range(l_out):
                dx[n, c, arg[n, c, t]] += dy[n, c, t]


@jit
def im2col2d(x, kh, kw, sh, sw, ph, pw, cols):
    """``cols[n, oh·W_out + ow, (c·kh + i)·kw + j] = x_padded[n, c, oh·sh + i, ow·sw + j]`` (zero padding).

    ``x`` is ``(N, C, H, W)``; ``cols`` is ``(N, H_out·W_out, C·kh·kw)``, its last
    axis in the order of a ``(C_out, C, kh, kw)`` weight flattened per row.
    """
    n_b, n_c, h, w = x.shape
    w_out = (w + 2 * pw - kw) // sw + 1
    n_pos = cols.shape[1]
    for n in range(n_b):
        for t in range(n_pos):
            r0 = (t // w_out) * sh - ph
            c0 = (t % w_out) * sw - pw
            for c in range(n_c):
                for i in range(kh):
                    r = r0 + i
                    base = (c * kh + i) * kw
                    for j in range(kw):
                        q = c0 + j
                        cols[n, t, base + j] = x[n, c, r, q] if 0 <= r < h and 0 <= q < w else 0.0


@jit
def col2im2d(dcols, kh, kw, sh, sw, ph, pw, dx):
    """Adjoint of :func:`im2col2d`: scatter-add ``dcols`` back into ``dx`` ``(N, C, H, W)``."""
    n_b, n_c, h, w = dx.shape
    w_out = (w + 2 * pw - kw) // sw + 1
    n_pos = dcols.shape[1]
    dx[...] = 0.0
    for n in range(n_b):
        for t in range(n_pos):
            r0 = (t // w_out) * sh - ph
            c0 = (t % w_out) * sw - pw
            for c in range(n_c):
                for i in range(kh):
                    r = r0 + i
                    if 0 <= r < h:
                        base = (c * kh + i) * kw
                        for j in range(kw):
                            q = c0 + j
                            if 0 <= q < w:
                                dx[n, c, r, q] += dcols[n, t, base + j]


@jit
def maxpool2d_forward(x, kh, kw, out, arg):
    """Non-overlapping ``kh × kw`` max pool of ``(N, C, H, W)``; ``arg`` holds the winner's
    flat index ``r·W + q`` in its ``H × W`` plane (torch's ``return_indices`` layout).

    The window is scanned row by row; ties go to the first maximum, and a window
    holding NaN pools to NaN, its index the first NaN (``numpy.argmax``).
    """
    n_b, n_c, h_out, w_out = out.shape
    w = x.shape[3]
    for n in range(n_b):
        for c in range(n_c):
            for a in range(h_out):
                for b in range(w_out):
                    r0 = a * kh
                    c0 = b * kw
                    best = x[n, c, r0, c0]
                    bi = r0 * w + c0
                    for i in range(kh):
                        if best != best:  # the first NaN wins and stays
                            break
                        for j in range(kw):
                            v = x[n, c, r0 + i, c0 + j]
                            if v > best or (v != v and best == best):
                                best = v
                                bi = (r0 + i) * w + c0 + j
                    out[n, c, a, b] = best
                    arg[n, c, a, b] = bi
