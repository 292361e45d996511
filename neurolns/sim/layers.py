"""Layers of rate networks: Dense, Conv1d, Conv2d, activations, pooling and reshaping.

Layouts follow torch so weights move one-to-one between :mod:`neurolns.sim` and
``torch.nn``: :class:`Dense` weight ``(out, in)`` and bias ``(out,)`` as
``nn.Linear``; :class:`Conv1d` weight ``(out_ch, in_ch, k)`` and bias
``(out_ch,)`` as ``nn.Conv1d``; :class:`Conv2d` weight ``(out_ch, in_ch, kh, kw)``
as ``nn.Conv2d``; inputs ``(N, features)``, ``(N, C, L)`` and ``(N, C, H, W)``.

Each layer has ``forward(x, train)`` (float32 in, float32 out; ``train=True``
keeps what the backward pass needs) and ``backward(dy) -> dx``, which also
writes ``param.grad`` (float32, ``∂loss/∂w`` at the forward values) for every
:class:`~neurolns.sim.params.Param` in ``params()``. Products are formed on the
decoded forward copy of the weights with BLAS — the "fast" product mode of an
LNS dot product; ``products="exact"`` runs the forward product through
:func:`neurolns.lns.matmul` in its exact (hardware partial-sum) mode instead.
"""

from __future__ import annotations

import math

import numpy as np

from neurolns.formats import _check_int_at_least, _StrEnum
from neurolns.sim import _kernels as _k
from neurolns.sim import _reference as _ref
from neurolns.sim.params import Param

__all__ = [
    "Products", "Layer", "Dense", "Conv1d", "Conv2d", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
    "Flatten", "Reshape", "MaxPool1d", "MaxPool2d",
]


class Products(_StrEnum):
    """How weight × activation products are formed.

    ``FAST``: decode the forward weights to float32 and multiply with BLAS.
    ``EXACT``: the forward product through ``neurolns.lns.matmul(mode="exact")``
    (LNS products summed in integer partial sums, as LNS hardware does);
    the backward pass stays on the fast path.
    """

    FAST = "fast"
    EXACT = "exact"


def _as_f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _pair(name: str, value, lo: int) -> tuple[int, int]:
    """``(value, value)`` for an int, or a pair of ints, each ``>= lo`` (torch's ``_pair``)."""
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo for v in vals):
        raise ValueError(f"{name}={value!r} is out of range; allowed: an int >= {lo} or a pair of them")
    return int(vals[0]), int(vals[1])


def _exact_matmul(x: np.ndarray, w: Param) -> np.ndarray:
    """``x @ w.T`` with LNS products and hardware partial sums (forward only)."""
    from neurolns import lns

    if not hasattr(lns, "matmul"):
        raise NotImplementedError("products='exact' needs neurolns.lns.matmul, which this install lacks")
    wa = w.forward_array() if w.on_codes else lns.encode(w.data, w.forward_format or _default_exact_format())
    xa = lns.encode(x, wa.format)
    out = lns.matmul(xa, wa.reshape(wa.shape[0], -1).T, mode="exact")
    return np.asarray(out.decode() if hasattr(out, "decode") else out, dtype=np.float32)


def _default_exact_format():
    from neurolns.formats import LNS8

    return LNS8


