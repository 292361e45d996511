"""The Numba time loop of a spiking network (one call runs a chunk of steps).

Layout of the flat arrays is documented in :mod:`neurolns.sim.spiking._layout`;
the plain numpy float64 twin of this loop is :mod:`neurolns.sim.spiking._reference`.
One step follows Brian2's default schedule: monitors of state (start), neuron
update, threshold and reset (a reset cannot change what synapses see, so it is
done in the same pass), delivery of delayed input, presynaptic pathway
(propagation, pre trace, depression), postsynaptic pathway (post trace,
potentiation).

Factored decay of exact current-based groups. Their synaptic variables decay
by the same factor in every neuron each step, ``ge(n+1) = Pee ge(n)``, so the
loop keeps the factor apart: the arrays hold ``ĝe`` with ``ge = De ĝe``, and
the group's scalar ``De`` (``dec[g, D_E]``) is multiplied by ``Pee`` once a
step instead of every ``ĝe``. The update then reads v, ĝe, ĝi and writes only
v (32 bytes a neuron in float64, not 48); an input ``x`` lands as
``ĝe += x / De``. When ``De`` or ``Di`` falls below :data:`REBASE_BELOW`, the
group's ``ĝ`` are multiplied back (``ĝ ← D ĝ``, ``D ← 1``) right after the
decay, before any input lands (so ``1/D ≤ 2^24`` whatever ``Pee``, and a
factor that underflows to 0 clears ``ĝ`` as the step-by-step decay would),
and at the end of every run (so ``NeuronGroup.ge`` holds the true values
between runs). Per group, ``dec[g]`` = [De, Di, 1/De, 1/Di, 1]; groups of
other kinds keep 1 throughout.
"""
from __future__ import annotations

import math

import numpy as np

from neurolns._cpu import prefetch
from neurolns._jit import _DISABLED, jit

# group kinds
CUBA_EXACT, CUBA_EULER, COBA_EXPEULER, COBA_EULER, POISSON, GENERATOR = range(6)
# projection int columns
(P_CHAN, P_LNS, P_DELAY, P_TAB, P_RULE, P_THIRD, P_PRE_LO, P_POST_LO, P_TRPRE, P_TRPOST,
 P_WCAP, P_BIAS, P_UFSAT, P_STOCH, P_GAMMA, P_SYNBASE, P_STORE, P_POST_G, P_SHARED) = range(19)
N_PINT = 19
# projection float columns
(F_WMAX, F_APLUS, F_AMINUS, F_MUPLUS, F_MUMINUS, F_DPRE, F_DPOST, F_SCALE, F_LPLUS, F_LMINUS) = range(10)
N_PFLT = 10

# columns of a group's factored decay (module docstring)
D_E, D_I, INV_E, INV_I, D_ONE = range(5)
N_DEC = 5
#: a group's ĝ are multiplied back by their factor when it falls below this (2^-24:
#: every 832 steps at τ/dt = 50; 1/D stays at most 2^24, far from float32's overflow)
REBASE_BELOW = 2.0 ** -24

_LN2 = math.log(2.0)


@jit
def seed_numba(seed):
    """Seed Numba's per-thread generator (Poisson sources, stochastic rounding)."""
    np.random.seed(seed)


@jit
def _geometric(p):
    """Trials up to and including the first success of Bernoulli(p), p in [0, 1]."""
    if p <= 0.0:
        return np.int64(1) << 62
    if p >= 1.0:
        return np.int64(1)
    u = 1.0 - np.random.random()  # (0, 1]
    return np.int64(1) + np.int64(math.floor(math.log(u) / math.log1p(-p)))


@jit
def init_poisson(p_spike, p_next, lo, hi, n):
    """First spike step of sources ``lo..hi-1`` from step ``n`` on."""
    for k in range(lo, hi):
        p_next[k] = n - 1 + _geometric(p_spike[k])


@jit
def _round(t, stoch):
    if stoch:
        f = math.floor(t)
        return int(f) + (1 if np.random.random() < t - f else 0)
    return int(np.rint(t))


@jit
def _encode(w, scale, gamma, bias, wcap, ufsat, stoch):
    if w == 0.0:
        return 0
    mag = _round(gamma * math.log2(abs(w) / scale) + bias, stoch)
    if mag > wcap:
        mag = wcap
    if mag < 1:
        mag = 1 if ufsat else 0
    return mag if w > 0 else -mag


