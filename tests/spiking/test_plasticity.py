"""The STDP rules' float64 formulas and their invariants (bounds, sign preservation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurolns.sim.spiking import STDP, depress, potentiate


def test_additive_matches_song_formula():
    """Additive: Δw = ±A w_max · trace, clipped to [0, w_max] (Song et al. 2000)."""
    s = STDP("additive", w_max=0.01, a_plus=0.01, a_minus=0.0105)
    assert math.isclose(float(potentiate(0.005, 0.5, s)), 0.005 + 0.01 * 0.01 * 0.5)
    assert math.isclose(float(depress(0.005, 0.5, s)), 0.005 - 0.0105 * 0.01 * 0.5)
    assert float(potentiate(0.00999, 100.0, s)) == 0.01
    assert float(depress(0.00001, 100.0, s)) == 0.0


def test_soft_bound_matches_nest_formula():
    """Soft bounds: w̃ + A+ (1−w̃)^μ+ x and w̃ − A− w̃^μ− y (NEST stdp_synapse)."""
    s = STDP("soft_bound", w_max=2.0, a_plus=0.1, a_minus=0.2, mu_plus=1.0, mu_minus=1.0)
    wt = 0.25
    assert math.isclose(float(potentiate(wt * 2, 1.0, s)), (wt + 0.1 * (1 - wt)) * 2)
    assert math.isclose(float(depress(wt * 2, 1.0, s)), (wt - 0.2 * wt) * 2)


def test_log_domain_is_multiplicative():
    """Log-domain: w (1+A)^x, i.e. log w moves by x log(1+A) whatever w is."""
    s = STDP("log_domain", w_max=1.0, a_plus=0.05, a_minus=0.05)
    for w in (1e-4, 0.01, 0.3):
        assert math.isclose(float(potentiate(w, 2.0, s)) / w, 1.05**2)
        assert math.isclose(float(depress(w, 1.0, s)) / w, 1 / 1.05)


@given(w=st.floats(-1.0, 1.0), x=st.floats(0.0, 50.0), m=st.sampled_from([-1, 0, 1]))
def test_log_domain_preserves_sign_and_bound(w, x, m):
    """A log-domain change never flips a sign, keeps zero at zero and respects |w| <= w_max."""
    s = STDP("log_domain", w_max=1.0, a_plus=0.1, a_minus=0.1)
    for f in (potentiate, depress):
        out = float(f(w, x, s, m))
        assert np.sign(out) == np.sign(w) or (w != 0 and abs(out) < 1e-300)
        assert abs(out) <= 1.0
        if m == 0:
            assert out == pytest.approx(w)


@given(w=st.floats(0.0, 0.01), x=st.floats(0.0, 50.0), m=st.sampled_from([-1, 0, 1]))
def test_bounded_rules_stay_in_range(w, x, m):
    """Additive and soft-bound weights stay in [0, w_max] for any trace and third-factor sign."""
    for rule in ("additive", "soft_bound"):
        s = STDP(rule, w_max=0.01, a_plus=0.3, a_minus=0.3)
        for f in (potentiate, depress):
            out = float(f(w, x, s, m))
            assert 0.0 <= out <= 0.01


def test_stdp_validation():
    with pytest.raises(ValueError):
        STDP("hebbian")
    with pytest.raises(ValueError):
        STDP(w_max=0)
    with pytest.raises(ValueError):
        STDP("log_domain", a_plus=1.5)
    with pytest.raises(ValueError):
        STDP(tau_plus_ms=-1)
