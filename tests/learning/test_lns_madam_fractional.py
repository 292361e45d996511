"""The simulator's LNS-Madam with rates that are not whole grid steps (issue 16).

A move ``d = η γ rint(ĝ)`` is rounded stochastically with the counter-based draws of
``rounding_draws``; whole rates keep the codes of the code before the change bit for bit.
Statistical tests use fixed seeds and a tolerance of 5 standard deviations of the mean
move (one element moves by ``floor d`` or ``floor d + 1``: variance ``<= 1/4``).
"""

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns.formats import LNSFormat
from neurolns.learning import (
    LNSMadam,
    Schedule,
    code_steps,
    draw_key,
    lns_madam_update,
    rounding_draws,
    scheduled_lr,
)
from neurolns.learning import _kernels as K

F16 = LNSFormat(bits=16, gamma=128)
N = 20_000


def test_whole_rates_give_the_codes_of_before_bit_for_bit():
    """Invariant: the default rate and 4/128 give the codes the optimizer gave before fractional
    steps existed on this scenario (digests computed with that code)."""
    want = {None: "318c4145d3110d22", 4 / 128: "1770a3fb1610ed1d"}
    for lr, digest in want.items():
        rng = np.random.default_rng(2)
        cs = [rng.integers(-20000, 20000, 300).astype(np.int16), rng.integers(-20000, 20000, (9, 40)).astype(np.int16)]
        opt = LNSMadam(cs) if lr is None else LNSMadam(cs, lr=lr)
        for _ in range(25):
            opt.step([rng.standard_normal(c.shape).astype(np.float32) for c in cs])
        assert hashlib.sha256(b"".join(c.tobytes() for c in cs)).hexdigest()[:16] == digest


def test_rounding_draws_are_uniform_and_keyed():
    """The 24-bit draws: in [0, 2^24); 16 equal bins of 2^20 draws each hold 1/16 within 5 sd
    (sd = sqrt(p(1-p)/n) = 0.00024); different seeds, streams and steps give different draws;
    the same key gives the same draws (a counter-based generator)."""
    r = rounding_draws(0, 0, 1, 1 << 20)
    assert r.dtype == np.int64 and r.min() >= 0 and r.max() < 2**24
    frac = np.bincount(r >> 20, minlength=16) / r.size
    assert np.max(np.abs(frac - 1 / 16)) < 5 * math.sqrt(1 / 16 * 15 / 16 / r.size)
    a = rounding_draws(3, 1, 7, 1000)
    np.testing.assert_array_equal(a, rounding_draws(3, 1, 7, 1000))
    for other in (rounding_draws(4, 1, 7, 1000), rounding_draws(3, 2, 7, 1000), rounding_draws(3, 1, 8, 1000)):
        assert np.mean(a == other) < 0.01
    # lag-1 correlation of the draws of one element over steps, and of neighbours in one step: |ρ| < 5/sqrt(n)
    over_t = np.array([rounding_draws(0, 0, t, 1)[0] for t in range(1, 4001)], dtype=np.float64)
    assert abs(np.corrcoef(over_t[:-1], over_t[1:])[0, 1]) < 5 / math.sqrt(4000)
    assert abs(np.corrcoef(r[:-1].astype(float), r[1:].astype(float))[0, 1]) < 5 / math.sqrt(r.size)


def test_draws_over_elements_and_steps_are_not_tied():
    """The draw table r[t, i] (t = 1..256, i = 0..255) of a parameter: its diagonal is uniform (mean
    1/2 within 5 sd, sd = sqrt(1/12/256) = 0.018), it is not symmetric (corr(r, rᵀ) within
    5/sqrt(n) of 0) and its values tie no more often than chance; for seed 0 and seed 1."""
    for seed in (0, 1):
        r = np.stack([rounding_draws(seed, 0, t, 256) for t in range(1, 257)]).astype(np.float64) / 2**24
        assert abs(np.diag(r).mean() - 0.5) < 5 * math.sqrt(1 / 12 / 256)
        assert abs(np.corrcoef(r.ravel(), r.T.ravel())[0, 1]) < 5 / math.sqrt(r.size)
        # 65,536 draws of 2^24 values tie by chance n²/2m = 128 times (sd 11): at most 5 sd more
        assert np.unique(r).size > r.size - 128 - 5 * 11.3