@jit
def _float_rule(rule, w, tr, direction, m, pf, p):
    wmax = pf[p, F_WMAX]
    if rule == 0:  # additive, hard bounds
        a = pf[p, F_APLUS] if direction > 0 else pf[p, F_AMINUS]
        w = w + direction * m * a * wmax * tr
        return min(max(w, 0.0), wmax)
    if rule == 1:  # soft bounds
        wt = w / wmax
        if direction > 0:
            wt = wt + m * pf[p, F_APLUS] * (1.0 - wt) ** pf[p, F_MUPLUS] * tr
        else:
            wt = wt - m * pf[p, F_AMINUS] * abs(wt) ** pf[p, F_MUMINUS] * tr
        return min(max(wt, 0.0), 1.0) * wmax
    la = pf[p, F_LPLUS] if direction > 0 else pf[p, F_LMINUS]
    w = w * math.exp(direction * m * tr * la)
    return min(max(w, -wmax), wmax)


@jit
def _plastic(p, widx, w_f, codes, dec_tab, pint, pf, tr, direction, m):
    """Apply one STDP change to the weight stored at ``widx`` of projection ``p``."""
    rule = pint[p, P_RULE]
    if pint[p, P_LNS] == 0:
        w_f[widx] = _float_rule(rule, w_f[widx], tr, direction, m, pf, p)
        return
    c = np.int64(codes[widx])
    if rule == 2:
        if c == 0:
            return  # a zero weight stays zero
        la = pf[p, F_LPLUS] if direction > 0 else pf[p, F_LMINUS]
        k = _round(direction * m * tr * la / _LN2 * pint[p, P_GAMMA], pint[p, P_STOCH] != 0)
        mag = abs(c) + k
        if mag > pint[p, P_WCAP]:
            mag = pint[p, P_WCAP]
        if mag < 1:
            mag = 1 if pint[p, P_UFSAT] != 0 else 0
        codes[widx] = mag if c > 0 else -mag
        return
    w = dec_tab[pint[p, P_TAB] + c]
    w = _float_rule(rule, w, tr, direction, m, pf, p)
    codes[widx] = _encode(w, pf[p, F_SCALE], pint[p, P_GAMMA], pint[p, P_BIAS], pint[p, P_WCAP],
                          pint[p, P_UFSAT] != 0, pint[p, P_STOCH] != 0)


@jit
def _weight(p, widx, w_f, codes, dec_tab, pint):
    if pint[p, P_LNS] == 0:
        return w_f[widx]
    return dec_tab[pint[p, P_TAB] + np.int64(codes[widx])]


@jit
def _pre_plastic(n, k, p, a, b, widx0, target, sc, syn_post, w_f, codes, dec_tab, pint, pf,
                 x_pre, x_pre_t, x_post, x_post_t, mod):
    """A presynaptic spike of neuron ``k`` through plastic projection ``p``: pre trace, input
    (times ``sc``, the target's 1/D), depression."""
    ip = k - pint[p, P_PRE_LO] + pint[p, P_TRPRE]
    x_pre[ip] = x_pre[ip] * math.exp(-(n - x_pre_t[ip]) * pf[p, F_DPRE]) + 1.0
    x_pre_t[ip] = n
    mp = mod if pint[p, P_THIRD] != 0 else 1
    for s in range(a, b):
        j = syn_post[s]
        widx = widx0 + s
        target[j] += _weight(p, widx, w_f, codes, dec_tab, pint) * sc
        jp = j - pint[p, P_POST_LO] + pint[p, P_TRPOST]
        y = x_post[jp] * math.exp(-(n - x_post_t[jp]) * pf[p, F_DPOST])
        x_post[jp] = y
        x_post_t[jp] = n
        if mp != 0:
            _plastic(p, widx, w_f, codes, dec_tab, pint, pf, y, -1.0, mp)


#: synapse count from which the network turns on the ``touch`` feature: the synapse
#: rows (12-16 bytes a synapse) then no longer fit in cache, and a first pass that
#: prefetches every cache line of a step's rows (:func:`_prefetch_rows`) puts their
#: misses in flight together before the delivery pass needs them
TOUCH_SYNAPSES = 1 << 20


