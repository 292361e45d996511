"""The threaded time loop against the serial one, and the barrier it rests on.

Invariant: a network run on T threads gives bit-identical spikes, rates and
final state to the same network run on one thread (each neuron sees the same
operations in the same order), for every neuron model, float and LNS weights,
delays, and chunked runs. The serial loop is itself checked against the numpy
float64 reference (test_kernel_vs_reference.py).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns.formats import LNS8
from neurolns.sim.spiking import (
    STDP,
    LIFParams,
    Network,
    NeuronGroup,
    PoissonGroup,
    RateMonitor,
    SpikeMonitor,
    StateMonitor,
    Synapses,
    fixed_probability,
    from_lists,
)
from neurolns.sim.spiking import _sync
from neurolns.sim.spiking import _threaded as TH


def _recurrent(threads: int, budget_mb: float = 1024.0, lns_fmt=LNS8):
    """Four neuron models driven above threshold, recurrent float and LNS weights, delays."""
    rng = np.random.default_rng(3)
    groups = [
        NeuronGroup(300, LIFParams(v_rest_mV=-49.0), v0_mV=rng.uniform(-60, -50, 300), name="cuba"),
        NeuronGroup(90, LIFParams(v_rest_mV=-48.0, integration="euler"), v0_mV=rng.uniform(-60, -50, 90),
                    name="cuba_euler"),
        NeuronGroup(101, LIFParams(v_rest_mV=-45.0, synapse="conductance", refractory_ms=2.0),
                    v0_mV=rng.uniform(-60, -50, 101), name="coba"),
        NeuronGroup(77, LIFParams(v_rest_mV=-45.0, synapse="conductance", integration="euler"),
                    v0_mV=rng.uniform(-60, -50, 77), name="coba_euler"),
    ]
    syns = []
    for a, ga in enumerate(groups):
        for b, gb in enumerate(groups):
            cur = gb.params.synapse.value == "current"
            conn = fixed_probability(ga.n, gb.n, 0.1, seed=10 * a + b)
            exc = (a + b) % 2 == 0
            w = (1.0 if exc else -2.0) if cur else (0.02 if exc else 0.05)
            syns.append(Synapses(ga, gb, conn, weight=w * rng.uniform(0.5, 1.0, conn.n_synapses),
                                 target="e" if exc else "i", weight_format=lns_fmt if (a * 4 + b) % 3 == 0 else None,
                                 delay_ms=0.2 * ((a + b) % 3), name=f"p{a}{b}"))
    mons = [SpikeMonitor(g) for g in groups] + [RateMonitor(groups[0])]
    net = Network(*syns, *mons, seed=5, threads=threads, memory_budget_mb=budget_mb)
    return net, groups, mons


def _outcome(net, groups, mons):
    """Spikes (times, indices, counts, population counts) and final v/ge/gi/refractory state."""
    L = net._layout
    return [np.concatenate([m.t for m in mons[:4]]), np.concatenate([m.i for m in mons[:4]]),
            np.concatenate([m.count for m in mons[:4]]), mons[4].counts,
            L.v.copy(), L.ge.copy(), L.gi.copy(), L.ref_until.copy()]


def _assert_same_outcome(run_a, run_b):
    """Two runs of :func:`_recurrent` ended with the same spikes and state, bit for bit."""
    for a, b in zip(_outcome(*run_a), _outcome(*run_b), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_give_bit_identical_runs(threads):
    """Spikes, counts, population rates and final v/ge/gi/refractory state equal the serial loop's, exactly."""
    net1, g1, m1 = _recurrent(1)
    r1 = net1.run(0.15, progress=False)
    netT, gT, mT = _recurrent(threads)
    rT = netT.run(0.15, progress=False)
    assert r1.threads == 1 and rT.threads == threads
    assert r1.spikes == rT.spikes > 500
    _assert_same_outcome((net1, g1, m1), (netT, gT, mT))


def test_threads_identical_across_chunks_and_runs():
    """Several runs in small chunks change nothing."""
    net1, g1, m1 = _recurrent(1)
    net2, g2, m2 = _recurrent(2)
    for net in (net1, net2):
        for _ in range(3):
            net.run(0.03, progress=False, chunk_steps=97)
    _assert_same_outcome((net1, g1, m1), (net2, g2, m2))


