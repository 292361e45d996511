"""Monitors: Brian2-like SpikeMonitor arrays, rates, sampling, and the memory budget."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from neurolns.sim.spiking import (
    LIFParams,
    MemoryBudgetError,
    Network,
    NeuronGroup,
    PoissonGroup,
    RateMonitor,
    SpikeMonitor,
    StateMonitor,
    cv_isi,
    mean_cv_isi,
)


def test_spike_monitor_matches_counts_and_rate_monitor():
    """t (s, float64) and i (int32) as Brian2 gives them; counts, trains and population rate agree."""
    src = PoissonGroup(200, rate_hz=40.0)
    sm, rm = SpikeMonitor(src), RateMonitor(src)
    net = Network(src, sm, rm, seed=2)
    net.run(0.25, progress=False)
    net.run(0.25, progress=False)  # monitors continue across runs
    assert sm.t.dtype == np.float64 and sm.i.dtype == np.int32
    assert np.all(np.diff(sm.t) >= 0) and sm.t.max() < 0.5
    assert np.array_equal(np.bincount(sm.i, minlength=200), sm.count)
    assert rm.counts.sum() == sm.num_spikes and rm.rate.size == 5000
    # Poisson count over 0.5 s: mean 20 per source, within 5 sigma of the total
    assert abs(sm.num_spikes - 4000) < 5 * np.sqrt(4000)
    trains = sm.spike_trains()
    assert sum(len(v) for v in trains.values()) == sm.num_spikes


def test_partial_recording_keeps_counts():
    src = PoissonGroup(50, rate_hz=50.0)
    sm = SpikeMonitor(src, record=[3, 7])
    Network(src, sm, seed=0).run(0.2, progress=False)
    assert set(np.unique(sm.i)) <= {3, 7}
    assert sm.count.sum() > sm.num_spikes


def test_state_monitor_shapes():
    g = NeuronGroup(5, LIFParams(v_rest_mV=-40.0))
    mon = StateMonitor(g, ("v", "gi"), record=[1, 4], every_ms=1.0)
    Network(g, mon).run(0.02, progress=False)
    assert mon.v.shape == (20, 2) and mon.gi.shape == (20, 2)
    assert np.allclose(np.diff(mon.t), 1e-3)
    with pytest.raises(ValueError):
        StateMonitor(g, ("w",))


def test_budget_raises_before_allocating_fixed_recordings():
    """A StateMonitor that would need 80 MB under a 1 MB budget fails before anything runs."""
    g = NeuronGroup(100)
    mon = StateMonitor(g, ("v",), record=True, every_ms=0.1)
    net = Network(g, mon, memory_budget_mb=1.0)
    with pytest.raises(MemoryBudgetError, match="memory_budget_mb"):
        net.run(10.0, progress=False)
    assert net.step == 0


def test_budget_stops_spike_recording_during_a_run():
    """Spikes past the budget raise MemoryBudgetError; what was recorded stays within it."""
    src = PoissonGroup(1000, rate_hz=1000.0)
    sm = SpikeMonitor(src)
    net = Network(src, sm, seed=0, memory_budget_mb=0.5)
    with pytest.raises(MemoryBudgetError):
        net.run(5.0, progress=False)
    assert sm.nbytes <= 0.5 * 2**20
    assert 0 < net.step < 50000


def test_cv_isi_oracle():
    """Regular train: CV 0; Poisson train: CV ≈ 1 (within 0.05 for 20000 intervals)."""
    t = np.arange(1, 11) * 0.1
    assert cv_isi(t, np.zeros(10, int), 1)[0] == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    tp = np.cumsum(rng.exponential(0.01, 20000))
    assert abs(mean_cv_isi(tp, np.zeros(tp.size, int), 1) - 1.0) < 0.05


def test_import_is_light():
    """Importing the package pulls in neither brian2 nor torch."""
    code = "import sys, neurolns.sim.spiking, neurolns.models.cuba; print('brian2' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
