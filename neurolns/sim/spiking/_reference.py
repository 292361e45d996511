"""The float64 numpy reference of the spiking time loop (``backend="reference"``).

Written independently of the Numba kernel, from the equations: neuron updates
are whole-array numpy expressions per step, synapses are walked from the
projection-level arrays with numpy fancy indexing, plasticity goes through the
reference rules :func:`neurolns.sim.spiking.plasticity.potentiate`/``depress``
logic re-derived here on flat arrays. Random numbers (Poisson sources,
stochastic rounding) come from a numpy Generator, so only deterministic
networks (spike generators, nearest rounding) match the kernel spike for spike.
"""
from __future__ import annotations

import math

import numpy as np

from neurolns.sim.spiking import _kernels as K


def _rule(rule: int, w, tr, direction: int, m: int, pf_row):
    wmax = pf_row[K.F_WMAX]
    if rule == 0:
        a = pf_row[K.F_APLUS] if direction > 0 else pf_row[K.F_AMINUS]
        return np.clip(w + direction * m * a * wmax * tr, 0.0, wmax)
    if rule == 1:
        wt = w / wmax
        if direction > 0:
            wt = wt + m * pf_row[K.F_APLUS] * np.power(1.0 - wt, pf_row[K.F_MUPLUS]) * tr
        else:
            wt = wt - m * pf_row[K.F_AMINUS] * np.power(np.abs(wt), pf_row[K.F_MUMINUS]) * tr
        return np.clip(wt, 0.0, 1.0) * wmax
    la = pf_row[K.F_LPLUS] if direction > 0 else pf_row[K.F_LMINUS]
    return np.clip(w * np.exp(direction * m * tr * la), -wmax, wmax)


def _round(t, stoch: bool, rng):
    if stoch:
        f = np.floor(t)
        return (f + (rng.random(np.shape(t)) < t - f)).astype(np.int64)
    return np.rint(t).astype(np.int64)


def _update_weights(p, widx, tr, direction, m, w_f, codes, dec_tab, pint, pf, rng):
    """Vectorised STDP change of the weights at storage indices ``widx``."""
    rule = int(pint[p, K.P_RULE])
    if not pint[p, K.P_LNS]:
        w_f[widx] = _rule(rule, w_f[widx], tr, direction, m, pf[p])
        return
    c = codes[widx].astype(np.int64)
    stoch = bool(pint[p, K.P_STOCH])
    gamma, bias, wcap = pint[p, K.P_GAMMA], pint[p, K.P_BIAS], pint[p, K.P_WCAP]
    floor_mag = 1 if pint[p, K.P_UFSAT] else 0
    if rule == 2:
        la = pf[p, K.F_LPLUS] if direction > 0 else pf[p, K.F_LMINUS]
        k = _round(direction * m * tr * la / math.log(2.0) * gamma, stoch, rng)
        mag = np.abs(c) + k
        mag = np.where(mag > wcap, wcap, np.where(mag < 1, floor_mag, mag))
        codes[widx] = np.where(c == 0, 0, np.sign(c) * mag)
        return
    w = _rule(rule, dec_tab[pint[p, K.P_TAB] + c], tr, direction, m, pf[p])
    with np.errstate(divide="ignore"):
        t = gamma * np.log2(np.abs(w) / pf[p, K.F_SCALE]) + bias
    t = np.where(w == 0, 0.0, t)
    mag = _round(t, stoch, rng)
    mag = np.where(mag > wcap, wcap, np.where(mag < 1, floor_mag, mag))
    codes[widx] = np.where(w == 0, 0, np.sign(w) * mag)


