"""A feed-forward network of layers, its loss and per-role number formats.

Per-role quantisers, as in QPyTorch (Zhang et al. 2019): the weights' formats
live on each :class:`~neurolns.sim.params.Param`; the network adds an
*activation* format and an *error-signal* format. ``None`` keeps float32.

* The activation format rounds the network's input and every layer's output
  in the forward pass, so every product a weighted layer forms has a
  quantised activation operand (LNS hardware multiplies two LNS numbers).
* The error-signal format rounds ``∂L/∂logits`` and the gradient every layer
  passes backward, so ``∂L/∂W = δᵀx`` and ``∂L/∂x = δW`` are formed from
  quantised error signals ``δ``; ``grad_rounding="stochastic"`` rounds them
  without bias (in the log domain for LNS), drawing from the network's own
  generator (``seed``).

Any format of :func:`neurolns.sim.quantizers.fake_quantize` works: LNS (a
per-tensor power-of-two scale, rounding in the log domain), float (BF16,
FP16, FP8) and integer (symmetric per tensor). NaN passes through these
quantisers as NaN; ±inf saturates in LNS (with the codec's ``RuntimeWarning``)
and follows the format otherwise. The scale is chosen from the finite values.
"""

from __future__ import annotations

import numpy as np

from neurolns.formats import Rounding
from neurolns.sim import _kernels as _k
from neurolns.sim import _reference as _ref
from neurolns.sim.layers import Layer
from neurolns.sim.params import Param, _fmt_spec
from neurolns.sim.quantizers import check_quant_format, fake_quantize

__all__ = ["Sequential", "softmax_cross_entropy"]


