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


def test_shared_weights_are_counted_as_one_stored_weight_and_no_reads():
    """A projection with one shared weight stores one weight and reads none per event; the
    same network with the weight per synapse reads one per event (oracle: the recorded
    spikes times the fan-out). Events, adds and spikes are the same."""
    sp = pytest.importorskip("neurolns.sim.spiking")
    out = {}
    for shared in (False, True):
        inp = sp.PoissonGroup(200, rate_hz=20.0)
        cells = sp.NeuronGroup(50, sp.LIFParams(v_rest_mV=-52.0))
        conn = sp.fixed_probability(200, 50, 0.1, seed=0)
        rec = sp.fixed_probability(50, 50, 0.2, seed=1)
        syns = [sp.Synapses(inp, cells, conn, weight=2.0, shared=shared),
                sp.Synapses(cells, cells, rec, weight=np.linspace(-1, -0.5, rec.n_synapses))]
        mi, mc = sp.SpikeMonitor(inp), sp.SpikeMonitor(cells)
        net = sp.Network(*syns, mi, mc, seed=0)
        c = count_spiking(net, net.run(0.2, progress=False))
        ff = float(np.bincount(conn.i, minlength=200)[mi.i].sum())
        recurrent = float(np.bincount(rec.i, minlength=50)[mc.i].sum())
        out[shared] = (c, ff, recurrent, conn.n_synapses, rec.n_synapses)
    (c0, ff, recurrent, n_ff, n_rec), (c1, *_rest) = out[False], out[True]
    assert ff > 0 and recurrent > 0
    assert c0.meta["synaptic_events"] == c1.meta["synaptic_events"] == ff + recurrent
    assert c0.meta["weight_reads"] == ff + recurrent and c1.meta["weight_reads"] == recurrent
    assert c0.params == n_ff + n_rec and c1.params == 1 + n_rec
    assert c0.layers[0].count("add") == c1.layers[0].count("add")
    # the estimate without monitors spreads events over synapses in proportion
    bare = sp.Network(sp.Synapses(sp.PoissonGroup(200, rate_hz=20.0), sp.NeuronGroup(50), conn, weight=2.0,
                                  shared=True), seed=0)
    assert count_spiking(bare, bare.run(0.05, progress=False)).meta["weight_reads"] == 0


def test_weight_reads_beyond_the_events_are_refused():
    """spiking_counts takes 0 <= weight_reads <= synaptic_events."""
    from neurolns.accounting import spiking_counts

    with pytest.raises(ValueError, match="weight_reads"):
        spiking_counts("x", neuron_updates=10, synaptic_events=5, weight_reads=6)
