"""Stimuli and spiking read-out for synthetic experiments, all from a seed.

White-noise images (pixels uniform in [−1, 1], as in Bagherian et al. 2021),
binary images (±1 with probability ½), flicker movies for the temporal model,
and Poisson spike counts from a rate.
"""

from __future__ import annotations

import numpy as np

from neurolns.formats import _StrEnum

__all__ = ["Stimulus", "white_noise_images", "binary_images", "make_images", "flicker", "poisson_spikes"]


class Stimulus(_StrEnum):
    """Pixel distribution of synthetic stimuli."""

    WHITE = "white"    # uniform in [−1, 1]
    BINARY = "binary"  # ±1, probability ½ each


def _count(name, n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{name}={n!r} is out of range; allowed: an int >= 0")
    return int(n)


def _shape(shape):
    if not isinstance(shape, (tuple, list)) or len(shape) != 2 or any(
        isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape
    ):
        raise ValueError(f"shape={shape!r} must be a pair of positive ints (H, W)")
    return tuple(int(s) for s in shape)


def make_images(n: int, seed=0, *, kind: Stimulus | str = Stimulus.WHITE, shape=(100, 100)) -> np.ndarray:
    """``n`` images ``(n, H, W)`` float32 of the given ``kind``, reproducible from ``seed``.

    Examples
    --------
    >>> x = make_images(3, seed=1, kind="binary", shape=(4, 4))
    >>> x.shape, sorted(set(x.ravel().tolist()))
    ((3, 4, 4), [-1.0, 1.0])
    """
    n, shape, kind = _count("n", n), _shape(shape), Stimulus(kind)
    rng = np.random.default_rng(seed)
    if kind is Stimulus.WHITE:
        return rng.uniform(-1.0, 1.0, size=(n, *shape)).astype(np.float32)
    return np.where(rng.random((n, *shape)) < 0.5, -1.0, 1.0).astype(np.float32)


def white_noise_images(n: int, seed=0, *, shape=(100, 100)) -> np.ndarray:
    """White-noise images, pixels i.i.d. uniform in [−1, 1] (float32 ``(n, H, W)``).

    Examples
    --------
    >>> x = white_noise_images(2, seed=0)
    >>> x.shape, bool(x.min() >= -1 and x.max() <= 1)
    ((2, 100, 100), True)
    """
    return make_images(n, seed, kind=Stimulus.WHITE, shape=shape)


def binary_images(n: int, seed=0, *, shape=(100, 100)) -> np.ndarray:
    """Binary images, pixels ±1 with probability ½ (float32 ``(n, H, W)``)."""
    return make_images(n, seed, kind=Stimulus.BINARY, shape=shape)


def flicker(n_frames: int, seed=0, *, kind: Stimulus | str = Stimulus.BINARY, shape=(100, 100)) -> np.ndarray:
    """A flicker movie: ``n_frames`` i.i.d. frames ``(T, H, W)`` (time first)."""
    return make_images(n_frames, seed, kind=kind, shape=shape)


def poisson_spikes(rate, seed=0, *, dt: float = 1.0) -> np.ndarray:
    """Spike counts ``~ Poisson(max(rate, 0)·dt)`` (int64), the spiking read-out of a rate.

    A negative rate (a linear output below zero) fires nothing.

    Examples
    --------
    >>> poisson_spikes(np.array([0.0, -3.0]), seed=0).tolist()
    [0, 0]
    """
    if not (isinstance(dt, (int, float, np.floating)) and np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt!r} is out of range; allowed: a finite number > 0")
    r = np.asarray(rate, dtype=np.float64)
    if np.isnan(r).any():
        raise ValueError("rate contains NaN")
    return np.random.default_rng(seed).poisson(np.maximum(r, 0.0) * dt)
