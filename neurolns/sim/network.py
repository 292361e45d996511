"""A feed-forward network of layers, its loss and per-role number formats.

Per-role quantisers, as in QPyTorch (Zhang et al. 2019): the weights' formats
live on each :class:`~neurolns.sim.params.Param`; the network adds an
*activation* format (applied to every layer's output in the forward pass) and
a *gradient* format (applied to the error signal each layer passes backward).
``None`` keeps float32. An LNS format quantises with a per-tensor power-of-two
scale and nearest rounding in the log domain (:func:`neurolns.lns.quantize`).
NaN passes through these quantisers as NaN (the codec refuses to encode it, so
it is masked around the codec); ±inf saturates to ± the largest magnitude with
the codec's ``RuntimeWarning``. The scale is chosen from the finite values.
"""

from __future__ import annotations

import numpy as np

from neurolns.formats import LNSFormat
from neurolns.lns import quantize
from neurolns.sim import _kernels as _k
from neurolns.sim import _reference as _ref
from neurolns.sim.layers import Layer
from neurolns.sim.params import Param, _fmt_spec

__all__ = ["Sequential", "softmax_cross_entropy"]


def _quantize_keep_nan(x: np.ndarray, fmt: LNSFormat) -> np.ndarray:
    """``quantize(x, fmt)`` as float32, with NaN kept as NaN instead of raising."""
    nan = np.isnan(x)
    if not nan.any():
        return quantize(x, fmt).astype(np.float32)
    # 0 does not change the finite max |x| the per-tensor scale is chosen from
    q = quantize(np.where(nan, np.float32(0), x), fmt).astype(np.float32)
    q[nan] = np.nan
    return q


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
    act_format, grad_format : LNSFormat or None
        Formats of the activations (each layer's output) and of the error
        signals passed backward; ``None`` is float32.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns.sim import Dense, ReLU, Sequential
    >>> net = Sequential([Dense(4, 8, seed=0), ReLU(), Dense(8, 3, seed=1)])
    >>> net.forward(np.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, layers, *, act_format: LNSFormat | None = None, grad_format: LNSFormat | None = None):
        layers = list(layers)
        if not layers or not all(isinstance(l, Layer) for l in layers):
            raise TypeError("layers must be a non-empty list of neurolns.sim Layer objects")
        for name, f in (("act_format", act_format), ("grad_format", grad_format)):
            if f is not None and not isinstance(f, LNSFormat):
                raise TypeError(f"{name} must be an LNSFormat or None (float32), got {f!r}")
        self.layers = layers
        self.act_format = act_format
        self.grad_format = grad_format

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
        }

    # -- passes ---------------------------------------------------------------
    def forward(self, x, train: bool = False) -> np.ndarray:
        """Logits for a batch ``x`` (float32)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        for layer in self.layers:
            x = layer.forward(x, train)
            if self.act_format is not None:
                x = _quantize_keep_nan(x, self.act_format)
        return x

    def backward(self, dlogits) -> np.ndarray:
        """Back-propagate ``∂L/∂logits``; fills every ``param.grad``; returns ``∂L/∂x``."""
        d = np.ascontiguousarray(dlogits, dtype=np.float32)
        for layer in reversed(self.layers):
            d = layer.backward(d)
            if self.grad_format is not None:
                d = _quantize_keep_nan(d, self.grad_format)
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
