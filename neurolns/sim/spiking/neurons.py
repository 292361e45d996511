"""Neuron groups: leaky integrate-and-fire, Poisson inputs and spike generators.

Units are carried in parameter names: times in ms (``tau_m_ms``), potentials in
mV (``v_thresh_mV``), rates in Hz. Current-based synaptic variables ``ge``/``gi``
are in mV (a spike adds the weight to them, as in Brette et al. 2007's CUBA);
conductance-based ones are dimensionless, in units of the leak conductance.

Equations (Brette et al., J. Comput. Neurosci. 23:349, 2007, benchmarks 1-2)::

    current:      τm dv/dt = ge + gi − (v − El)
    conductance:  τm dv/dt = (El − v) + ge (Ee − v) + gi (Ei − v)
                  τe dge/dt = −ge,   τi dgi/dt = −gi

v is clamped during the refractory period (the conductances keep decaying), a
spike is emitted when ``v > v_thresh`` outside it, and v is then set to
``v_reset``. The order of operations in a time step is Brian2's default
schedule: state update, threshold, synaptic propagation, reset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurolns.formats import _StrEnum

__all__ = [
    "SynapseModel",
    "Integration",
    "LIFParams",
    "NeuronGroup",
    "PoissonGroup",
    "SpikeGeneratorGroup",
]


class SynapseModel(_StrEnum):
    """How synaptic input enters the membrane equation."""

    CURRENT = "current"
    CONDUCTANCE = "conductance"


class Integration(_StrEnum):
    """Integration scheme of the membrane equation.

    ``EXACT``: the linear (current-based) system's propagator matrix, exact for
    any dt. ``EXPONENTIAL_EULER``: conductances held over a step, v relaxes
    exactly towards its instantaneous fixed point (Brian2's ``exponential_euler``).
    ``EULER``: forward Euler on every variable (Brian2's ``euler``).
    """

    EXACT = "exact"
    EXPONENTIAL_EULER = "exponential_euler"
    EULER = "euler"


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value} is out of range; allowed: a finite value > 0")
    return value


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} is out of range; allowed: a finite value")
    return value


@dataclass(frozen=True)
class LIFParams:
    """Parameters of a leaky integrate-and-fire neuron (defaults: CUBA, Brette et al. 2007).

    Parameters
    ----------
    tau_m_ms : float
        Membrane time constant τm (ms), > 0.
    v_rest_mV : float
        Resting (leak reversal) potential El (mV). CUBA uses −49 mV, above threshold,
        so that neurons fire spontaneously.
    v_thresh_mV, v_reset_mV : float
        Threshold and reset potentials (mV); ``v_reset_mV < v_thresh_mV``.
    refractory_ms : float
        Absolute refractory period (ms), ≥ 0; rounded to whole time steps.
    synapse : SynapseModel or str
        ``"current"`` (ge, gi in mV) or ``"conductance"`` (dimensionless ge, gi).
    tau_e_ms, tau_i_ms : float
        Decay time constants of ge and gi (ms), > 0.
    E_e_mV, E_i_mV : float
        Reversal potentials of conductance-based synapses (mV); unused for current.
    integration : Integration or str, optional
        Defaults to ``"exact"`` for current-based and ``"exponential_euler"`` for
        conductance-based synapses (for which no exact solution exists).
    """

    tau_m_ms: float = 20.0
    v_rest_mV: float = -49.0
    v_thresh_mV: float = -50.0
    v_reset_mV: float = -60.0
    refractory_ms: float = 5.0
    synapse: SynapseModel = SynapseModel.CURRENT
    tau_e_ms: float = 5.0
    tau_i_ms: float = 10.0
    E_e_mV: float = 0.0
    E_i_mV: float = -80.0
    integration: Integration | None = None

    def __post_init__(self) -> None:
        for name in ("tau_m_ms", "tau_e_ms", "tau_i_ms"):
            object.__setattr__(self, name, _positive(name, getattr(self, name)))
        for name in ("v_rest_mV", "v_thresh_mV", "v_reset_mV", "E_e_mV", "E_i_mV"):
            object.__setattr__(self, name, _finite(name, getattr(self, name)))
        ref = _finite("refractory_ms", self.refractory_ms)
        if ref < 0:
            raise ValueError(f"refractory_ms={ref} is out of range; allowed: >= 0")
        object.__setattr__(self, "refractory_ms", ref)
        if not self.v_reset_mV < self.v_thresh_mV:
            raise ValueError(
                f"v_reset_mV={self.v_reset_mV} must be below v_thresh_mV={self.v_thresh_mV}"
            )
        syn = SynapseModel(self.synapse)
        object.__setattr__(self, "synapse", syn)
        if self.integration is None:
            integ = Integration.EXACT if syn is SynapseModel.CURRENT else Integration.EXPONENTIAL_EULER
        else:
            integ = Integration(self.integration)
        if syn is SynapseModel.CURRENT and integ is Integration.EXPONENTIAL_EULER:
            integ = Integration.EXACT  # the linear system: exponential Euler is exact
        if syn is SynapseModel.CONDUCTANCE and integ is Integration.EXACT:
            raise ValueError(
                "integration='exact' does not exist for conductance-based synapses; "
                "allowed: 'exponential_euler', 'euler'"
            )
        object.__setattr__(self, "integration", integ)


class _Group:
    """Common state of every group: size, name and its slot in a network."""

    kind = "group"
    _counter = 0

    def __init__(self, n: int, name: str | None):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n={n!r} is out of range; allowed: an int >= 1")
        self.n = int(n)
        _Group._counter += 1
        self.name = name or f"{self.kind}_{_Group._counter}"

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, name={self.name!r})"


class NeuronGroup(_Group):
    """``n`` LIF neurons sharing one :class:`LIFParams`.

    Parameters
    ----------
    n : int
    params : LIFParams
    v0_mV : float or array_like, optional
        Initial membrane potential (mV); default ``v_reset_mV``.
    name : str, optional

    Attributes
    ----------
    v, ge, gi : ndarray
        State (mV for v; mV or dimensionless for ge/gi), float64, writable.

    Examples
    --------
    >>> from neurolns.sim.spiking import LIFParams, NeuronGroup
    >>> g = NeuronGroup(10, LIFParams(), v0_mV=-55.0)
    >>> float(g.v[0])
    -55.0
    """

    kind = "lif"

    def __init__(self, n: int, params: LIFParams | None = None, *, v0_mV=None, name: str | None = None):
        super().__init__(n, name)
        self.params = params if params is not None else LIFParams()
        if not isinstance(self.params, LIFParams):
            raise TypeError(f"params must be LIFParams, got {type(self.params).__name__}")
        self.v = np.full(self.n, self.params.v_reset_mV, dtype=np.float64)
        if v0_mV is not None:
            self.v[:] = np.broadcast_to(np.asarray(v0_mV, dtype=np.float64), (self.n,))
        if not np.all(np.isfinite(self.v)):
            raise ValueError("v0_mV must be finite")
        self.ge = np.zeros(self.n)
        self.gi = np.zeros(self.n)
        # step index from which the neuron integrates again (Brian2: lastspike + refractory)
        self.ref_until = np.full(self.n, np.iinfo(np.int64).min // 2, dtype=np.int64)


class PoissonGroup(_Group):
    """``n`` independent Poisson spike sources (Brian2 ``PoissonGroup``).

    A source spikes in a step with probability ``rate_hz · dt``.

    Parameters
    ----------
    n : int
    rate_hz : float or array_like
        Rate in Hz per source, ≥ 0 and with ``rate · dt ≤ 1``.
    """

    kind = "poisson"

    def __init__(self, n: int, rate_hz, *, name: str | None = None):
        super().__init__(n, name)
        rate = np.broadcast_to(np.asarray(rate_hz, dtype=np.float64), (self.n,)).copy()
        if not np.all(np.isfinite(rate)) or np.any(rate < 0):
            raise ValueError(f"rate_hz must be finite and >= 0, got min {rate.min()}")
        self.rate_hz = rate


class SpikeGeneratorGroup(_Group):
    """Sources that spike at given times (Brian2 ``SpikeGeneratorGroup``).

    Parameters
    ----------
    n : int
    indices : array_like of int
        Source index of each spike, in ``[0, n)``.
    times_s : array_like of float
        Spike times in seconds, ≥ 0; rounded to the nearest time step.
    """

    kind = "generator"

    def __init__(self, n: int, indices, times_s, *, name: str | None = None):
        super().__init__(n, name)
        idx = np.asarray(indices, dtype=np.int64).ravel()
        t = np.asarray(times_s, dtype=np.float64).ravel()
        if idx.shape != t.shape:
            raise ValueError(f"indices and times_s differ in length: {idx.size} vs {t.size}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise ValueError(f"indices must lie in [0, {self.n}); got [{idx.min()}, {idx.max()}]")
        if not np.all(np.isfinite(t)) or (t.size and t.min() < 0):
            raise ValueError("times_s must be finite and >= 0")
        order = np.lexsort((idx, t))
        self.indices = idx[order]
        self.times_s = t[order]
