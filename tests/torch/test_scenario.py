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


@pytest.mark.parametrize("method,lr,gamma", [("lns8-lnsmadam", 8 / 128, 128), ("fp32-adam", 1e-2, None),
                                             ("majority-vote", 3e-3, None)])
def test_cosine_schedule_matches_the_simulator_rule(blobs, monkeypatch, method, lr, gamma):
    """lr_schedule='cosine' gives step s of S the rate scheduled_lr(lr, 'cosine', s, S) — the function
    the simulator's trainer uses — on whole 1/128 steps for LNS-Madam (300 examples, batch 100: S = 6)."""
    import torch

    import neurolns.torch.scenario as sc
    from neurolns.learning import scheduled_lr

    seen = []
    if method == "majority-vote":
        inner = sc._MajorityVote.step
        monkeypatch.setattr(sc._MajorityVote, "step", lambda self, g: (seen.append(self.lr), inner(self, g)))
    else:
        inner = torch.optim.Optimizer.zero_grad

        def spy(self, set_to_none=True):
            seen.append(self.param_groups[0]["lr"])
            return inner(self, set_to_none=set_to_none)

        monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", spy)
    r = run_method(method, "mlp", blobs, epochs=2, batch_size=100, seed=0, lr=lr, lr_schedule="cosine")
    assert seen == [scheduled_lr(lr, "cosine", s, 6, grid_gamma=gamma) for s in range(6)]
    assert r["test_acc"] > 0.85
