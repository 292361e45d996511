"""The spiking time loop split over threads, each owning a range of neurons.

Thread ``t`` owns neurons ``bounds[t] .. bounds[t+1]-1``: their state (v, ge,
gi, refractory clocks), their threshold crossings, and every synapse that
targets them. One step is

1. update, threshold and reset of the own neurons; their spikes go to the own
   slice of the step's spike buffer (``spk_now[n % 2, bounds[t]:]``);
2. barrier: every thread's spikes of this step are known;
3. delayed input due now, into the own neurons; thread 0 records the step's
   spikes for the monitors;
4. delivery of *every* spike of the step, but only through the synapses whose
   target is an own neuron (each row of synapses, sorted by target, is cut at
   the thread bounds beforehand: ``seg_split``).

One barrier a step is enough. A thread's delivery writes only its own
neurons, which only it updates in the next step, so no thread waits for the
others' input to land. What the barrier has to guard is the spike buffer,
read by every thread: spike buffers alternate between two by step parity.
A thread can only write the buffer of step n again at step n + 2, after the
barrier of step n + 1, which every thread reaches only once done with step n.
The stop test for a full spike record needs the record's length before the
barrier, so every thread counts the recorded spikes itself (the same count in
every thread), and only thread 0 writes the record.

Nothing is written by two threads, and every neuron sees the same operations
in the same order as in the serial loop (spikes in ascending index, each
row's synapses in order): spike trains and state are bit-identical to
:func:`neurolns.sim.spiking._kernels.run_chunk`, whatever the thread count.
The serial loop stays the reference of this one (it is itself checked against
the numpy float64 loop).

What runs threaded: LIF groups (current- or conductance-based), float or LNS
weights, delays, spike monitors and rate monitors. Poisson sources and
generators (one random stream, one event cursor), plasticity (a spike changes
the weights of synapses owned by other threads), and state and weight
monitors run in the serial loop; :func:`threadable` says which a network is.

Why threads: at 40,000 neurons the update reads 0.96 MB of neuron state a
step (v, ge, gi in float64), more than one core's 512 KB L2 (AMD Zen 3);
split over two cores each half nearly fits its core's L2, and the delivery's
random scatter and row reads are halved per core.
"""
from __future__ import annotations

import threading

import numpy as np

from neurolns._cpu import cycles
from neurolns._jit import jit
from neurolns.sim.spiking import _sync
from neurolns.sim.spiking._kernels import (
    CUBA_EXACT,
    D_E,
    D_I,
    GENERATOR,
    P_LNS,
    P_SHARED,
    P_STORE,
    P_SYNBASE,
    P_TAB,
    _add_float,
    _add_lns,
    _add_shared,
    _due_input,
    init_held,
    _lif_cuba_exact,
    _lif_generic,
    _prefetch_rows,
    _scale,
    _target,
)

#: what a threaded loop may be compiled with (each switched-off feature is left out)
FEATURES = ("exact", "generic", "delays", "float_w", "lns_w", "touch", "record")
#: serial-loop features a network must not use to run threaded
SERIAL_ONLY = ("poisson", "generators", "plastic", "state_mon", "weight_mon")
#: steps a chunk must have run for its measured work to move the thread bounds
REBALANCE_STEPS = 200
#: the bounds move only when one thread worked this much longer than another
REBALANCE_GAP = 1.1
#: thread bounds are multiples of this many neurons (8 float64, the size of a cache line),
#: so that at most one cache line of v, ge or gi at each bound is written by two threads
#: (numpy does not align arrays to cache lines)
ALIGN = 8


def threadable(features: dict) -> bool:
    """Whether a network with these serial-loop ``features`` can run in the threaded loop."""
    return not any(features.get(f, False) for f in SERIAL_ONLY)


def thread_bounds(n_neurons: int, n_threads: int) -> np.ndarray:
    """Neuron ranges of ``n_threads`` threads: ``bounds[t] .. bounds[t+1]``, near-equal, aligned."""
    b = [min(n_neurons, int(round(u * n_neurons / n_threads / ALIGN)) * ALIGN) for u in range(n_threads + 1)]
    b[-1] = n_neurons
    return np.asarray(b, dtype=np.int64)