@jit(inline="always")
def _target(n, p, ge, gi, inbuf, pint, delays):
    """Where projection ``p``'s input of step ``n`` goes: ge or gi now, or a delay slot of the ring buffer."""
    chan = pint[p, P_CHAN]
    target = ge if chan == 0 else gi
    if delays:
        d = pint[p, P_DELAY]
        if d > 0:
            target = inbuf[(n + d) % inbuf.shape[0], chan]
    return target


@jit(inline="always")
def _scale(p, pint, dec, delays):
    """What projection ``p``'s weights are multiplied by as they land: the target group's
    ``1/D`` of the channel (factored decay), or 1 into a delay slot (scaled when due)."""
    if delays:
        if pint[p, P_DELAY] > 0:
            return dec[0, D_ONE]
    return dec[pint[p, P_POST_G], INV_E + pint[p, P_CHAN]]


@jit(inline="always")
def _add_float(target, syn_post, w_f, a, b, widx0, sc):
    """The hot loop of float weights: synapses ``a..b-1`` add their weights times ``sc`` into ``target``.

    One scattered add per synapse, over slices indexed from 0 and unsigned
    targets, so that Numba emits no negative-index checks.
    """
    post = syn_post[a:b]
    ws = w_f[widx0 + a: widx0 + b]
    for s in range(b - a):
        target[post[s]] += ws[s] * sc


@jit(inline="always")
def _add_shared(target, syn_post, a, b, wsc):
    """The hot loop of a shared weight: synapses ``a..b-1`` add ``wsc`` (the weight times the scale)."""
    post = syn_post[a:b]
    for s in range(b - a):
        target[post[s]] += wsc


@jit(inline="always")
def _add_lns(target, syn_post, codes, dec_tab, a, b, widx0, toff, sc):
    """The hot loop of LNS weights: each synapse adds its code's decoded value (table at ``toff``) times ``sc``."""
    post = syn_post[a:b]
    cs = codes[widx0 + a: widx0 + b]
    for s in range(b - a):
        target[post[s]] += dec_tab[toff + cs[s]] * sc


