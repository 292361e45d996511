"""Non-finite data in system identification (issue 14): every fitting entry point
checks the features X as it checks the responses y, naming the first bad index.

Before, one NaN feature passed fit_circuit silently and dropped R_sys from ~0.8
to ~0.13; the checks here must fire before any fitting starts."""

import numpy as np
import pytest

from neurolns.sysid import FitConfig, Recording, circuit_grad, fit_circuit, fit_recording, make_dataset


@pytest.fixture(scope="module")
def data():
    return make_dataset("circuit2", n_train=200, n_test=100, seed=0, n_types=3)


def _with(a, idx, value):
    a = np.array(a, copy=True)
    a[idx] = value
    return a


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_fit_circuit_refuses_non_finite_features(data, value):
    X = _with(data.X_train, (17, 1, 4), value)
    with pytest.raises(ValueError, match=r"training set features X holds 1 non-finite.*at index \(17, 1, 4\)"):
        fit_circuit(X, data.y_train, data.model, FitConfig(max_steps=5))


def test_fit_circuit_refuses_non_finite_validation_data(data):
    cfg = FitConfig(max_steps=5)
    with pytest.raises(ValueError, match=r"validation set features X.*index \(3, 0, 0\)"):
        fit_circuit(data.X_train, data.y_train, data.model, cfg, X_val=_with(data.X_test, (3, 0, 0), np.nan),
                    y_val=data.y_test)
    with pytest.raises(ValueError, match=r"validation set responses y.*inf at index \(5,\)"):
        fit_circuit(data.X_train, data.y_train, data.model, cfg, X_val=data.X_test,
                    y_val=_with(data.y_test, 5, np.inf))
    with pytest.raises(ValueError, match=r"training set responses y.*index \(2,\)"):
        fit_circuit(data.X_train, _with(data.y_train, 2, np.nan), data.model, cfg)


def test_evaluate_and_circuit_grad_refuse_non_finite_features(data):
    res = fit_circuit(data.X_train, data.y_train, data.model, FitConfig(max_steps=5))
    with pytest.raises(ValueError, match=r"test set features X.*index \(0, 0, 1\)"):
        res.evaluate(_with(data.X_test, (0, 0, 1), np.nan), data.y_test)
    with pytest.raises(ValueError, match=r"features X.*index \(1, 0, 0\)"):
        circuit_grad(_with(data.X_test, (1, 0, 0), np.nan), data.y_test, data.w_true, data.model)
    with pytest.raises(ValueError, match=r"responses y_true.*index \(4,\)"):
        circuit_grad(data.X_test, _with(data.y_test, 4, np.nan), data.w_true, data.model)


def test_fit_recording_rechecks_a_recording_mutated_after_it_was_made():
    """Recording checks its arrays when made; arrays are mutable, so fit_recording
    checks again and names the frame and pixel."""
    rng = np.random.default_rng(0)
    rec = Recording(rng.normal(size=(40, 20, 20)), rng.normal(size=40))
    rec.stimulus[7, 3, 5] = np.nan
    with pytest.raises(ValueError, match=r"stimulus contains NaN or inf \(first at frame 7, pixel \(3, 5\)\)"):
        fit_recording(rec, FitConfig(max_steps=5), n_types=2)
    with pytest.raises(ValueError, match="frame 2, pixel"):
        Recording(_with(rng.normal(size=(40, 20, 20)), (2, 0, 0), np.inf), rng.normal(size=40))