def test_the_kernel_hash_equals_the_reference_hash():
    """hash32 of the Numba kernels equals the numpy reference and the published lowbias32 computed
    with unbounded integers, on edge values and random 32-bit values (the 16-bit split is exact)."""
    from neurolns.learning import _reference as R

    xs = np.concatenate([np.array([0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF], np.int64),
                         np.random.default_rng(0).integers(0, 2**32, 1000, dtype=np.int64)])
    want = R.hash32(xs)
    got = np.array([K.hash32(np.int64(x)) for x in xs])
    np.testing.assert_array_equal(got, want)

    def lowbias32(x):  # the hash as published, in Python's unbounded ints reduced mod 2^32
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    assert [lowbias32(int(x)) for x in xs] == want.tolist()


@settings(max_examples=30, deadline=None)
@given(k=st.floats(0.0, 12.0), seed=st.integers(0, 2**32 - 1), stream=st.integers(0, 50),
       n=st.sampled_from([1, 255, 257, 3000, 70_000]))
def test_kernel_equals_reference_for_any_rate(k, seed, stream, n):
    """Invariant: the Numba kernels (serial below 2^16 elements, parallel above) and the numpy
    reference give the same codes and v for any rate, seed, stream and size."""
    rng = np.random.default_rng(n)
    c0 = rng.integers(-F16.max_code, F16.max_code + 1, n).astype(np.int16)
    c0[::17] = 0
    gs = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    out = []
    for reference in (False, True):
        c, v = c0.copy(), np.zeros(n)
        for t, g in enumerate(gs, 1):
            lns_madam_update(c, g, v, t, fmt=F16, lr=k / 128, seed=seed, stream=stream, reference=reference)
        out.append((c, v))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
    assert np.all((out[0][0] == 0) == (c0 == 0))  # zero stays zero, no sign flips
    assert np.all(np.sign(out[0][0]) == np.sign(c0))


@settings(max_examples=25, deadline=None)
@given(k=st.floats(0.0, 10.0), seed=st.integers(0, 2**32 - 1))
def test_mean_move_is_k_in_expectation(k, seed):
    """Property: with ĝ = 1 (first step) every code moves by floor(k) or floor(k) + 1 and the mean
    move is k within 5 sd (0.5/sqrt(N) each)."""
    c = np.full(N, 16000, np.int16)
    lns_madam_update(c, np.ones(N, np.float32), np.zeros(N), 1, fmt=F16, lr=k / 128, seed=seed)
    move = 16000 - c.astype(np.int64)
    assert set(np.unique(move).tolist()) <= {math.floor(k), math.floor(k) + 1}
    assert abs(move.mean() - k) < 5 * 0.5 / math.sqrt(N) + 1e-9


def test_optimizer_under_schedule_cosine_matches_it_in_expectation():
    """The simulator's LNSMadam with defaults["lr"] set to scheduled_lr(η₀, "cosine", s, S) each step
    (no grid rounding), η₀ = 3.3/128, S = 60, ĝ = 1: the mean move of each step equals η₀ γ f(s)
    within 5 sd (0.018) and the mean total move equals the sum within 5 sd (sqrt(S/4/N) = 0.027)."""
    steps, lr0 = 60, 3.3 / 128
    c = np.full(N, 16000, np.int16)
    opt = LNSMadam([c], lr=lr0, seed=12)
    prev, moves, want = c.copy(), [], []
    for s in range(steps):
        opt.defaults["lr"] = scheduled_lr(lr0, Schedule.COSINE, s, steps)
        want.append(opt.defaults["lr"] * 128)
        opt.step([np.ones(N, np.float32)])
        moves.append((prev.astype(np.int64) - c).mean())
        prev = c.copy()
    moves, want = np.array(moves), np.array(want)
    assert np.max(np.abs(moves - want)) < 5 * 0.5 / math.sqrt(N)
    assert abs(moves.sum() - want.sum()) < 5 * math.sqrt(steps / 4 / N)