def test_threads_stop_together_when_the_spike_buffer_fills(monkeypatch):
    """A spike buffer too small for a chunk makes every thread stop at the same step; the run goes on unchanged."""
    calls = []
    real_call = TH.ThreadedChunk.__call__

    def counted(self, n0, n1, *args):
        reached = real_call(self, n0, n1, *args)
        calls.append((n0, n1, reached))
        return reached

    monkeypatch.setattr(TH.ThreadedChunk, "__call__", counted)
    # 0.03 MB: a buffer of about 1,300 spikes, less than the 800-step chunk holds
    net1, g1, m1 = _recurrent(1, budget_mb=0.03)
    net2, g2, m2 = _recurrent(2, budget_mb=0.03)
    for net in (net1, net2):
        net.run(0.08, progress=False, chunk_steps=800)
    assert len(calls) >= 2 and calls[0][2] < calls[0][1]  # the first call stopped early
    _assert_same_outcome((net1, g1, m1), (net2, g2, m2))


def test_moving_bounds_between_chunks_changes_nothing(monkeypatch):
    """Bounds that follow the measured work (moved after every chunk here) leave spikes and state bit-identical."""
    moves = []
    real = TH.ThreadedChunk.rebalance

    def rebalance(self):
        self.busy[:: _sync.LINE] = np.array([1 + len(moves) % 3, 2]) * 10**6  # pretend an imbalance
        moved = real(self)
        moves.append(moved)
        return moved

    monkeypatch.setattr(TH.ThreadedChunk, "rebalance", rebalance)
    monkeypatch.setattr(TH, "REBALANCE_STEPS", 50)
    net1, g1, m1 = _recurrent(1)
    net2, g2, m2 = _recurrent(2)
    for net in (net1, net2):
        net.run(0.1, progress=False, chunk_steps=100)
    assert sum(moves) >= 3
    _assert_same_outcome((net1, g1, m1), (net2, g2, m2))


def test_rebalance_gives_the_faster_thread_more_neurons():
    """Thread 0 took 3x the cycles of thread 1 for equal ranges: it gets about a quarter of the neurons."""
    net, _, _ = _recurrent(2)
    net.run(0.001, progress=False)
    L = net._layout
    bounds = TH.thread_bounds(L.N, 2)
    chunk = TH.ThreadedChunk(TH.worker_for(), 2, {2: (bounds, TH.split_rows(L.syn_post, L.seg_lo, L.seg_hi, bounds))},
                             L.syn_post, L.seg_lo, L.seg_hi, L.N, len(net.groups), 10)
    chunk.busy[:: _sync.LINE] = [3_000_000, 1_000_000]
    assert chunk.rebalance()
    assert abs(chunk.bounds[1] - L.N / 4) <= TH.ALIGN
    chunk.busy[:: _sync.LINE] = [1_000_000, 1_050_000]  # within REBALANCE_GAP: stays
    assert not chunk.rebalance()


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_split_rows_matches_a_search_per_row(data):
    """Rows sorted by target are cut where a binary search puts each bound (numpy oracle)."""
    n_rows = data.draw(st.integers(1, 20))
    n = data.draw(st.integers(8, 400))
    rows = [np.sort(data.draw(st.lists(st.integers(0, n - 1), max_size=30))) for _ in range(n_rows)]
    threads = data.draw(st.integers(2, 5))
    bounds = TH.thread_bounds(n, threads)
    syn_post = np.concatenate(rows + [np.zeros(0)]).astype(np.uint32)
    hi = np.cumsum([r.size for r in rows])
    lo = hi - [r.size for r in rows]
    expected = np.array([[a + np.searchsorted(r, b) for b in bounds[:-1]] + [a + r.size] for a, r in zip(lo, rows)])
    expected[:, 0] = lo
    # the checking pass, and the binary search for rows known to be sorted
    np.testing.assert_array_equal(TH.split_rows(syn_post, lo, hi, bounds), expected)
    np.testing.assert_array_equal(TH.split_rows(syn_post, lo, hi, bounds, rows_sorted=True), expected)


