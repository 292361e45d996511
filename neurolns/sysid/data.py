"""A user's own recordings: checks, npz/HDF5 loading, and one fit per cell.

A recording is a stimulus of ``T`` frames, ``(T, H, W)`` (time first), and
responses ``(T, n_cells)`` (or ``(T,)`` for one cell), e.g. firing rates or
spike counts per frame. The loaders read ``.npz`` always, and ``.h5``/``.hdf5``
when :mod:`h5py` is installed (it is optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurolns.sysid.bank import Geometry, kernel_bank
from neurolns.sysid.fit import FitConfig, FitResult, fit_circuit
from neurolns.sysid.model import CircuitModel, bipolar_features, block_features
from neurolns.sysid.temporal import temporal_features

__all__ = ["Recording", "check_recording", "load_recording", "save_recording", "fit_recording"]


@dataclass(frozen=True)
class Recording:
    """A checked recording: ``stimulus (T, H, W)`` float32, ``responses (T, n_cells)`` float64."""

    stimulus: np.ndarray
    responses: np.ndarray

    def __post_init__(self):
        s, r = check_recording(self.stimulus, self.responses)
        object.__setattr__(self, "stimulus", s)
        object.__setattr__(self, "responses", r)

    @property
    def n_frames(self) -> int:
        return self.responses.shape[0]

    @property
    def n_cells(self) -> int:
        return self.responses.shape[1]


def check_recording(stimulus, responses) -> tuple[np.ndarray, np.ndarray]:
    """Validate a recording; returns ``(stimulus float32 (T,H,W), responses float64 (T,n_cells))``.

    Raises ValueError for: a stimulus that is not ``(T, H, W)``; responses that
    are not ``(T,)`` or ``(T, n_cells)``; mismatched lengths; NaN or inf
    anywhere (naming the first bad frame and cell); empty cells (a response
    that never varies carries no information to fit).

    Examples
    --------
    >>> s, r = check_recording(np.zeros((5, 10, 10)), np.arange(5.0))
    >>> s.shape, r.shape
    ((5, 10, 10), (5, 1))
    >>> check_recording(np.zeros((5, 10, 10)), np.arange(4.0))
    Traceback (most recent call last):
    ...
    ValueError: stimulus has 5 frames but responses have 4; they must have the same length
    """
    s = np.asarray(stimulus)
    r = np.asarray(responses)
    if s.dtype.kind not in "fiub" or r.dtype.kind not in "fiub":
        raise TypeError(f"stimulus ({s.dtype}) and responses ({r.dtype}) must have real dtypes")
    if s.ndim != 3 or min(s.shape) < 1:
        raise ValueError(f"stimulus has shape {s.shape}; allowed: (T frames, H, W) with T, H, W >= 1")
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[1] < 1:
        raise ValueError(f"responses have shape {np.shape(responses)}; allowed: (T,) or (T, n_cells)")
    if s.shape[0] != r.shape[0]:
        raise ValueError(f"stimulus has {s.shape[0]} frames but responses have {r.shape[0]}; they must have the same length")
    if s.shape[0] < 2:
        raise ValueError(f"recording has {s.shape[0]} frame; allowed: at least 2")
    s = s.astype(np.float32)
    r = r.astype(np.float64)
    bad = ~np.isfinite(s)
    if bad.any():
        t, i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"stimulus contains NaN or inf (first at frame {t}, pixel ({i}, {j}))")
    bad = ~np.isfinite(r)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise ValueError(f"responses contain NaN or inf (first at frame {int(t)}, cell {int(c)})")
    empty = [int(c) for c in range(r.shape[1]) if np.ptp(r[:, c]) == 0]
    if empty:
        raise ValueError(f"cell(s) {empty} have constant responses (empty cells); allowed: cells whose response varies")
    return s, r


def save_recording(path, stimulus, responses) -> Path:
    """Write a recording as ``.npz`` with arrays ``stimulus`` and ``responses``."""
    s, r = check_recording(stimulus, responses)
    path = Path(path)
    np.savez_compressed(path, stimulus=s, responses=r)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_recording(path, *, stimulus_key: str = "stimulus", responses_key: str = "responses") -> Recording:
    """Read a recording from ``.npz`` or (with h5py installed) ``.h5``/``.hdf5``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "rec.npz")
    >>> _ = save_recording(p, np.random.default_rng(0).uniform(-1, 1, (8, 20, 20)), np.arange(8.0))
    >>> load_recording(p).n_cells
    1
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no recording at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    elif suffix in (".h5", ".hdf5"):
        try:
            import h5py
        except ImportError as exc:
            raise ImportError(f"reading {path.name} needs h5py (pip install h5py); .npz files need nothing") from exc
        with h5py.File(path, "r") as f:
            arrays = {k: np.asarray(f[k]) for k in (stimulus_key, responses_key) if k in f}
    else:
        raise ValueError(f"{path.name}: unknown file type {suffix!r}; allowed: .npz, .h5, .hdf5")
    missing = [k for k in (stimulus_key, responses_key) if k not in arrays]
    if missing:
        raise ValueError(f"{path.name} lacks {missing}; it holds {sorted(arrays)}")
    return Recording(arrays[stimulus_key], arrays[responses_key])


