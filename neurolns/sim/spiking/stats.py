"""Spike-train statistics used to compare simulators: rates and CV of ISI.

Validation across simulators compares statistics, not spikes: Brian2's own
targets draw different random numbers, so only distributions can agree.
"""
from __future__ import annotations

import numpy as np

__all__ = ["mean_rate", "firing_rates", "cv_isi", "mean_cv_isi"]


def firing_rates(i, n: int, duration_s: float) -> np.ndarray:
    """Rate of each of ``n`` neurons (Hz) from spike indices ``i`` over ``duration_s``.

    Examples
    --------
    >>> from neurolns.sim.spiking.stats import firing_rates
    >>> firing_rates([0, 0, 1], 3, 2.0).tolist()
    [1.0, 0.5, 0.0]
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s={duration_s} is out of range; allowed: > 0")
    return np.bincount(np.asarray(i, dtype=np.int64), minlength=n)[:n] / float(duration_s)


def mean_rate(i, n: int, duration_s: float) -> float:
    """Population mean rate (Hz): spikes / (n · duration)."""
    return float(firing_rates(i, n, duration_s).mean())


def cv_isi(t, i, n: int, min_spikes: int = 3) -> np.ndarray:
    """Coefficient of variation std(ISI)/mean(ISI) of each neuron (NaN below ``min_spikes``).

    A Poisson process has CV 1, a clock 0. Brette et al. 2007 report CUBA's
    irregular regime through this number.

    Examples
    --------
    >>> from neurolns.sim.spiking.stats import cv_isi
    >>> cv_isi([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], 1).round(3).tolist()
    [0.0]
    """
    t = np.asarray(t, dtype=np.float64)
    i = np.asarray(i, dtype=np.int64)
    order = np.lexsort((t, i))
    t, i = t[order], i[order]
    out = np.full(n, np.nan)
    if t.size < 2:
        return out
    same = i[1:] == i[:-1]
    isi = np.diff(t)[same]
    owner = i[1:][same]
    cnt = np.bincount(owner, minlength=n)[:n]
    s1 = np.bincount(owner, weights=isi, minlength=n)[:n]
    s2 = np.bincount(owner, weights=isi * isi, minlength=n)[:n]
    ok = cnt + 1 >= max(min_spikes, 3)
    mean = s1[ok] / cnt[ok]
    var = np.maximum(s2[ok] / cnt[ok] - mean**2, 0.0)
    out[ok] = np.sqrt(var) / mean
    return out


def mean_cv_isi(t, i, n: int, min_spikes: int = 3) -> float:
    """Mean CV of ISI over the neurons with at least ``min_spikes`` spikes."""
    cv = cv_isi(t, i, n, min_spikes)
    return float(np.nanmean(cv)) if np.any(np.isfinite(cv)) else float("nan")