def _check_labels(labels, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes - 1}], got [{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.int64)


def softmax_cross_entropy(logits, labels, *, reference: bool = False):
    """Mean softmax cross-entropy and its gradient.

    .. math:: L = \\frac1N \\sum_n \\Big(\\log \\sum_j e^{z_{nj}} - z_{n y_n}\\Big), \\qquad
              \\frac{\\partial L}{\\partial z_{nj}} = \\frac{\\operatorname{softmax}(z_n)_j - [j = y_n]}{N}

    Computed in float64 per row with the max subtracted (no overflow).

    Parameters
    ----------
    logits : array_like, shape (N, C)
    labels : array_like of int, shape (N,)
    reference : bool
        Use the numpy float64 path instead of the Numba kernel.

    Returns
    -------
    loss : float
    dlogits : numpy.ndarray, float32, shape (N, C)
    n_correct : int
        Rows whose first arg-max equals the label.

    Examples
    --------
    >>> import numpy as np
    >>> loss, d, k = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6), k   # log 4; the first arg-max of a zero row is 0
    (1.386294, 1)
    """
    z = np.ascontiguousarray(logits, dtype=np.float32)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must have shape (N, C), got {z.shape}")
    y = _check_labels(labels, z.shape[0], z.shape[1])
    if reference:
        loss, d, k = _ref.softmax_xent(z, y)
        return loss, d.astype(np.float32), k
    d = np.empty_like(z)
    if z.shape[0] == 0:
        return 0.0, d, 0
    loss, k = _k.softmax_xent(z, y, d)
    return float(loss), d, int(k)


class Sequential:
    """Layers applied in order, with softmax cross-entropy on the output.

    Parameters
    ----------
    layers : list of Layer
    act_format, grad_format : LNSFormat, FloatFormat, IntFormat or None
        Formats of the activations (the input and each layer's output) and of
        the error signals (``∂L/∂logits`` and each gradient passed backward);
        ``None`` is float32.
    grad_rounding : {"nearest", "stochastic"}
        Rounding of the error signals to ``grad_format``.
    seed : int, numpy.random.Generator or None
        Source of the draws of stochastic rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns.sim import Dense, ReLU, Sequential
    >>> net = Sequential([Dense(4, 8, seed=0), ReLU(), Dense(8, 3, seed=1)])
    >>> net.forward(np.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, layers, *, act_format=None, grad_format=None, grad_rounding="nearest", seed=None):
        layers = list(layers)
        if not layers or not all(isinstance(l, Layer) for l in layers):
            raise TypeError("layers must be a non-empty list of neurolns.sim Layer objects")
        self.layers = layers
        self.act_format = check_quant_format("act_format", act_format)
        self.grad_format = check_quant_format("grad_format", grad_format)
        self.grad_rounding = Rounding(grad_rounding)
        self.rng = np.random.default_rng(seed)

    # -- parameters -----------------------------------------------------------
    def params(self) -> list[Param]:
        """Every parameter, layer by layer, weight before bias (torch's order)."""
        return [p for layer in self.layers for p in layer.params()]

    def named_params(self) -> list[tuple[str, Param]]:
        """``("<layer index>.<weight|bias>", param)``, the keys of a torch ``nn.Sequential``."""
        return [(f"{i}.{p.name}", p) for i, layer in enumerate(self.layers) for p in layer.params()]

    @property
    def on_codes(self) -> bool:
        """True when every parameter is held as LNS codes (False when all are float32)."""
        ps = self.params()
        flags = {p.on_codes for p in ps}
        if len(flags) > 1:
            raise ValueError("the network mixes float32 and LNS-code parameters; one optimizer cannot step both")
        return flags.pop() if flags else False

    def spec(self) -> dict:
        """JSON-able description of the architecture and every format (checkpoints match on it)."""
        return {
            "layers": [layer.spec() for layer in self.layers],
            "act_format": _fmt_spec(self.act_format),
            "grad_format": _fmt_spec(self.grad_format),
            "grad_rounding": self.grad_rounding.value,
        }

    # -- passes ---------------------------------------------------------------
    def forward(self, x, train: bool = False) -> np.ndarray:
        """Logits for a batch ``x`` (float32)."""
        x = self._act(np.ascontiguousarray(x, dtype=np.float32))
        for layer in self.layers:
            x = self._act(layer.forward(x, train))
        return x

    def _act(self, x: np.ndarray) -> np.ndarray:
        return x if self.act_format is None else fake_quantize(x, self.act_format)

    def _err(self, d: np.ndarray) -> np.ndarray:
        if self.grad_format is None:
            return d
        return fake_quantize(d, self.grad_format, rounding=self.grad_rounding, rng=self.rng)

    def backward(self, dlogits) -> np.ndarray:
        """Back-propagate ``∂L/∂logits``; fills every ``param.grad``; returns ``∂L/∂x``."""
        d = self._err(np.ascontiguousarray(dlogits, dtype=np.float32))
        for layer in reversed(self.layers):
            d = self._err(layer.backward(d))
        return d

    def loss_and_grads(self, x, y) -> tuple[float, int]:
        """One forward + backward on a batch: returns ``(mean loss, n_correct)``;
        the gradients are left in ``param.grad``."""
        logits = self.forward(x, train=True)
        loss, d, k = softmax_cross_entropy(logits, y)
        self.backward(d)
        return loss, k

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Class index per row (first arg-max of the logits)."""
        x = np.asarray(x)
        out = [self.forward(x[i : i + batch_size]).argmax(axis=1) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def evaluate(self, x, y, batch_size: int = 1024) -> tuple[float, float]:
        """``(mean loss, accuracy)`` over a data set, in batches."""
        x = np.asarray(x)
        y = np.asarray(y)
        if len(x) == 0:
            raise ValueError("cannot evaluate on an empty data set")
        total = 0.0
        correct = 0
        for i in range(0, len(x), batch_size):
            logits = self.forward(x[i : i + batch_size])
            loss, _, k = softmax_cross_entropy(logits, y[i : i + batch_size])
            total += loss * len(logits)
            correct += k
        return total / len(x), correct / len(x)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(l) for l in self.layers)
        return f"Sequential(\n  {inner}\n)"
