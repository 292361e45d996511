"""Ground-truth circuits against their written-out definitions; metrics against
peer implementations (scikit-learn, numpy) and their defining properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score, r2_score

from neurolns.sysid import (
    TRUE_TYPES,
    bipolar_features,
    circuit1,
    circuit2,
    circuit3a,
    circuit3b,
    correlation,
    explained_variance,
    kernel_bank,
    make_circuit,
    make_dataset,
    poisson_spikes,
    r_supp,
    r_sys,
    white_noise_images,
)


def test_circuit2_response_is_the_published_formula():
    """y = 0.8·Σ_block b₀ − 0.4·Σ_4 amacrines ReLU(3·0.2·Σ_block b₁ − θ), written out by hand (float32 budget)."""
    x = white_noise_images(64, seed=3)
    B = bipolar_features(x, TRUE_TYPES).astype(np.float64)
    th = circuit2().model.amacrine_threshold
    y = 0.8 * B[:, 0, 4:6, 4:6].sum((1, 2))
    for u in (2, 3):
        for v in (2, 3):
            y -= 0.4 * np.maximum(3 * 0.2 * B[:, 1, 2 * u : 2 * u + 2, 2 * v : 2 * v + 2].sum((1, 2)) - th, 0)
    np.testing.assert_allclose(circuit2().respond(x), y, atol=1e-4)
    # 3A / 3B are Circuit 2 behind ReLU(· + 8) / ReLU(·)
    np.testing.assert_allclose(circuit3a().respond(x), np.maximum(y + 8, 0), atol=1e-4)
    np.testing.assert_allclose(circuit3b().respond(x), np.maximum(y, 0), atol=1e-4)


def test_circuits_are_alive_on_white_noise():
    """Every pathway leaves a trace: amacrines fire on a sizeable share of images and outputs vary."""
    x = white_noise_images(300, seed=0)
    for c in (circuit1(), circuit2(), circuit3a(), circuit3b()):
        y = c.respond(x)
        assert y.std() > 0.1, c.name
    assert 0.005 < np.mean(circuit1().respond(x) > 0) < 0.9


def test_embed_and_names():
    """Embedding into the 28-type bank keeps every synapse and its position; unknown names raise."""
    c = circuit2()
    w = c.embed(kernel_bank(28))
    assert np.isclose(np.sum(w.flat() ** 2), np.sum(c.weights.flat() ** 2))
    assert w.bg[0, 4, 4] == 0.8 and w.ba[1, 0, 0] == 0.2 and w.ag[2, 2] == -0.4 and np.all(w.bg[3:] == 0)
    with pytest.raises(ValueError, match="not in the bank"):
        c.embed(kernel_bank(28)[2:])
    assert make_circuit("3a").name == "circuit3a"
    with pytest.raises(ValueError, match="circuit .4. is unknown"):
        make_circuit("4")


def test_dataset_is_reproducible_from_its_seed_and_consistent():
    """Same seed → same data, and a smaller training set is a prefix of a larger one (nested sweeps);
    the truth embedded in the fit bank reproduces the noise-free responses."""
    a = make_dataset("circuit2", n_train=30, n_test=20, seed=5, n_types=8)
    b = make_dataset("circuit2", n_train=600, n_test=20, seed=5, n_types=8)
    np.testing.assert_array_equal(a.y_train, b.y_train[:30])
    np.testing.assert_array_equal(a.X_test, b.X_test)
    from neurolns.sysid import circuit_forward

    np.testing.assert_allclose(circuit_forward(a.X_train, a.w_true, a.model), a.y_train, atol=1e-4)
    n = make_dataset("circuit2", n_train=30, n_test=20, seed=5, n_types=8, noise_std=0.5)
    assert 0.3 < np.std(n.y_train - a.y_train) < 0.8
    s = make_dataset("circuit3b", n_train=30, n_test=20, seed=5, n_types=8, spikes=True)
    assert np.all(s.y_train == np.round(s.y_train)) and np.all(s.y_train >= 0)


def test_poisson_mean_matches_rate():
    """Poisson counts are unbiased: mean count ≈ rate·dt within 4 standard errors."""
    k = poisson_spikes(np.full(20000, 2.5), seed=1, dt=2.0)
    assert abs(k.mean() - 5.0) < 4 * np.sqrt(5.0 / 20000)


vec = arrays(np.float64, st.integers(2, 30), elements=st.floats(-10, 10, allow_nan=False))


@given(vec, st.floats(0.1, 10))
def test_r_sys_properties(w, c):
    """R_sys = 1 for a perfect fit, ≤ 1 always (AM-GM), symmetric, −1 for the negated weights."""
    if np.sum(w * w) < 1e-12:  # squares of tiny weights underflow; the identity needs ‖w‖ > 0
        return
    assert np.isclose(r_sys(w, w), 1.0)
    v = w * c
    assert r_sys(w, v) <= 1.0 + 1e-12
    assert np.isclose(r_sys(w, v), r_sys(v, w))
    assert np.isclose(r_sys(w, -w), -1.0)
    assert np.isclose(r_sys(w, v), 2 * c / (1 + c * c))


@given(vec, vec)
def test_r_supp_is_the_dice_coefficient(a, b):
    """R_supp equals scikit-learn's F1 score of the binarised weights (F1 = Dice)."""
    if a.shape != b.shape:
        return
    ta, tb = np.abs(a) > 0.07, np.abs(b) > 0.07
    if not (ta.any() or tb.any()):
        return
    assert np.isclose(r_supp(a, b), f1_score(ta, tb, zero_division=1.0))


@given(vec, vec)
def test_prediction_metrics_match_numpy_and_sklearn(y, yh):
    """correlation = numpy corrcoef; explained_variance = scikit-learn r2_score."""
    if y.shape != yh.shape or np.ptp(y) < 1e-6 or np.ptp(yh) < 1e-6:
        return
    assert np.isclose(correlation(y, yh), np.corrcoef(y, yh)[0, 1], atol=1e-9)
    assert np.isclose(explained_variance(y, yh), r2_score(y, yh), rtol=1e-9, atol=1e-9)


def test_metric_errors():
    with pytest.raises(ValueError, match="synapses"):
        r_sys([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        r_sys([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="constant"):
        explained_variance([1, 1, 1], [1, 2, 3])