def test_streams_follow_the_parameter_index_and_state_dict_keeps_the_seed():
    """Parameter i draws with stream i: the optimizer equals lns_madam_update(seed, stream=i); the
    seed is a hyperparameter saved in state_dict (an older state dict without it loads with 0)."""
    rng = np.random.default_rng(0)
    cs = [rng.integers(1, 20000, 400).astype(np.int16) for _ in range(3)]
    ref = [c.copy() for c in cs]
    vs = [np.zeros(400) for _ in cs]
    opt = LNSMadam(cs, lr=0.7 / 128, seed=77)
    for t in range(1, 4):
        gs = [rng.standard_normal(400).astype(np.float32) for _ in cs]
        opt.step(gs)
        for i, (c, g, v) in enumerate(zip(ref, gs, vs)):
            lns_madam_update(c, g, v, t, fmt=F16, lr=0.7 / 128, seed=77, stream=i)
    for a, b in zip(cs, ref):
        np.testing.assert_array_equal(a, b)
    sd = opt.state_dict()
    assert sd["defaults"]["seed"] == 77
    del sd["defaults"]["seed"]
    fresh = LNSMadam([c.copy() for c in cs])
    fresh.load_state_dict(sd)
    assert fresh.defaults["seed"] == 0


def test_nonfinite_gradient_still_skips_the_step_with_fractional_rates():
    """A NaN gradient skips the whole step (RuntimeWarning, skipped_steps) under a fractional rate;
    the following steps draw as if the bad one had never been offered."""
    def run(bad):
        c = np.full(500, 16000, np.int16)
        opt = LNSMadam([c], lr=1.4 / 128, seed=1)
        for t in range(5):
            if bad and t == 2:
                g = np.ones(500, np.float32)
                g[3] = np.nan
                with pytest.warns(RuntimeWarning, match="skipped"):
                    opt.step([g])
            opt.step([np.ones(500, np.float32)])
        return c, opt.skipped_steps

    (a, na), (b, nb) = run(False), run(True)
    assert (na, nb) == (0, 1)
    np.testing.assert_array_equal(a, b)


def test_errors_name_the_value_and_the_range():
    with pytest.raises(ValueError, match=r"lr=-0.1 is out of range"):
        code_steps(F16, -0.1)
    with pytest.raises(ValueError, match=r"lr=inf is out of range"):
        code_steps(F16, math.inf)
    with pytest.raises(TypeError, match="fmt must be an LNSFormat"):
        code_steps("LNS16", 0.1)
    assert code_steps(F16, 2 / 256 * 0.5 * 4) == 2.0 and code_steps(F16, None) == 1.0
    assert code_steps(F16, (3 / 128) * (1 + 1e-12)) == 3.0  # within 1e-9 of whole: whole, no draws
    with pytest.raises(ValueError, match="seed=-1 is out of range"):
        draw_key(-1, 0, 1)
    with pytest.raises(TypeError, match="t must be an int"):
        draw_key(0, 0, 1.0)
    with pytest.raises(ValueError, match="n=-1 is out of range"):
        rounding_draws(0, 0, 1, -1)
    with pytest.raises(ValueError, match=r"seed=4294967296 is out of range; allowed: an int in \[0, 2\*\*32 - 1\]"):
        LNSMadam([np.ones(3, np.int16)], seed=2**32)
    with pytest.raises(ValueError, match="lr=-0.5 is out of range"):
        opt = LNSMadam([np.ones(3, np.int16)])
        opt.defaults["lr"] = -0.5  # a bad scheduled rate: refused at the step, nothing changed
        opt.step([np.ones(3, np.float32)])
    assert opt.t == 0 and opt.state[0]["v"].sum() == 0  # refused before anything changed
