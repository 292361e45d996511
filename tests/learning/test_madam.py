"""Madam on float weights: the Numba kernel, the numpy reference path and an
independent float64 transcription of the formula (Bernstein et al. 2020) agree,
and the rule's invariants hold (no sign flip, zero stays zero, |w| <= p_max)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurolns.learning import madam_p_max, madam_update

finite32 = st.floats(-1e3, 1e3, allow_nan=False, width=32)


def oracle_madam(w, grads, *, lr, beta, g_bound, p_scale):
    """Scalar float64 transcription of design.md's Madam, one element at a time."""
    w = [float(x) for x in w]
    v = [0.0] * len(w)
    p_max = p_scale * math.sqrt(sum(x * x for x in w) / len(w))
    for t, g in enumerate(grads, start=1):
        for i, gi in enumerate(g):
            gi = float(gi)
            v[i] = beta * v[i] + (1 - beta) * gi * gi
            vhat = v[i] / (1 - beta**t)
            gh = 0.0 if vhat == 0 else gi / math.sqrt(vhat)
            gh = max(-g_bound, min(g_bound, gh))
            s = (w[i] > 0) - (w[i] < 0)
            w[i] = max(-p_max, min(p_max, w[i] * math.exp(-lr * gh * s)))
    return np.array(w)


@pytest.mark.parametrize("reference", [False, True])
def test_trajectory_matches_float64_oracle(reference):
    """300 steps on float64 weights stay within 1e-12 relative of the scalar oracle
    (kernel and numpy path use the same float64 formula; only exp may differ by an ulp)."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=64)
    w0[3] = 0.0
    grads = rng.normal(size=(300, 64)) * rng.uniform(0.01, 10, size=(300, 1))
    grads[:, 5] = 0.0  # a never-driven weight exercises 0/0 -> 0
    grads[:50, 6] = 0.0
    want = oracle_madam(w0, grads, lr=0.05, beta=0.99, g_bound=2.0, p_scale=1.5)
    w, v = w0.copy(), np.zeros(64)
    p_max = madam_p_max(w, 1.5)
    peaks = []
    for t, g in enumerate(grads, start=1):
        madam_update(w, g, v, t, lr=0.05, beta=0.99, g_bound=2.0, p_max=p_max, reference=reference)
        peaks.append(np.abs(w).max())
    np.testing.assert_allclose(w, want, rtol=1e-12, atol=0)
    assert w[3] == 0.0 and w[5] == w0[5]
    assert max(peaks) == p_max  # the cap binds at some step (p_scale 1.5), and is never exceeded


@given(
    w=arrays(np.float32, st.integers(1, 300), elements=finite32),
    g=st.data(),
    t=st.integers(1, 5000),
    beta=st.sampled_from([0.0, 0.9, 0.999]),
)
def test_kernel_matches_reference_float32(w, g, t, beta):
    """Numba kernel and numpy reference agree to one float32 ulp on float32 storage,
    for any weights including zeros, any gradient and any step count."""
    grad = g.draw(arrays(np.float32, w.shape, elements=finite32))
    v0 = g.draw(arrays(np.float32, w.shape, elements=st.floats(0, 1e4, width=32)))
    w1, v1, w2, v2 = w.copy(), v0.copy(), w.copy(), v0.copy()
    kw = dict(lr=0.01, beta=beta, g_bound=10.0, p_max=500.0)
    madam_update(w1, grad, v1, t, **kw)
    madam_update(w2, grad, v2, t, reference=True, **kw)
    np.testing.assert_allclose(w1, w2, rtol=2 ** -23, atol=0)
    np.testing.assert_array_equal(v1, v2)
    # the rule's invariants, against the input
    assert np.all(np.sign(w1) == np.sign(np.clip(w, -500, 500))) or np.all((w1 == 0) == (w == 0))
    assert np.all(w1[w == 0] == 0)
    assert np.all(np.sign(w1[w != 0]) == np.sign(w[w != 0]))


def test_parallel_kernel_matches_reference():
    """Above the parallel threshold the prange kernel gives the reference result."""
    rng = np.random.default_rng(1)
    n = (1 << 16) + 13
    w = rng.normal(size=n).astype(np.float32)
    g = rng.normal(size=n).astype(np.float32)
    v = rng.uniform(0, 1, size=n).astype(np.float32)
    w1, v1, w2, v2 = w.copy(), v.copy(), w.copy(), v.copy()
    madam_update(w1, g, v1, 7, p_max=2.0)
    madam_update(w2, g, v2, 7, p_max=2.0, reference=True)
    np.testing.assert_allclose(w1, w2, rtol=2 ** -23)
    np.testing.assert_array_equal(v1, v2)


def test_first_step_is_plus_minus_lr():
    """At t=1 with v=0, ĝ = g/|g| = sign(g): |w| changes by exactly e^{∓η}."""
    w = np.array([2.0, 2.0, -2.0, -2.0])
    madam_update(w, np.array([3.0, -1e-6, 5.0, -7.0]), np.zeros(4), 1, lr=0.1)
    np.testing.assert_allclose(w, [2 * math.exp(-0.1), 2 * math.exp(0.1), -2 * math.exp(0.1), -2 * math.exp(-0.1)])


def test_g_bound_clamps():
    """A gradient far above its running RMS moves log|w| by at most η·g_bound."""
    w, v = np.array([1.0]), np.array([1e-6])
    madam_update(w, np.array([-1.0]), v, 10000, lr=0.01, beta=0.999, g_bound=10.0)
    assert w[0] == pytest.approx(math.exp(0.1))


def test_p_max_from_rms():
    """p_max = p_scale·RMS(w); inf switches it off; an all-zero tensor gets 0."""
    assert madam_p_max(np.array([1.0, -1.0, 1.0, -1.0]), 3.0) == 3.0
    assert madam_p_max(np.ones(3), math.inf) == math.inf
    assert madam_p_max(np.zeros(3), 3.0) == 0.0


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(lr=0.0), ValueError),
        (dict(beta=1.0), ValueError),
        (dict(g_bound=-1.0), ValueError),
        (dict(p_max=float("nan")), ValueError),
        (dict(lr="0.1"), TypeError),
    ],
)
def test_bad_hyperparameters_raise(kwargs, err):
    """Out-of-range hyperparameters raise with the value named."""
    w = np.ones(3)
    with pytest.raises(err, match=list(kwargs)[0]):
        madam_update(w, np.ones(3), np.zeros(3), 1, **kwargs)


def test_bad_arrays_raise():
    """Shape, dtype, step count and contiguity are checked before anything moves."""
    w = np.ones(4)
    with pytest.raises(ValueError, match="shape"):
        madam_update(w, np.ones(3), np.zeros(4), 1)
    with pytest.raises(TypeError, match="dtype"):
        madam_update(np.ones(4, np.int32), np.ones(4), np.zeros(4), 1)
    with pytest.raises(ValueError, match="t=0"):
        madam_update(w, np.ones(4), np.zeros(4), 0)
    with pytest.raises(ValueError, match="contiguous"):
        madam_update(np.ones(8)[::2], np.ones(4), np.zeros(4), 1)
    assert np.all(w == 1.0)
