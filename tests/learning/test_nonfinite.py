"""Non-finite gradients and bad hyperparameters (issue 14), numpy side.

Invariants:
- a step whose gradients hold NaN or ±inf is skipped whole: afterwards parameters,
  state, ``t`` and the rest of the trajectory are bit-identical to a run that was
  never offered the bad step (every stateful optimizer); a RuntimeWarning names the
  parameter, the count and the first index, and ``skipped_steps`` counts it;
- ``nonfinite="raise"`` raises ValueError with that message and changes nothing;
- every pure update function raises ValueError naming the argument before it
  modifies anything (NaN never becomes a +1 sign, EF-signSGD never turns NaN);
- the fast finiteness pass equals ``np.isfinite(a).all()`` on any float array;
- bad hyperparameters (lr off the code grid, inf, NaN) raise at construction.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurolns.formats import LNS8, LNSFormat
from neurolns.learning import (
    SGD,
    Adam,
    EFSignSGD,
    LNSMadam,
    Madam,
    MajorityVote,
    NonFinite,
    SignSGD,
    Signum,
    apply_signs,
    ef_sign_update,
    lns_madam_update,
    madam_update,
    majority_vote,
    onebit_sign,
    pack_signs,
    sign_sgd_update,
    signum_update,
)
from neurolns.learning._checks import _finite_fast, all_finite

from .test_optim import ALL, _make, _roundtrip_npz

BAD_STEP = 4


def _poison(step, workers: bool, bad):
    """A copy of one step's gradients with ``bad`` at two places of parameter 1
    (for the votes: in worker 2's gradient only)."""
    step = [[g.copy() for g in gs] for gs in step] if workers else [g.copy() for g in step]
    g = step[2][1] if workers else step[1]
    g.reshape(-1)[[1, 2]] = bad
    return step


def _state_equal(a, b):
    assert a["t"] == b["t"] and a["defaults"] == b["defaults"]
    for sa, sb in zip(a["state"], b["state"]):
        assert set(sa) == set(sb)
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ALL)
def test_skipped_step_leaves_the_run_bit_identical(name, bad):
    """A bad step offered at step 5 changes nothing: the run equals, bit for bit, a run
    without it (parameters after every later step, the state dict, t)."""
    make, params, steps = _make(name)
    workers = name.startswith("majority-vote")
    clean, skipped = [p.copy() for p in params], [p.copy() for p in params]
    opt_clean, opt_skip = make(clean), make(skipped)
    for i, s in enumerate(steps[:12]):
        if i == BAD_STEP:
            before = [p.copy() for p in skipped]
            sd_before = opt_skip.state_dict()
            with pytest.warns(RuntimeWarning) as rec:
                opt_skip.step(_poison(s, workers, bad))
            msg = str(rec[0].message)
            where = "params[1] from worker 2" if workers else "params[1]"
            assert f"gradient of {where} holds 2 non-finite value(s)" in msg, msg
            assert "at index (0, 1)" in msg or "at index 1" in msg, msg
            assert "skipped_steps=1" in msg
            for a, b in zip(before, skipped):
                np.testing.assert_array_equal(a, b)
            _state_equal(sd_before, opt_skip.state_dict())
        opt_clean.step(s)
        opt_skip.step(s)
        for a, b in zip(clean, skipped):
            np.testing.assert_array_equal(a, b)
    assert opt_skip.skipped_steps == 1 and opt_clean.skipped_steps == 0
    assert opt_skip.t == opt_clean.t == 12
    _state_equal(opt_clean.state_dict(), opt_skip.state_dict())
    assert all(np.all(np.isfinite(p)) for p in skipped if p.dtype.kind == "f")


@pytest.mark.parametrize("name", ALL)
def test_raise_policy_raises_and_changes_nothing(name):
    """nonfinite='raise': ValueError with the same message; parameters, state, counters untouched."""
    make, params, steps = _make(name)
    workers = name.startswith("majority-vote")
    opt = make([p.copy() for p in params])
    opt.defaults["nonfinite"] = "raise"
    opt.step(steps[0])
    before, sd = [p.copy() for p in opt.params], opt.state_dict()
    with pytest.raises(ValueError, match=r"params\[1\].*holds 2 non-finite value\(s\).*nonfinite='raise'"):
        opt.step(_poison(steps[1], workers, np.nan))
    for a, b in zip(before, opt.params):
        np.testing.assert_array_equal(a, b)
    _state_equal(sd, opt.state_dict())
    assert opt.skipped_steps == 0


