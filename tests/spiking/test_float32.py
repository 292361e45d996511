"""float32 neuron state (``Network(dtype="float32")``) against the float64 network as the oracle.

Error budget: float32 rounds each step's state to 24 bits (relative 6e-8, about
4e-6 mV at -60 mV). Over 100 ms of a driven LIF neuron the potentials stay within
2e-4 mV of float64's (measured 2-5e-5) and the spike steps agree; a chaotic network (CUBA) loses
spike-by-spike agreement but keeps its statistics: mean rate within 3% and mean
CV of ISI within 0.03 of float64 with the same seed.
"""
from __future__ import annotations

import numpy as np
import pytest

from neurolns.formats import LNS8
from neurolns.models.cuba import CUBAConfig, build_cuba
from neurolns.sim.spiking import (
    LIFParams,
    Network,
    NeuronGroup,
    SpikeGeneratorGroup,
    SpikeMonitor,
    StateMonitor,
    Synapses,
    fixed_probability,
    mean_cv_isi,
)


def _driven(dtype, synapse="current", integration="exact", weight_format=None):
    """Ten LIF neurons driven by a fixed spike train; their v every step and their spikes."""
    rng = np.random.default_rng(0)
    n_in = 30
    times = np.round(rng.uniform(0, 0.1, 600), 4)
    idx = rng.integers(0, n_in, 600)
    key = np.unique(np.round(times * 1e4).astype(np.int64) * n_in + idx)
    gen = SpikeGeneratorGroup(n_in, key % n_in, (key // n_in) * 1e-4)
    cur = synapse == "current"
    params = LIFParams(v_rest_mV=-65.0 if cur else -70.0, synapse=synapse, integration=integration)
    g = NeuronGroup(10, params, v0_mV=np.linspace(-64, -52, 10))
    conn = fixed_probability(n_in, 10, 0.5, seed=1)
    w = (3.0 if cur else 0.1) * rng.uniform(0.5, 1.0, conn.n_synapses)
    syn = Synapses(gen, g, conn, weight=w, weight_format=weight_format, rounding="nearest")
    sm = StateMonitor(g, ("v",), record=True, every_ms=0.1)
    spikes = SpikeMonitor(g)
    net = Network(syn, sm, spikes, dtype=dtype)
    net.run(0.1, progress=False)
    return sm.values["v"], spikes.t, spikes.i, g


@pytest.mark.parametrize("synapse, integration", [("current", "exact"), ("current", "euler"),
                                                  ("conductance", "exponential_euler"), ("conductance", "euler")])
def test_float32_potentials_within_budget_of_float64(synapse, integration):
    v64, t64, i64, _ = _driven("float64", synapse, integration)
    v32, t32, i32, g32 = _driven("float32", synapse, integration)
    assert g32.v.dtype == np.float32
    assert t64.size > 5
    np.testing.assert_array_equal(t32, t64)
    np.testing.assert_array_equal(i32, i64)
    assert np.max(np.abs(v32 - v64)) < 2e-4


def test_float32_lns_weights_decode_to_float32_values():
    """LNS codes are the same; the decoded weights are float64's rounded to float32."""
    v64, t64, _, _ = _driven("float64", weight_format=LNS8)
    v32, t32, _, _ = _driven("float32", weight_format=LNS8)
    np.testing.assert_array_equal(t32, t64)
    assert np.max(np.abs(v32 - v64)) < 2e-4


def test_float32_cuba_keeps_the_statistics_of_float64():
    stats = {}
    for dtype in ("float64", "float32"):
        net = build_cuba(CUBAConfig(n=2000), seed=4, dtype=dtype)
        net.run(1.0, progress=False)
        t = np.concatenate([net.spikes_exc.t, net.spikes_inh.t])
        i = np.concatenate([net.spikes_exc.i, net.spikes_inh.i + net.config.n_exc])
        stats[dtype] = (i.size / 2000, mean_cv_isi(t, i, 2000))
        assert net.synapses[0].w.dtype == np.dtype(dtype)
    (r64, cv64), (r32, cv32) = stats["float64"], stats["float32"]
    assert abs(r32 - r64) <= 0.03 * r64
    assert abs(cv32 - cv64) <= 0.03


def test_float32_threads_bit_identical():
    runs = []
    for threads in (1, 2):
        net = build_cuba(CUBAConfig(n=3000), seed=2, threads=threads, dtype="float32")
        rep = net.run(0.2, progress=False)
        assert rep.threads == threads
        runs.append((net.spikes_exc.t, net.spikes_exc.i, net.exc.v.copy()))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad, err", [("float16", ValueError), ("int32", ValueError), ("nope", TypeError)])
def test_dtype_out_of_range_raises(bad, err):
    with pytest.raises(err, match="dtype"):
        Network(dtype=bad)


def test_reference_backend_refuses_float32():
    with pytest.raises(ValueError, match="float64 only"):
        Network(dtype="float32", backend="reference")