def split_rows(syn_post: np.ndarray, seg_lo: np.ndarray, seg_hi: np.ndarray, bounds: np.ndarray,
               rows_sorted: bool = False):
    """Cut every synapse row at the thread bounds; None when a row is not sorted by thread.

    Returns ``seg_split`` of shape (segments, threads + 1): the synapses of row
    ``sg`` that target thread ``t``'s neurons are ``seg_split[sg, t] ..
    seg_split[sg, t+1]-1``. Rows from :class:`Connectivity` are sorted by
    target, so each row's synapses of one thread are contiguous.

    ``rows_sorted=True`` (every row known to ascend,
    :attr:`Connectivity.rows_sorted`) cuts each row by binary search, a few
    probes a bound instead of a pass over every synapse (CUBA 40k: 2 ms
    against 4.5 ms); otherwise one pass checks the order as it cuts.
    """
    split = np.empty((seg_lo.size, bounds.size), dtype=np.int64)
    args = (syn_post, np.asarray(seg_lo, dtype=np.int64), np.asarray(seg_hi, dtype=np.int64),
            np.asarray(bounds, dtype=np.int64), split)
    if rows_sorted:
        _split_sorted_rows(*args)
        return split
    return split if _split_rows(*args) else None


@jit
def _split_sorted_rows(syn_post, seg_lo, seg_hi, bounds, split):
    # rows ascend: each inner bound's cut is the first synapse with a target >= it
    n_threads = bounds.shape[0] - 1
    for sg in range(seg_lo.shape[0]):
        a = seg_lo[sg]
        b = seg_hi[sg]
        split[sg, 0] = a
        lo = a
        for u in range(1, n_threads):
            hi = b
            while lo < hi:
                mid = (lo + hi) >> 1
                if syn_post[mid] < bounds[u]:
                    lo = mid + 1
                else:
                    hi = mid
            split[sg, u] = lo
        split[sg, n_threads] = b


@jit
def _split_rows(syn_post, seg_lo, seg_hi, bounds, split):
    # one pass over each row: the owner of its targets may only grow along it
    n_threads = bounds.shape[0] - 1
    for sg in range(seg_lo.shape[0]):
        a = seg_lo[sg]
        b = seg_hi[sg]
        split[sg, 0] = a
        u = 0
        for s in range(a, b):
            j = syn_post[s]
            if j < bounds[u]:
                return False
            while u < n_threads - 1 and j >= bounds[u + 1]:
                u += 1
                split[sg, u] = s
        while u < n_threads - 1:
            u += 1
            split[sg, u] = b
        split[sg, n_threads] = b
    return True


