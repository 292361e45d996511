"""Recordings (checks, npz/HDF5 loading, per-cell fits) and the temporal variant
against a loop oracle."""
import importlib.util

import numpy as np
import pytest

from neurolns.sysid import Geometry, bipolar_drive, bipolar_features, kernel_bank
from neurolns.sysid.data import Recording, check_recording, fit_recording, load_recording, save_recording
from neurolns.sysid.fit import FitConfig
from neurolns.sysid.temporal import biphasic_filter, temporal_bank, temporal_features


def test_recording_errors_name_the_problem():
    s = np.zeros((6, 20, 20))
    with pytest.raises(ValueError, match="6 frames but responses have 5"):
        check_recording(s, np.arange(5.0))
    r = np.random.default_rng(0).normal(size=(6, 3))
    r[4, 2] = np.nan
    with pytest.raises(ValueError, match="frame 4, cell 2"):
        check_recording(s, r)
    r[4, 2] = 0.0
    r[:, 1] = 2.0
    with pytest.raises(ValueError, match=r"cell\(s\) \[1\] have constant responses"):
        check_recording(s, r)
    s2 = s.copy()
    s2[3, 0, 0] = np.inf
    with pytest.raises(ValueError, match="stimulus contains NaN or inf"):
        check_recording(s2, np.arange(6.0))
    with pytest.raises(ValueError, match=r"allowed: \(T frames, H, W\)"):
        check_recording(np.zeros((6, 400)), np.arange(6.0))


def test_npz_round_trip_and_file_errors(tmp_path):
    """save → load gives the same arrays; wrong keys, suffixes and missing h5py are clear errors."""
    rng = np.random.default_rng(1)
    s, r = rng.uniform(-1, 1, (9, 20, 20)), rng.normal(size=(9, 2))
    p = save_recording(tmp_path / "rec.npz", s, r)
    rec = load_recording(p)
    np.testing.assert_array_equal(rec.stimulus, s.astype(np.float32))
    np.testing.assert_array_equal(rec.responses, r)
    np.savez(tmp_path / "bad.npz", frames=s)
    with pytest.raises(ValueError, match="lacks"):
        load_recording(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="unknown file type"):
        load_recording(p.rename(tmp_path / "rec.mat"))
    with pytest.raises(FileNotFoundError):
        load_recording(tmp_path / "none.npz")
    (tmp_path / "x.h5").write_bytes(b"")
    if importlib.util.find_spec("h5py") is None:
        with pytest.raises(ImportError, match="h5py"):
            load_recording(tmp_path / "x.h5")


def test_fit_recording_predicts_a_cell_of_its_own_model_class():
    """A cell that is a softplus circuit of the 28-type bank on 20×20 images is predicted
    on held-out frames with correlation ≥ 0.9 (one fit per cell; a noise-only cell is not)."""
    rng = np.random.default_rng(2)
    s = rng.uniform(-1, 1, (1200, 20, 20)).astype(np.float32)
    B = bipolar_features(s, kernel_bank(28), Geometry(image_shape=(20, 20)))
    y = np.logaddexp(0, 0.8 * B[:, 0].sum((1, 2)) + 0.5 * B[:, 16].sum((1, 2)) - 1.0)
    rec = Recording(s, np.stack([y, rng.normal(size=len(y))], axis=1))
    res = fit_recording(rec, FitConfig(max_steps=3000))
    assert len(res) == 2
    assert res[0].metrics["test_corr"] >= 0.9, res[0].metrics
    assert res[1].metrics["test_corr"] < 0.3


def test_temporal_features_match_a_loop_and_reduce_to_the_static_model():
    """b(t) = ReLU(Σ_τ h(τ)·drive(t−τ) + bias) (loop oracle); a unit impulse filter gives the static features."""
    rng = np.random.default_rng(3)
    movie = rng.uniform(-1, 1, (12, 100, 100))
    bank = kernel_bank(2)
    filt = temporal_bank((1.0, 3.0), length=5)
    F = temporal_features(movie, bank, filt)
    drive = bipolar_drive(movie, bank).astype(np.float64)
    ref = np.zeros_like(F, dtype=np.float64)
    for t in range(12):
        for s_ in range(2):
            for f in range(2):
                acc = sum(filt[f, lag] * drive[t - lag, s_] for lag in range(5) if t - lag >= 0)
                ref[t, s_ * 2 + f] = np.maximum(acc + bank[s_].bias, 0)
    np.testing.assert_allclose(F, ref, atol=1e-4)
    np.testing.assert_allclose(temporal_features(movie, bank, np.array([[1.0, 0.0, 0.0]])),
                               bipolar_features(movie, bank), atol=1e-5)
    with pytest.raises(ValueError, match="tau"):
        biphasic_filter(-1.0)