def run_chunk_reference(n0, n1, n_run0, gint, gflt, v, ge, gi, ref_until, p_spike, p_next,
                        gen_step, gen_idx, gen_grp, gen_pos,
                        seg_ptr, seg_proj, seg_lo, seg_hi, syn_post, pint, pf, w_f, codes, dec_tab,
                        in_ptr, in_proj, in_lo, in_hi, in_syn, in_pre, x_pre, x_pre_t, x_post, x_post_t,
                        inbuf, modulator, counts, rec, n_rec, spk_step, spk_idx, spk_n, pop,
                        st_idx, st_var, st_every, st_out, wm_proj, wm_widx, wm_every, wm_out, spk_now,
                        held_k=None, held_v=None, up=None, dec=None, rng=None):
    """Same contract as :func:`neurolns.sim.spiking._kernels.run_chunk`, in numpy.

    ``held_k``, ``held_v`` and ``up`` are the kernel's scratch, unused here.
    ``dec`` holds the factored decay of exact current-based groups (``ge = De
    ĝe``, see :mod:`neurolns.sim.spiking._kernels`), the same formulation as
    the kernel's, so that the two agree bit for bit.

    Poisson sources draw a Bernoulli(rate·dt) number per step (the kernel draws
    geometric gaps: the same process, another random stream); ``p_next`` is unused.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    if dec is None:
        dec = np.ones((gint.shape[0], K.N_DEC))
    n_delay = inbuf.shape[0]
    cap = spk_step.shape[0]
    states = (v, ge, gi)
    for n in range(n0, n1):
        if spk_n[0] + n_rec > cap:
            return n
        rel = n - n_run0
        for c in np.flatnonzero(rel % st_every == 0):
            k, var = st_idx[c], st_var[c]
            x = states[var][k]
            if var > 0:  # ge or gi: times the factor of the neuron's group
                x = x * dec[np.flatnonzero(k < gint[:, 1])[0], K.D_E + var - 1]
            st_out[rel // st_every[c], c] = x
        for c in np.flatnonzero(rel % wm_every == 0):
            p, widx = wm_proj[c], wm_widx[c]
            wm_out[rel // wm_every[c], c] = (dec_tab[pint[p, K.P_TAB] + codes[widx]] if pint[p, K.P_LNS]
                                             else w_f[widx])
        spikes = []
        for g in range(gint.shape[0]):
            lo, hi, kind, refs = (int(x) for x in gint[g])
            el, vth, vr, ca, cb, cc, cd, ce, ee, ei = gflt[g]
            sl = slice(lo, hi)
            if kind == K.POISSON:
                fired = lo + np.flatnonzero(rng.random(hi - lo) < p_spike[sl])
            elif kind == K.GENERATOR:
                continue
            else:
                free = n >= ref_until[sl]
                vv, e, i = v[sl], ge[sl], gi[sl]
                if kind == K.CUBA_EXACT:
                    d = dec[g]
                    vn = el + (vv - el) * ca + e * (cb * d[K.D_E]) + i * (cc * d[K.D_I])
                    d[K.D_E] = d[K.D_E] * cd
                    d[K.D_I] = d[K.D_I] * ce
                    if d[K.D_E] < K.REBASE_BELOW or d[K.D_I] < K.REBASE_BELOW:  # before input lands
                        e *= d[K.D_E]
                        i *= d[K.D_I]
                        d[K.D_E] = d[K.D_I] = 1.0
                    en, inn = e, i  # ĝ stay; their factors decay
                    d[K.INV_E] = d[K.D_ONE] / d[K.D_E]
                    d[K.INV_I] = d[K.D_ONE] / d[K.D_I]
                elif kind == K.CUBA_EULER:
                    vn = vv + ca * (e + i - (vv - el))
                    en, inn = e - cb * e, i - cc * i
                elif kind == K.COBA_EXPEULER:
                    gt = 1.0 + e + i
                    vinf = (el + e * ee + i * ei) / gt
                    vn = vinf + (vv - vinf) * np.exp(-ca * gt)
                    en, inn = e * cb, i * cc
                else:
                    vn = vv + ca * ((el - vv) + e * (ee - vv) + i * (ei - vv))
                    en, inn = e - cb * e, i - cc * i
                v[sl] = np.where(free, vn, vv)
                ge[sl], gi[sl] = en, inn
                loc = np.flatnonzero(free & (v[sl] > vth))
                fired = lo + loc
                v[fired] = vr
                ref_until[fired] = n + refs
            pop[n - n0, g] += fired.size
            spikes.append(fired)
        sel = gen_step == n
        for q in np.flatnonzero(sel):
            pop[n - n0, gen_grp[q]] += 1
        spikes.append(gen_idx[sel].astype(np.int64))
        spikes = np.concatenate(spikes).astype(np.int64)
        counts[spikes] += 1
        r = spikes[rec[spikes]]
        m = int(spk_n[0])
        spk_step[m: m + r.size] = n
        spk_idx[m: m + r.size] = r
        spk_n[0] = m + r.size
        if n_delay > 1:
            slot = n % n_delay
            for g in range(gint.shape[0]):
                sl = slice(int(gint[g, 0]), int(gint[g, 1]))
                ge[sl] += inbuf[slot, 0, sl] * dec[g, K.INV_E]
                gi[sl] += inbuf[slot, 1, sl] * dec[g, K.INV_I]
            inbuf[slot] = 0.0
        mod = int(modulator[rel]) if modulator.size else 1
        for k in spikes:
            for sg in range(seg_ptr[k], seg_ptr[k + 1]):
                p = int(seg_proj[sg])
                s = np.arange(seg_lo[sg], seg_hi[sg])
                widx = s - pint[p, K.P_SYNBASE] + pint[p, K.P_STORE]
                d = int(pint[p, K.P_DELAY])
                chan = int(pint[p, K.P_CHAN])
                tgt = inbuf[(n + d) % n_delay, chan] if d else (ge if chan == 0 else gi)
                if pint[p, K.P_LNS]:
                    w = dec_tab[pint[p, K.P_TAB] + codes[widx].astype(np.int64)]
                elif pint[p, K.P_SHARED]:
                    w = np.full(s.size, w_f[pint[p, K.P_STORE]])
                else:
                    w = w_f[widx]
                # into ĝ: times the target group's 1/D (a delay slot holds true values)
                np.add.at(tgt, syn_post[s], w if d else w * dec[pint[p, K.P_POST_G], K.INV_E + chan])
                if pint[p, K.P_RULE] < 0:
                    continue
                ip = k - pint[p, K.P_PRE_LO] + pint[p, K.P_TRPRE]
                x_pre[ip] = x_pre[ip] * math.exp(-(n - x_pre_t[ip]) * pf[p, K.F_DPRE]) + 1.0
                x_pre_t[ip] = n
                jp = syn_post[s] - pint[p, K.P_POST_LO] + pint[p, K.P_TRPOST]
                y = x_post[jp] * np.exp(-(n - x_post_t[jp]) * pf[p, K.F_DPOST])
                x_post[jp], x_post_t[jp] = y, n
                mp = mod if pint[p, K.P_THIRD] else 1
                if mp:
                    _update_weights(p, widx, y, -1, mp, w_f, codes, dec_tab, pint, pf, rng)
        for k in spikes:
            for sg in range(in_ptr[k], in_ptr[k + 1]):
                p = int(in_proj[sg])
                jp = k - pint[p, K.P_POST_LO] + pint[p, K.P_TRPOST]
                x_post[jp] = x_post[jp] * math.exp(-(n - x_post_t[jp]) * pf[p, K.F_DPOST]) + 1.0
                x_post_t[jp] = n
                mp = mod if pint[p, K.P_THIRD] else 1
                if not mp:
                    continue
                t = np.arange(in_lo[sg], in_hi[sg])
                s = in_syn[t]
                ip = in_pre[t] + pint[p, K.P_TRPRE]
                x = x_pre[ip] * np.exp(-(n - x_pre_t[ip]) * pf[p, K.F_DPRE])
                x_pre[ip], x_pre_t[ip] = x, n
                widx = s - pint[p, K.P_SYNBASE] + pint[p, K.P_STORE]
                _update_weights(p, widx, x, 1, mp, w_f, codes, dec_tab, pint, pf, rng)
    return n1
