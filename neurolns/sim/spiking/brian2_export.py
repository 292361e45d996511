"""Rebuild a neurolns spiking network in Brian2, so any network can be checked there.

The Brian2 network has the same groups (same equations, integration method,
threshold, reset, refractoriness and current state), the same synapses (the
same pairs, the decoded weights, delays) and the same plasticity as event-driven
traces; LNS weights enter as their decoded float values, and Brian2 then
learns in float64. Brian2 is imported only when :func:`to_brian2` is called.

Times are moved to the time grid the way neurolns moves them before Brian2
sees them. neurolns rounds a spike-generator time to the nearest step,
``k = rint(t / dt)`` (a tie goes to the even step), while Brian2's
``SpikeGeneratorGroup`` truncates, ``k = floor(t / dt + 0.001)``: a spike given
at 0.16 ms fires at step 2 (0.2 ms) in neurolns and at step 1 (0.1 ms) in Brian2
with dt = 0.1 ms. The export therefore hands Brian2 the times ``k * dt`` of the
steps neurolns uses, and likewise synaptic delays of ``round(delay / dt)``
whole steps, so both simulators deliver every event in the same step.

Brian2's code-generation target is a global preference; set
``brian2.prefs.codegen.target`` (``"numpy"``, ``"cython"``) or the device before
calling.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurolns.sim.spiking.neurons import NeuronGroup, PoissonGroup, SpikeGeneratorGroup, SynapseModel
from neurolns.sim.spiking.plasticity import STDPRule
from neurolns.sim.spiking.synapses import Target

__all__ = ["Brian2Network", "generator_steps", "to_brian2"]


@dataclass
class Brian2Network:
    """The Brian2 twin of a network: ``network`` plus objects keyed by neurolns names."""

    network: object
    groups: dict = field(default_factory=dict)
    synapses: dict = field(default_factory=dict)
    spike_monitors: dict = field(default_factory=dict)

    def run(self, duration_s: float, **kwargs) -> None:
        """``network.run(duration_s * second, **kwargs)``."""
        import brian2 as b2

        self.network.run(float(duration_s) * b2.second, **kwargs)

    def spikes(self, group_name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(t in s, i)`` of a group's recorded spikes, as neurolns's SpikeMonitor gives them."""
        mon = self.spike_monitors[group_name]
        return np.asarray(mon.t_[:], dtype=np.float64), np.asarray(mon.i[:], dtype=np.int32)


_CURRENT_EQS = """
dv/dt = (ge + gi - (v - El)) / taum : volt {unless}
dge/dt = -ge / taue : volt
dgi/dt = -gi / taui : volt
"""
_CONDUCTANCE_EQS = """
dv/dt = ((El - v) + ge * (Ee - v) + gi * (Ei - v)) / taum : volt {unless}
dge/dt = -ge / taue : 1
dgi/dt = -gi / taui : 1
"""

_CHANGE = {
    # rule: (depression on a pre spike, potentiation on a post spike), m = third factor
    STDPRule.ADDITIVE: ("w = clip(w - m * aminus * wmax * Apost, wzero, wmax)",
                        "w = clip(w + m * aplus * wmax * Apre, wzero, wmax)"),
    STDPRule.SOFT_BOUND: ("w = clip(w / wmax - m * aminus * abs(w / wmax) ** muminus * Apost, 0, 1) * wmax",
                          "w = clip(w / wmax + m * aplus * (1 - w / wmax) ** muplus * Apre, 0, 1) * wmax"),
    STDPRule.LOG_DOMAIN: ("w = clip(w * exp(-m * lminus * Apost), -wmax, wmax)",
                          "w = clip(w * exp(m * lplus * Apre), -wmax, wmax)"),
}


def _neuron_group(b2, g: NeuronGroup, dt):
    p = g.params
    unless = "(unless refractory)" if p.refractory_ms > 0 else ""
    eqs = (_CURRENT_EQS if p.synapse is SynapseModel.CURRENT else _CONDUCTANCE_EQS).format(unless=unless)
    ns = dict(El=p.v_rest_mV * b2.mV, vt=p.v_thresh_mV * b2.mV, vr=p.v_reset_mV * b2.mV,
              taum=p.tau_m_ms * b2.ms, taue=p.tau_e_ms * b2.ms, taui=p.tau_i_ms * b2.ms,
              Ee=p.E_e_mV * b2.mV, Ei=p.E_i_mV * b2.mV)
    out = b2.NeuronGroup(g.n, eqs, threshold="v > vt", reset="v = vr",
                         refractory=p.refractory_ms * b2.ms if p.refractory_ms > 0 else False,
                         method=p.integration.value, dt=dt, namespace=ns)
    out.v = np.asarray(g.v) * b2.mV
    unit = b2.mV if p.synapse is SynapseModel.CURRENT else 1
    out.ge = np.asarray(g.ge) * unit
    out.gi = np.asarray(g.gi) * unit
    return out