def test_networks_the_threaded_loop_cannot_run_run_serially():
    """Poisson sources, plasticity and state monitors fall back to one thread, with the same result."""
    outs = []
    for threads in (1, 2):
        rng = np.random.default_rng(0)
        inp = PoissonGroup(200, rate_hz=30.0)
        out = NeuronGroup(400, LIFParams(v_rest_mV=-65.0), v0_mV=rng.uniform(-65, -50, 400))
        syn = Synapses(inp, out, fixed_probability(200, 400, 0.1, seed=1), weight=3.0)
        mon = SpikeMonitor(out)
        net = Network(syn, mon, seed=1, threads=threads)
        rep = net.run(0.1, progress=False)
        assert rep.threads == 1
        outs.append((mon.t, mon.i))
    assert outs[0][0].size > 10
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    net, groups, _ = _recurrent(2)
    net.add(StateMonitor(groups[0], ("v",), record=[0]))
    assert net.run(0.01, progress=False).threads == 1
    pre, post = NeuronGroup(50, LIFParams()), NeuronGroup(50, LIFParams())
    plastic = Synapses(pre, post, fixed_probability(50, 50, 0.2, seed=2), weight=0.005, plasticity=STDP("additive"))
    assert Network(plastic, threads=2).run(0.01, progress=False).threads == 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_threads_without_neurons_of_a_group_keep_its_decay_factors(dtype):
    """Each thread keeps its own copy of every exact group's decay factors and advances them
    even for a group it owns no neuron of (CUBA on 3 threads: thread 0 owns no inhibitory
    neuron, and its copy is the one folded back into ge/gi). 0.25 s holds three rebases of ge
    (steps 832, 1664, 2496) and one of gi; spikes and final state equal one thread's bit for bit."""
    from neurolns.models.cuba import CUBAConfig, build_cuba

    runs = []
    for threads in (1, 3):
        c = build_cuba(CUBAConfig(n=2000), seed=6, threads=threads, dtype=dtype)
        rep = c.run(0.25, progress=False)
        assert rep.threads == threads
        lo_inh = c.network._layout.lo[id(c.inh)]
        if threads == 3:
            assert c.network._layout.thread_split[3][0][1] <= lo_inh  # thread 0 owns no inhibitory neuron
        runs.append([c.spikes_exc.i, c.spikes_exc.t, c.spikes_inh.i, c.exc.v, c.inh.v, c.exc.ge, c.exc.gi,
                     c.inh.ge, c.inh.gi])
    assert runs[0][2].size > 100
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_an_aborted_threaded_run_leaves_ge_and_gi_true(monkeypatch):
    """A chunk that fails after thread 0 finished it (as a Ctrl-C raised when the worker returns)
    must leave ge/gi folded with the threads' own decay factors: equal, bit for bit, to a clean
    run of the same steps, not scaled by the factors from the start of the chunk."""
    from neurolns.models.cuba import CUBAConfig, build_cuba

    clean = build_cuba(CUBAConfig(n=2000), seed=8, threads=2)
    clean.run(0.02, progress=False, chunk_steps=100)
    real = TH.worker_for
    calls = []

    def failing_worker_for(**features):
        worker = real(**features)

        def wrapped(t, *args):
            out = worker(t, *args)
            if t == 0:
                calls.append(out)
                if len(calls) == 2:
                    raise KeyboardInterrupt
            return out

        return wrapped

    monkeypatch.setattr(TH, "worker_for", failing_worker_for)
    hit = build_cuba(CUBAConfig(n=2000), seed=8, threads=2)
    with pytest.raises(KeyboardInterrupt):
        hit.run(0.05, progress=False, chunk_steps=100)
    assert calls == [100, 200]  # two chunks done, the second interrupted as it returned
    L = hit.network._layout
    assert np.all(L.dec == 1)
    for a, b in ((clean.exc.ge, hit.exc.ge), (clean.exc.gi, hit.exc.gi), (clean.inh.ge, hit.inh.ge),
                 (clean.exc.v, hit.exc.v)):
        np.testing.assert_array_equal(a, b)


