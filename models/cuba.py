"""The CUBA benchmark network (Brette et al., J. Comput. Neurosci. 23:349, 2007, benchmark 2).

4000 current-based LIF neurons, 80% excitatory, random connectivity p = 0.02,
τm 20 ms, τe 5 ms, τi 10 ms, Vt −50 mV, Vr −60 mV, El −49 mV, 5 ms refractory,
we = 1.62 mV, wi = −9 mV, no delays, dt 0.1 ms, v0 uniform in [Vr, Vt], exact
integration — the parameters of Brian2's ``examples/CUBA.py``.

:func:`build_cuba` builds it in neurolns (float64 or LNS weights);
:func:`build_cuba_brian2` builds it natively in Brian2 the way Brian2's example
does (Brian2 draws its own connectivity), for timing and statistical
comparison; :func:`neurolns.sim.spiking.to_brian2` rebuilds the very same
neurolns network in Brian2 instead. Larger networks keep the expected in-degree
(80 excitatory + 20 inhibitory inputs per neuron), so ``p = 0.02 · 4000 / n``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neurolns.formats import LNSFormat
from neurolns.sim.spiking import (
    LIFParams,
    Network,
    NeuronGroup,
    SpikeMonitor,
    Synapses,
    fixed_probability,
)

__all__ = ["CUBAConfig", "CUBANetwork", "build_cuba", "build_cuba_brian2"]


@dataclass(frozen=True)
class CUBAConfig:
    """Parameters of the CUBA network (units in the names).

    ``p=None`` keeps the in-degree of the 4000-neuron original: ``p = 80 / n``.
    """

    n: int = 4000
    exc_fraction: float = 0.8
    p: float | None = None
    we_mV: float = 1.62
    wi_mV: float = -9.0
    dt_ms: float = 0.1
    neuron: LIFParams = field(default_factory=LIFParams)

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 10:
            raise ValueError(f"n={self.n!r} is out of range; allowed: an int >= 10")
        if not 0 < self.exc_fraction < 1:
            raise ValueError(f"exc_fraction={self.exc_fraction} is out of range; allowed: 0 < f < 1")
        if self.p is not None and not 0 < self.p <= 1:
            raise ValueError(f"p={self.p} is out of range; allowed: 0 < p <= 1")
        for name in ("we_mV", "wi_mV"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")

    @property
    def n_exc(self) -> int:
        return int(round(self.n * self.exc_fraction))

    @property
    def n_inh(self) -> int:
        return self.n - self.n_exc

    @property
    def connection_probability(self) -> float:
        return self.p if self.p is not None else min(1.0, 0.02 * 4000 / self.n)


@dataclass
class CUBANetwork:
    """A built CUBA network: the network, its E and I groups, projections and spike monitors."""

    network: Network
    exc: NeuronGroup
    inh: NeuronGroup
    synapses: list
    spikes_exc: SpikeMonitor
    spikes_inh: SpikeMonitor
    config: CUBAConfig

    def run(self, duration_s: float, **kw):
        return self.network.run(duration_s, **kw)


def build_cuba(config: CUBAConfig | None = None, *, weight_format: LNSFormat | None = None,
               rounding: str = "stochastic", seed: int = 0, record=True,
               memory_budget_mb: float = 1024.0, threads: int = 1, dtype="float64",
               shared_weights: bool | None = None) -> CUBANetwork:
    """The CUBA network in neurolns.

    Parameters
    ----------
    config : CUBAConfig
    weight_format : LNSFormat, optional
        Store the weights as LNS codes (None: float64).
    rounding : {"stochastic", "nearest"}
        Rounding of the homogeneous weights to codes. Stochastic (default)
        keeps the mean weight; nearest moves all of them to one code (in LNS8,
        γ=8: we 1.62 → 1.68 mV, wi −9 → −8.72 mV).
    seed : int
        Seed of v0, connectivity, rounding and the run.
    record : bool or indices
        What the spike monitors record (``False``: counts only).
    threads : int
        Threads of the time loop (:class:`~neurolns.sim.spiking.Network`);
        the spikes do not depend on it.
    dtype : {"float64", "float32"}
        Floating-point type of the neuron state and weights (see
        :class:`~neurolns.sim.spiking.Network`).
    shared_weights : bool, optional
        Float weights stored once per projection (``Synapses(shared=True)``),
        as Brian2's example does (``on_pre="ge += we"``, a constant). Default:
        True for float weights; LNS weights are codes per synapse (stochastic
        rounding makes them differ), so True with ``weight_format`` is an
        error. False stores a weight per synapse (in ``dtype``); the spikes
        are the same.

    Examples
    --------
    >>> from neurolns.models.cuba import CUBAConfig, build_cuba
    >>> net = build_cuba(CUBAConfig(n=400), seed=1)
    >>> net.network.n_synapses > 0
    True
    """
    cfg = config if config is not None else CUBAConfig()
    if shared_weights is not None and not isinstance(shared_weights, (bool, np.bool_)):
        raise TypeError(f"shared_weights must be a bool or None, got {shared_weights!r}")
    if shared_weights is None:
        shared_weights = weight_format is None
    elif shared_weights and weight_format is not None:
        raise ValueError("shared_weights=True needs float weights (weight_format=None): LNS weights are "
                         "codes per synapse")
    rng = np.random.default_rng(seed)
    nrn = cfg.neuron
    ne, ni = cfg.n_exc, cfg.n_inh
    v0 = nrn.v_reset_mV + rng.random(cfg.n) * (nrn.v_thresh_mV - nrn.v_reset_mV)
    exc = NeuronGroup(ne, nrn, v0_mV=v0[:ne], name="exc")
    inh = NeuronGroup(ni, nrn, v0_mV=v0[ne:], name="inh")
    p = cfg.connection_probability
    seeds = rng.integers(0, 2**31 - 1, size=8)
    syns = []
    for k, (src, dst, w, tgt) in enumerate([(exc, exc, cfg.we_mV, "e"), (exc, inh, cfg.we_mV, "e"),
                                            (inh, exc, cfg.wi_mV, "i"), (inh, inh, cfg.wi_mV, "i")]):
        conn = fixed_probability(src.n, dst.n, p, seed=int(seeds[k]))
        syns.append(Synapses(src, dst, conn, weight=w, target=tgt, weight_format=weight_format,
                             rounding=rounding, seed=int(seeds[4 + k]), name=f"{src.name}_{dst.name}",
                             shared=bool(shared_weights)))
    mon_e = SpikeMonitor(exc, record=record)
    mon_i = SpikeMonitor(inh, record=record)
    net = Network(*syns, mon_e, mon_i, dt_ms=cfg.dt_ms, seed=seed, memory_budget_mb=memory_budget_mb,
                  threads=threads, dtype=dtype)
    return CUBANetwork(net, exc, inh, syns, mon_e, mon_i, cfg)


def build_cuba_brian2(config: CUBAConfig | None = None, *, seed: int = 0, record: bool = True):
    """CUBA built natively in Brian2, as Brian2's ``examples/CUBA.py`` does.

    The code-generation target or device must be set by the caller. Returns
    ``(network, spike_monitor)``; neurons ``[0, n_exc)`` are excitatory.
    """
    import brian2 as b2

    cfg = config if config is not None else CUBAConfig()
    nrn = cfg.neuron
    b2.seed(seed)
    ns = dict(taum=nrn.tau_m_ms * b2.ms, taue=nrn.tau_e_ms * b2.ms, taui=nrn.tau_i_ms * b2.ms,
              Vt=nrn.v_thresh_mV * b2.mV, Vr=nrn.v_reset_mV * b2.mV, El=nrn.v_rest_mV * b2.mV,
              we=cfg.we_mV * b2.mV, wi=cfg.wi_mV * b2.mV)
    eqs = """
    dv/dt = (ge + gi - (v - El)) / taum : volt (unless refractory)
    dge/dt = -ge / taue : volt
    dgi/dt = -gi / taui : volt
    """
    dt = cfg.dt_ms * b2.ms
    P = b2.NeuronGroup(cfg.n, eqs, threshold="v > Vt", reset="v = Vr", refractory=nrn.refractory_ms * b2.ms,
                       method="exact", dt=dt, namespace=ns)
    P.v = "Vr + rand() * (Vt - Vr)"
    P.ge = 0 * b2.mV
    P.gi = 0 * b2.mV
    p = cfg.connection_probability
    Ce = b2.Synapses(P, P, on_pre="ge += we", dt=dt, namespace=ns)
    Ci = b2.Synapses(P, P, on_pre="gi += wi", dt=dt, namespace=ns)
    Ce.connect(f"i < {cfg.n_exc}", p=p)
    Ci.connect(f"i >= {cfg.n_exc}", p=p)
    mon = b2.SpikeMonitor(P, record=record)
    return b2.Network(P, Ce, Ci, mon), mon
