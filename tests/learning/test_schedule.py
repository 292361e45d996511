"""Learning-rate schedules: the cosine formula against a float64 oracle, the code
rules' rate on whole grid steps (hypothesis), and clear errors on bad input."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurolns.learning import Schedule, schedule_factor, scheduled_lr


@given(st.integers(1, 10_000), st.data())
def test_cosine_matches_the_formula_and_decreases(total, data):
    """f(s) = ½(1 + cos(π s/S)) to 1e-15, 1 at s = 0, non-increasing in s, in (0, 1]."""
    s = data.draw(st.integers(0, total - 1))
    f = schedule_factor("cosine", s, total)
    assert f == pytest.approx(0.5 * (1 + math.cos(math.pi * s / total)), abs=1e-15)
    assert 0.0 < f <= 1.0
    assert schedule_factor("cosine", 0, total) == 1.0
    if s + 1 < total:
        assert schedule_factor("cosine", s + 1, total) <= f


def test_steps_past_the_end_keep_the_last_rate():
    """A run continued beyond S keeps f(S − 1) instead of rising again."""
    assert schedule_factor("cosine", 50, 10) == schedule_factor("cosine", 9, 10)


def test_constant_is_one():
    assert schedule_factor(Schedule.CONSTANT, 7, 8) == 1.0
    assert scheduled_lr(0.3, "constant", 7, 8) == 0.3


@given(st.integers(1, 64), st.sampled_from([8, 32, 128, 1024]), st.integers(1, 2000), st.data())
def test_code_rule_rates_are_whole_grid_steps(k0, gamma, total, data):
    """On a grid: η_s·γ is an integer in [1, k0], within ½ step of k0·f(s) (or 1 when that rounds to 0),
    and non-increasing in s."""
    s = data.draw(st.integers(0, total - 1))
    lr = scheduled_lr(k0 / gamma, "cosine", s, total, grid_gamma=gamma)
    k = lr * gamma
    assert k == int(k) and 1 <= k <= k0
    exact = k0 * schedule_factor("cosine", s, total)
    assert abs(k - exact) <= 0.5 or k == 1
    if s + 1 < total:
        assert scheduled_lr(k0 / gamma, "cosine", s + 1, total, grid_gamma=gamma) <= lr


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(step=-1), "step"),
    (dict(total_steps=0), "total_steps"), (dict(total_steps=2.5), "total_steps"),
    (dict(schedule="linear"), "allowed"), (dict(grid_gamma=0), "grid_gamma"),
])
def test_bad_input_names_the_value(kwargs, match):
    args = dict(lr=0.1, schedule="cosine", step=0, total_steps=10, grid_gamma=None) | kwargs
    with pytest.raises(ValueError, match=match):
        scheduled_lr(args.pop("lr"), args.pop("schedule"), args.pop("step"), args.pop("total_steps"), **args)
