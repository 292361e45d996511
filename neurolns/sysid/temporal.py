"""The temporal variant: a bank of temporal filters before the bipolar layer, for
flicker stimuli.

Bipolar type ``(s, f)`` (spatial kernel ``k_s``, temporal filter ``h_f``)
responds at time ``t`` with

.. math::

    b_{s,f}(t, i, j) = \\mathrm{ReLU}\\Big(\\sum_{\\tau \\ge 0} h_f(\\tau)\\,
        k_s \\cdot x_{\\text{patch}(i,j)}(t - \\tau) + \\text{bias}_s\\Big),

causal, with frames before the start taken as zero. The types are ordered
spatial-major (``index = s·n_filters + f``); the rest of the circuit is the
static model with ``n_types = n_spatial · n_filters`` and time bins as samples.
"""

from __future__ import annotations

import numpy as np

from neurolns.sysid.bank import Geometry, bank_kernels
from neurolns.sysid.model import bipolar_drive

__all__ = ["biphasic_filter", "temporal_bank", "temporal_features"]


def biphasic_filter(tau: float, length: int = 15, *, n: int = 3, ratio: float = 0.8, delay_ratio: float = 2.0) -> np.ndarray:
    """A biphasic temporal filter, unit L2 norm (float64, ``length`` taps, lag 0 first).

    ``h(τ) = (τ/τ₁)ⁿ e^{−τ/τ₁} − ratio·(τ/τ₂)ⁿ e^{−τ/τ₂}``, ``τ₂ = delay_ratio·τ₁``:
    the difference of two gamma-shaped lobes used for retinal temporal kernels
    (e.g. Chichilnisky 2001). Unit L2 norm keeps the drive's variance under
    white-noise flicker, so the bank's biases keep their meaning.

    Examples
    --------
    >>> h = biphasic_filter(2.0)
    >>> h.shape, round(float(np.sum(h**2)), 12), float(h[0])
    ((15,), 1.0, 0.0)
    """
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau={tau!r} is out of range; allowed: a finite number > 0 (in frames)")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length={length!r} is out of range; allowed: an int >= 1")
    t = np.arange(length, dtype=np.float64)
    t2 = delay_ratio * tau
    h = (t / tau) ** n * np.exp(-t / tau) - ratio * (t / t2) ** n * np.exp(-t / t2)
    if length == 1:
        return np.ones(1)
    nrm = np.sqrt(np.sum(h * h))
    if nrm == 0:
        raise ValueError(f"biphasic_filter(tau={tau}) vanishes on {length} taps; allowed: a longer filter")
    return h / nrm


def temporal_bank(taus=(1.0, 2.0, 4.0), length: int = 15) -> np.ndarray:
    """Filters ``(n_filters, length)``: one :func:`biphasic_filter` per time constant."""
    return np.stack([biphasic_filter(float(t), length) for t in taus])


def temporal_features(movie, bank, filters, geometry: Geometry | None = None) -> np.ndarray:
    """Bipolar responses of the temporal model, float32 ``(T, n_spatial·n_filters, Gh, Gw)``.

    Parameters
    ----------
    movie : ndarray ``(T, H, W)``
        Frames, time first.
    bank : sequence of DoGType
        Spatial types (their biases are used).
    filters : ndarray ``(n_filters, L)``
        Temporal filters, lag 0 first (:func:`temporal_bank`).

    Examples
    --------
    >>> from neurolns.sysid import kernel_bank, flicker
    >>> F = temporal_features(flicker(20, seed=0), kernel_bank(3), temporal_bank())
    >>> F.shape
    (20, 9, 10, 10)
    """
    filters = np.atleast_2d(np.asarray(filters, dtype=np.float64))
    if filters.ndim != 2 or not np.all(np.isfinite(filters)):
        raise ValueError(f"filters have shape {filters.shape}; allowed: finite (n_filters, length)")
    drive = bipolar_drive(movie, bank, geometry).astype(np.float64)  # (T, S, Gh, Gw)
    T, S = drive.shape[:2]
    nf, L = filters.shape
    out = np.zeros((T, S, nf) + drive.shape[2:])
    for lag in range(min(L, T)):  # causal convolution along time, one shifted add per lag
        out[lag:] += filters[:, lag][None, None, :, None, None] * drive[: T - lag, :, None]
    _, b = bank_kernels(bank)
    out += b[None, :, None, None, None]
    return np.maximum(out, 0.0).reshape(T, S * nf, *drive.shape[2:]).astype(np.float32)