def fit_recording(recording: Recording, config: FitConfig | None = None, *, n_types: int = 28, bank=None,
                  filters=None, kernel_size: int = 11, stride: int = 10, pool: int = 2, offset=None,
                  output: str = "softplus", n_test: float = 0.2, model_kwargs: dict | None = None) -> list[FitResult]:
    """Fit one circuit model per cell of a recording; each result carries held-out metrics.

    Parameters
    ----------
    recording : Recording
    config : FitConfig, optional
        ``learn_offset`` is switched on (a recording's baseline is unknown).
    n_types, bank
        Candidate bipolar types (:func:`kernel_bank`).
    filters : ndarray ``(n_filters, L)``, optional
        Temporal filters (:func:`temporal_bank`): fits the temporal variant.
    kernel_size, stride, pool
        Geometry of the bipolar and amacrine layers for the stimulus size.
    offset : int or (int, int), optional
        Where the bipolar cells sit on the frames (:class:`Geometry`): the row
        and column of the first cell's top-left window pixel; cell ``(i, j)``
        then sees rows ``offset_row + stride·i …`` ``+ kernel_size − 1`` and
        the matching columns, zeros outside the frame. Cells that see pixels
        ``10i − 3 … 10i + 7`` (kernel 11, stride 10) have ``offset=-3``.
        ``None``: TensorFlow 'SAME' padding (offset 0 for 100×100 frames,
        kernel 11, stride 10: cells see ``10i … 10i + 10``). A model on the
        wrong grid cannot fit: Circuit 2 simulated on a grid offset by −3
        pixels (1,500 frames, 8 candidate types, Madam, 3,000 steps) is
        fitted with held-out correlation 0.11 and R_sys 0.03 by the default
        grid, and 0.993 and R_sys 0.92 with ``offset=-3``.
    output : str
        Output nonlinearity (softplus keeps predicted rates positive).
    n_test : float
        The last share of frames held out for the test metrics.
    model_kwargs : dict, optional
        Other :class:`CircuitModel` fields (signs, amacrine gain/threshold, skip).

    Returns
    -------
    list of FitResult
        One per cell, with ``metrics['test_corr']`` and ``metrics['test_fev']``.
    """
    if not isinstance(recording, Recording):
        raise TypeError(f"recording must be a Recording (see load_recording), got {type(recording).__name__}")
    # its arrays are checked when it is made, but they are mutable: check them again
    check_recording(recording.stimulus, recording.responses)
    if not (0.0 < n_test < 1.0):
        raise ValueError(f"n_test={n_test!r} is out of range; allowed: (0, 1)")
    config = config or FitConfig()
    from dataclasses import replace

    config = replace(config, learn_offset=True)
    bank = tuple(bank) if bank is not None else kernel_bank(n_types)
    geom = Geometry(image_shape=recording.stimulus.shape[1:], kernel_size=kernel_size, stride=stride, pool=pool,
                    offset=offset)
    if filters is None:
        B = bipolar_features(recording.stimulus, bank, geom)
    else:
        B = temporal_features(recording.stimulus, bank, filters, geom)
    model = CircuitModel(n_types=B.shape[1], geometry=geom, output=output, **(model_kwargs or {}))
    X = block_features(B, model)
    T = recording.n_frames
    n_te = max(2, int(round(n_test * T)))
    if T - n_te < 2:
        raise ValueError(f"recording has {T} frames; too few to hold out {n_te} for testing")
    results = []
    for c in range(recording.n_cells):
        y = recording.responses[:, c]
        res = fit_circuit(X[: T - n_te], y[: T - n_te], model, config)
        res.evaluate(X[T - n_te :], y[T - n_te :])
        results.append(res)
    return results
