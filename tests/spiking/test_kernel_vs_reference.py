"""The Numba time loop against the independent numpy float64 loop and closed-form solutions.

Deterministic networks (spike-generator inputs, nearest rounding) must give the
same spikes, the same final state and the same weights in both backends.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from neurolns.formats import LNS8, LNSFormat
from neurolns.sim.spiking import (
    STDP,
    LIFParams,
    Network,
    NeuronGroup,
    PoissonGroup,
    SpikeGeneratorGroup,
    SpikeMonitor,
    StateMonitor,
    Synapses,
    WeightMonitor,
    fixed_probability,
)


def _net(backend: str, rule_fmt):
    """Four neuron models, delays, float and LNS weights, and plastic projections."""
    rng = np.random.default_rng(7)
    n_in = 40
    times = np.round(rng.uniform(0, 0.2, 900), 4)
    idx = rng.integers(0, n_in, 900)
    key = np.unique(np.round(times * 1e4).astype(np.int64) * n_in + idx)
    gen = SpikeGeneratorGroup(n_in, key % n_in, (key // n_in) * 1e-4, name="gen")
    groups = [
        NeuronGroup(15, LIFParams(v_rest_mV=-65.0), v0_mV=rng.uniform(-60, -50, 15), name="cuba"),
        NeuronGroup(15, LIFParams(v_rest_mV=-65.0, integration="euler"), v0_mV=-58.0, name="cuba_euler"),
        NeuronGroup(15, LIFParams(v_rest_mV=-70.0, synapse="conductance", refractory_ms=2.0), name="coba"),
        NeuronGroup(15, LIFParams(v_rest_mV=-70.0, synapse="conductance", integration="euler"), name="coba_euler"),
    ]
    syns = []
    for k, g in enumerate(groups):
        cur = g.params.synapse.value == "current"
        w = 4.0 if cur else 0.15
        conn = fixed_probability(n_in, g.n, 0.3, seed=k)
        syns.append(Synapses(gen, g, conn, weight=w * rng.uniform(0.5, 1.0, conn.n_synapses),
                             weight_format=LNS8 if k % 2 else None, delay_ms=0.3 * k, name=f"in{k}"))
        rec = fixed_probability(g.n, g.n, 0.2, seed=10 + k)
        syns.append(Synapses(g, g, rec, weight=-2.0 if cur else 0.1, target="i", name=f"rec{k}"))
    # plastic projections onto the CUBA group, one per rule
    for r, (rule, fmt) in enumerate(rule_fmt):
        wmax = 3.0
        conn = fixed_probability(n_in, 15, 0.5, seed=20 + r)
        st = STDP(rule, w_max=wmax, a_plus=0.2, a_minus=0.25, rounding="nearest", third_factor=(r == 1),
                  mu_plus=0.5, mu_minus=1.0)
        syns.append(Synapses(gen, groups[r % 2], conn, weight=rng.uniform(0.2, 1.0, conn.n_synapses) * wmax,
                             plasticity=st, weight_format=fmt, name=f"plastic{r}"))
    mons = [SpikeMonitor(g) for g in groups] + [StateMonitor(groups[2], ("v", "ge"), record=[0, 3], every_ms=1.0)]
    wmons = [WeightMonitor(s, record=[0, 1, 2], every_ms=5.0) for s in syns if s.plasticity is not None]
    net = Network(*syns, *mons, *wmons, seed=1, backend=backend)
    return net, groups, syns, mons, wmons


RULES = [
    [("additive", None), ("soft_bound", None), ("log_domain", None)],
    [("additive", LNS8), ("log_domain", LNS8), ("soft_bound", LNSFormat(bits=12, gamma=64))],
]


@pytest.mark.parametrize("rule_fmt", RULES, ids=["float", "lns"])
def test_numba_equals_reference(rule_fmt):
    """Same spikes (times and indices), state within 1e-9 and weights within 1e-9 relative."""
    out = {}
    for backend in ("numba", "reference"):
        net, groups, syns, mons, wmons = _net(backend, rule_fmt)
        mod = np.where(np.arange(2000) % 700 < 500, 1, -1)
        net.run(0.2, modulator=mod, progress=False)
        out[backend] = (mons, groups, syns, wmons)
    (m1, g1, s1, w1), (m2, g2, s2, w2) = out["numba"], out["reference"]
    total = 0
    for a, b in zip(m1[:4], m2[:4]):
        assert np.array_equal(a.i, b.i) and np.allclose(a.t, b.t)
        assert np.array_equal(a.count, b.count)
        total += a.num_spikes
    assert total > 50  # the networks are active: the comparison means something
    for a, b in zip(g1, g2):
        assert np.allclose(a.v, b.v, atol=1e-9) and np.allclose(a.ge, b.ge, atol=1e-9)
    for a, b in zip(s1, s2):
        assert np.allclose(a.weights, b.weights, rtol=1e-9, atol=1e-12)
    assert np.allclose(m1[4].values["v"], m2[4].values["v"], atol=1e-9)
    for a, b in zip(w1, w2):
        assert a.w.shape == (40, 3) and np.allclose(a.w, b.w, rtol=1e-9)
    # plasticity did something
    assert any(not np.allclose(a.w[0], a.w[-1]) for a in w1)



def _full_net_run():
    """Spikes, state, weights and weight traces of :func:`_net` plus Poisson input and stochastic rounding."""
    net, groups, syns, mons, wmons = _net("numba", RULES[1])
    src = PoissonGroup(20, rate_hz=40.0)
    extra = Synapses(src, groups[0], fixed_probability(20, 15, 0.3, seed=3), weight=1.0,
                     plasticity=STDP("additive", w_max=3.0), weight_format=LNS8)
    net.add(extra)
    net.run(0.1, modulator=np.where(np.arange(1000) % 300 < 200, 1, -1), progress=False)
    return ([m.i for m in mons[:4]] + [m.t for m in mons[:4]] + [g.v for g in groups]
            + [s.weights for s in syns + [extra]] + [w.w for w in wmons])


def _cuba_run():
    """Spikes and state of a small CUBA network (current-based exact LIF and float weights only)."""
    from neurolns.models.cuba import CUBAConfig, build_cuba

    c = build_cuba(CUBAConfig(n=1000), seed=2)
    c.run(0.2, progress=False)
    return [c.spikes_exc.i, c.spikes_exc.t, c.spikes_inh.i, c.spikes_inh.t, c.exc.v, c.inh.ge]


@pytest.mark.parametrize("variant", ["every_feature", "touch"])
def test_kernel_variants_give_identical_runs(monkeypatch, variant):
    """The loop trimmed to a network's features equals the loop with every feature, and the
    pre-delivery pass over synapse rows (``touch``, on for large networks) changes nothing."""
    from neurolns.sim.spiking import _kernels as K
    from neurolns.sim.spiking import network as network_mod

    run = _cuba_run if variant == "every_feature" else _full_net_run
    trimmed = run()
    if variant == "touch":
        monkeypatch.setattr(K, "TOUCH_SYNAPSES", 0)
    else:
        monkeypatch.setattr(network_mod, "_features", lambda L, plan: dict.fromkeys(K.FEATURES, True))
    other = run()
    assert len(trimmed[0]) > 0
    for x, y in zip(trimmed, other):
        assert np.array_equal(x, y)


def test_runs_split_into_chunks_or_calls_equal_one_run():
    """Refractory state and the factored decay cross kernel calls: a 0.2 s run in chunks of
    7 steps equals one run bit for bit (spikes and final state). Two calls of 0.1 s give
    the same spikes; their state differs by the one extra rounding of ge/gi, folded back
    at the end of the first call (budget 1e-9 mV; measured 3e-14)."""
    from neurolns.models.cuba import CUBAConfig, build_cuba

    def run(*plan):
        c = build_cuba(CUBAConfig(n=1000), seed=4)
        for seconds, chunk in plan:
            c.run(seconds, chunk_steps=chunk, progress=False)
        return ([c.spikes_exc.i, c.spikes_exc.t, c.spikes_inh.i, c.exc.ref_until],
                [c.exc.v, c.inh.v, c.exc.ge, c.exc.gi, c.inh.ge])

    exact, state = run((0.2, None))
    assert exact[0].size > 100
    chunked = run((0.2, 7))
    for x, y in zip(exact + state, chunked[0] + chunked[1]):
        assert np.array_equal(x, y)
    calls = run((0.1, None), (0.1, None))
    for x, y in zip(exact, calls[0]):
        assert np.array_equal(x, y)
    for x, y in zip(state, calls[1]):
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-9)

def test_cuba_exact_integration_matches_closed_form():
    """Subthreshold v(t) = El + (v0−El)e^{−t/τm} + ge0 τe/(τe−τm)(e^{−t/τe} − e^{−t/τm}) to 1e-10 mV."""
    p = LIFParams(v_rest_mV=-70.0, v_thresh_mV=0.0, v_reset_mV=-80.0)
    g = NeuronGroup(1, p, v0_mV=-65.0)
    g.ge[:] = 3.0
    g.gi[:] = -1.0
    mon = StateMonitor(g, ("v",), record=[0], every_ms=0.1)
    Network(g, mon).run(0.05, progress=False)
    t = mon.t * 1e3
    tm, te, ti = p.tau_m_ms, p.tau_e_ms, p.tau_i_ms
    ref = (-70 + 5 * np.exp(-t / tm) + 3 * te / (te - tm) * (np.exp(-t / te) - np.exp(-t / tm))
           - 1 * ti / (ti - tm) * (np.exp(-t / ti) - np.exp(-t / tm)))
    assert np.max(np.abs(mon.v[:, 0] - ref)) < 1e-10


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_factored_decay_tracks_the_eager_decay_across_rebases(backend):
    """ge and gi of an exact CUBA group, kept as ĝ times a per-group factor that is folded back
    whenever it falls below 2^-24 (every 167 steps at τe = 1 ms), equal the step-by-step float64
    decay ge ← ge·e^{−dt/τe} + input (inputs direct and 0.5 ms delayed) to 1e-12 relative, in
    the monitor's samples and in the state after the run; v stays within 1e-9 mV of the eager
    propagator."""
    from neurolns.sim.spiking import _kernels as K
    from neurolns.sim.spiking import network as network_mod

    p = LIFParams(v_rest_mV=-70.0, v_thresh_mV=0.0, v_reset_mV=-80.0, tau_e_ms=1.0, tau_i_ms=2.0)
    g = NeuronGroup(2, p, v0_mV=-65.0)
    times = np.array([0.0012, 0.0305, 0.0306, 0.061, 0.0899])
    gen = SpikeGeneratorGroup(1, np.zeros(times.size, dtype=np.int64), times)
    conn = fixed_probability(1, 2, 1.0, seed=0)
    direct_e = Synapses(gen, g, conn, weight=[2.0, 1.5], target="e")
    late_i = Synapses(gen, g, conn, weight=[-1.0, -3.0], target="i", delay_ms=0.5)
    mon = StateMonitor(g, ("v", "ge", "gi"), record=[0, 1], every_ms=0.1)
    steps = 1000
    Network(direct_e, late_i, mon, backend=backend).run(steps * 1e-4, progress=False)
    assert K.REBASE_BELOW ** (1 / 166) < math.exp(-0.1) < K.REBASE_BELOW ** (1 / 167)  # rebases happen
    # eager float64 oracle, Brian2's order: sample, update (v with the old ge), then input lands
    _, _, f = network_mod._group_row(g, 0.1)
    pvv, pve, pvi, pee, pii = f[3:8]
    spike_step = np.rint(times * 1e4).astype(np.int64)
    v, ge, gi = np.full(2, -65.0), np.zeros(2), np.zeros(2)
    trace = {"v": [], "ge": [], "gi": []}
    for n in range(steps):
        trace["v"].append(v.copy()), trace["ge"].append(ge.copy()), trace["gi"].append(gi.copy())
        v = -70.0 + (v + 70.0) * pvv + ge * pve + gi * pvi
        ge, gi = ge * pee, gi * pii
        ge += np.array([2.0, 1.5]) * np.count_nonzero(spike_step == n)
        gi += np.array([-1.0, -3.0]) * np.count_nonzero(spike_step == n - 5)
    for var in ("ge", "gi"):
        np.testing.assert_allclose(mon.values[var], np.array(trace[var]), rtol=1e-12, atol=0)
    np.testing.assert_allclose(mon.values["v"], np.array(trace["v"]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.ge, ge, rtol=1e-12, atol=0)
    np.testing.assert_allclose(g.gi, gi, rtol=1e-12, atol=0)
    assert ge.min() > 1e-6 and gi.max() < -1e-6  # the last inputs are still there to compare


@pytest.mark.parametrize("backend, dtype", [("numba", "float64"), ("numba", "float32"), ("reference", "float64")])
def test_factored_decay_with_synapses_far_faster_than_dt(backend, dtype):
    """τe = 1e-4 ms and τi = 1e-3 ms against dt = 0.1 ms: Pee = e^-1000 is 0 in float64 and Pii
    = e^-100 is 0 in float32. The factor is rebased before any input lands, so 1/D stays at most
    2^24 and a factor that underflows clears ĝ: ge and gi stay finite, an input is gone one step
    later, and v equals the step-by-step float64 propagator (to 1e-9 mV; 1e-4 mV in float32)."""
    p = LIFParams(v_rest_mV=-70.0, v_thresh_mV=0.0, v_reset_mV=-80.0, tau_e_ms=1e-4, tau_i_ms=1e-3)
    g = NeuronGroup(2, p, v0_mV=-65.0)
    times = np.array([0.0012, 0.0031, 0.0032])
    gen = SpikeGeneratorGroup(1, np.zeros(3, dtype=np.int64), times)
    conn = fixed_probability(1, 2, 1.0, seed=0)
    syns = [Synapses(gen, g, conn, weight=[2.0, 1.5], target="e"),
            Synapses(gen, g, conn, weight=[-1.0, -3.0], target="i", delay_ms=0.5)]
    mon = StateMonitor(g, ("v", "ge", "gi"), record=[0, 1], every_ms=0.1)
    kw = dict(dtype=dtype) if backend == "numba" else {}
    Network(*syns, mon, backend=backend, **kw).run(0.005, progress=False)
    for var in ("v", "ge", "gi"):
        assert np.all(np.isfinite(mon.values[var])), var
    from neurolns.sim.spiking import network as network_mod

    _, _, f = network_mod._group_row(g, 0.1)
    pvv, pve, pvi, pee, pii = f[3:8]
    step = np.rint(times * 1e4).astype(np.int64)
    v, ge, gi = np.full(2, -65.0), np.zeros(2), np.zeros(2)
    trace = {"v": [], "ge": [], "gi": []}
    for n in range(50):
        trace["v"].append(v.copy()), trace["ge"].append(ge.copy()), trace["gi"].append(gi.copy())
        v = -70.0 + (v + 70.0) * pvv + ge * pve + gi * pvi
        ge, gi = ge * pee, gi * pii
        ge += np.array([2.0, 1.5]) * np.count_nonzero(step == n)
        gi += np.array([-1.0, -3.0]) * np.count_nonzero(step == n - 5)
    tol = 1e-9 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(mon.values["v"], np.array(trace["v"]), rtol=0, atol=tol)
    for var in ("ge", "gi"):  # each input is seen for one step, then gone
        np.testing.assert_allclose(mon.values[var], np.array(trace[var]), rtol=1e-6, atol=1e-30)
    assert np.count_nonzero(mon.values["ge"][:, 0]) == 3 and np.count_nonzero(np.abs(mon.values["gi"][:, 0]) > 0.5) == 3


def test_refractory_period_and_reset():
    """A neuron driven far above threshold fires every (refractory + 1) steps and resets to Vr."""
    p = LIFParams(v_rest_mV=0.0, v_thresh_mV=-50.0, v_reset_mV=-60.0, refractory_ms=2.0, tau_m_ms=0.01)
    g = NeuronGroup(1, p, v0_mV=-60.0)
    mon = SpikeMonitor(g)
    Network(g, mon).run(0.0105, progress=False)
    isi = np.diff(np.round(mon.t * 1e4).astype(int))
    assert np.all(isi == 20)


def test_delay_shifts_arrival():
    """A spike through a 1.5 ms delay reaches ge 15 steps later than without delay."""
    gen = SpikeGeneratorGroup(1, [0], [0.001])
    post = NeuronGroup(2, LIFParams(v_rest_mV=-70.0))
    c0 = fixed_probability(1, 2, 1.0)
    s0 = Synapses(gen, post, c0, weight=np.array([1.0, 0.0]))
    s1 = Synapses(gen, post, c0, weight=np.array([0.0, 1.0]), delay_ms=1.5)
    mon = StateMonitor(post, ("ge",), record=[0, 1], every_ms=0.1)
    Network(s0, s1, mon).run(0.005, progress=False)
    first = [int(np.argmax(mon.ge[:, k] > 0)) for k in range(2)]
    assert first[1] - first[0] == 15


def test_lns_log_domain_moves_codes_by_integer_steps():
    """With LNS weights the log-domain rule changes |code| by integers, never the sign; zero stays zero."""
    rng = np.random.default_rng(0)
    key = np.unique(rng.integers(0, 5000, 400) * 20 + rng.integers(0, 20, 400))
    gen = SpikeGeneratorGroup(20, key % 20, (key // 20) * 1e-4)
    post = NeuronGroup(4, LIFParams(v_rest_mV=-45.0))
    w0 = rng.uniform(-1, 1, 80)
    w0[:5] = 0.0
    st = STDP("log_domain", w_max=1.0, a_plus=0.3, a_minus=0.3)
    s = Synapses(gen, post, fixed_probability(20, 4, 1.0), weight=w0, plasticity=st, weight_format=LNS8)
    c0 = s.codes.astype(int).copy()
    Network(s, seed=3).run(0.5, progress=False)
    c1 = s.codes.astype(int)
    assert np.all(c1[:5] == 0)
    nz = c0 != 0
    assert np.all(np.sign(c1[nz]) == np.sign(c0[nz]))
    assert np.any(c1 != c0)
    cap = math.floor(8 * math.log2(1.0 / s.scale) + LNS8.bias + 1e-9)
    assert np.abs(c1).max() <= cap


def test_same_seed_same_spikes_and_different_seed_differs():
    """Poisson sources and stochastic rounding are reproducible from the network seed."""
    from neurolns.sim.spiking import PoissonGroup

    def run(seed):
        src = PoissonGroup(50, rate_hz=30.0)
        mon = SpikeMonitor(src)
        Network(src, mon, seed=seed).run(0.2, progress=False)
        return mon.i.copy(), mon.t.copy()

    a, b, c = run(5), run(5), run(6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (a[0].size == c[0].size and np.array_equal(a[0], c[0]))


@pytest.mark.parametrize("carry", ["reused_group", "ref_until_by_hand"])
def test_refractory_state_from_before_the_run_matches_reference(carry):
    """Neurons refractory for longer than the refractory period when a run starts (a group reused in a
    new network, whose steps restart at 0, or ``ref_until`` written by hand) are released on time:
    the compiled loop (one and two threads) gives the reference loop's spikes and potentials."""
    out = []
    for backend, threads in (("reference", 1), ("numba", 1), ("numba", 2)):
        rng = np.random.default_rng(11)
        g = NeuronGroup(64, LIFParams(v_rest_mV=-49.0), v0_mV=rng.uniform(-60, -50, 64))
        rec = Synapses(g, g, fixed_probability(64, 64, 0.1, seed=3), weight=0.4)
        if carry == "reused_group":
            Network(rec, backend=backend).run(0.02, progress=False)
        else:
            g.ref_until[:5] = [10**6, 300, 120, 80, 60]
        mon = SpikeMonitor(g)
        Network(rec, mon, backend=backend, threads=threads).run(0.05, progress=False)
        out.append((mon.t, mon.i, g.v.copy()))
    assert out[0][0].size > 50
    for t, i, v in out[1:]:
        np.testing.assert_array_equal(t, out[0][0])
        np.testing.assert_array_equal(i, out[0][1])
        np.testing.assert_allclose(v, out[0][2], rtol=0, atol=1e-9)