@jit
def _prefetch_rows(spk_now, q0, q1, seg_ptr, seg_a, seg_b, seg_proj, syn_post, codes, w_f, pint):
    """Prefetch the synapse rows of spikes ``spk_now[q0:q1]``: segment pointers, segments, then rows.

    Each level is a cache miss in a large network and each needs the one
    before; issued for all of a step's spikes at once, the misses of a level
    overlap. A row is synapses ``seg_a[sg] .. seg_b[sg]-1``: its targets, and
    its codes or float weights (none for a shared weight).
    """
    for q in range(q0, q1):
        prefetch(seg_ptr, spk_now[q])
    for q in range(q0, q1):
        k = spk_now[q]
        for sg in range(seg_ptr[k], seg_ptr[k + 1]):
            prefetch(seg_a, sg)
            prefetch(seg_b, sg)
            prefetch(seg_proj, sg)
    for q in range(q0, q1):
        k = spk_now[q]
        for sg in range(seg_ptr[k], seg_ptr[k + 1]):
            a = seg_a[sg]
            b = seg_b[sg]
            if b <= a:
                continue
            p = seg_proj[sg]
            widx0 = pint[p, P_STORE] - pint[p, P_SYNBASE]
            # one prefetch per 64-byte line of each array
            for s in range(a, b, 64 // syn_post.itemsize):
                prefetch(syn_post, s)
            prefetch(syn_post, b - 1)
            if pint[p, P_LNS] != 0:
                for s in range(widx0 + a, widx0 + b, 64 // codes.itemsize):
                    prefetch(codes, s)
                prefetch(codes, widx0 + b - 1)
            elif pint[p, P_SHARED] == 0:  # a shared weight is one value, read once
                for s in range(widx0 + a, widx0 + b, 64 // w_f.itemsize):
                    prefetch(w_f, s)
                prefetch(w_f, widx0 + b - 1)


def _count_zero(state):
    """A zero counter as wide as the elements of ``state`` (int32 for float32, else int64)."""
    return 0


def _count_add(count, hit):
    """``count + hit`` kept at the counter's width.

    Numba widens int32 sums to int64; in a vectorised loop over float32 state
    that splits every vector of 8 compares into two vectors of 4 counts, which
    took the float32 update 1.7x the time of the same loop with an int32
    counter (20,000 neurons, 10,000 steps).
    """
    return count + hit


if not _DISABLED:
    from numba import types
    from numba.extending import overload

    @overload(_count_zero, inline="always")
    def _count_zero_ov(state):
        if isinstance(state, types.Array) and state.dtype == types.float32:
            return lambda state: np.int32(0)
        return lambda state: np.int64(0)

    @overload(_count_add, inline="always")
    def _count_add_ov(count, hit):
        if count == types.int32:
            return lambda count, hit: np.int32(count + np.int32(hit))
        return lambda count, hit: count + hit


#: neurons per block of the CUBA update (the flags of blocks with a threshold crossing)
BLOCK = 256
#: neurons per sub-block searched for crossings inside a flagged block
SUB = 32


def init_held(n0, lo, hi, v, ref_until, held_k, held_v, n_held):
    """Put the neurons of ``lo..hi-1`` refractory at step ``n0`` into their ring (numpy, before a run).

    The ring is ``held_k[lo:hi]``/``held_v[lo:hi]`` with ``n_held`` = [head,
    count] (see :func:`_lif_cuba_exact`): the neurons in order of release, with
    their potential at ``n0``. The kernels keep it from step to step and from
    chunk to chunk; set up here, in numpy, it costs the time loop no compile.
    """
    ks = lo + np.flatnonzero(ref_until[lo:hi] > n0)
    ks = ks[np.argsort(ref_until[ks], kind="stable")]
    m = ks.size
    held_k[lo: lo + m] = ks
    held_v[lo: lo + m] = v[ks]
    n_held[0] = 0
    n_held[1] = m


@jit
def _lif_cuba_exact(n, lo, hi, refs, el, vth, vr, pvv, pve, pvi, pee, pii, v, ge, gi, ref_until, spk_now, ns,
                    held_k, held_v, n_held, up, dec):
    """Current-based LIF, exact propagator: v' = El + (v−El)Pvv + ge Pve + gi Pvi, ge' = ge Pee.

    With the decay factored out (module docstring): ``ge = De ĝe`` with the
    group's factors in ``dec`` (its row of the decay table), the update is
    ``v' = El + (v−El)Pvv + ĝe (Pve De) + ĝi (Pvi Di)``, then ``De ← De Pee``,
    ``Di ← Di Pii``; ĝe and ĝi are only read. An empty range (``lo == hi``)
    only advances the factors (a thread that owns none of the group's neurons).

    Refractory neurons keep their potential. Rather than a select on ``ref_until``
    in the update (a masked store, and 8 more bytes a neuron to read), every
    neuron is updated and those refractory put back from a ring of the group's
    refractory neurons and their held potential (``held_k``/``held_v``, ``hi -
    lo`` entries; ``n_held`` = [head, count], kept by the caller across steps).
    Every neuron of a group is refractory for the same number of steps, so a
    neuron that spikes joins the ring at its back, in order of release, and
    only the front is checked; a neuron refractory from before the run for
    longer than that (a group reused in a new network, ``ref_until`` set by
    hand) is passed on insertion, so the order holds. ``up`` gets a flag
    per block of :data:`BLOCK` neurons: whether one may have crossed
    threshold; only those blocks are scanned.
    """
    fe = pve * dec[D_E]
    fi = pvi * dec[D_I]
    # the update over slices indexed from 0 (so that Numba drops the negative-index
    # wraparound) has no branch and no gather: LLVM vectorises it
    nb = 0
    for b0 in range(lo, hi, BLOCK):
        b1 = b0 + BLOCK if b0 + BLOCK < hi else hi
        vs = v[b0:b1]
        es = ge[b0:b1]
        is_ = gi[b0:b1]
        # a count of crossings, not an OR of compares: LLVM vectorises the sum
        # better (the OR cost a quarter more time in this loop); the counter is as
        # wide as the state, so each vector of compares adds into one of counts
        crossed = _count_zero(vs)
        for q in range(b1 - b0):
            vn = el + (vs[q] - el) * pvv + es[q] * fe + is_[q] * fi
            vs[q] = vn
            crossed = _count_add(crossed, vn > vth)
        up[nb] = crossed > 0
        nb += 1
    dec[D_E] = dec[D_E] * pee
    dec[D_I] = dec[D_I] * pii
    # rebase before this step's input lands, so that 1/D stays <= 2^24
    if dec[D_E] < REBASE_BELOW or dec[D_I] < REBASE_BELOW:
        de = dec[D_E]
        di = dec[D_I]
        es = ge[lo:hi]
        is_ = gi[lo:hi]
        for q in range(hi - lo):
            es[q] *= de
            is_[q] *= di
        dec[D_E] = dec[D_ONE]
        dec[D_I] = dec[D_ONE]
    dec[INV_E] = dec[D_ONE] / dec[D_E]
    dec[INV_I] = dec[D_ONE] / dec[D_I]
    # neurons free from this step on leave the front of the ring (their update above
    # stands); the others get their potential back
    size = held_k.shape[0]
    head = n_held[0]
    count = n_held[1]
    while count > 0 and n >= ref_until[held_k[head]]:
        head = head + 1 if head + 1 < size else 0
        count -= 1
    h = head
    for _ in range(count):
        v[held_k[h]] = held_v[h]
        h = h + 1 if h + 1 < size else 0
    # threshold and reset, in index order, in the flagged blocks; h is the ring's tail.
    # A flagged block is searched by sub-blocks of SUB: a vectorised count of the
    # potentials above threshold first, the scalar test only where it is not 0
    nb = 0
    for b0 in range(lo, hi, BLOCK):
        if up[nb]:
            b1 = b0 + BLOCK if b0 + BLOCK < hi else hi
            vs = v[b0:b1]
            rs = ref_until[b0:b1]
            for c0 in range(0, b1 - b0, SUB):
                c1 = c0 + SUB if c0 + SUB < b1 - b0 else b1 - b0
                above = 0
                for q in range(c0, c1):
                    above += vs[q] > vth
                if above == 0:
                    continue
                for q in range(c0, c1):
                    if vs[q] > vth and n >= rs[q]:
                        vs[q] = vr
                        rs[q] = n + refs
                        spk_now[ns] = b0 + q
                        ns += 1
                        # into the ring in release order: entries held past n + refs (only
                        # neurons refractory from before the run can be) move back one slot
                        pos = h
                        behind = count
                        while behind > 0:
                            prev = pos - 1 if pos > 0 else size - 1
                            if ref_until[held_k[prev]] <= n + refs:
                                break
                            held_k[pos] = held_k[prev]
                            held_v[pos] = held_v[prev]
                            pos = prev
                            behind -= 1
                        held_k[pos] = b0 + q
                        held_v[pos] = vr
                        h = h + 1 if h + 1 < size else 0
                        count += 1
        nb += 1
    n_held[0] = head
    n_held[1] = count
    return ns


@jit(inline="always")
def _fire(vk, free, vth, vr, n, refs, rs, q, lo, spk_now, ns):
    """Threshold and reset of neuron ``lo + q`` (potential ``vk``) in the generic kernels.

    Returns the potential to store and the new spike count.
    """
    if free and vk > vth:
        rs[q] = n + refs
        spk_now[ns] = lo + q
        return vr, ns + 1
    return vk, ns


@jit
def _lif_generic(kind, n, lo, hi, refs, el, vth, vr, ca, cb, cc, ee, ei, v, ge, gi, ref_until, spk_now, ns):
    """Current-based Euler and conductance-based (exponential Euler, Euler) LIF.

    One loop per kind (the kind is not tested per neuron), over slices indexed
    from 0 (no negative-index wraparound): 1.1-1.5x faster than one loop over
    ``range(lo, hi)`` with the kind inside, with the same arithmetic.
    """
    vs = v[lo:hi]
    es = ge[lo:hi]
    is_ = gi[lo:hi]
    rs = ref_until[lo:hi]
    if kind == CUBA_EULER:
        for q in range(hi - lo):
            vk = vs[q]
            gek = es[q]
            gik = is_[q]
            free = n >= rs[q]
            if free:
                vk = vk + ca * (gek + gik - (vk - el))
            es[q] = gek - cb * gek
            is_[q] = gik - cc * gik
            vs[q], ns = _fire(vk, free, vth, vr, n, refs, rs, q, lo, spk_now, ns)
    elif kind == COBA_EXPEULER:
        for q in range(hi - lo):
            vk = vs[q]
            gek = es[q]
            gik = is_[q]
            free = n >= rs[q]
            if free:
                gtot = 1.0 + gek + gik
                vinf = (el + gek * ee + gik * ei) / gtot
                vk = vinf + (vk - vinf) * math.exp(-ca * gtot)
            es[q] = gek * cb
            is_[q] = gik * cc
            vs[q], ns = _fire(vk, free, vth, vr, n, refs, rs, q, lo, spk_now, ns)
    else:  # COBA_EULER
        for q in range(hi - lo):
            vk = vs[q]
            gek = es[q]
            gik = is_[q]
            free = n >= rs[q]
            if free:
                vk = vk + ca * ((el - vk) + gek * (ee - vk) + gik * (ei - vk))
            es[q] = gek - cb * gek
            is_[q] = gik - cc * gik
            vs[q], ns = _fire(vk, free, vth, vr, n, refs, rs, q, lo, spk_now, ns)
    return ns


@jit
def _state_monitors(rel, v, ge, gi, st_idx, st_var, st_every, st_out, gint, dec):
    for c in range(st_idx.shape[0]):
        ev = st_every[c]
        if rel % ev == 0:
            k = st_idx[c]
            var = st_var[c]
            if var == 0:
                st_out[rel // ev, c] = v[k]
            else:
                g = 0  # the neuron's group, for its decay factor
                while k >= gint[g, 1]:
                    g += 1
                x = ge[k] if var == 1 else gi[k]
                st_out[rel // ev, c] = x * dec[g, D_E + var - 1]


@jit
def _weight_monitors(rel, w_f, codes, dec_tab, pint, wm_proj, wm_widx, wm_every, wm_out):
    for c in range(wm_proj.shape[0]):
        ev = wm_every[c]
        if rel % ev == 0:
            wm_out[rel // ev, c] = _weight(wm_proj[c], wm_widx[c], w_f, codes, dec_tab, pint)


@jit
def _poisson_spikes(n, lo, hi, p_spike, p_next, spk_now, ns):
    # each source keeps the step of its next spike; the gap is geometric,
    # which is the same process as a Bernoulli(rate·dt) draw every step
    for k in range(lo, hi):
        if p_next[k] == n:
            spk_now[ns] = k
            ns += 1
            p_next[k] = n + _geometric(p_spike[k])
    return ns


@jit
def _generator_spikes(n, row, gen_step, gen_idx, gen_grp, gen_pos, pop, spk_now, ns):
    # events sorted by step
    n_gen = gen_step.shape[0]
    while gen_pos[0] < n_gen and gen_step[gen_pos[0]] < n:
        gen_pos[0] += 1
    while gen_pos[0] < n_gen and gen_step[gen_pos[0]] == n:
        q = gen_pos[0]
        spk_now[ns] = gen_idx[q]
        ns += 1
        pop[row, gen_grp[q]] += 1
        gen_pos[0] += 1
    return ns


@jit
def _due_input(slot, inbuf, ge, gi, gint, dec, lo_t, hi_t):
    """Move the delayed input due in this step from its ring-buffer slot to ``ge``/``gi``
    of neurons ``lo_t..hi_t-1`` (times each group's 1/D)."""
    for g in range(gint.shape[0]):
        lo = max(gint[g, 0], lo_t)
        hi = min(gint[g, 1], hi_t)
        sce = dec[g, INV_E]
        sci = dec[g, INV_I]
        for k in range(lo, hi):
            ge[k] += inbuf[slot, 0, k] * sce
            gi[k] += inbuf[slot, 1, k] * sci
            inbuf[slot, 0, k] = 0.0
            inbuf[slot, 1, k] = 0.0


@jit
def _post_plastic(n, k, in_ptr, in_proj, in_lo, in_hi, in_syn, in_pre, w_f, codes, dec_tab, pint, pf,
                  x_pre, x_pre_t, x_post, x_post_t, mod):
    """A postsynaptic spike of neuron ``k``: post trace and potentiation of its plastic inputs."""
    for sg in range(in_ptr[k], in_ptr[k + 1]):
        p = in_proj[sg]
        jp = k - pint[p, P_POST_LO] + pint[p, P_TRPOST]
        x_post[jp] = x_post[jp] * math.exp(-(n - x_post_t[jp]) * pf[p, F_DPOST]) + 1.0
        x_post_t[jp] = n
        mp = mod if pint[p, P_THIRD] != 0 else 1
        if mp == 0:
            continue
        widx0 = pint[p, P_STORE] - pint[p, P_SYNBASE]
        for t in range(in_lo[sg], in_hi[sg]):
            s = in_syn[t]
            ip = in_pre[t] + pint[p, P_TRPRE]
            x = x_pre[ip] * math.exp(-(n - x_pre_t[ip]) * pf[p, F_DPRE])
            x_pre[ip] = x
            x_pre_t[ip] = n
            _plastic(p, widx0 + s, w_f, codes, dec_tab, pint, pf, x, 1.0, mp)


#: what a network may use; each switched-off feature is left out of its time loop
FEATURES = ("exact", "generic", "poisson", "generators", "delays", "float_w", "lns_w", "plastic",
            "state_mon", "weight_mon", "touch")


def _make_run_chunk(exact, generic, poisson, generators, delays, float_w, lns_w, plastic, state_mon, weight_mon,
                    touch):
    """The time loop compiled for the features (:data:`FEATURES`) a network uses.

    The flags are closure constants: Numba prunes the branches they switch off
    before typing, so a network without, say, plasticity, Poisson sources or
    monitors of state never compiles that code (the cold-start compile is most
    of a short run). Each combination is its own entry of the on-disk cache.
    """

    def run_chunk(n0, n1, n_run0, gint, gflt, v, ge, gi, ref_until, p_spike, p_next,
                  gen_step, gen_idx, gen_grp, cursor,
                  seg_ptr, seg_proj, seg_lo, seg_hi, syn_post, pint, pf, w_f, codes, dec_tab,
                  in_ptr, in_proj, in_lo, in_hi, in_syn, in_pre, x_pre, x_pre_t, x_post, x_post_t,
                  inbuf, modulator, counts, rec, n_rec, spk_step, spk_idx, spk_n, pop,
                  st_idx, st_var, st_every, st_out, wm_proj, wm_widx, wm_every, wm_out, spk_now,
                  held_k, held_v, up, dec):
        """Advance steps ``n0 .. n1-1``; return the first step not done (``n1`` when complete).

        ``cursor`` (``1 + 2 n_groups`` entries) holds the next generator event and,
        per group, the head and length of its ring of refractory neurons (set up
        by :func:`init_held` before the run, kept across calls) in
        ``held_k``/``held_v`` (scratch of ``N`` entries, group ``g`` in its own
        neuron range); ``up`` has ``N // BLOCK + 1`` entries; ``dec`` (groups × N_DEC)
        holds each group's factored decay (module docstring), kept across calls.

        The loop stops early, before a step, when the spike buffer could overflow
        in that step; the caller empties it and calls again.
        """
        n_groups = gint.shape[0]
        n_delay = inbuf.shape[0]
        cap = spk_step.shape[0]
        for n in range(n0, n1):
            if spk_n[0] + n_rec > cap:
                return n
            rel = n - n_run0
            # ---- monitors of state, at the start of the step (Brian2's "start" slot)
            if state_mon:
                _state_monitors(rel, v, ge, gi, st_idx, st_var, st_every, st_out, gint, dec)
            if weight_mon:
                _weight_monitors(rel, w_f, codes, dec_tab, pint, wm_proj, wm_widx, wm_every, wm_out)
            # ---- neuron update + threshold + reset
            ns = np.int64(0)  # not a literal 0: the callees then compile for int64 only
            row = n - n0
            for g in range(n_groups):
                lo = gint[g, 0]
                hi = gint[g, 1]
                kind = gint[g, 2]
                ns0 = ns
                if kind == POISSON:
                    if poisson:
                        ns = _poisson_spikes(n, lo, hi, p_spike, p_next, spk_now, ns)
                elif kind == CUBA_EXACT:
                    if exact:
                        f = gflt[g]
                        ns = _lif_cuba_exact(n, lo, hi, gint[g, 3], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                                             v, ge, gi, ref_until, spk_now, ns, held_k[lo:hi], held_v[lo:hi],
                                             cursor[1 + 2 * g: 3 + 2 * g], up, dec[g])
                elif kind != GENERATOR:
                    if generic:
                        f = gflt[g]
                        ns = _lif_generic(kind, n, lo, hi, gint[g, 3], f[0], f[1], f[2], f[3], f[4], f[5], f[8],
                                          f[9], v, ge, gi, ref_until, spk_now, ns)
                pop[row, g] += ns - ns0
            if generators:
                ns = _generator_spikes(n, row, gen_step, gen_idx, gen_grp, cursor, pop, spk_now, ns)
            # ---- bookkeeping of this step's spikes
            m = spk_n[0]
            for q in range(ns):
                k = spk_now[q]
                counts[k] += 1
                if rec[k]:
                    spk_step[m] = n
                    spk_idx[m] = k
                    m += 1
            spk_n[0] = m
            # ---- delayed input due now
            if delays:
                if n_delay > 1:
                    _due_input(n % n_delay, inbuf, ge, gi, gint, dec, 0, ge.shape[0])
            # ---- presynaptic pathway
            if plastic:
                mod = modulator[rel] if modulator.shape[0] > 0 else 1
            # large networks first prefetch the rows of every spike of the step
            if touch:
                _prefetch_rows(spk_now, 0, ns, seg_ptr, seg_lo, seg_hi, seg_proj, syn_post, codes, w_f, pint)
            for q in range(ns):
                k = spk_now[q]
                for sg in range(seg_ptr[k], seg_ptr[k + 1]):
                    p = seg_proj[sg]
                    a = seg_lo[sg]
                    b = seg_hi[sg]
                    widx0 = pint[p, P_STORE] - pint[p, P_SYNBASE]
                    chan = pint[p, P_CHAN]
                    target = ge if chan == 0 else gi
                    # the target's 1/D (factored decay); 1 into a delay slot, scaled when due
                    sc = dec[pint[p, P_POST_G], INV_E + chan]
                    if delays:
                        d = pint[p, P_DELAY]
                        if d > 0:
                            target = inbuf[(n + d) % n_delay, chan]
                            sc = dec[0, D_ONE]
                    if plastic:
                        if pint[p, P_RULE] >= 0:
                            _pre_plastic(n, k, p, a, b, widx0, target, sc, syn_post, w_f, codes, dec_tab, pint, pf,
                                         x_pre, x_pre_t, x_post, x_post_t, mod)
                            continue
                    # the hot loops (as _add_float / _add_lns, which the threaded loop calls; written
                    # out here, as a call costs this loop's cold start a compile or an IR inlining)
                    post = syn_post[a:b]
                    if pint[p, P_LNS] != 0:
                        if lns_w:
                            cs = codes[widx0 + a: widx0 + b]
                            toff = pint[p, P_TAB]
                            for s in range(b - a):
                                target[post[s]] += dec_tab[toff + cs[s]] * sc
                    elif float_w:
                        if pint[p, P_SHARED] != 0:
                            wsc = w_f[pint[p, P_STORE]] * sc
                            for s in range(b - a):
                                target[post[s]] += wsc
                        else:
                            ws = w_f[widx0 + a: widx0 + b]
                            for s in range(b - a):
                                target[post[s]] += ws[s] * sc
            # ---- postsynaptic pathway
            if plastic:
                for q in range(ns):
                    _post_plastic(n, spk_now[q], in_ptr, in_proj, in_lo, in_hi, in_syn, in_pre, w_f, codes,
                                  dec_tab, pint, pf, x_pre, x_pre_t, x_post, x_post_t, mod)
        return n1

    return jit(run_chunk)


_RUN_CHUNKS = {}


def run_chunk_for(**features):
    """The :func:`run_chunk` variant with the named :data:`FEATURES` compiled in (built lazily).

    A feature left unnamed is on (``touch`` is a speed choice, not a need);
    ``run_chunk_for()`` is the loop that runs any network.
    """
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise TypeError(f"unknown features {sorted(unknown)}; allowed: {FEATURES}")
    key = tuple(bool(features.get(f, True)) for f in FEATURES)
    fn = _RUN_CHUNKS.get(key)
    if fn is None:
        fn = _RUN_CHUNKS[key] = _make_run_chunk(*key)
    return fn


#: the variant with every feature (what any network can run on)
run_chunk = run_chunk_for()
