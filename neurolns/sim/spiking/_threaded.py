"""The spiking time loop split over threads, each owning a range of neurons.

Thread ``t`` owns neurons ``bounds[t] .. bounds[t+1]-1``: their state (v, ge,
gi, refractory clocks), their threshold crossings, and every synapse that
targets them. One step is

1. update, threshold and reset of the own neurons; their spikes go to the own
   slice of ``spk_now`` (``spk_now[bounds[t]:]``);
2. barrier: every thread's spikes of this step are known;
3. delayed input due now, into the own neurons; thread 0 records the step's
   spikes for the monitors;
4. delivery of *every* spike of the step, but only through the synapses whose
   target is an own neuron (each row of synapses, sorted by target, is cut at
   the thread bounds beforehand: ``seg_split``);
5. barrier: every input of this step has landed.

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

Why threads: at 40,000 neurons a step streams 1.9 MB of neuron state, more
than one core's 1 MB L2; split over two cores each half stays in its core's
L2, and the delivery's random scatter and row reads are halved per core.
"""
from __future__ import annotations

import threading

import numpy as np

from neurolns._jit import jit
from neurolns.sim.spiking import _sync
from neurolns.sim.spiking._kernels import (
    CUBA_EXACT,
    P_LNS,
    P_STORE,
    P_SYNBASE,
    _add_row,
    _lif_cuba_exact,
    _lif_generic,
    _prefetch_row,
    _prefetch_segments,
    _target,
)

#: what a threaded loop may be compiled with (each switched-off feature is left out)
FEATURES = ("exact", "generic", "delays", "float_w", "lns_w", "touch", "record")
#: serial-loop features a network must not use to run threaded
SERIAL_ONLY = ("poisson", "generators", "plastic", "state_mon", "weight_mon")
#: thread bounds are multiples of this many neurons (8 float64 = one cache line), so that
#: no cache line of v, ge or gi is written by two threads
ALIGN = 8


def threadable(features: dict) -> bool:
    """Whether a network with these serial-loop ``features`` can run in the threaded loop."""
    return not any(features.get(f, False) for f in SERIAL_ONLY)


def thread_bounds(n_neurons: int, n_threads: int) -> np.ndarray:
    """Neuron ranges of ``n_threads`` threads: ``bounds[t] .. bounds[t+1]``, near-equal, aligned."""
    b = [min(n_neurons, int(round(u * n_neurons / n_threads / ALIGN)) * ALIGN) for u in range(n_threads + 1)]
    b[-1] = n_neurons
    return np.asarray(b, dtype=np.int64)


def split_rows(syn_post: np.ndarray, seg_lo: np.ndarray, seg_hi: np.ndarray, bounds: np.ndarray):
    """Cut every synapse row at the thread bounds; None when a row is not sorted by thread.

    Returns ``seg_split`` of shape (segments, threads + 1): the synapses of row
    ``sg`` that target thread ``t``'s neurons are ``seg_split[sg, t] ..
    seg_split[sg, t+1]-1``. Rows from :class:`Connectivity` are sorted by
    target, so each row's synapses of one thread are contiguous.
    """
    n_threads = bounds.size - 1
    n_seg = seg_lo.size
    split = np.empty((n_seg, n_threads + 1), dtype=np.int64)
    split[:, 0] = seg_lo
    split[:, -1] = seg_hi
    if n_seg == 0:
        return split
    owner = np.searchsorted(bounds[1:-1], syn_post, side="right").astype(np.int16)
    # within a row the owner may only grow; a decrease is allowed only where a row starts
    starts = np.zeros(syn_post.size + 1, dtype=np.bool_)
    starts[seg_lo] = True
    if np.any((np.diff(owner) < 0) & ~starts[1:-1]):
        return None
    for u in range(1, n_threads):
        before = np.zeros(syn_post.size + 1, dtype=np.int64)
        np.cumsum(owner < u, out=before[1:])
        split[:, u] = seg_lo + before[seg_hi] - before[seg_lo]
    return split