def test_nonfinite_option_is_validated_and_saved():
    """nonfinite is a NonFinite value in defaults and state_dict; skipped_steps is saved and
    restored; a state dict from before these existed loads (skipped_steps = 0)."""
    w = [np.ones(3, np.float32)]
    with pytest.raises(ValueError, match="allowed: 'skip', 'raise'"):
        Madam(w, nonfinite="ignore")
    opt = Madam(w, nonfinite=NonFinite.RAISE)
    assert opt.defaults["nonfinite"] == "raise"
    opt = Madam([np.ones(3, np.float32)])
    with pytest.warns(RuntimeWarning):
        opt.step([np.array([1.0, np.nan, 1.0], np.float32)])
    opt.step([np.ones(3, np.float32)])
    sd = _roundtrip_npz(opt.state_dict())
    assert sd["skipped_steps"] == 1 and sd["defaults"]["nonfinite"] == "skip"
    other = Madam([np.ones(3, np.float32)], nonfinite="raise")
    other.load_state_dict(sd)
    assert other.skipped_steps == 1 and other.defaults["nonfinite"] == "skip" and other.t == 1
    old = opt.state_dict()
    del old["skipped_steps"], old["defaults"]["nonfinite"]
    old["state"][0]["v"] = old["state"][0]["v"].astype(np.float32)  # v was float32 then
    third = Madam([np.ones(3, np.float32)], nonfinite="raise")
    third.load_state_dict(old)
    assert third.skipped_steps == 0 and third.defaults["nonfinite"] == "raise"
    assert third.state[0]["v"].dtype == np.float64
    bad = opt.state_dict()
    bad["skipped_steps"] = -1
    with pytest.raises(ValueError, match="skipped_steps=-1"):
        third.load_state_dict(bad)


def test_one_nan_no_longer_freezes_madam_state():
    """Issue 14: one NaN gradient made Madam's and LNS-Madam's v NaN forever. Now v stays
    finite and the synapse goes on moving with the next finite gradient."""
    w = np.array([0.5, -0.5], np.float32)
    c = np.array([1000, -1000], np.int16)
    mad, lns = Madam([w]), LNSMadam([c])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mad.step([np.array([np.nan, 1.0], np.float32)])
        lns.step([np.array([np.nan, 1.0], np.float32)])
    mad.step([np.ones(2, np.float32)])
    lns.step([np.ones(2, np.float32)])
    assert np.all(np.isfinite(mad.state[0]["v"])) and np.all(np.isfinite(lns.state[0]["v"]))
    np.testing.assert_array_equal(c, [999, -1001])  # both moved one step at their first finite step
    assert w[0] < 0.5 and w[1] < -0.5


def _pure_calls():
    f = LNSFormat(bits=16, gamma=128)
    ones = lambda: np.ones(6, np.float32)  # noqa: E731
    return {
        "madam_update": (lambda g: madam_update(ones(), g, np.zeros(6), 1), "g"),
        "lns_madam_update": (lambda g: lns_madam_update(np.full(6, 900, np.int16), g, np.zeros(6), 1, fmt=f), "g"),
        "sign_sgd_update": (lambda g: sign_sgd_update(ones(), g, lr=0.1), "g"),
        "signum_update": (lambda g: signum_update(ones(), g, np.zeros(6, np.float32), lr=0.1), "g"),
        "ef_sign_update": (lambda g: ef_sign_update(ones(), g, np.zeros(6, np.float32), lr=0.1), "g"),
        "apply_signs (w)": (lambda g: apply_signs(g, np.ones(6, np.int8), lr=0.1), "w"),
        "majority_vote": (lambda g: majority_vote(np.stack([ones(), g, ones()])), "signs"),
        "onebit_sign": (lambda g: onebit_sign(g), "x"),
        "pack_signs": (lambda g: pack_signs(g), "x"),
    }


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("fn", list(_pure_calls()))
def test_pure_functions_refuse_non_finite_input(fn, bad):
    """Each pure function raises ValueError naming the argument, the count and the first
    index (NaN never becomes a +1 sign); the array it was handed is not modified."""
    call, arg = _pure_calls()[fn]
    g = np.array([0.5, -1.0, bad, 2.0, bad, 1.0], np.float32)
    g0 = g.copy()
    with pytest.raises(ValueError, match=rf"^{arg} holds 2 non-finite value\(s\).* at index (2|\(1, 2\))"):
        call(g)
    np.testing.assert_array_equal(g, g0)