def _synapses(b2, s, src, dst, dt, dt_ms):
    current = s.post.params.synapse is SynapseModel.CURRENT
    unit = b2.mV if current else 1
    wdim = "volt" if current else "1"
    var = "ge" if s.target is Target.E else "gi"
    st = s.plasticity
    if st is None:
        syn = b2.Synapses(src, dst, f"w : {wdim}", on_pre=f"{var}_post += w", dt=dt)
    else:
        model = (f"w : {wdim}\n"
                 "dApre/dt = -Apre / taupre : 1 (event-driven)\n"
                 "dApost/dt = -Apost / taupost : 1 (event-driven)")
        dep, pot = _CHANGE[st.rule]
        ns = dict(m=1.0, aplus=st.a_plus, aminus=st.a_minus, wmax=st.w_max * unit, wzero=0 * unit,
                  muplus=st.mu_plus, muminus=st.mu_minus, taupre=st.tau_plus_ms * b2.ms,
                  taupost=st.tau_minus_ms * b2.ms, lplus=float(np.log1p(st.a_plus)),
                  lminus=float(np.log1p(st.a_minus)))
        syn = b2.Synapses(src, dst, model, on_pre=f"{var}_post += w\nApre += 1\n{dep}",
                          on_post=f"Apost += 1\n{pot}", dt=dt, namespace=ns)
    syn.connect(i=np.asarray(s.i), j=np.asarray(s.j))
    syn.w[:] = s.weights * unit
    steps = int(round(s.delay_ms / dt_ms))  # the whole steps neurolns delays by
    if steps > 0:
        syn.delay[:] = steps * dt
    return syn


def generator_steps(times_s, dt_ms: float) -> np.ndarray:
    """The time steps at which neurolns fires spike-generator times.

    Parameters
    ----------
    times_s : array_like of float
        Spike times in seconds, as given to :class:`SpikeGeneratorGroup`.
    dt_ms : float
        The network's time step in milliseconds, > 0.

    Returns
    -------
    numpy.ndarray of int64
        ``rint(t * 1e3 / dt_ms)``: the nearest step, a tie going to the even
        step (the rule :class:`Network` applies); Brian2 gets ``steps * dt``.

    Examples
    --------
    >>> generator_steps([0.16e-3, 0.25e-3, 0.35e-3], 0.1).tolist()
    [2, 2, 3]
    """
    dt = float(dt_ms)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt_ms must be finite and > 0; got {dt_ms!r}")
    return np.rint(np.asarray(times_s, dtype=np.float64) * 1e3 / dt).astype(np.int64)


def to_brian2(network, *, record_spikes: bool = True) -> Brian2Network:
    """Build the Brian2 equivalent of a neurolns :class:`Network` in its current state.

    Parameters
    ----------
    network : Network
    record_spikes : bool
        Attach a Brian2 ``SpikeMonitor`` to every group.

    Returns
    -------
    Brian2Network
        ``.network`` is a ``brian2.Network``; ``.spikes(name)`` gives ``(t, i)``.

    Notes
    -----
    The third factor of STDP is exported as the constant m = 1; LNS weights are
    exported decoded, and plasticity then runs in float64 in Brian2.
    Spike-generator times and synaptic delays are moved to the steps neurolns
    uses (see :func:`generator_steps`) before Brian2 sees them, since Brian2
    truncates generator times to the step where neurolns rounds them.

    Examples
    --------
    >>> import brian2                                  # doctest: +SKIP
    >>> b2net = to_brian2(net); b2net.run(1.0)         # doctest: +SKIP
    >>> t, i = b2net.spikes(group.name)                # doctest: +SKIP
    """
    import brian2 as b2

    dt = network.dt_ms * b2.ms
    out = Brian2Network(network=b2.Network())
    for g in network.groups:
        if isinstance(g, NeuronGroup):
            obj = _neuron_group(b2, g, dt)
        elif isinstance(g, PoissonGroup):
            obj = b2.PoissonGroup(g.n, rates=g.rate_hz * b2.Hz, dt=dt)
        elif isinstance(g, SpikeGeneratorGroup):
            steps = generator_steps(g.times_s, network.dt_ms)
            obj = b2.SpikeGeneratorGroup(g.n, g.indices, steps * dt, dt=dt)
        else:  # pragma: no cover - every group kind is handled above
            raise TypeError(f"cannot export {type(g).__name__}")
        out.groups[g.name] = obj
        out.network.add(obj)
        if record_spikes:
            mon = b2.SpikeMonitor(obj)
            out.spike_monitors[g.name] = mon
            out.network.add(mon)
    for s in network.synapses:
        syn = _synapses(b2, s, out.groups[s.pre.name], out.groups[s.post.name], dt, network.dt_ms)
        out.synapses[s.name] = syn
        out.network.add(syn)
    return out
