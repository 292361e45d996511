"""Recovery and prediction metrics.

* ``R_sys = 2⟨w, ŵ⟩ / (‖w‖² + ‖ŵ‖²)`` over all synapses (Bagherian et al.,
  KDD 2021): 1 for perfect recovery, 0 for orthogonal weights, negative for
  anti-correlated ones.
* ``R_supp``: the same on the binarised weights ``|w| > τ`` (τ = 0.07), i.e.
  the Dice coefficient of the supports.
* Held-out Pearson correlation and the fraction of explained variance
  ``1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` of predictions, as LN/GLM tools report them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["r_sys", "r_supp", "correlation", "explained_variance", "SUPPORT_THRESHOLD"]

#: support threshold of R_supp (Bagherian et al. 2021)
SUPPORT_THRESHOLD = 0.07


def _flat(w) -> np.ndarray:
    return w.flat() if hasattr(w, "flat") and callable(w.flat) else np.ravel(np.asarray(w, dtype=np.float64))


def _pair(w_true, w_fit):
    a, b = _flat(w_true).astype(np.float64), _flat(w_fit).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"weight vectors have {a.size} and {b.size} synapses; they must match")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("weights contain NaN or inf")
    return a, b


def r_sys(w_true, w_fit) -> float:
    """``2⟨w, ŵ⟩ / (‖w‖² + ‖ŵ‖²)``; inputs are arrays or :class:`CircuitWeights`.

    Examples
    --------
    >>> r_sys([1.0, 0.0], [1.0, 0.0]), r_sys([1.0, 0.0], [0.5, 0.0]), r_sys([1.0, 0.0], [0.0, 1.0])
    (1.0, 0.8, 0.0)
    """
    a, b = _pair(w_true, w_fit)
    den = a @ a + b @ b
    return 1.0 if den == 0 else float(2.0 * (a @ b) / den)


def r_supp(w_true, w_fit, threshold: float = SUPPORT_THRESHOLD) -> float:
    """R_sys of the supports ``|w| > threshold`` (the Dice coefficient).

    Examples
    --------
    >>> r_supp([0.8, 0.0, 0.4], [0.5, 0.01, 0.0])   # supports {0, 2} and {0}
    0.6666666666666666
    """
    a, b = _pair(w_true, w_fit)
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold={threshold!r} is out of range; allowed: a finite number >= 0")
    return r_sys((np.abs(a) > threshold).astype(float), (np.abs(b) > threshold).astype(float))


def _preds(y, y_hat):
    y, y_hat = np.asarray(y, np.float64).ravel(), np.asarray(y_hat, np.float64).ravel()
    if y.shape != y_hat.shape or y.size < 2:
        raise ValueError(f"responses and predictions have {y.size} and {y_hat.size} samples; need equal and >= 2")
    return y, y_hat


def correlation(y, y_hat) -> float:
    """Pearson correlation of responses and predictions (0 if either is constant).

    Examples
    --------
    >>> round(correlation([1, 2, 3], [2, 4, 6.5]), 6)
    0.997949
    """
    y, y_hat = _preds(y, y_hat)
    a, b = y - y.mean(), y_hat - y_hat.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return 0.0 if den == 0 else float((a @ b) / den)


def explained_variance(y, y_hat) -> float:
    """Fraction of variance explained, ``1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` (can be negative).

    Examples
    --------
    >>> explained_variance([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    """
    y, y_hat = _preds(y, y_hat)
    ss = ((y - y.mean()) ** 2).sum()
    if ss == 0:
        raise ValueError("responses are constant; explained variance is undefined")
    return float(1.0 - ((y - y_hat) ** 2).sum() / ss)