def test_state_arrays_are_checked_before_anything_changes():
    """A NaN already in a state array (v, m, e) or in the weights raises naming it; the other
    arrays are left as they were (EF-signSGD no longer turns the tensor NaN)."""
    w, g, e = np.ones(4, np.float32), np.ones(4, np.float32), np.zeros(4, np.float32)
    e[3] = np.nan
    with pytest.raises(ValueError, match="^e holds 1 non-finite"):
        ef_sign_update(w, g, e, lr=0.1)
    np.testing.assert_array_equal(w, np.ones(4))
    m = np.zeros(4, np.float32)
    m[0] = np.inf
    with pytest.raises(ValueError, match="^m holds 1 non-finite"):
        signum_update(w, g, m, lr=0.1)
    v = np.zeros(4)
    v[1] = np.nan
    with pytest.raises(ValueError, match="^v holds 1 non-finite"):
        madam_update(w, g, v, 1)
    np.testing.assert_array_equal(w, np.ones(4))


def test_unchecked_calls_skip_the_check():
    """check_finite=False is the documented escape hatch: no error (the optimizers use it
    after their own once-per-step check)."""
    w, g = np.ones(3), np.array([np.nan, -1.0, 1.0])
    sign_sgd_update(w, g, lr=1.0, check_finite=False)
    np.testing.assert_array_equal(w[1:], [2.0, 0.0])
    with pytest.raises(TypeError, match="check_finite must be a bool"):
        sign_sgd_update(w, g, lr=1.0, check_finite="no")


finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                          st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 3.4e38]))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # float16 draws
@given(arrays(st.sampled_from([np.float32, np.float64, np.float16]), st.integers(0, 300), elements=finite_or_not),
       st.integers(0, 299), st.sampled_from([np.nan, np.inf, -np.inf, 1.0]))
def test_fast_finiteness_pass_equals_numpy(a, where, value):
    """The bit-pattern kernel (float32, float64), the numpy path and all_finite's choice between
    them (by size) give np.isfinite(a).all()."""
    if a.size:
        a[where % a.size] = value
    want = bool(np.isfinite(a).all())
    assert all_finite(a) == want == all_finite(a, reference=True)
    if a.dtype != np.float16:
        assert _finite_fast(a) == want and _finite_fast(a.reshape(-1, 1)) == want
    big = np.ones(1 << 16, a.dtype)  # large enough for the fast path of all_finite
    big[-1 - where] = value
    assert all_finite(big) == bool(np.isfinite(big).all())


def test_lr_off_the_grid_and_infinite_hyperparameters_raise_at_construction():
    """Issue 14: LNSMadam(lr=0.003) names the value and the allowed form at construction;
    inf and NaN learning rates, an infinite eps and bad betas raise for every class."""
    codes = [np.ones(3, np.int16)]
    with pytest.raises(ValueError, match=r"lr=-0.003 is out of range"):  # any rate >= 0: fractional steps
        LNSMadam(codes, lr=-0.003)
    with pytest.raises(ValueError, match=r"lr=-0.003 is out of range"):  # fractional steps too: any rate >= 0
        MajorityVote(codes, multiplicative=True, lr=-0.003)
    w = [np.ones(3, np.float32)]
    for cls in (SGD, Adam, Madam, SignSGD, Signum, EFSignSGD, MajorityVote):
        for lr in (math.inf, math.nan, 0.0, -1.0):
            with pytest.raises(ValueError, match="lr="):
                cls(w, lr=lr)
    with pytest.raises(ValueError, match="eps=inf"):
        Adam(w, eps=math.inf)
    with pytest.raises(ValueError, match="betas"):
        Adam(w, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="g_bound=inf"):
        Madam(w, g_bound=math.inf)


def test_the_multiplicative_vote_takes_fractional_steps_without_bias():
    """A rate of 0.3 grid steps moves each code by 0 or 1 step with E[move] = 0.3
    (the counter-based draws), so a cosine tail anneals below one step; a whole
    rate moves every code exactly, with no draws. 4,000 codes, 5 standard errors."""
    from neurolns.learning import MajorityVote, update_format

    fmt = update_format(LNS8)
    codes = np.full(4000, 1000, np.int16)
    opt = MajorityVote([codes], multiplicative=True, lr=0.3 / fmt.gamma, workers=1, fmt=fmt)
    opt.step([[np.ones(4000, np.float32)]])  # the vote +1 on positive weights shrinks them
    moved = 1000 - codes.astype(np.int64)
    assert set(np.unique(moved)) == {0, 1}
    assert abs(moved.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / 4000)
    whole = np.full(10, 1000, np.int16)
    MajorityVote([whole], multiplicative=True, lr=2 / fmt.gamma, workers=1, fmt=fmt).step([[np.ones(10, np.float32)]])
    assert (whole == 998).all()
