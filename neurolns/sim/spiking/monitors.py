"""Monitors: spikes (Brian2 ``SpikeMonitor``-like), population rates, state and weights.

All monitors keep numpy arrays; their memory counts against the network's
``memory_budget_mb`` and a run that would exceed it raises
:class:`MemoryBudgetError` before allocating.
"""
from __future__ import annotations

import numpy as np

from neurolns.sim.spiking.neurons import NeuronGroup, _Group
from neurolns.sim.spiking.synapses import Synapses

__all__ = ["MemoryBudgetError", "SpikeMonitor", "RateMonitor", "StateMonitor", "WeightMonitor"]


class MemoryBudgetError(MemoryError):
    """Recording would exceed the network's memory budget (raised before allocating)."""


def _every_steps(every_ms, dt_ms: float) -> int:
    if every_ms is None:
        return 1
    e = float(every_ms)
    if not e > 0:
        raise ValueError(f"every_ms={e} is out of range; allowed: > 0")
    return max(1, int(round(e / dt_ms)))


def _indices(record, n: int) -> np.ndarray:
    if record is True:
        return np.arange(n, dtype=np.int64)
    if record is False or record is None:
        return np.zeros(0, dtype=np.int64)
    idx = np.atleast_1d(np.asarray(record, dtype=np.int64))
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"record indices must lie in [0, {n}); got [{idx.min()}, {idx.max()}]")
    return idx


class SpikeMonitor:
    """Spike times ``t`` (s) and indices ``i`` of a group, like Brian2's ``SpikeMonitor``.

    Parameters
    ----------
    group : group
    record : bool or array_like of int
        ``True`` (all neurons), ``False`` (count only) or the indices to record.
        Spike counts per neuron are always kept (``count``).

    Examples
    --------
    >>> from neurolns.sim.spiking import Network, PoissonGroup, SpikeMonitor
    >>> src = PoissonGroup(100, rate_hz=20.0)
    >>> mon = SpikeMonitor(src)
    >>> _ = Network(src, mon, seed=1).run(0.5, progress=False)
    >>> 700 < mon.num_spikes < 1300, mon.t.dtype, mon.i.dtype
    (True, dtype('float64'), dtype('int32'))
    """

    def __init__(self, group: _Group, record=True):
        if not isinstance(group, _Group):
            raise TypeError(f"group must be a neuron group, got {type(group).__name__}")
        self.group = group
        self.record = _indices(record, group.n)
        self.count = np.zeros(group.n, dtype=np.int64)
        self._t: list[np.ndarray] = []
        self._i: list[np.ndarray] = []
        self._cache = None

    def _append(self, t: np.ndarray, i: np.ndarray) -> None:
        if t.size:
            self._t.append(t)
            self._i.append(i)
            self._cache = None

    def _merge(self):
        if self._cache is None:
            t = np.concatenate(self._t) if self._t else np.zeros(0)
            i = np.concatenate(self._i) if self._i else np.zeros(0, dtype=np.int32)
            self._t, self._i = [t], [i]
            self._cache = (t, i)
        return self._cache

    @property
    def t(self) -> np.ndarray:
        """Spike times in seconds (float64), in time order."""
        return self._merge()[0]

    @property
    def i(self) -> np.ndarray:
        """Neuron index (within the group) of each spike (int32)."""
        return self._merge()[1]

    @property
    def num_spikes(self) -> int:
        return int(self.t.size)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self._t) + sum(a.nbytes for a in self._i))

    def spike_trains(self) -> dict[int, np.ndarray]:
        """``{index: spike times (s)}`` for every recorded neuron."""
        t, i = self._merge()
        order = np.argsort(i, kind="stable")
        ts, is_ = t[order], i[order]
        bounds = np.searchsorted(is_, self.record, side="left"), np.searchsorted(is_, self.record, side="right")
        return {int(k): ts[a:b] for k, a, b in zip(self.record, *bounds)}


class RateMonitor:
    """Population rate of a group per time step (Brian2's ``PopulationRateMonitor``).

    Attributes
    ----------
    t : ndarray
        Step start times (s).
    rate : ndarray
        Spikes per neuron per second in each step (Hz).
    """

    def __init__(self, group: _Group):
        if not isinstance(group, _Group):
            raise TypeError(f"group must be a neuron group, got {type(group).__name__}")
        self.group = group
        self._counts: list[np.ndarray] = []
        self._start = 0  # step index of the first recorded step
        self.dt = None

    @property
    def counts(self) -> np.ndarray:
        if len(self._counts) > 1:
            self._counts = [np.concatenate(self._counts)]
        return self._counts[0] if self._counts else np.zeros(0, dtype=np.int32)

    @property
    def t(self) -> np.ndarray:
        n = self.counts.size
        return (self._start + np.arange(n)) * self.dt if n else np.zeros(0)

    @property
    def rate(self) -> np.ndarray:
        return self.counts / (self.group.n * self.dt) if self.dt else np.zeros(0)

    def smooth_rate(self, width_ms: float) -> np.ndarray:
        """Rate averaged in a flat window of ``width_ms`` (Hz)."""
        w = max(1, int(round(width_ms * 1e-3 / self.dt)))
        return np.convolve(self.rate, np.ones(w) / w, mode="same")

    @property
    def nbytes(self) -> int:
        return int(sum(c.nbytes for c in self._counts))


class StateMonitor:
    """Samples of ``v``, ``ge`` or ``gi`` of chosen neurons every ``every_ms``.

    ``values[var]`` has shape ``(n_samples, len(record))``; ``t`` holds the
    sample times (s). Values are taken at the start of a step, as Brian2 does.
    """

    VARS = ("v", "ge", "gi")

    def __init__(self, group: NeuronGroup, variables=("v",), record=(0,), every_ms: float | None = None):
        if not isinstance(group, NeuronGroup):
            raise TypeError(f"group must be a NeuronGroup, got {type(group).__name__}")
        variables = (variables,) if isinstance(variables, str) else tuple(variables)
        for var in variables:
            if var not in self.VARS:
                raise ValueError(f"unknown variable {var!r}; allowed: {', '.join(self.VARS)}")
        self.group = group
        self.variables = variables
        self.record = _indices(record, group.n)
        self.every_ms = every_ms
        self.values: dict[str, np.ndarray] = {var: np.zeros((0, self.record.size)) for var in variables}
        self.t = np.zeros(0)

    def __getattr__(self, name):
        if name in StateMonitor.VARS and name in self.__dict__.get("values", {}):
            return self.__dict__["values"][name]
        raise AttributeError(name)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.values.values()) + self.t.nbytes)


class WeightMonitor:
    """Samples of the (decoded) weights of chosen synapses every ``every_ms``.

    ``w`` has shape ``(n_samples, len(record))``; ``t`` holds the sample times (s).
    """

    def __init__(self, synapses: Synapses, record=True, every_ms: float = 100.0):
        if not isinstance(synapses, Synapses):
            raise TypeError(f"synapses must be a Synapses, got {type(synapses).__name__}")
        self.synapses = synapses
        self.record = _indices(record, synapses.n_synapses)
        self.every_ms = every_ms
        self.w = np.zeros((0, self.record.size))
        self.t = np.zeros(0)

    @property
    def nbytes(self) -> int:
        return int(self.w.nbytes + self.t.nbytes)
