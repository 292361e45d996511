"""Counting a run of the spiking simulator: synaptic events from the recorded spikes."""
import numpy as np
import pytest

from neurolns.accounting import EnergyModel, count_spiking, price_layer


def test_events_of_a_spiking_run_equal_the_recorded_spikes_times_their_fan_out():
    """Exact event count = Σ over every recorded input spike of that neuron's out-degree
    (recomputed here from the spike list and the connectivity), not the mean-degree estimate."""
    sp = pytest.importorskip("neurolns.sim.spiking")
    inp = sp.PoissonGroup(200, rate_hz=20.0)
    out = sp.NeuronGroup(50, sp.LIFParams(v_rest_mV=-65.0))
    conn = sp.fixed_probability(200, 50, 0.1, seed=0)
    syn = sp.Synapses(inp, out, conn, weight=2.0)
    mi, mo = sp.SpikeMonitor(inp), sp.SpikeMonitor(out)
    net = sp.Network(syn, mi, mo, seed=0)
    report = net.run(0.2, progress=False)
    fan_out = np.bincount(conn.i, minlength=200)
    expected = int(sum(fan_out[k] for k in mi.i))
    c = count_spiking(net, report)
    assert c.meta["exact_events"] and c.meta["synaptic_events"] == expected
    lc = c.layers[0]
    assert lc.count("add") == expected + 3 * 250 * report.steps  # one accumulate per event + LIF adds
    assert lc.count("mul") == 2 * 250 * report.steps and lc.macs == 0
    # without monitors the mean out-degree is the fallback
    bare = sp.Network(sp.Synapses(sp.PoissonGroup(200, rate_hz=20.0), sp.NeuronGroup(50), conn, weight=2.0), seed=0)
    r2 = bare.run(0.05, progress=False)
    c2 = count_spiking(bare, r2)
    assert not c2.meta["exact_events"]
    assert c2.meta["synaptic_events"] == pytest.approx(r2.spikes * bare.n_synapses / bare.n_neurons)
    e = price_layer(lc, "lns8", EnergyModel.preset())
    assert e.compute > 0 and e.total > e.compute