def _make_worker(exact, generic, delays, float_w, lns_w, touch, record):
    """The per-thread time loop for the features (:data:`FEATURES`) a network uses."""

    def worker(t, n_threads, n0, n1, bounds, gint, gflt, v, ge, gi, ref_until,
               seg_ptr, seg_proj, seg_a, seg_b, syn_post, pint, w_f, codes, dec_tab, inbuf,
               counts, rec, n_rec, spk_step, spk_idx, spk_n, pop, spk_now, n_spk,
               held_k, held_v, n_held, up, busy, flags, dec):
        """Thread ``t``'s part of steps ``n0 .. n1-1``; returns the first step not done, -1 if aborted.

        The synapses of row ``sg`` onto this thread's neurons are ``seg_a[sg] .. seg_b[sg]-1``.
        ``spk_now`` (2 × N) holds the spikes of even and odd steps, and
        ``n_spk[n % 2, u * LINE]`` is one past thread ``u``'s last spike of step ``n``
        in ``spk_now[n % 2]``; ``n_held[(g n_threads + t) LINE :][:2]`` is the ring of group
        ``g``'s refractory neurons held by thread ``t``; ``up`` is this thread's block flags;
        ``busy[t * LINE]`` gets the cycles this thread worked (waits excluded).
        ``dec`` is this thread's copy of the groups' factored decay
        (:mod:`~neurolns.sim.spiking._kernels`): every thread advances every
        group's factors alike, so the copies stay equal.
        Every thread returns the same step.
        """
        lo_t = bounds[t]
        hi_t = bounds[t + 1]
        n_groups = gint.shape[0]
        n_delay = inbuf.shape[0]
        cap = spk_step.shape[0]
        phase = 0
        # spikes recorded so far: the same count in every thread, so all stop at the same step
        m = spk_n[0]
        for n in range(n0, n1):
            if m + n_rec > cap:
                return n
            row = n - n0
            par = n % 2
            spk = spk_now[par]
            c0 = cycles()
            # ---- update, threshold and reset of the own neurons
            ns = np.int64(lo_t)
            for g in range(n_groups):
                lo = max(gint[g, 0], lo_t)
                hi = min(gint[g, 1], hi_t)
                kind = gint[g, 2]
                if hi <= lo:
                    if kind != CUBA_EXACT:
                        continue
                    hi = lo  # none of its neurons here: the call only advances its decay factors
                ns0 = ns
                if kind == CUBA_EXACT:
                    if exact:
                        f = gflt[g]
                        c = (g * n_threads + t) * _sync.LINE
                        ns = _lif_cuba_exact(n, lo, hi, gint[g, 3], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                                             v, ge, gi, ref_until, spk, ns, held_k[lo:hi], held_v[lo:hi],
                                             n_held[c: c + 2], up, dec[g])
                elif kind != GENERATOR and generic:  # (a generator without events)
                    f = gflt[g]
                    ns = _lif_generic(kind, n, lo, hi, gint[g, 3], f[0], f[1], f[2], f[3], f[4], f[5], f[8],
                                      f[9], v, ge, gi, ref_until, spk, ns)
                pop[t, row, g] += ns - ns0
            for q in range(lo_t, ns):
                counts[spk[q]] += 1
            n_spk[par, t * _sync.LINE] = ns
            c1 = cycles()
            phase += 1
            if not _sync.barrier(flags, t, n_threads, phase):
                return -1
            c2 = cycles()
            # ---- delayed input due now, into the own neurons
            if delays:
                if n_delay > 1:
                    _due_input(n % n_delay, inbuf, ge, gi, gint, dec, lo_t, hi_t)
            # ---- the monitors' record of this step's spikes, in index order (thread 0 writes it)
            if record:
                for u in range(n_threads):
                    for q in range(bounds[u], n_spk[par, u * _sync.LINE]):
                        k = spk[q]
                        if rec[k]:
                            if t == 0:
                                spk_step[m] = n
                                spk_idx[m] = k
                            m += 1
                if t == 0:
                    spk_n[0] = m
            # ---- every spike, through the synapses onto the own neurons
            if touch:
                for u in range(n_threads):
                    _prefetch_rows(spk, bounds[u], n_spk[par, u * _sync.LINE], seg_ptr, seg_a, seg_b, seg_proj,
                                   syn_post, codes, w_f, pint)
            for u in range(n_threads):
                for q in range(bounds[u], n_spk[par, u * _sync.LINE]):
                    k = spk[q]
                    for sg in range(seg_ptr[k], seg_ptr[k + 1]):
                        a = seg_a[sg]
                        b = seg_b[sg]
                        if b <= a:
                            continue
                        p = seg_proj[sg]
                        widx0 = pint[p, P_STORE] - pint[p, P_SYNBASE]
                        target = _target(n, p, ge, gi, inbuf, pint, delays)
                        sc = _scale(p, pint, dec, delays)
                        if pint[p, P_LNS] != 0:
                            if lns_w:
                                _add_lns(target, syn_post, codes, dec_tab, a, b, widx0, pint[p, P_TAB], sc)
                        elif float_w:
                            if pint[p, P_SHARED] != 0:
                                _add_shared(target, syn_post, a, b, w_f[pint[p, P_STORE]] * sc)
                            else:
                                _add_float(target, syn_post, w_f, a, b, widx0, sc)
            # this thread's work of the step, without the wait (to balance the ranges)
            busy[t * _sync.LINE] += (c1 - c0) + (cycles() - c2)
        return n1

    return jit(worker)