def test_rows_not_sorted_by_target_run_serially():
    """``split_rows`` refuses rows whose targets are not grouped by thread; the network then runs on one thread."""
    syn_post = np.array([5, 1, 2, 7], dtype=np.uint32)  # one row: 5 (thread 1), 1, 2 (thread 0), 7
    bounds = np.array([0, 4, 8])
    assert TH.split_rows(syn_post, np.array([0]), np.array([4]), bounds) is None
    ok = np.array([1, 2, 5, 7, 0, 6], dtype=np.uint32)  # rows [1 2 5 7] and [0 6]
    split = TH.split_rows(ok, np.array([0, 4]), np.array([4, 6]), bounds)
    np.testing.assert_array_equal(split, [[0, 2, 4], [4, 5, 6]])
    g = NeuronGroup(16, LIFParams(v_rest_mV=-49.0), v0_mV=np.linspace(-60, -50, 16))
    conn = from_lists(16, 16, [0, 0, 0], [12, 3, 9])
    if np.all(np.diff(conn.j) >= 0):  # pragma: no cover - the constructor may sort rows
        pytest.skip("connectivity sorted the row")
    assert not conn.rows_sorted and fixed_probability(30, 30, 0.3, seed=1).rows_sorted
    net = Network(Synapses(g, g, conn, weight=1.0), threads=2)
    assert net.run(0.01, progress=False).threads == 1


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5000), threads=st.integers(1, 9))
def test_thread_bounds_cover_the_neurons_in_aligned_ranges(n, threads):
    """Bounds start at 0, end at n, never decrease, fall on multiples of ALIGN and split near evenly."""
    b = TH.thread_bounds(n, threads)
    assert b[0] == 0 and b[-1] == n and b.size == threads + 1
    assert np.all(np.diff(b) >= 0)
    inner = b[1:-1]
    assert np.all((inner % TH.ALIGN == 0) | (inner == n))  # a range may end at n, or be empty
    # near-equal: no range longer than an even share plus one alignment step
    assert np.diff(b).max() <= -(-n // threads) + TH.ALIGN


@pytest.mark.parametrize("bad, err", [(0, ValueError), (10_000, ValueError), (1.5, TypeError), (True, TypeError)])
def test_threads_out_of_range_raise(bad, err):
    """A thread count that is not an int in [1, 256] is refused, at construction and when set later."""
    with pytest.raises(err, match="threads"):
        Network(threads=bad)
    net = Network()
    with pytest.raises(err, match="threads"):
        net.threads = bad


def test_barrier_orders_memory_between_threads():
    """After each barrier a thread sees what the other wrote before it (2,000 rounds, both directions)."""
    from neurolns._jit import jit

    @jit
    def rounds(t, flags, data, errors, n_rounds):
        other = 1 - t
        phase = 0
        for r in range(1, n_rounds + 1):
            data[t * 8] = r
            phase += 1
            _sync.barrier(flags, t, 2, phase)
            if data[other * 8] != r:
                errors[t * 8] += 1
            phase += 1
            _sync.barrier(flags, t, 2, phase)
        return 0

    flags = np.zeros(_sync.flags_size(2), dtype=np.int64)
    data = np.zeros(16, dtype=np.int64)
    errors = np.zeros(16, dtype=np.int64)
    rounds(0, np.zeros(_sync.flags_size(2), dtype=np.int64), np.zeros(16, np.int64), np.zeros(16, np.int64), 0)
    th = threading.Thread(target=rounds, args=(1, flags, data, errors, 2000))
    th.start()
    rounds(0, flags, data, errors, 2000)
    th.join()
    assert errors.sum() == 0
    assert flags[0] == flags[8] == 4000


def test_a_failing_thread_releases_the_others():
    """An exception in one thread aborts the barrier wait of the others and reaches the caller."""
    net, _, _ = _recurrent(2)
    net.run(0.001, progress=False)  # builds the layout and compiles
    L = net._layout
    feats = dict(exact=True, generic=True, delays=True, float_w=True, lns_w=True, touch=False, record=True)
    real = TH.worker_for(**feats)

    def worker(t, *args):
        if t == 1:
            raise RuntimeError("thread 1 failed")
        return real(t, *args)

    bounds = TH.thread_bounds(L.N, 2)
    split = TH.split_rows(L.syn_post, L.seg_lo, L.seg_hi, bounds)
    chunk = TH.ThreadedChunk(worker, 2, {2: (bounds, split)}, L.syn_post, L.seg_lo, L.seg_hi, L.N, len(net.groups),
                             50)
    cap = 10_000
    args = (np.zeros(L.N, np.int64), np.ones(L.N, np.bool_), L.N, np.empty(cap, np.int64), np.empty(cap, np.int32),
            np.zeros(1, np.int64), np.zeros((50, len(net.groups)), np.int32), np.empty(L.N, np.int64),
            np.empty(L.N))
    done = []
    th = threading.Thread(target=lambda: done.append(pytest.raises(RuntimeError, chunk, 10, 60, L, *args)))
    th.start()
    th.join(timeout=60)
    assert not th.is_alive(), "the surviving thread kept waiting at the barrier"
    assert done and "thread 1 failed" in str(done[0].value)


def test_a_thread_that_cannot_start_leaves_no_thread_waiting(monkeypatch):
    """If starting a thread fails, the started ones leave their barrier wait and the error reaches the caller."""
    net, _, _ = _recurrent(3)
    net.run(0.001, progress=False)  # compiles
    real_start = threading.Thread.start
    calls = []

    def start(self):
        calls.append(self)
        if len(calls) == 2:
            raise RuntimeError("cannot start thread")
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="cannot start thread"):
        net.run(0.01, progress=False)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    calls[0].join(timeout=30)
    assert not calls[0].is_alive()


def test_dtype_is_fixed_at_construction():
    """The layout is built for one dtype, so reassigning it after construction is refused."""
    net = Network(dtype="float32")
    with pytest.raises(AttributeError):
        net.dtype = "float64"
