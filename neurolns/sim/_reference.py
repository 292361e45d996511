"""Float64 numpy reference paths of the simulator kernels.

Plain vectorised transcriptions of :mod:`neurolns.sim._kernels`, selected with
``reference=True`` and used by the tests as their oracle.
"""

from __future__ import annotations

import numpy as np

from neurolns.sim._kernels import LEAKY_RELU, RELU, SIGMOID, TANH


def activation_forward(x, kind, alpha):
    x = np.asarray(x, dtype=np.float64)
    if kind == RELU:
        return np.maximum(x, 0.0)
    if kind == LEAKY_RELU:
        return np.where(x > 0, x, alpha * x)
    if kind == TANH:
        return np.tanh(x)
    if kind == SIGMOID:
        return 1.0 / (1.0 + np.exp(-x))
    return x.copy()


def activation_backward(x, y, dy, kind, alpha):
    x, y, dy = (np.asarray(a, dtype=np.float64) for a in (x, y, dy))
    if kind == RELU:
        d = np.where(x > 0, dy, 0.0)
    elif kind == LEAKY_RELU:
        d = np.where(x > 0, dy, alpha * dy)
    elif kind == TANH:
        d = dy * (1.0 - y * y)
    elif kind == SIGMOID:
        d = dy * y * (1.0 - y)
    else:
        d = dy.copy()
    return np.where(np.isnan(x) | np.isnan(dy), np.nan, d)


def softmax_xent(logits, labels):
    z = np.asarray(logits, dtype=np.float64)
    n = z.shape[0]
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = float((lse[:, 0] - z[rows, labels]).mean()) if n else 0.0
    p = np.exp(z - lse)
    p[rows, labels] -= 1.0
    correct = int((z.argmax(axis=1) == labels).sum())
    return loss, p / max(n, 1), correct


def im2col(x, k, stride, pad, l_out):
    x = np.asarray(x, dtype=np.float64)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad + k)))
    idx = np.arange(l_out)[:, None] * stride + np.arange(k)[None, :]  # (L_out, k)
    win = xp[:, :, idx]  # (N, C, L_out, k)
    return win.transpose(0, 2, 1, 3).reshape(x.shape[0], l_out, -1)


def col2im(dcols, k, stride, pad, shape):
    n, c, length = shape
    l_out = dcols.shape[1]
    d = np.asarray(dcols, dtype=np.float64).reshape(n, l_out, c, k)
    dxp = np.zeros((n, c, length + 2 * pad + k))
    for t in range(l_out):
        dxp[:, :, t * stride : t * stride + k] += d[:, t]
    return dxp[:, :, pad : pad + length]


def codes_to_values(codes, table, scale):
    """Raises ``IndexError`` for a code out of the table (the caller names it)."""
    c = np.asarray(codes, dtype=np.int64)
    return np.sign(c) * scale * np.asarray(table)[np.abs(c)]


def maxpool_forward(x, k):
    x = np.asarray(x, dtype=np.float64)
    n, c, length = x.shape
    l_out = length // k
    w = x[:, :, : l_out * k].reshape(n, c, l_out, k)
    return w.max(axis=3), w.argmax(axis=3) + np.arange(l_out) * k


def maxpool_backward(dy, arg, length):
    n, c, l_out = dy.shape
    dx = np.zeros((n, c, length))
    nn, cc, _ = np.indices(dy.shape)
    np.add.at(dx, (nn, cc, arg), dy)
    return dx


def im2col2d(x, kh, kw, sh, sw, ph, pw, h_out, w_out):
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + kh), (pw, pw + kw)))
    rows = (np.arange(h_out)[:, None] * sh + np.arange(kh)[None, :])[:, None, :, None]  # (H_out, 1, kh, 1)
    cols = (np.arange(w_out)[:, None] * sw + np.arange(kw)[None, :])[None, :, None, :]  # (1, W_out, 1, kw)
    win = xp[:, :, rows, cols]  # (N, C, H_out, W_out, kh, kw)
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, h_out * w_out, c * kh * kw)


def col2im2d(dcols, kh, kw, sh, sw, ph, pw, shape):
    n, c, h, w = shape
    w_out = (w + 2 * pw - kw) // sw + 1
    h_out = dcols.shape[1] // w_out
    d = np.asarray(dcols, dtype=np.float64).reshape(n, h_out, w_out, c, kh, kw)
    dxp = np.zeros((n, c, h + 2 * ph + kh, w + 2 * pw + kw))
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + h_out * sh : sh, j : j + w_out * sw : sw] += d[..., i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, ph : ph + h, pw : pw + w]


def maxpool2d_forward(x, kh, kw):
    """Values and flat ``r·W + q`` indices of the first maxima (rows scanned first)."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    h_out, w_out = h // kh, w // kw
    win = x[:, :, : h_out * kh, : w_out * kw].reshape(n, c, h_out, kh, w_out, kw)
    win = win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h_out, w_out, kh * kw)
    a = win.argmax(axis=4)
    rows = np.arange(h_out)[:, None] * kh + a // kw
    cols = np.arange(w_out)[None, :] * kw + a % kw
    return win.max(axis=4), rows * w + cols
