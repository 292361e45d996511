"""The :class:`Dataset` container and its loaders (see :mod:`neurolns.data`)."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "load_digits", "load_mnist1d", "load_npz", "save_npz"]

_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_x(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{name} has dtype {x.dtype}; allowed: a float, integer or bool dtype")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, features...), got shape {x.shape}")
    x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "NaN" if np.isnan(x).any() else "infinite"
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite ({what}) value(s), the first at "
                         f"row {row}, feature {col}")
    return x


def _check_y(name: str, y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per example), got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold whole-number class labels; found non-integer or NaN values")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"{name} has dtype {y.dtype}; allowed: integer class labels")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels for {n} examples")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise ValueError(f"{name} holds negative label {int(y.min())}; allowed: 0 <= label < n_classes")
    return y


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set split into train and test.

    Attributes
    ----------
    x_train, x_test : numpy.ndarray
        float32, ``(N, features)``, finite.
    y_train, y_test : numpy.ndarray
        int64, ``(N,)``, in ``[0, n_classes)``.
    n_classes : int
    name : str

    Examples
    --------
    >>> import numpy as np
    >>> d = Dataset(np.zeros((4, 3)), np.array([0, 1, 0, 1]), np.ones((2, 3)), np.array([1, 0]), n_classes=2)
    >>> d.x_train.dtype, d.n_features, d.n_train, d.n_test
    (dtype('float32'), 3, 4, 2)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 0
    name: str = "arrays"

    def __post_init__(self) -> None:
        xtr = _check_x("x_train", self.x_train)
        xte = _check_x("x_test", self.x_test)
        if xtr.shape[1] != xte.shape[1]:
            raise ValueError(f"x_train has {xtr.shape[1]} features but x_test has {xte.shape[1]}")
        if len(xtr) == 0:
            raise ValueError("x_train is empty")
        ytr = _check_y("y_train", self.y_train, len(xtr))
        yte = _check_y("y_test", self.y_test, len(xte))
        top = int(max(ytr.max(initial=0), yte.max(initial=0))) + 1
        n_classes = self.n_classes or top
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(f"n_classes={n_classes!r} is out of range; allowed: an int >= 2")
        if top > n_classes:
            raise ValueError(f"labels go up to {top - 1} but n_classes={n_classes}; allowed labels: "
                             f"0..{n_classes - 1}")
        for k, v in zip(_KEYS, (xtr, ytr, xte, yte)):
            v.setflags(write=False)
            object.__setattr__(self, k, v)
        object.__setattr__(self, "n_classes", int(n_classes))
        object.__setattr__(self, "name", str(self.name))

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(len(self.x_train))

    @property
    def n_test(self) -> int:
        return int(len(self.x_test))

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` / ``n_test`` examples (for quick runs)."""
        return Dataset(self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test],
                       self.y_test[:n_test], self.n_classes, self.name)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.n_train}, test={self.n_test}, "
                f"features={self.n_features}, classes={self.n_classes})")


def _split(x, y, test_fraction: float, seed: int):
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} is out of range; allowed: (0, 1)")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = order[:n_test], order[n_test:]
    return x[tr], y[tr], x[te], y[te]


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's digits: 1,797 8×8 images of 0–9, pixels ``/16`` to ``[0, 1]``.

    The split is a seeded random permutation (``test_fraction`` to test).

    Examples
    --------
    >>> d = load_digits()
    >>> d.n_train, d.n_test, d.n_features, d.n_classes
    (1438, 359, 64, 10)
    """
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    return Dataset(*_split(x, y, test_fraction, seed), n_classes=10, name="digits")


@lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, seed: int):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(seed)
    d = make_dataset(args)  # generated here; nothing is downloaded
    return d["x"], d["y"], d["x_test"], d["y_test"]


def load_mnist1d(*, num_samples: int = 5000, seed: int = 42, cache_dir=None) -> Dataset:
    """MNIST-1D generated locally by the ``mnist1d`` package (Greydanus 2020).

    Parameters
    ----------
    num_samples : int
        Examples in all; 80% train, 20% test (the package's split). The paper's
        figures use the default 5,000.
    seed : int
        The generator's seed (the package's default is 42).
    cache_dir : path, optional
        If given, the arrays are stored there as ``mnist1d_<n>_<seed>.npz`` and
        read back next time (generation takes a few seconds).

    Examples
    --------
    >>> d = load_mnist1d(num_samples=200)
    >>> d.n_train, d.n_test, d.n_features, d.n_classes
    (160, 40, 40, 10)
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 10:
        raise ValueError(f"num_samples={num_samples!r} is out of range; allowed: an int >= 10")
    if cache_dir is not None:
        path = Path(cache_dir) / f"mnist1d_{int(num_samples)}_{int(seed)}.npz"
        if path.exists():
            d = load_npz(path, n_classes=10)
            return Dataset(d.x_train, d.y_train, d.x_test, d.y_test, 10, "mnist1d")
    xtr, ytr, xte, yte = _mnist1d_arrays(int(num_samples), int(seed))
    data = Dataset(xtr, ytr, xte, yte, n_classes=10, name="mnist1d")
    if cache_dir is not None:
        save_npz(path, data)
    return data


def load_npz(path, *, n_classes: int | None = None, name: str | None = None) -> Dataset:
    """A :class:`Dataset` from an ``.npz`` holding ``x_train, y_train, x_test, y_test``.

    Checks that the four arrays are present, that inputs are numeric and finite
    (NaN or inf raise, naming the first row and feature), that labels are whole
    numbers in ``[0, n_classes)`` and that counts and feature sizes agree.
    Inputs of shape ``(N, a, b, ...)`` are flattened to ``(N, a·b·...)``.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "mine.npz")
    >>> np.savez(p, x_train=np.eye(4), y_train=[0, 1, 2, 0], x_test=np.eye(4)[:2], y_test=[1, 2])
    >>> load_npz(p)
    Dataset('mine', train=4, test=2, features=4, classes=3)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise ValueError(f"{path} lacks array(s) {missing}; it must hold {list(_KEYS)} "
                                 f"(found {sorted(npz.files)})")
            arrays = {k: npz[k] for k in _KEYS}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if "lacks array" in str(exc):
            raise
        raise ValueError(f"{path} is not a readable .npz of plain arrays: {exc}") from exc
    return Dataset(**arrays, n_classes=n_classes or 0, name=name or path.stem)


def save_npz(path, data: Dataset) -> None:
    """Write a :class:`Dataset` in the layout :func:`load_npz` reads (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: getattr(data, k) for k in _KEYS})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