_WORKERS = {}


def worker_for(**features):
    """The threaded loop with the named :data:`FEATURES` compiled in (built lazily; unnamed = on)."""
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise TypeError(f"unknown features {sorted(unknown)}; allowed: {FEATURES}")
    key = tuple(bool(features.get(f, True)) for f in FEATURES)
    fn = _WORKERS.get(key)
    if fn is None:
        fn = _WORKERS[key] = _make_worker(*key)
    return fn


class ThreadedChunk:
    """Runs chunks of steps on ``n_threads`` threads; the caller's thread is thread 0.

    Holds the per-thread scratch of one :meth:`Network.run`. Called with the
    serial loop's state arrays; returns the first step not done, like the
    serial loop.
    """

    def __init__(self, worker, n_threads: int, cuts: dict, syn_post, seg_lo, seg_hi, n_neurons: int,
                 n_groups: int, chunk: int, rows_sorted: bool = False):
        from neurolns.sim.spiking._kernels import BLOCK

        self.worker = worker
        self.n_threads = n_threads
        self.n_neurons = n_neurons
        self._rows = (syn_post, seg_lo, seg_hi)
        self._rows_sorted = rows_sorted
        self._cuts = cuts
        self._set_cut(*cuts[n_threads])
        self.flags = np.zeros(_sync.flags_size(n_threads), dtype=np.int64)
        # the spike buffers of even and odd steps, and each thread's end of its slice in them
        self.spk_now = np.empty((2, n_neurons), dtype=np.int32)
        self.n_spk = np.zeros((2, n_threads * _sync.LINE), dtype=np.int64)
        self.busy = np.zeros(n_threads * _sync.LINE, dtype=np.int64)
        # [head, count] of each (group, thread) ring, one cache line each (written every step)
        self.n_held = np.zeros(n_groups * n_threads * _sync.LINE, dtype=np.int64)
        # each thread's block flags on cache lines of their own (written every step)
        self.up = np.zeros((n_threads, -(-(n_neurons // BLOCK + 2) // 64) * 64), dtype=np.bool_)
        self.pop = np.zeros((n_threads, chunk, n_groups), dtype=np.int32)

    def _set_cut(self, bounds: np.ndarray, seg_split: np.ndarray) -> None:
        self.bounds = bounds
        # thread t's cut of every row: its own two columns, contiguous
        self.seg_a = [np.ascontiguousarray(seg_split[:, t]) for t in range(self.n_threads)]
        self.seg_b = [np.ascontiguousarray(seg_split[:, t + 1]) for t in range(self.n_threads)]

    def rebalance(self) -> bool:
        """Move the bounds so that each thread's share of neurons matches its measured speed.

        A thread's speed is its neurons per cycle worked in the last chunk;
        work per neuron differs between ranges (a range may hold more
        inhibitory rows, or share its core). The new bounds apply from the
        next chunk (and the next run); spikes do not depend on them.
        Returns whether the bounds moved.
        """
        busy = self.busy[:: _sync.LINE].astype(np.float64)
        sizes = np.diff(self.bounds).astype(np.float64)
        if busy.min() <= 0 or sizes.min() <= 0 or busy.max() < REBALANCE_GAP * busy.min():
            return False
        speed = sizes / busy
        share = np.concatenate([[0.0], np.cumsum(speed / speed.sum())])
        new = np.minimum((np.rint(share * self.n_neurons / ALIGN) * ALIGN).astype(np.int64), self.n_neurons)
        new[-1] = self.n_neurons
        if np.any(np.diff(new) <= 0) or np.abs(new - self.bounds).max() < ALIGN:
            return False
        split = split_rows(*self._rows, new, self._rows_sorted)
        if split is None:  # rows sorted for the old bounds only: keep them
            return False
        self._cuts[self.n_threads] = (new, split)
        self._set_cut(new, split)
        return True

    def __call__(self, n0, n1, L, counts, rec, n_rec, spk_step, spk_idx, spk_n, pop, held_k, held_v):
        T = self.n_threads
        # the rings of refractory neurons, per group and thread range (the bounds may have moved)
        for g in range(L.gint.shape[0]):
            if L.gint[g, 2] == CUBA_EXACT:
                for t in range(T):
                    lo = max(int(L.gint[g, 0]), int(self.bounds[t]))
                    hi = max(min(int(L.gint[g, 1]), int(self.bounds[t + 1])), lo)
                    c = (g * T + t) * _sync.LINE
                    init_held(n0, lo, hi, L.v, L.ref_until, held_k, held_v, self.n_held[c: c + 2])
        self.flags[:] = 0
        self.busy[:] = 0
        self.pop[:] = 0
        decs = _thread_copies(L.dec, T)
        results = [None] * T
        errors = []

        def body(t):
            try:
                results[t] = self.worker(t, T, n0, n1, self.bounds, L.gint, L.gflt, L.v, L.ge, L.gi, L.ref_until,
                                         L.seg_ptr, L.seg_proj, self.seg_a[t], self.seg_b[t], L.syn_post, L.pint, L.w_f,
                                         L.codes, L.dec_tab, L.inbuf, counts, rec, n_rec, spk_step, spk_idx,
                                         spk_n, self.pop, self.spk_now, self.n_spk, held_k, held_v, self.n_held,
                                         self.up[t], self.busy, self.flags, decs[t])
            except BaseException as exc:  # release the others from their barrier wait
                errors.append(exc)
                _abort(self.flags, T)

        # a thread that compiles (or loads from the disk cache) first holds Numba's compile
        # lock; the other waits for it there, before the first barrier
        others = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(1, T)]
        started = []
        try:
            for th in others:
                th.start()
                started.append(th)
        except BaseException:  # the started ones would wait at the first barrier for ever
            _abort(self.flags, T)
            for th in started:
                th.join()
            self._fold_each(L, decs)
            raise
        body(0)
        try:
            for th in started:
                th.join()
        except BaseException:  # interrupted while waiting: stop the others before the state is read
            _abort(self.flags, T)
            for th in started:
                th.join()
            self._fold_each(L, decs)
            raise
        if errors:
            self._fold_each(L, decs)
            raise errors[0]
        L.dec[:] = decs[0]
        reached = int(results[0])
        rows = max(reached - n0, 0)
        pop[:rows] += self.pop[:, :rows].sum(axis=0, dtype=np.int32)
        if rows >= REBALANCE_STEPS:
            self.rebalance()
        return reached


    def _fold_each(self, L, decs) -> None:
        """After an aborted chunk: fold each thread's own factors into its own neurons' ge/gi.

        Threads may have stopped at different steps, so their copies of the
        factors differ; each thread's ĝ agree with its own copy.
        """
        for g in range(L.gint.shape[0]):
            if L.gint[g, 2] != CUBA_EXACT:
                continue
            for t in range(self.n_threads):
                lo = max(int(L.gint[g, 0]), int(self.bounds[t]))
                hi = min(int(L.gint[g, 1]), int(self.bounds[t + 1]))
                if hi > lo:
                    L.ge[lo:hi] *= decs[t][g, D_E]
                    L.gi[lo:hi] *= decs[t][g, D_I]
        L.dec[:] = 1


def _thread_copies(dec: np.ndarray, n_threads: int) -> list:
    """Each thread's copy of the decay table, on cache lines of its own (every thread writes
    its copy every step; copies sharing a line would bounce it between cores)."""
    size = dec.size
    line = 64 // dec.itemsize
    width = -(-size // line) * line + line  # a line of padding: no two copies share one
    rows = np.empty((n_threads, width), dtype=dec.dtype)
    rows[:, :size] = dec.reshape(-1)
    return [rows[t, :size].reshape(dec.shape) for t in range(n_threads)]


def _abort(flags: np.ndarray, n_threads: int) -> None:
    flags[n_threads * _sync.LINE] = 1
