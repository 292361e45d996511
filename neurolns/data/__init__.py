"""Data sets for the simulator and the scenarios, all available offline.

* :func:`load_digits` — scikit-learn's 1,797 8×8 handwritten digits (shipped
  with scikit-learn), pixels scaled to ``[0, 1]`` and flattened to 64 features.
* :func:`load_mnist1d` — MNIST-1D (Greydanus 2020) generated locally with the
  ``mnist1d`` package: 40-sample 1-D signals, 10 classes; its paper reports
  test accuracy logistic 32%, MLP 68%, CNN 94%, GRU 91% (4,000/1,000 split).
* :func:`load_npz` / :func:`save_npz` — the user's own arrays, checked.

Every loader returns a :class:`Dataset`: ``x_train, y_train, x_test, y_test``
(float32 ``(N, features)`` inputs, int64 labels in ``[0, n_classes)``),
``n_classes`` and ``name``. Inputs are 2-D; a model that wants channels
(a 1-D CNN) reshapes them itself.
"""

from neurolns.data.datasets import Dataset, load_digits, load_mnist1d, load_npz, save_npz

__all__ = ["Dataset", "load_digits", "load_mnist1d", "load_npz", "save_npz"]
