"""The torch backend of the LNS-vs-float comparison: every method trains and learns."""
import numpy as np
import pytest

from neurolns.data import Dataset
from neurolns.torch.scenario import Method, run_method


@pytest.fixture(scope="module")
def blobs():
    """Two Gaussian blobs in 40 dimensions: separable, so any working rule beats chance (50%)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = (rng.standard_normal((400, 40)) + 1.5 * (2 * y[:, None] - 1) * (np.arange(40) < 4)).astype(np.float32)
    return Dataset(x[:300], y[:300], x[300:], y[300:], n_classes=2)


@pytest.mark.parametrize("method", [m.value for m in Method])
def test_every_method_learns_separable_data(method, blobs):
    """Three epochs of the MLP on separable blobs reach > 85% test accuracy with every method
    (chance is 50%), and the history has one entry per epoch."""
    r = run_method(method, "mlp", blobs, epochs=3, batch_size=20, seed=0)
    assert [h["epoch"] for h in r["history"]] == [1, 2, 3]
    assert r["test_acc"] > 0.85, r


def test_same_seed_same_run(blobs):
    """Reproducible: the same seed gives the same learning curve (CPU)."""
    a = run_method("lns8-lnsmadam", "cnn", blobs, epochs=1, batch_size=50, seed=4)
    b = run_method("lns8-lnsmadam", "cnn", blobs, epochs=1, batch_size=50, seed=4)
    assert a["history"] == b["history"]


def test_bad_arguments(blobs):
    with pytest.raises(ValueError, match="allowed"):
        run_method("adamw", "mlp", blobs, epochs=1, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="model"):
        run_method("fp32-adam", "rnn", blobs, epochs=1, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        run_method("fp32-adam", "mlp", blobs, epochs=0, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="workers"):
        run_method("majority-vote", "mlp", blobs, epochs=1, batch_size=3, seed=0)
