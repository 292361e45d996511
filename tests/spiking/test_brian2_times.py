"""Spike-generator times and delays reach Brian2 on the steps neurolns uses.

neurolns rounds a generator time to the nearest step (ties to even); Brian2
truncates it. Invariant: for times at, just below and just above half-steps,
the generator's spikes and the spikes of a neuron they drive (through a delay
of 2.5 steps) fall in identical step indices in both simulators.
"""
from __future__ import annotations

import numpy as np
import pytest

from neurolns.sim.spiking import LIFParams, Network, NeuronGroup, SpikeGeneratorGroup, SpikeMonitor, Synapses
from neurolns.sim.spiking.connectivity import from_lists
from neurolns.sim.spiking.brian2_export import generator_steps, to_brian2

DT_MS = 0.1


def _half_step_times() -> np.ndarray:
    """One spike per source: k + {0.5 - 1e-6, 0.5, 0.5 + 1e-6, 0.6, 0.4, 0.45, 0.55, 0.999, 0} steps."""
    fractions = np.array([0.5 - 1e-6, 0.5, 0.5 + 1e-6, 0.6, 0.4, 0.45, 0.55, 0.999, 0.0])
    k = np.arange(1, 41)
    t_ms = (k[:, None] * 7 + fractions[None, :]) * DT_MS  # sources never share a step
    t_ms = np.concatenate([t_ms.ravel(), [0.15, 0.16, 0.25, 0.35]])
    return t_ms * 1e-3


def _net():
    t = _half_step_times()
    gen = SpikeGeneratorGroup(t.size, np.arange(t.size), t, name="gen")
    # at rest below threshold; one input spike drives each neuron over it once (refractory past the run)
    post = NeuronGroup(t.size, LIFParams(v_rest_mV=-65.0, refractory_ms=50.0), v0_mV=-65.0, name="post")
    syn = Synapses(gen, post, from_lists(t.size, t.size, np.arange(t.size), np.arange(t.size)), weight=200.0, delay_ms=0.25, name="drive")
    mons = SpikeMonitor(gen), SpikeMonitor(post)
    return Network(syn, *mons, dt_ms=DT_MS), (gen, post), mons


def _steps(t_s) -> np.ndarray:
    return np.rint(np.asarray(t_s) * 1e3 / DT_MS).astype(np.int64)


def test_generator_steps_round_to_nearest_ties_to_even():
    """The rule neurolns applies: 0.16 ms -> step 2, 0.25 ms -> 2 (tie, even), 0.35 ms -> 3 (3.4999... in float)."""
    assert generator_steps([0.16e-3, 0.25e-3, 0.35e-3, 0.0], DT_MS).tolist() == [2, 2, 3, 0]
    with pytest.raises(ValueError, match="dt_ms"):
        generator_steps([0.0], 0.0)


@pytest.mark.brian2
def test_half_step_times_fire_in_the_same_steps_as_brian2():
    """Identical step indices (exact equality) for the generator and the neurons it drives."""
    b2 = pytest.importorskip("brian2")
    b2.prefs.codegen.target = "numpy"
    net, groups, mons = _net()
    twin = to_brian2(net)
    net.run(0.04, progress=False)
    twin.run(0.04)
    for g, m in zip(groups, mons):
        t, i = twin.spikes(g.name)
        ours = sorted(zip(_steps(m.t).tolist(), np.asarray(m.i).tolist()))
        theirs = sorted(zip(_steps(t).tolist(), i.tolist()))
        assert len(ours) == g.n, g.name  # every source spikes once and every neuron answers once
        assert ours == theirs, g.name
