"""Shared weights (one float64 per projection, ``Synapses(shared=True)``) against the same weight
stored per synapse: the oracle is the per-synapse path, already checked against the numpy loop
and Brian2, and the two must agree bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from neurolns.formats import LNS8
from neurolns.models.cuba import CUBAConfig, build_cuba
from neurolns.sim.spiking import _kernels as K
from neurolns.sim.spiking import (
    STDP,
    LIFParams,
    Network,
    NeuronGroup,
    SpikeMonitor,
    Synapses,
    WeightMonitor,
    fixed_probability,
)


def _net(shared: bool, backend: str = "numba", threads: int = 1):
    """Self-driven input neurons (direct and 0.3 ms delayed) onto recurrent exact-CUBA and COBA groups."""
    rng = np.random.default_rng(11)
    gen = NeuronGroup(30, LIFParams(v_rest_mV=-45.0), v0_mV=rng.uniform(-60, -50, 30))  # fires by itself
    cuba = NeuronGroup(120, LIFParams(v_rest_mV=-52.0), v0_mV=rng.uniform(-60, -50, 120))
    coba = NeuronGroup(60, LIFParams(v_rest_mV=-60.0, synapse="conductance"), v0_mV=rng.uniform(-60, -50, 60))
    syns = [
        Synapses(gen, cuba, fixed_probability(30, 120, 0.3, seed=1), weight=3.0, shared=shared),
        Synapses(gen, coba, fixed_probability(30, 60, 0.3, seed=2), weight=0.2, delay_ms=0.3, shared=shared),
        Synapses(cuba, cuba, fixed_probability(120, 120, 0.1, seed=3), weight=-2.0, target="i", shared=shared),
        Synapses(cuba, coba, fixed_probability(120, 60, 0.1, seed=4), weight=0.05, shared=shared),
    ]
    mons = [SpikeMonitor(cuba), SpikeMonitor(coba)]
    net = Network(*syns, *mons, backend=backend, threads=threads)
    return net, (cuba, coba), mons


@pytest.mark.parametrize("backend, threads", [("numba", 1), ("numba", 2), ("reference", 1)])
def test_shared_weights_equal_the_same_weight_per_synapse(backend, threads):
    """Spikes and final state bit-identical to per-synapse storage of the same values."""
    runs = []
    for shared in (False, True):
        net, groups, mons = _net(shared, backend, threads)
        rep = net.run(0.1, progress=False)
        assert rep.threads == threads
        runs.append([m.i for m in mons] + [m.t for m in mons] + [g.v for g in groups] + [g.ge for g in groups]
                    + [g.gi for g in groups])
    assert runs[0][0].size > 50 and runs[0][1].size > 20
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_cuba_with_shared_weights_equals_per_synapse_weights():
    """build_cuba's default (shared float weights, as Brian2's example) gives the spikes of float64 per synapse."""
    a = build_cuba(CUBAConfig(n=1000), seed=3)
    b = build_cuba(CUBAConfig(n=1000), seed=3, shared_weights=False)
    assert all(s.shared for s in a.synapses) and not any(s.shared for s in b.synapses)
    assert a.synapses[0].w.size == 1 and b.synapses[0].w.size == b.synapses[0].n_synapses
    a.run(0.2, progress=False)
    b.run(0.2, progress=False)
    assert a.spikes_exc.i.size > 100
    np.testing.assert_array_equal(a.spikes_exc.i, b.spikes_exc.i)
    np.testing.assert_array_equal(a.spikes_inh.t, b.spikes_inh.t)
    np.testing.assert_array_equal(a.exc.v, b.exc.v)


def test_shared_weight_reads_writes_and_monitors():
    """``weights`` gives the value for every synapse; setting it takes one value, also after a run
    (the stored value is a view the kernel reads); a weight monitor samples the value."""
    g = NeuronGroup(20, LIFParams())
    s = Synapses(g, g, fixed_probability(20, 20, 0.5, seed=0), weight=1.5, shared=True)
    assert s.weights.shape == (s.n_synapses,) and np.all(s.weights == 1.5)
    wm = WeightMonitor(s, record=[0, 3], every_ms=1.0)
    net = Network(s, wm)
    net.run(0.002, progress=False)
    s.weights = 2.5
    net.run(0.002, progress=False)
    assert net._layout.w_f[net._layout.pint[0, K.P_STORE]] == 2.5  # the kernel's copy changed too
    np.testing.assert_array_equal(wm.w, [[1.5, 1.5], [1.5, 1.5], [2.5, 2.5], [2.5, 2.5]])
    with pytest.raises(ValueError, match="one value"):
        s.weights = np.arange(s.n_synapses, dtype=float)
    assert "shared" in repr(s)


@pytest.mark.parametrize("kw, err, match", [
    (dict(weight=np.ones(4)), ValueError, "scalar"),
    (dict(weight=1.0, weight_format=LNS8), ValueError, "weight_format"),
    (dict(weight=1.0, plasticity=STDP("additive", w_max=2.0)), ValueError, "plasticity"),
    (dict(weight=1.0, shared="yes"), TypeError, "shared"),
    (dict(weight=np.inf), ValueError, "finite"),
])
def test_shared_weight_refuses_what_it_cannot_store(kw, err, match):
    """A shared weight is one finite float64, without LNS codes or plasticity."""
    g = NeuronGroup(4, LIFParams())
    conn = fixed_probability(4, 4, 1.0, seed=0)
    kw = dict(kw)
    kw.setdefault("shared", True)
    with pytest.raises(err, match=match):
        Synapses(g, g, conn, **kw)


def test_build_cuba_refuses_shared_lns_weights():
    """LNS weights are codes per synapse: asking build_cuba to share them is an error, not ignored."""
    with pytest.raises(ValueError, match="shared_weights"):
        build_cuba(CUBAConfig(n=100), weight_format=LNS8, shared_weights=True)
    assert not build_cuba(CUBAConfig(n=100), weight_format=LNS8).synapses[0].shared


def test_shared_weight_setter_edge_cases():
    """An empty shared projection still takes a new value; NaN is refused as not finite (not as
    'values that differ'); ``shared`` cannot be flipped after construction."""
    g = NeuronGroup(4, LIFParams())
    empty = Synapses(g, g, fixed_probability(4, 4, 0.0, seed=0), weight=1.5, shared=True)
    assert empty.n_synapses == 0
    empty.weights = 7.0
    assert empty.w[0] == 7.0
    with pytest.raises(ValueError, match="finite"):
        empty.weights = np.nan
    with pytest.raises(AttributeError):
        empty.shared = False


def test_network_refuses_a_replaced_store_or_plasticity_added_later():
    """A shared projection whose ``w`` was replaced by a per-synapse array, or which was given
    plasticity after construction, is refused when the network is built (the kernel would read
    one stored value per synapse, or write past it)."""
    g = NeuronGroup(6, LIFParams())
    s = Synapses(g, g, fixed_probability(6, 6, 0.5, seed=0), weight=1.0, shared=True)
    s.w = np.ones(s.n_synapses)
    with pytest.raises(ValueError, match="shared"):
        Network(s).run(0.001, progress=False)
    t = Synapses(g, g, fixed_probability(6, 6, 0.5, seed=0), weight=1.0, shared=True)
    t.plasticity = STDP("additive", w_max=2.0)
    with pytest.raises(ValueError, match="cannot learn"):
        Network(t).run(0.001, progress=False)


def test_build_cuba_checks_the_type_of_shared_weights():
    """``shared_weights`` is a bool or None; a string is refused, not read as true."""
    with pytest.raises(TypeError, match="shared_weights"):
        build_cuba(CUBAConfig(n=100), shared_weights="no")