class Layer:
    """Base class: no parameters, identity maps."""

    def params(self) -> list[Param]:
        return []

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def spec(self) -> dict:
        """JSON-able description of the layer (type, sizes, parameter formats)."""
        return {"type": type(self).__name__, "params": [p.spec() for p in self.params()]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _uniform_init(rng, shape, fan_in):
    """torch's default: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and bias
    (kaiming-uniform with a=sqrt(5)); biases are non-zero, which a multiplicative
    rule needs since a zero synapse never moves (Bernstein et al. 2020)."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


class _Weighted(Layer):
    """Shared parameter handling of Dense and Conv1d."""

    def _make_params(self, w0, b0, bias, master_format, forward_format, headroom, products):
        kw = dict(master_format=master_format, forward_format=forward_format, headroom=headroom)
        self.weight = Param("weight", w0, **kw)
        self.bias = Param("bias", b0, **kw) if bias else None
        self.products = Products(products)
        if self.products == Products.EXACT and not self.weight.on_codes and forward_format is None:
            raise ValueError("products='exact' needs LNS weights: give master_format or forward_format")

    def params(self) -> list[Param]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def _matmul_fwd(self, x2: np.ndarray, w2: np.ndarray) -> np.ndarray:
        if self.products == Products.EXACT:
            return _exact_matmul(x2, self.weight)
        return x2 @ w2.T


class Dense(_Weighted):
    """Fully connected layer ``y = x Wᵀ + b`` (``nn.Linear`` layout).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    master_format, forward_format, headroom
        Storage of weight and bias; see :class:`~neurolns.sim.params.Param`.
    products : {"fast", "exact"}
        See :class:`Products`.
    seed : int, numpy.random.Generator or None
        Initialisation (torch's default uniform bounds ``±1/sqrt(in_features)``).
    """

    def __init__(self, in_features, out_features, *, bias=True, master_format=None, forward_format=None,
                 headroom=3, products="fast", seed=None):
        self.in_features = _check_int_at_least("in_features", in_features, 1)
        self.out_features = _check_int_at_least("out_features", out_features, 1)
        rng = np.random.default_rng(seed)
        w0 = _uniform_init(rng, (self.out_features, self.in_features), self.in_features)
        b0 = _uniform_init(rng, (self.out_features,), self.in_features)
        self._make_params(w0, b0, bias, master_format, forward_format, headroom, products)
        self._x = self._w = None

    def forward(self, x, train=False):
        x = _as_f32(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Dense expects input (N, {self.in_features}), got {x.shape}")
        w = self.weight.forward_value()
        y = self._matmul_fwd(x, w)
        if self.bias is not None:
            y += self.bias.forward_value()
        if train:
            self._x, self._w = x, w
        return y

    def backward(self, dy):
        if self._x is None:
            raise RuntimeError("backward() needs a forward(x, train=True) first")
        dy = _as_f32(dy)
        np.matmul(dy.T, self._x, out=self.weight.grad)
        if self.bias is not None:
            np.sum(dy, axis=0, out=self.bias.grad)
        return dy @ self._w

    def spec(self):
        return {**super().spec(), "in_features": self.in_features, "out_features": self.out_features}

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features}, master={self.weight.master_format}, " \
               f"forward={self.weight.forward_format})"


class _Conv(_Weighted):
    """Shared im2col product and its backward of Conv1d and Conv2d.

    The input is unrolled to ``cols`` ``(N, P, C_in·Πk)`` (``P`` output positions),
    so ``y = cols · W₂ᵀ + b`` with ``W₂`` the weight flattened per output channel;
    the backward pass is ``∂W₂ = dy₂ᵀ · cols``, ``∂b = Σ dy₂`` and
    ``∂cols = dy₂ · W₂``, which the subclass scatters back (col2im).
    """

    def _forward_cols(self, cols, x_shape, out_size, train):
        n, n_pos = cols.shape[:2]
        w2 = self.weight.forward_value().reshape(self.out_channels, -1)
        y = self._matmul_fwd(cols.reshape(n * n_pos, -1), w2).reshape(n, n_pos, self.out_channels)
        if self.bias is not None:
            y += self.bias.forward_value()
        if train:
            self._cols, self._w2, self._xshape = cols, w2, x_shape
        return np.ascontiguousarray(y.transpose(0, 2, 1)).reshape((n, self.out_channels) + tuple(out_size))

    def _backward_cols(self, dy) -> np.ndarray:
        """Write the weight and bias gradients; return ``∂loss/∂cols`` ``(N, P, C_in·Πk)``."""
        if self._cols is None:
            raise RuntimeError("backward() needs a forward(x, train=True) first")
        n, n_pos = self._cols.shape[:2]
        dy2 = _as_f32(np.asarray(dy).reshape(n, self.out_channels, n_pos).transpose(0, 2, 1))
        dy2 = dy2.reshape(n * n_pos, self.out_channels)
        np.matmul(dy2.T, self._cols.reshape(n * n_pos, -1), out=self.weight.grad.reshape(self.out_channels, -1))
        if self.bias is not None:
            np.sum(dy2, axis=0, out=self.bias.grad)
        return (dy2 @ self._w2).reshape(n, n_pos, -1)


class Conv1d(_Conv):
    """1-D convolution (cross-correlation, as ``nn.Conv1d``) with stride and zero padding.

    ``y[n, o, t] = b[o] + Σ_c Σ_j W[o, c, j] · x_pad[n, c, t·stride + j]``,
    ``L_out = floor((L + 2·padding − k) / stride) + 1``. Computed as an
    im2col (Numba) followed by one BLAS product; the backward pass is the
    transposed product and a col2im scatter-add.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    stride : int
    padding : int
    bias, master_format, forward_format, headroom, products, seed
        As for :class:`Dense` (fan-in ``in_channels · kernel_size``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0, bias=True,
                 master_format=None, forward_format=None, headroom=3, products="fast", seed=None):
        self.in_channels = _check_int_at_least("in_channels", in_channels, 1)
        self.out_channels = _check_int_at_least("out_channels", out_channels, 1)
        self.kernel_size = _check_int_at_least("kernel_size", kernel_size, 1)
        self.stride = _check_int_at_least("stride", stride, 1)
        self.padding = _check_int_at_least("padding", padding, 0)
        rng = np.random.default_rng(seed)
        fan_in = self.in_channels * self.kernel_size
        w0 = _uniform_init(rng, (self.out_channels, self.in_channels, self.kernel_size), fan_in)
        b0 = _uniform_init(rng, (self.out_channels,), fan_in)
        self._make_params(w0, b0, bias, master_format, forward_format, headroom, products)
        self._cols = self._w2 = self._xshape = None

    def output_length(self, length: int) -> int:
        """``floor((L + 2·padding − k)/stride) + 1``."""
        return (length + 2 * self.padding - self.kernel_size) // self.stride + 1

    def forward(self, x, train=False, *, reference=False):
        x = _as_f32(x)
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv1d expects input (N, {self.in_channels}, L), got {x.shape}")
        l_out = self.output_length(x.shape[2])
        if l_out < 1:
            raise ValueError(f"input length {x.shape[2]} is shorter than the kernel ({self.kernel_size}) "
                             f"with padding {self.padding}")
        n = x.shape[0]
        if reference:
            cols = _ref.im2col(x, self.kernel_size, self.stride, self.padding, l_out).astype(np.float32)
        else:
            cols = np.empty((n, l_out, self.in_channels * self.kernel_size), dtype=np.float32)
            _k.im2col(x, self.kernel_size, self.stride, self.padding, cols)
        return self._forward_cols(cols, x.shape, (l_out,), train)

    def backward(self, dy, *, reference=False):
        dcols = self._backward_cols(dy)
        if reference:
            return _ref.col2im(dcols, self.kernel_size, self.stride, self.padding, self._xshape).astype(np.float32)
        dx = np.empty(self._xshape, dtype=np.float32)
        _k.col2im(dcols, self.kernel_size, self.stride, self.padding, dx)
        return dx

    def spec(self):
        return {**super().spec(), "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def __repr__(self):
        return (f"Conv1d({self.in_channels}, {self.out_channels}, k={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, master={self.weight.master_format}, forward={self.weight.forward_format})")


class Conv2d(_Conv):
    """2-D convolution (cross-correlation, as ``nn.Conv2d``) with stride and zero padding.

    .. math:: y[n, o, r, q] = b_o + \\sum_c \\sum_{i<k_h} \\sum_{j<k_w}
              W[o, c, i, j] \\, x_{pad}[n, c, r s_h + i, q s_w + j]

    with ``H_out = floor((H + 2·p_h − k_h)/s_h) + 1`` and ``W_out`` likewise.
    Computed as an im2col (Numba) followed by one BLAS product of
    ``(N·H_out·W_out, C_in·k_h·k_w)`` by the flattened weight; the backward
    pass is the transposed products and a col2im scatter-add.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or pair of int
        An int is used for both height and width (torch's convention);
        ``kernel_size, stride >= 1``, ``padding >= 0``.
    bias, master_format, forward_format, headroom, products, seed
        As for :class:`Dense` (fan-in ``in_channels · k_h · k_w``, torch's
        default bounds ``±1/sqrt(fan_in)``).

    Examples
    --------
    >>> import numpy as np
    >>> conv = Conv2d(1, 4, 3, padding=1, seed=0)
    >>> conv.weight.shape, conv.forward(np.ones((2, 1, 8, 8))).shape
    ((4, 1, 3, 3), (2, 4, 8, 8))
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0, bias=True,
                 master_format=None, forward_format=None, headroom=3, products="fast", seed=None):
        self.in_channels = _check_int_at_least("in_channels", in_channels, 1)
        self.out_channels = _check_int_at_least("out_channels", out_channels, 1)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        rng = np.random.default_rng(seed)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        w0 = _uniform_init(rng, (self.out_channels, self.in_channels) + self.kernel_size, fan_in)
        b0 = _uniform_init(rng, (self.out_channels,), fan_in)
        self._make_params(w0, b0, bias, master_format, forward_format, headroom, products)
        self._cols = self._w2 = self._xshape = None

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(floor((H + 2·p_h − k_h)/s_h) + 1, floor((W + 2·p_w − k_w)/s_w) + 1)``."""
        return tuple((size + 2 * p - k) // s + 1
                     for size, k, s, p in zip((height, width), self.kernel_size, self.stride, self.padding))

    def _geometry(self):
        return (*self.kernel_size, *self.stride, *self.padding)

    def forward(self, x, train=False, *, reference=False):
        x = _as_f32(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d expects input (N, {self.in_channels}, H, W), got {x.shape}")
        h_out, w_out = self.output_size(x.shape[2], x.shape[3])
        if h_out < 1 or w_out < 1:
            raise ValueError(f"input {x.shape[2]}×{x.shape[3]} is smaller than the kernel "
                             f"{self.kernel_size[0]}×{self.kernel_size[1]} with padding {self.padding}; allowed: "
                             "H + 2·padding >= kernel in each dimension")
        n = x.shape[0]
        if reference:
            cols = _ref.im2col2d(x, *self._geometry(), h_out, w_out).astype(np.float32)
        else:
            cols = np.empty((n, h_out * w_out, self.weight.size // self.out_channels), dtype=np.float32)
            _k.im2col2d(x, *self._geometry(), cols)
        return self._forward_cols(cols, x.shape, (h_out, w_out), train)

    def backward(self, dy, *, reference=False):
        dcols = self._backward_cols(dy)
        if reference:
            return _ref.col2im2d(dcols, *self._geometry(), self._xshape).astype(np.float32)
        dx = np.empty(self._xshape, dtype=np.float32)
        _k.col2im2d(dcols, *self._geometry(), dx)
        return dx

    def spec(self):
        return {**super().spec(), "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, k={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, master={self.weight.master_format}, forward={self.weight.forward_format})")


class _Activation(Layer):
    kind = _k.IDENTITY
    alpha = 0.0

    def forward(self, x, train=False, *, reference=False):
        x = _as_f32(x)
        if reference:
            y = _ref.activation_forward(x, self.kind, self.alpha).astype(np.float32)
        else:
            y = np.empty_like(x)
            _k.activation_forward(x.reshape(-1), self.kind, self.alpha, y.reshape(-1))
        if train:
            self._x, self._y = x, y
        return y

    def backward(self, dy, *, reference=False):
        dy = _as_f32(dy)
        if reference:
            return _ref.activation_backward(self._x, self._y, dy, self.kind, self.alpha).astype(np.float32)
        dx = np.empty_like(dy)
        _k.activation_backward(self._x.reshape(-1), self._y.reshape(-1), dy.reshape(-1), self.kind,
                               self.alpha, dx.reshape(-1))
        return dx


class ReLU(_Activation):
    """``max(x, 0)``; its derivative at 0 is taken as 0 (as torch)."""

    kind = _k.RELU


class LeakyReLU(_Activation):
    """``x`` for ``x > 0`` else ``alpha·x`` (torch's ``negative_slope``, default 0.01)."""

    kind = _k.LEAKY_RELU

    def __init__(self, alpha: float = 0.01):
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha < 1.0):
            raise ValueError(f"alpha={alpha!r} is out of range; allowed: [0, 1)")
        self.alpha = float(alpha)

    def spec(self):
        return {**super().spec(), "alpha": self.alpha}


class Tanh(_Activation):
    """``tanh(x)``; derivative ``1 − y²``."""

    kind = _k.TANH


class Sigmoid(_Activation):
    """``1/(1 + e^{−x})``; derivative ``y(1 − y)``."""

    kind = _k.SIGMOID


class Flatten(Layer):
    """``(N, ...) → (N, prod(...))`` (``nn.Flatten``)."""

    def forward(self, x, train=False):
        self._shape = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)


class Reshape(Layer):
    """``(N, ...) → (N, *shape)`` (``nn.Unflatten(1, shape)`` on flat input)."""

    def __init__(self, *shape: int):
        self.shape = tuple(_check_int_at_least("shape", s, 1) for s in shape)

    def forward(self, x, train=False):
        self._in = x.shape
        return np.ascontiguousarray(x).reshape((x.shape[0],) + self.shape)

    def backward(self, dy):
        return dy.reshape(self._in)

    def spec(self):
        return {**super().spec(), "shape": list(self.shape)}


class MaxPool1d(Layer):
    """Non-overlapping max pooling of width ``k`` (``nn.MaxPool1d(k)``); ties go to the first."""

    def __init__(self, kernel_size: int):
        self.kernel_size = _check_int_at_least("kernel_size", kernel_size, 1)

    def forward(self, x, train=False, *, reference=False):
        x = _as_f32(x)
        if reference:
            y, arg = _ref.maxpool_forward(x, self.kernel_size)
            y = y.astype(np.float32)
        else:
            n, c, length = x.shape
            y = np.empty((n, c, length // self.kernel_size), dtype=np.float32)
            arg = np.empty(y.shape, dtype=np.int64)
            _k.maxpool_forward(x, self.kernel_size, y, arg)
        if train:
            self._arg, self._len = arg, x.shape[2]
        return y

    def backward(self, dy, *, reference=False):
        dy = _as_f32(dy)
        if reference:
            return _ref.maxpool_backward(dy, self._arg, self._len).astype(np.float32)
        dx = np.empty(dy.shape[:2] + (self._len,), dtype=np.float32)
        _k.maxpool_backward(dy, self._arg, dx)
        return dx

    def spec(self):
        return {**super().spec(), "kernel_size": self.kernel_size}


class MaxPool2d(Layer):
    """Non-overlapping ``k_h × k_w`` max pooling (``nn.MaxPool2d(k)``, stride = kernel).

    .. math:: y[n, c, r, q] = \\max_{i<k_h,\\, j<k_w} x[n, c, r k_h + i, q k_w + j]

    ``H_out = floor(H/k_h)``, ``W_out = floor(W/k_w)``: rows and columns past the
    last whole window are dropped, as in torch. Ties go to the first maximum in
    row-major order and the gradient flows to that input alone (torch's indices);
    a window holding NaN pools to NaN, as :class:`MaxPool1d`.

    Parameters
    ----------
    kernel_size : int or pair of int
        Window (and stride), each ``>= 1``.

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool2d(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]], dtype=float32)
    """

    def __init__(self, kernel_size):
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self._arg = self._xshape = None

    def forward(self, x, train=False, *, reference=False):
        x = _as_f32(x)
        kh, kw = self.kernel_size
        if x.ndim != 4 or x.shape[2] < kh or x.shape[3] < kw:
            raise ValueError(f"MaxPool2d({kh}×{kw}) expects input (N, C, H, W) with H >= {kh} and W >= {kw}, "
                             f"got {x.shape}")
        if reference:
            y, arg = _ref.maxpool2d_forward(x, kh, kw)
            y = y.astype(np.float32)
        else:
            n, c, h, w = x.shape
            y = np.empty((n, c, h // kh, w // kw), dtype=np.float32)
            arg = np.empty(y.shape, dtype=np.int64)
            _k.maxpool2d_forward(x, kh, kw, y, arg)
        if train:
            self._arg, self._xshape = arg, x.shape
        return y

    def backward(self, dy, *, reference=False):
        if self._arg is None:
            raise RuntimeError("backward() needs a forward(x, train=True) first")
        # indices are flat in each H×W plane, so the 1-D scatter serves
        n, c, h, w = self._xshape
        dy = _as_f32(dy).reshape(n, c, -1)
        arg = self._arg.reshape(n, c, -1)
        if reference:
            return _ref.maxpool_backward(dy, arg, h * w).astype(np.float32).reshape(self._xshape)
        dx = np.empty((n, c, h * w), dtype=np.float32)
        _k.maxpool_backward(dy, arg, dx)
        return dx.reshape(self._xshape)

    def spec(self):
        return {**super().spec(), "kernel_size": list(self.kernel_size)}