def _make_worker(exact, generic, delays, float_w, lns_w, touch, record):
    """The per-thread time loop for the features (:data:`FEATURES`) a network uses."""

    def worker(t, n_threads, n0, n1, bounds, gint, gflt, v, ge, gi, ref_until,
               seg_ptr, seg_proj, seg_a, seg_b, syn_post, pint, w_f, codes, dec_tab, inbuf,
               counts, rec, n_rec, spk_step, spk_idx, spk_n, pop, spk_now, n_spk,
               held_k, held_v, n_held, up, flags):
        """Thread ``t``'s part of steps ``n0 .. n1-1``; returns the first step not done, -1 if aborted.

        The synapses of row ``sg`` onto this thread's neurons are ``seg_a[sg] .. seg_b[sg]-1``.
        ``n_spk[u * LINE]`` is one past thread ``u``'s last spike of the step in
        ``spk_now``; ``n_held[g * n_threads + t]`` counts the refractory neurons of
        group ``g`` held by thread ``t``; ``up`` is this thread's block flags.
        Every thread returns the same step.
        """
        lo_t = bounds[t]
        hi_t = bounds[t + 1]
        n_groups = gint.shape[0]
        n_delay = inbuf.shape[0]
        cap = spk_step.shape[0]
        phase = 0
        if exact:
            for g in range(n_groups):
                if gint[g, 2] == CUBA_EXACT:
                    lo = max(gint[g, 0], lo_t)
                    m = lo
                    for k in range(lo, min(gint[g, 1], hi_t)):
                        if n0 < ref_until[k]:
                            held_k[m] = k
                            held_v[m] = v[k]
                            m += 1
                    n_held[g * n_threads + t] = m - lo
        for n in range(n0, n1):
            # spk_n changes only between the barriers, so every thread stops at the same step
            if spk_n[0] + n_rec > cap:
                return n
            row = n - n0
            # ---- update, threshold and reset of the own neurons
            ns = np.int64(lo_t)
            for g in range(n_groups):
                lo = max(gint[g, 0], lo_t)
                hi = min(gint[g, 1], hi_t)
                if hi <= lo:
                    continue
                kind = gint[g, 2]
                ns0 = ns
                if kind == CUBA_EXACT:
                    if exact:
                        f = gflt[g]
                        c = g * n_threads + t
                        ns = _lif_cuba_exact(n, lo, hi, gint[g, 3], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                                             v, ge, gi, ref_until, spk_now, ns, held_k[lo:hi], held_v[lo:hi],
                                             n_held[c: c + 1], up)
                elif generic:
                    f = gflt[g]
                    ns = _lif_generic(kind, n, lo, hi, gint[g, 3], f[0], f[1], f[2], f[3], f[4], f[5], f[8],
                                      f[9], v, ge, gi, ref_until, spk_now, ns)
                pop[t, row, g] += ns - ns0
            for q in range(lo_t, ns):
                counts[spk_now[q]] += 1
            n_spk[t * _sync.LINE] = ns
            phase += 1
            if not _sync.barrier(flags, t, n_threads, phase):
                return -1
            # ---- delayed input due now, into the own neurons
            if delays:
                if n_delay > 1:
                    slot = n % n_delay
                    ges = ge[lo_t:hi_t]
                    gis = gi[lo_t:hi_t]
                    de = inbuf[slot, 0, lo_t:hi_t]
                    di = inbuf[slot, 1, lo_t:hi_t]
                    for q in range(hi_t - lo_t):
                        ges[q] += de[q]
                        gis[q] += di[q]
                        de[q] = 0.0
                        di[q] = 0.0
            # ---- the monitors' record of this step's spikes, in index order
            if record:
                if t == 0:
                    m = spk_n[0]
                    for u in range(n_threads):
                        for q in range(bounds[u], n_spk[u * _sync.LINE]):
                            k = spk_now[q]
                            if rec[k]:
                                spk_step[m] = n
                                spk_idx[m] = k
                                m += 1
                    spk_n[0] = m
            # ---- every spike, through the synapses onto the own neurons
            if touch:
                for u in range(n_threads):
                    _prefetch_segments(spk_now, bounds[u], n_spk[u * _sync.LINE], seg_ptr, seg_a, seg_b, seg_proj)
            for pass_ in range(0 if touch else 1, 2):
                for u in range(n_threads):
                    for q in range(bounds[u], n_spk[u * _sync.LINE]):
                        k = spk_now[q]
                        for sg in range(seg_ptr[k], seg_ptr[k + 1]):
                            a = seg_a[sg]
                            b = seg_b[sg]
                            if b <= a:
                                continue
                            p = seg_proj[sg]
                            widx0 = pint[p, P_STORE] - pint[p, P_SYNBASE]
                            if pass_ == 0:
                                _prefetch_row(syn_post, codes, w_f, a, b, widx0, pint[p, P_LNS] != 0)
                                continue
                            target = _target(n, p, ge, gi, inbuf, pint, delays)
                            _add_row(target, syn_post, codes, w_f, dec_tab, a, b, widx0, p, pint, float_w, lns_w)
            phase += 1
            if not _sync.barrier(flags, t, n_threads, phase):
                return -1
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

    def __init__(self, worker, n_threads: int, bounds: np.ndarray, seg_split: np.ndarray, n_neurons: int,
                 n_groups: int, chunk: int):
        from neurolns.sim.spiking._kernels import BLOCK

        self.worker = worker
        self.n_threads = n_threads
        self.bounds = bounds
        # thread t's cut of every row: its own two columns, contiguous
        self.seg_a = [np.ascontiguousarray(seg_split[:, t]) for t in range(n_threads)]
        self.seg_b = [np.ascontiguousarray(seg_split[:, t + 1]) for t in range(n_threads)]
        self.flags = np.zeros(_sync.flags_size(n_threads), dtype=np.int64)
        self.n_spk = np.zeros(n_threads * _sync.LINE, dtype=np.int64)
        self.n_held = np.zeros(n_groups * n_threads, dtype=np.int64)
        # each thread's block flags on cache lines of their own (written every step)
        self.up = np.zeros((n_threads, -(-(n_neurons // BLOCK + 2) // 64) * 64), dtype=np.bool_)
        self.pop = np.zeros((n_threads, chunk, n_groups), dtype=np.int32)

    def __call__(self, n0, n1, L, counts, rec, n_rec, spk_step, spk_idx, spk_n, pop, spk_now, held_k, held_v):
        T = self.n_threads
        self.flags[:] = 0
        self.pop[:] = 0
        results = [None] * T
        errors = []

        def body(t):
            try:
                results[t] = self.worker(t, T, n0, n1, self.bounds, L.gint, L.gflt, L.v, L.ge, L.gi, L.ref_until,
                                         L.seg_ptr, L.seg_proj, self.seg_a[t], self.seg_b[t], L.syn_post, L.pint, L.w_f,
                                         L.codes, L.dec_tab, L.inbuf, counts, rec, n_rec, spk_step, spk_idx,
                                         spk_n, self.pop, spk_now, self.n_spk, held_k, held_v, self.n_held,
                                         self.up[t], self.flags)
            except BaseException as exc:  # release the others from their barrier wait
                errors.append(exc)
                _abort(self.flags, T)

        # a thread that compiles (or loads from the disk cache) first holds Numba's compile
        # lock; the other waits for it there, before the first barrier
        others = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(1, T)]
        for th in others:
            th.start()
        body(0)
        for th in others:
            th.join()
        if errors:
            raise errors[0]
        reached = int(results[0])
        rows = max(reached - n0, 0)
        pop[:rows] += self.pop[:, :rows].sum(axis=0, dtype=np.int32)
        return reached


def _abort(flags: np.ndarray, n_threads: int) -> None:
    flags[n_threads * _sync.LINE] = 1
