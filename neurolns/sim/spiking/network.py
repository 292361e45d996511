"""The network: flattens groups and projections into arrays and runs the Numba loop.

The whole time loop runs in Numba (:func:`neurolns.sim.spiking._kernels.run_chunk`);
Python only runs between chunks (to move recorded spikes out, check the memory
budget and advance the progress bar). ``backend="reference"`` runs the same
network through the plain numpy float64 loop instead, for checking.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np

from neurolns._jit import _DISABLED as _JIT_DISABLED
from neurolns.formats import Underflow, _check_int, _StrEnum
from neurolns.sim.spiking import _kernels as K
from neurolns.sim.spiking import _threaded
from neurolns.sim.spiking.monitors import (
    MemoryBudgetError,
    RateMonitor,
    SpikeMonitor,
    StateMonitor,
    WeightMonitor,
    _every_steps,
)
from neurolns.sim.spiking.neurons import (
    Integration,
    NeuronGroup,
    PoissonGroup,
    SpikeGeneratorGroup,
    SynapseModel,
    _Group,
)
from neurolns.sim.spiking.plasticity import STDPRule
from neurolns.sim.spiking.synapses import Synapses, Target

__all__ = ["Backend", "Network", "RunReport"]

_SPIKE_BYTES = 12  # float64 time + int32 index per recorded spike
_MAX_BUFFER = 1 << 22
_MAX_THREADS = 256


class Backend(_StrEnum):
    """``NUMBA``: the compiled loop. ``REFERENCE``: the numpy float64 loop (slow; for checks)."""

    NUMBA = "numba"
    REFERENCE = "reference"


@dataclass(frozen=True)
class RunReport:
    """What one :meth:`Network.run` did: steps, wall time (s) and spike count."""

    steps: int
    wall_s: float
    spikes: int
    backend: str
    threads: int = 1


class _Layout:
    """The flat arrays the kernel walks (built once, reused while the network is unchanged)."""


def _group_row(g: _Group, dt_ms: float):
    """Kind id, refractory steps and the 10 float parameters of a group."""
    f = np.zeros(10)
    if isinstance(g, PoissonGroup):
        return K.POISSON, 0, f
    if isinstance(g, SpikeGeneratorGroup):
        return K.GENERATOR, 0, f
    p = g.params
    f[0], f[1], f[2] = p.v_rest_mV, p.v_thresh_mV, p.v_reset_mV
    f[8], f[9] = p.E_e_mV, p.E_i_mV
    refs = int(round(p.refractory_ms / dt_ms))
    dm, de, di = dt_ms / p.tau_m_ms, dt_ms / p.tau_e_ms, dt_ms / p.tau_i_ms
    if p.synapse is SynapseModel.CURRENT and p.integration is Integration.EXACT:
        pvv, pee, pii = math.exp(-dm), math.exp(-de), math.exp(-di)

        def coupling(tau_s, p_ss):
            # ge's contribution to v after dt: τs/(τs − τm) (e^{−dt/τs} − e^{−dt/τm})
            if abs(tau_s - p.tau_m_ms) < 1e-12 * p.tau_m_ms:
                return dm * pvv
            return tau_s / (tau_s - p.tau_m_ms) * (p_ss - pvv)

        f[3:8] = pvv, coupling(p.tau_e_ms, pee), coupling(p.tau_i_ms, pii), pee, pii
        return K.CUBA_EXACT, refs, f
    if p.synapse is SynapseModel.CURRENT:
        f[3:6] = dm, de, di
        return K.CUBA_EULER, refs, f
    if p.integration is Integration.EXPONENTIAL_EULER:
        f[3:6] = dm, math.exp(-de), math.exp(-di)
        return K.COBA_EXPEULER, refs, f
    f[3:6] = dm, de, di
    return K.COBA_EULER, refs, f


class Network:
    """A spiking network: groups, projections and monitors, stepped with dt.

    Parameters
    ----------
    *objects
        Groups, :class:`Synapses` and monitors (more with :meth:`add`). The
        groups a projection or monitor refers to are added with it.
    dt_ms : float
        Time step (ms), default 0.1 (Brette et al. 2007).
    seed : int, optional
        Seed of the Poisson sources and of stochastic rounding; the same seed
        and network give the same spikes.
    memory_budget_mb : float
        Upper bound on what monitors hold (MB); a run that would pass it raises
        :class:`MemoryBudgetError` before allocating.
    backend : {"numba", "reference"}
    threads : int
        Threads of the Numba loop (default 1). With more, each thread owns a
        range of neurons: their update and every synapse onto them. Spikes and
        state are bit-identical to one thread's. Networks with Poisson sources,
        spike generators, plasticity, or state and weight monitors, and synapse
        rows not sorted by target, run on one thread (``RunReport.threads``
        says what ran), as does everything with ``NEUROLNS_DISABLE_JIT=1``.
        Worth it from a few thousand neurons, on cores that are free: threads
        wait for each other once a step.
    dtype : {"float64", "float32"}
        Floating-point type of the neuron state (v, ge, gi, in mV), of the
        neuron constants, of float weights and of decoded LNS weights.
        float64 (default) is what the numpy reference and Brian2 use by
        default; float32 halves the state's memory traffic, as Brian2's
        ``prefs.core.default_float_dtype = float32`` does. Groups and
        projections then hold float32 views of the network's arrays.
        Plasticity traces and rules still compute in float64.

    Examples
    --------
    >>> from neurolns.sim.spiking import (LIFParams, Network, NeuronGroup, PoissonGroup,
    ...                                   SpikeMonitor, Synapses, fixed_probability)
    >>> inp = PoissonGroup(200, rate_hz=20.0)
    >>> out = NeuronGroup(50, LIFParams(v_rest_mV=-65.0))
    >>> syn = Synapses(inp, out, fixed_probability(200, 50, 0.1, seed=0), weight=2.0)
    >>> mon = SpikeMonitor(out)
    >>> net = Network(syn, mon, seed=0)
    >>> _ = net.run(0.2, progress=False)
    >>> round(net.t, 6)
    0.2
    """

    def __init__(self, *objects, dt_ms: float = 0.1, seed=None, memory_budget_mb: float = 1024.0,
                 backend="numba", threads: int = 1, dtype="float64"):
        dt = float(dt_ms)
        if not (math.isfinite(dt) and 0 < dt <= 10):
            raise ValueError(f"dt_ms={dt} is out of range; allowed: 0 < dt_ms <= 10")
        mb = float(memory_budget_mb)
        if not mb > 0:
            raise ValueError(f"memory_budget_mb={mb} is out of range; allowed: > 0")
        self.dt_ms = dt
        self.memory_budget_mb = mb
        self.backend = Backend(backend)
        self._dtype = _state_dtype(dtype)
        if self._dtype != np.float64 and self.backend is Backend.REFERENCE:
            raise ValueError(f"dtype={self.dtype.name} needs backend='numba'; the reference backend runs float64 only")
        self.threads = threads
        self.groups: list[_Group] = []
        self.synapses: list[Synapses] = []
        self.monitors: list = []
        self.step = 0
        self._runs = 0
        self._seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is not None else None
        self._layout = None
        self.add(*objects)

    @property
    def dtype(self) -> np.dtype:
        """Float type of the neuron state and weights (set at construction)."""
        return self._dtype

    @property
    def threads(self) -> int:
        """Threads of the Numba loop (see the class docstring); settable between runs."""
        return self._threads

    @threads.setter
    def threads(self, threads) -> None:
        _check_int("threads", threads, 1, _MAX_THREADS)
        self._threads = int(threads)

    # -- construction -------------------------------------------------------
    def add(self, *objects) -> None:
        """Add groups, projections or monitors (and the groups they refer to)."""
        for obj in objects:
            if isinstance(obj, _Group):
                if obj not in self.groups:
                    self.groups.append(obj)
            elif isinstance(obj, Synapses):
                self.add(obj.pre, obj.post)
                if obj not in self.synapses:
                    self.synapses.append(obj)
            elif isinstance(obj, (SpikeMonitor, RateMonitor, StateMonitor)):
                self.add(obj.group)
                self.monitors.append(obj)
            elif isinstance(obj, WeightMonitor):
                self.add(obj.synapses)
                self.monitors.append(obj)
            elif isinstance(obj, (list, tuple)):
                self.add(*obj)
            else:
                raise TypeError(f"cannot add {type(obj).__name__} to a Network")
        self._layout = None

    @property
    def t(self) -> float:
        """Current time (s)."""
        return self.step * self.dt_ms * 1e-3

    @property
    def n_neurons(self) -> int:
        return sum(g.n for g in self.groups)

    @property
    def n_synapses(self) -> int:
        return sum(s.n_synapses for s in self.synapses)

    def offset(self, group: _Group) -> int:
        """Index of ``group``'s first neuron in the network's flat arrays."""
        off = 0
        for g in self.groups:
            if g is group:
                return off
            off += g.n
        raise ValueError(f"{group!r} is not in this network")

    # -- flattening ---------------------------------------------------------
    def _stale(self) -> bool:
        L = self._layout
        if L is None:
            return True
        for s, (w, c) in zip(self.synapses, L.storage):
            if s.w is not w or s.codes is not c:
                return True
        # a state array replaced (not written in place) must be copied in again
        return any(g.v is not v for g, v in L.group_state)

    def _build(self) -> _Layout:
        L = _Layout()
        dt = self.dt_ms
        n_groups = len(self.groups)
        offs = np.cumsum([0] + [g.n for g in self.groups])
        N = int(offs[-1])
        L.N = N
        L.lo = {id(g): int(offs[k]) for k, g in enumerate(self.groups)}
        L.group_index = {id(g): k for k, g in enumerate(self.groups)}
        L.gint = np.zeros((n_groups, 4), dtype=np.int64)
        fdt = self.dtype
        L.gflt = np.zeros((n_groups, 10), dtype=fdt)
        L.v = np.zeros(N, dtype=fdt)
        L.ge = np.zeros(N, dtype=fdt)
        L.gi = np.zeros(N, dtype=fdt)
        L.ref_until = np.full(N, np.iinfo(np.int64).min // 2, dtype=np.int64)
        # each group's factored decay of ge/gi (neurolns.sim.spiking._kernels): 1 between runs
        L.dec = np.ones((n_groups, K.N_DEC), dtype=fdt)
        L.p_spike = np.zeros(N)
        L.p_next = np.zeros(N, dtype=np.int64)
        gen_s, gen_i, gen_g = [], [], []
        for k, g in enumerate(self.groups):
            a, b = int(offs[k]), int(offs[k + 1])
            kind, refs, f = _group_row(g, dt)
            L.gint[k] = a, b, kind, refs
            L.gflt[k] = f
            if isinstance(g, NeuronGroup):
                # state lives in the flat arrays from now on; the group keeps views
                for name in ("v", "ge", "gi", "ref_until"):
                    flat = getattr(L, name)
                    flat[a:b] = getattr(g, name)
                    setattr(g, name, flat[a:b])
            elif isinstance(g, PoissonGroup):
                p = g.rate_hz * dt * 1e-3
                if np.any(p > 1):
                    raise ValueError(f"{g.name}: rate_hz·dt must be <= 1; got max {p.max():.3g}")
                L.p_spike[a:b] = p
            else:
                steps = np.rint(g.times_s * 1e3 / dt).astype(np.int64)
                key = steps * g.n + g.indices
                if np.unique(key).size != key.size:
                    raise ValueError(f"{g.name}: a source spikes twice in one time step (dt={dt} ms)")
                gen_s.append(steps)
                gen_i.append(g.indices + a)
                gen_g.append(np.full(steps.size, k))
        if gen_s:
            s, i, gg = np.concatenate(gen_s), np.concatenate(gen_i), np.concatenate(gen_g)
            order = np.argsort(s, kind="stable")
            L.gen_step, L.gen_idx, L.gen_grp = s[order], i[order].astype(np.int32), gg[order]
        else:
            L.gen_step = np.zeros(0, dtype=np.int64)
            L.gen_idx = np.zeros(0, dtype=np.int32)
            L.gen_grp = np.zeros(0, dtype=np.int64)
        self._build_synapses(L)
        return L

    def _build_synapses(self, L: _Layout) -> None:
        dt = self.dt_ms
        syns = self.synapses
        P = len(syns)
        L.pint = np.zeros((P, K.N_PINT), dtype=np.int64)
        L.pf = np.zeros((P, K.N_PFLT))
        lns_fmts = [s.weight_format for s in syns if s.weight_format is not None]
        code_dtype = max((f.code_dtype for f in lns_fmts), key=lambda d: d.itemsize, default=np.dtype(np.int8))
        float_syns = [s for s in syns if s.weight_format is None]
        lns_syns = [s for s in syns if s.weight_format is not None]
        L.w_f = _concat_views(float_syns, "w", self.dtype)
        L.codes = _concat_views(lns_syns, "codes", code_dtype)
        tables, tab_len = [], 0
        seg_rows, in_rows = [], []
        syn_base = f_base = c_base = trpre = trpost = in_base = 0
        posts = []
        in_syn, in_pre = [], []
        max_delay = 0
        for p, s in enumerate(syns):
            pre_lo, post_lo = L.lo[id(s.pre)], L.lo[id(s.post)]
            row = L.pint[p]
            row[K.P_CHAN] = 0 if s.target is Target.E else 1
            d = int(round(s.delay_ms / dt))
            row[K.P_DELAY] = d
            max_delay = max(max_delay, d)
            row[K.P_PRE_LO], row[K.P_POST_LO] = pre_lo, post_lo
            row[K.P_POST_G] = L.group_index[id(s.post)]
            row[K.P_SYNBASE] = syn_base
            row[K.P_RULE] = -1
            fmt = s.weight_format
            if s.w is not None and s.w.size != (1 if s.shared else s.n_synapses):
                raise ValueError(f"{s.name}: w holds {s.w.size} values; a {'shared' if s.shared else 'per-synapse'} "
                                 f"weight needs {1 if s.shared else s.n_synapses} (set weights, not w)")
            if s.shared and s.plasticity is not None:
                raise ValueError(f"{s.name}: a shared weight cannot learn; plasticity must be None")
            if fmt is None:
                row[K.P_STORE] = f_base
                row[K.P_SHARED] = int(s.shared)
                f_base += s.w.size  # 1 for a shared weight
            else:
                row[K.P_LNS] = 1
                row[K.P_STORE] = c_base
                c_base += s.n_synapses
                tab = s.decode_table()
                row[K.P_TAB] = tab_len + fmt.max_code
                tables.append(tab)
                tab_len += tab.size
                row[K.P_BIAS], row[K.P_GAMMA] = fmt.bias, fmt.gamma
                row[K.P_UFSAT] = int(fmt.underflow is Underflow.SATURATE)
                row[K.P_WCAP] = fmt.max_code
                L.pf[p, K.F_SCALE] = s.scale
            st = s.plasticity
            if st is not None:
                row[K.P_RULE] = st.rule_id
                row[K.P_THIRD] = int(st.third_factor)
                row[K.P_STOCH] = int(st.rounding.value == "stochastic")
                row[K.P_TRPRE], row[K.P_TRPOST] = trpre, trpost
                trpre += s.pre.n
                trpost += s.post.n
                L.pf[p, :7] = (st.w_max, st.a_plus, st.a_minus, st.mu_plus, st.mu_minus,
                               dt / st.tau_plus_ms, dt / st.tau_minus_ms)
                if st.rule is STDPRule.LOG_DOMAIN:
                    L.pf[p, K.F_LPLUS], L.pf[p, K.F_LMINUS] = math.log1p(st.a_plus), math.log1p(st.a_minus)
                if fmt is not None:
                    # largest code whose value does not exceed w_max
                    cap = math.floor(fmt.gamma * math.log2(st.w_max / s.scale) + fmt.bias + 1e-9)
                    row[K.P_WCAP] = min(fmt.max_code, cap)
                order = np.argsort(s.j, kind="stable")
                in_syn.append((syn_base + order).astype(np.int64))
                in_pre.append(s.i[order].astype(np.int64))
                cnt = np.bincount(s.j, minlength=s.post.n)
                ptr = np.concatenate([[0], np.cumsum(cnt)]) + in_base
                in_rows.append((post_lo + np.arange(s.post.n), np.full(s.post.n, p), ptr[:-1], ptr[1:]))
                in_base += s.n_synapses
            ptr = s.connectivity.indptr + syn_base
            seg_rows.append((pre_lo + np.arange(s.pre.n), np.full(s.pre.n, p), ptr[:-1], ptr[1:]))
            posts.append((s.j, post_lo))
            syn_base += s.n_synapses
        L.storage = [(s.w, s.codes) for s in syns]
        L.group_state = [(g, g.v) for g in self.groups if isinstance(g, NeuronGroup)]
        L.dec_tab = np.concatenate(tables).astype(self.dtype) if tables else np.zeros(1, dtype=self.dtype)
        # unsigned, so the kernel's scatter needs no negative-index check
        if len(posts) == 1 and posts[0][1] == 0:
            L.syn_post = posts[0][0].view(np.uint32).copy()  # the connectivity's j is read-only
        elif posts:
            L.syn_post = np.empty(sum(j.size for j, _ in posts), np.uint32)
            at = 0
            for j, off in posts:
                np.add(j, off, out=L.syn_post[at: at + j.size], casting="unsafe")
                at += j.size
        else:
            L.syn_post = np.zeros(0, np.uint32)
        L.seg_ptr, L.seg_proj, L.seg_lo, L.seg_hi = _segments(seg_rows, L.N)
        L.in_ptr, L.in_proj, L.in_lo, L.in_hi = _segments(in_rows, L.N)
        L.in_syn = np.concatenate(in_syn) if in_syn else np.zeros(0, np.int64)
        L.in_pre = np.concatenate(in_pre) if in_pre else np.zeros(0, np.int64)
        L.x_pre, L.x_pre_t = np.zeros(trpre), np.zeros(trpre, dtype=np.int64)
        L.x_post, L.x_post_t = np.zeros(trpost), np.zeros(trpost, dtype=np.int64)
        L.inbuf = np.zeros((max_delay + 1, 2, L.N if max_delay else 0), dtype=self.dtype)
        # thread count -> (bounds, rows cut at them), or None when rows are unsorted; the bounds
        # follow the threads' measured work (ThreadedChunk.rebalance)
        L.thread_split = {}
        L.rows_sorted = all(s.connectivity.rows_sorted for s in syns)

    # -- running ------------------------------------------------------------
    def run(self, duration_s: float, *, modulator=None, progress: bool | None = None,
            chunk_steps: int | None = None) -> RunReport:
        """Advance the network by ``duration_s`` seconds.

        Parameters
        ----------
        duration_s : float
            Simulated time (s), rounded to whole steps.
        modulator : int, or array_like of int, optional
            Third-factor sign per time step of this run (length = number of
            steps; values are reduced to their sign), for projections with
            ``STDP(third_factor=True)``. Default +1.
        progress : bool, optional
            Show a progress bar (default: when the run is longer than 10 s of
            simulated time).
        chunk_steps : int, optional
            Steps per kernel call (between progress updates).

        Returns
        -------
        RunReport
        """
        duration = float(duration_s)
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"duration_s={duration} is out of range; allowed: a finite value >= 0")
        n_steps = int(round(duration * 1e3 / self.dt_ms))
        if self._stale():
            self._layout = self._build()
        L = self._layout
        if modulator is None:
            mod = np.zeros(0, dtype=np.int8)
        else:
            mod = np.sign(np.broadcast_to(np.asarray(modulator, dtype=np.float64), (n_steps,))).astype(np.int8)
        plan = self._plan_monitors(L, n_steps)
        step0 = self.step
        counts = np.zeros(L.N, dtype=np.int64)
        spk_n = np.zeros(1, dtype=np.int64)
        # [next generator event, (head, count) of each group's ring of refractory neurons]
        cursor = np.zeros(1 + 2 * len(self.groups), dtype=np.int64)
        chunk = int(chunk_steps) if chunk_steps else max(2000, -(-n_steps // 50))
        spk_step = np.empty(plan.cap, dtype=np.int64)
        spk_idx = np.empty(plan.cap, dtype=np.int32)
        spk_now = np.empty(L.N, dtype=np.int32)
        held_k, held_v = np.empty(L.N, dtype=np.int64), np.empty(L.N, dtype=L.v.dtype)
        up = np.empty(L.N // K.BLOCK + 1, dtype=np.bool_)
        pop = np.zeros((min(chunk, max(n_steps, 1)), len(self.groups)), dtype=np.int32)
        if self._seed is not None:
            run_seed = int(np.random.SeedSequence([self._seed, self._runs]).generate_state(1)[0])
        else:
            run_seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._runs += 1
        threaded = None
        if self.backend is Backend.NUMBA:
            feats = _features(L, plan)
            fn = K.run_chunk_for(**feats)
            threaded = self._threaded_chunk(L, feats, plan, pop.shape[0])
            if feats["poisson"] or feats["plastic"]:  # the only users of Numba's generator
                K.seed_numba(run_seed)
            for g in self.groups:
                if isinstance(g, PoissonGroup):
                    lo = L.lo[id(g)]
                    K.init_poisson(L.p_spike, L.p_next, lo, lo + g.n, step0)
            for k, g in enumerate(self.groups):
                if L.gint[k, 2] == K.CUBA_EXACT:
                    lo = L.lo[id(g)]
                    K.init_held(step0, lo, lo + g.n, L.v, L.ref_until, held_k, held_v, cursor[1 + 2 * k: 3 + 2 * k])
        else:
            fn = functools.partial(_reference_chunk(), rng=np.random.default_rng(run_seed))
        show = progress if progress is not None else duration > 10.0
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, unit="step", desc="simulating", leave=False)
        total_spikes = 0
        t0 = time.perf_counter()
        n = step0
        end = step0 + n_steps
        try:
            while n < end:
                c_end = min(end, n + pop.shape[0])
                pop[:] = 0
                if threaded is not None:
                    reached = threaded(n, c_end, L, counts, plan.rec, plan.n_rec, spk_step, spk_idx, spk_n, pop,
                                       held_k, held_v)
                else:
                    reached = fn(n, c_end, step0, L.gint, L.gflt, L.v, L.ge, L.gi, L.ref_until, L.p_spike, L.p_next,
                                 L.gen_step, L.gen_idx, L.gen_grp, cursor,
                                 L.seg_ptr, L.seg_proj, L.seg_lo, L.seg_hi, L.syn_post, L.pint, L.pf,
                                 L.w_f, L.codes, L.dec_tab, L.in_ptr, L.in_proj, L.in_lo, L.in_hi, L.in_syn,
                                 L.in_pre, L.x_pre, L.x_pre_t, L.x_post, L.x_post_t, L.inbuf, mod, counts,
                                 plan.rec, plan.n_rec, spk_step, spk_idx, spk_n, pop,
                                 plan.st_idx, plan.st_var, plan.st_every, plan.st_out,
                                 plan.wm_proj, plan.wm_widx, plan.wm_every, plan.wm_out, spk_now,
                                 held_k, held_v, up, L.dec)
                m = int(spk_n[0])
                total_spikes += int(pop[: reached - n].sum())
                self._collect(L, plan, spk_step[:m], spk_idx[:m], pop[: reached - n])
                spk_n[0] = 0
                if bar is not None:
                    bar.update(reached - n)
                n = reached
                self.step = n
        finally:
            if bar is not None:
                bar.close()
            _fold_decay(L)
            self._finish(L, plan, counts, step0)
        return RunReport(steps=n_steps, wall_s=time.perf_counter() - t0, spikes=total_spikes,
                         backend=self.backend.value, threads=threaded.n_threads if threaded is not None else 1)

    def _threaded_chunk(self, L: _Layout, feats: dict, plan, chunk: int):
        """The threaded loop for this run, or None when it runs on one thread (see ``threads``)."""
        T = min(self.threads, L.N // _threaded.ALIGN)
        if T < 2 or not _threaded.threadable(feats) or _JIT_DISABLED:
            return None  # (as Python, threads would spin holding the GIL)
        if L.thread_split.get(T, False) is False:
            bounds = _threaded.thread_bounds(L.N, T)
            split = _threaded.split_rows(L.syn_post, L.seg_lo, L.seg_hi, bounds, L.rows_sorted)
            L.thread_split[T] = None if split is None else (bounds, split)
        if L.thread_split[T] is None:
            return None
        worker = _threaded.worker_for(exact=feats["exact"], generic=feats["generic"], delays=feats["delays"],
                                      float_w=feats["float_w"], lns_w=feats["lns_w"], touch=feats["touch"],
                                      record=plan.n_rec > 0)
        return _threaded.ThreadedChunk(worker, T, L.thread_split, L.syn_post, L.seg_lo, L.seg_hi, L.N,
                                       len(self.groups), chunk, L.rows_sorted)

    def _plan_monitors(self, L: _Layout, n_steps: int):
        plan = _Layout()
        budget = self.memory_budget_mb * 2**20
        held = sum(m.nbytes for m in self.monitors)
        fixed = 0
        rec = np.zeros(L.N, dtype=np.bool_)
        st_cols, wm_cols = [], []
        for mon in self.monitors:
            if isinstance(mon, SpikeMonitor):
                rec[L.lo[id(mon.group)] + mon.record] = True
            elif isinstance(mon, RateMonitor):
                fixed += 4 * n_steps
            elif isinstance(mon, StateMonitor):
                ev = _every_steps(mon.every_ms, self.dt_ms)
                for var in mon.variables:
                    for k in mon.record:
                        st_cols.append((L.lo[id(mon.group)] + k, StateMonitor.VARS.index(var), ev))
                fixed += 8 * (-(-n_steps // ev)) * (len(mon.variables) * mon.record.size + 1)
            elif isinstance(mon, WeightMonitor):
                ev = _every_steps(mon.every_ms, self.dt_ms)
                p = self.synapses.index(mon.synapses)
                store = L.pint[p, K.P_STORE]
                shared = L.pint[p, K.P_SHARED] != 0  # one stored weight for every synapse
                for k in mon.record:
                    wm_cols.append((p, store + (0 if shared else k), ev))
                fixed += 8 * (-(-n_steps // ev)) * (mon.record.size + 1)
        plan.rec = rec
        plan.n_rec = int(rec.sum())
        room = budget - held - fixed
        cap = int(min(_MAX_BUFFER, max(room // (2 * _SPIKE_BYTES), 0)))
        if plan.n_rec and cap < plan.n_rec + 1 or room < 0:
            raise MemoryBudgetError(
                f"monitors need {(held + fixed + (plan.n_rec + 1) * _SPIKE_BYTES) / 2**20:.1f} MB before "
                f"recording any spike, over memory_budget_mb={self.memory_budget_mb}; record fewer "
                "neurons or variables, sample less often, or raise the budget"
            )
        plan.cap = max(cap, plan.n_rec + 1)
        plan.budget, plan.held = budget, held + fixed

        def cols(rows, dtypes):
            if not rows:
                return [np.zeros(0, dtype=d) for d in dtypes]
            arr = np.array(rows, dtype=np.int64)
            return [arr[:, q].astype(d) for q, d in enumerate(dtypes)]

        plan.st_idx, plan.st_var, plan.st_every = cols(st_cols, (np.int64, np.int64, np.int64))
        plan.wm_proj, plan.wm_widx, plan.wm_every = cols(wm_cols, (np.int64, np.int64, np.int64))
        st_rows = -(-n_steps // int(plan.st_every.min())) if st_cols else 0
        wm_rows = -(-n_steps // int(plan.wm_every.min())) if wm_cols else 0
        plan.st_out = np.zeros((st_rows, len(st_cols)))
        plan.wm_out = np.zeros((wm_rows, len(wm_cols)))
        plan.spike_mons = [m for m in self.monitors if isinstance(m, SpikeMonitor)]
        plan.rate_mons = [m for m in self.monitors if isinstance(m, RateMonitor)]
        plan.added = 0
        return plan

    def _collect(self, L, plan, steps: np.ndarray, idx: np.ndarray, pop: np.ndarray) -> None:
        dt_s = self.dt_ms * 1e-3
        new_bytes = steps.size * _SPIKE_BYTES
        if plan.held + plan.added + new_bytes > plan.budget:
            raise MemoryBudgetError(
                f"recorded spikes would pass memory_budget_mb={self.memory_budget_mb} at t={steps[-1] * dt_s:.3f} s "
                f"({(plan.held + plan.added + new_bytes) / 2**20:.1f} MB); the network stopped at the last "
                "complete chunk. Record fewer neurons (SpikeMonitor(record=...)) or raise the budget"
            )
        plan.added += new_bytes
        for mon in plan.spike_mons:
            lo = L.lo[id(mon.group)]
            sel = (idx >= lo) & (idx < lo + mon.group.n)
            if sel.any():
                mon._append(steps[sel] * dt_s, (idx[sel] - lo).astype(np.int32))
        for mon in plan.rate_mons:
            g = self.groups.index(mon.group)
            if mon.dt is None:
                mon.dt = dt_s
                mon._start = self.step
            mon._counts.append(pop[:, g].copy())

    def _finish(self, L, plan, counts: np.ndarray, step0: int) -> None:
        dt_s = self.dt_ms * 1e-3
        done = self.step - step0
        c_st = c_wm = 0
        for mon in self.monitors:
            if isinstance(mon, SpikeMonitor):
                lo = L.lo[id(mon.group)]
                mon.count += counts[lo: lo + mon.group.n]
            elif isinstance(mon, StateMonitor):
                ev = _every_steps(mon.every_ms, self.dt_ms)
                rows = -(-done // ev)
                ncol = mon.record.size
                for var in mon.variables:
                    block = plan.st_out[:rows, c_st: c_st + ncol]
                    mon.values[var] = np.concatenate([mon.values[var], block])
                    c_st += ncol
                mon.t = np.concatenate([mon.t, (step0 + np.arange(rows) * ev) * dt_s])
            elif isinstance(mon, WeightMonitor):
                ev = _every_steps(mon.every_ms, self.dt_ms)
                rows = -(-done // ev)
                ncol = mon.record.size
                mon.w = np.concatenate([mon.w, plan.wm_out[:rows, c_wm: c_wm + ncol]])
                mon.t = np.concatenate([mon.t, (step0 + np.arange(rows) * ev) * dt_s])
                c_wm += ncol

    def __repr__(self) -> str:
        return (f"Network({len(self.groups)} groups, {self.n_neurons} neurons, {len(self.synapses)} projections, "
                f"{self.n_synapses} synapses, dt={self.dt_ms} ms, t={self.t:.4f} s)")


def _fold_decay(L) -> None:
    """Multiply each group's factored decay back into its ge/gi (``ge ← De ĝe``, ``De ← 1``).

    Done at the end of every run, so that a group's ``ge`` and ``gi`` hold
    their true values between runs; a run split into several calls is
    therefore rounded once more per split than one run (a relative 1e-16 in
    float64), see docs/spiking.md.
    """
    for g in range(L.gint.shape[0]):
        if L.gint[g, 2] == K.CUBA_EXACT:
            lo, hi = int(L.gint[g, 0]), int(L.gint[g, 1])
            L.ge[lo:hi] *= L.dec[g, K.D_E]
            L.gi[lo:hi] *= L.dec[g, K.D_I]
    L.dec[:] = 1


def _state_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype={dtype!r} is not a numpy dtype; allowed: float64, float32") from exc
    if dt not in (np.float64, np.float32):
        raise ValueError(f"dtype={dt.name} is not supported; allowed: float64, float32")
    return dt


def _features(L: _Layout, plan) -> dict:
    """What the kernel must handle for this network and run (see ``_kernels.FEATURES``)."""
    kinds = set(L.gint[:, 2].tolist())
    lns = L.pint[:, K.P_LNS] != 0
    return dict(exact=K.CUBA_EXACT in kinds, generic=bool(kinds & {K.CUBA_EULER, K.COBA_EXPEULER, K.COBA_EULER}),
                poisson=K.POISSON in kinds, generators=L.gen_step.size > 0, delays=L.inbuf.shape[0] > 1,
                float_w=bool((~lns).any()), lns_w=bool(lns.any()), plastic=L.in_syn.size > 0,
                state_mon=plan.st_idx.size > 0, weight_mon=plan.wm_proj.size > 0,
                touch=L.syn_post.size >= K.TOUCH_SYNAPSES)


def _reference_chunk():
    from neurolns.sim.spiking._reference import run_chunk_reference

    return run_chunk_reference


def _concat_views(syns, attr: str, dtype) -> np.ndarray:
    """One flat array holding every projection's ``attr``; projections keep views into it."""
    if not syns:
        return np.zeros(1, dtype=dtype)
    if len(syns) == 1 and getattr(syns[0], attr).dtype == dtype:
        return getattr(syns[0], attr)
    flat = np.concatenate([getattr(s, attr) for s in syns], dtype=dtype, casting="same_kind")
    off = 0
    for s in syns:
        n = getattr(s, attr).size  # 1 for a shared weight
        setattr(s, attr, flat[off: off + n])
        off += n
    return flat


def _segments(rows, N: int):
    """Sort (neuron, projection, lo, hi) rows by neuron into a CSR over segments."""
    if not rows:
        return (np.zeros(N + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                np.zeros(0, np.int64))
    nrn = np.concatenate([r[0] for r in rows])
    proj = np.concatenate([r[1] for r in rows])
    lo = np.concatenate([r[2] for r in rows])
    hi = np.concatenate([r[3] for r in rows])
    keep = hi > lo
    nrn, proj, lo, hi = nrn[keep], proj[keep], lo[keep], hi[keep]
    order = np.argsort(nrn, kind="stable")
    ptr = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(np.bincount(nrn, minlength=N), out=ptr[1:])
    return ptr, proj[order].astype(np.int64), lo[order].astype(np.int64), hi[order].astype(np.int64)
