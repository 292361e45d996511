"""Trainer: bit-for-bit reproducibility, stop + resume == uninterrupted run,
checkpoints that refuse corrupt or mismatched files and never clobber a good one,
K-worker majority vote, and learning on digits against FP32 Adam."""

import os

import numpy as np
import pytest

from neurolns.data import Dataset, load_digits
from neurolns.models import mlp
from neurolns.sim import Trainer


@pytest.fixture(scope="module")
def small():
    d = load_digits()
    return d.subset(400, 200)


def _net(weights="fp32", seed=0, hidden=(32,)):
    return mlp.build_sim(64, hidden, 10, weights=weights, seed=seed)


def _codes(tr):
    return [p.data.copy() for p in tr.params]


@pytest.mark.parametrize("rule,weights", [("adam", "fp32"), ("lns-madam", "lns"), ("majority-vote", "fp32"),
                                          ("lns-majority-vote", "lns")])
def test_same_seeds_give_identical_runs(small, rule, weights):
    """Two runs with the same seeds end with identical codes/weights and history."""
    runs = []
    for _ in range(2):
        tr = Trainer(_net(weights), rule, batch_size=40, seed=3)
        tr.fit(small, 2)
        runs.append((tr.history, _codes(tr)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    # a different shuffling seed changes the trajectory (the test can fail)
    tr = Trainer(_net(weights), rule, batch_size=40, seed=4)
    tr.fit(small, 2)
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0][1], _codes(tr)))


@pytest.mark.parametrize("rule,weights", [("lns-madam", "lns"), ("adam", "fp32"), ("signum", "fp32"),
                                          ("majority-vote", "fp32")])
def test_stop_and_resume_gives_the_identical_trajectory(small, tmp_path, rule, weights):
    """4 epochs straight == 2 epochs, checkpoint, a fresh trainer loads it, 2 more epochs:
    same history and bit-identical parameters and optimizer state."""
    straight = Trainer(_net(weights), rule, batch_size=32, seed=1)
    straight.fit(small, 4)

    ck = tmp_path / "run.npz"
    first = Trainer(_net(weights), rule, batch_size=32, seed=1)
    first.fit(small, 2, checkpoint=ck)
    resumed = Trainer(_net(weights, seed=99), rule, batch_size=32, seed=12345)  # other init, other seed
    resumed.load_checkpoint(ck)
    assert resumed.epoch == 2
    resumed.fit(small, 4)

    assert resumed.history == straight.history
    for a, b in zip(_codes(resumed), _codes(straight)):
        np.testing.assert_array_equal(a, b)
    sa, sb = resumed.optimizer.state_dict(), straight.optimizer.state_dict()
    assert sa["t"] == sb["t"]
    for x, y in zip(sa["state"], sb["state"]):
        for k in x:
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]))


def test_checkpoint_holds_codes_formats_and_scales(small, tmp_path):
    tr = Trainer(_net("lns"), "lns-madam", batch_size=50)
    tr.fit(small, 1)
    path = tr.save_checkpoint(tmp_path / "c.npz")
    from neurolns.sim.checkpoint import read_checkpoint

    meta, arrays = read_checkpoint(path)
    assert meta["network"]["layers"][0]["params"][0]["master_format"] == {"bits": 12, "gamma": 128, "bias": 1024,
                                                                         "underflow": "zero"}
    assert arrays["param0"].dtype == np.int16 and meta["scales"][0] == tr.params[0].scale
    assert meta["rng"]["bit_generator"] == "PCG64"


def test_corrupt_checkpoint_raises_and_the_good_one_survives(small, tmp_path):
    """A truncated or bit-flipped file raises ValueError naming it; a failed save
    leaves the previous checkpoint byte-identical (write to a temporary, then rename)."""
    tr = Trainer(_net(), "adam", batch_size=50)
    tr.fit(small, 1)
    good = tr.save_checkpoint(tmp_path / "c.npz")
    blob = good.read_bytes()

    bad = tmp_path / "truncated.npz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        Trainer(_net(), "adam", batch_size=50).load_checkpoint(bad)
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt|not a neurolns"):
        Trainer(_net(), "adam", batch_size=50).load_checkpoint(tmp_path / "flipped.npz")
    (tmp_path / "other.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError):
        Trainer(_net(), "adam", batch_size=50).load_checkpoint(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        Trainer(_net(), "adam", batch_size=50).load_checkpoint(tmp_path / "missing.npz")

    # a save that fails half way (an unstorable optimizer entry) leaves the old file intact
    tr.optimizer.state[0]["oops"] = object()
    with pytest.raises(TypeError):
        tr.save_checkpoint(good)
    del tr.optimizer.state[0]["oops"]
    assert good.read_bytes() == blob
    assert sorted(os.listdir(tmp_path)) == sorted(["c.npz", "truncated.npz", "flipped.npz", "other.npz"])


def test_mismatched_checkpoint_raises_and_changes_nothing(small, tmp_path):
    """Another architecture, format, rule or batch size is refused with the difference named."""
    tr = Trainer(_net(), "adam", batch_size=50)
    tr.fit(small, 1)
    ck = tr.save_checkpoint(tmp_path / "c.npz")
    other = Trainer(_net(hidden=(16,)), "adam", batch_size=50)
    before = _codes(other)
    with pytest.raises(ValueError, match="another setup.*out_features: 32 vs 16"):
        other.load_checkpoint(ck)
    for a, b in zip(before, _codes(other)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="rule"):
        Trainer(_net(), "sgd", batch_size=50).load_checkpoint(ck)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(_net(), "adam", batch_size=51).load_checkpoint(ck)
    with pytest.raises(ValueError, match="forward_format"):
        _raise_format_mismatch(tmp_path)


def _raise_format_mismatch(tmp_path):
    """An LNS checkpoint loaded into a network with another forward format."""
    from neurolns import LNSFormat

    a = Trainer(_net("lns"), "lns-madam", batch_size=50)
    ck = a.save_checkpoint(tmp_path / "f.npz")
    b = Trainer(mlp.build_sim(64, (32,), 10, weights="lns", forward_format=LNSFormat(bits=8, gamma=4)),
                "lns-madam", batch_size=50)
    b.load_checkpoint(ck)


def test_majority_vote_splits_each_batch_over_k_workers(small, monkeypatch):
    """The optimizer receives K gradient lists, each the gradient of one shard."""
    tr = Trainer(_net(), "majority-vote", batch_size=23, workers=5)
    seen = []
    monkeypatch.setattr(tr.optimizer, "step", lambda grads: seen.append(grads))
    x, y = small.x_train[:23], small.y_train[:23]
    tr.step(x, y)
    assert len(seen) == 1 and len(seen[0]) == 5 and all(len(g) == len(tr.params) for g in seen[0])
    net = tr.net
    for k, idx in enumerate(np.array_split(np.arange(23), 5)):
        net.loss_and_grads(x[idx], y[idx])
        np.testing.assert_array_equal(seen[0][k][0], tr.params[0].grad)


def test_trainer_rejects_bad_settings():
    with pytest.raises(ValueError, match="updates LNS codes"):
        Trainer(_net("fp32"), "lns-madam")
    with pytest.raises(ValueError, match="lns-majority-vote"):
        Trainer(_net("lns"), "majority-vote")
    with pytest.raises(ValueError, match="workers"):
        Trainer(_net(), "adam", workers=3)
    with pytest.raises(ValueError, match="workers=5 is out of range"):
        Trainer(_net(), "majority-vote", batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(_net(), "adam", batch_size=0)
    with pytest.raises(ValueError, match="not a valid Rule"):
        Trainer(_net(), "rmsprop")


def test_lns8_lns_madam_learns_digits_like_fp32_adam():
    """On digits (MLP 64-64-10, 8 epochs) LNS8 LNS-Madam's test accuracy is within
    3 points of FP32 Adam's in the same run, and both are far above chance (10%)."""
    d = load_digits()
    acc = {}
    for rule, w in (("adam", "fp32"), ("lns-madam", "lns")):
        tr = Trainer(mlp.build_sim(64, (64,), 10, weights=w, seed=0), rule, batch_size=32, seed=0)
        acc[rule] = tr.fit(d, 8)[-1]["test_acc"]
    assert acc["adam"] > 0.93
    assert acc["lns-madam"] > acc["adam"] - 0.03, acc


@pytest.mark.parametrize("rule,weights,gamma", [("madam", "fp32", None), ("lns-madam", "lns", 128)])
def test_cosine_schedule_sets_the_rate_of_every_step(small, rule, weights, gamma):
    """With lr_schedule='cosine' step s of S uses scheduled_lr(lr0, 'cosine', s, S) (whole
    1/128 grid steps for LNS-Madam): 400 examples at batch 64 = 7 steps/epoch, 3 epochs, S = 21."""
    from neurolns.learning import scheduled_lr

    lr0 = 0.05 if gamma is None else 8 / 128
    tr = Trainer(_net(weights), rule, batch_size=64, seed=0, lr=lr0, lr_schedule="cosine")
    seen = []
    inner = tr.optimizer.step

    def spy(grads):
        seen.append(tr.optimizer.defaults["lr"])
        inner(grads)

    tr.optimizer.step = spy
    tr.fit(small, 3)
    want = [scheduled_lr(lr0, "cosine", s, 21, grid_gamma=gamma) for s in range(21)]
    assert seen == want
    assert seen[0] == lr0 and seen[-1] < lr0 / 10 + (1 / 128 if gamma else 0)


def test_cosine_schedule_stop_and_resume_is_identical(small, tmp_path):
    """A cosine run of 4 epochs == 2 epochs, checkpoint, resume, 2 more (schedule_epochs=4
    fixes the horizon across the two fit calls)."""
    kw = dict(batch_size=32, seed=1, lr=8 / 128, lr_schedule="cosine", schedule_epochs=4)
    straight = Trainer(_net("lns"), "lns-madam", **kw)
    straight.fit(small, 4)
    ck = tmp_path / "cos.npz"
    Trainer(_net("lns"), "lns-madam", **kw).fit(small, 2, checkpoint=ck)
    resumed = Trainer(_net("lns", seed=5), "lns-madam", **kw)
    resumed.load_checkpoint(ck)
    resumed.fit(small, 4)
    assert resumed.history == straight.history
    for a, b in zip(_codes(resumed), _codes(straight)):
        np.testing.assert_array_equal(a, b)
    # a constant-rate trainer refuses the cosine checkpoint
    with pytest.raises(ValueError, match="lr_schedule"):
        Trainer(_net("lns"), "lns-madam", batch_size=32, seed=1, lr=8 / 128).load_checkpoint(ck)


def test_schedule_arguments_are_checked(small):
    with pytest.raises(ValueError, match="allowed"):
        Trainer(_net(), "adam", lr_schedule="linear")
    with pytest.raises(ValueError, match="schedule_epochs"):
        Trainer(_net(), "adam", lr_schedule="cosine", schedule_epochs=0)
    tr = Trainer(_net(), "adam", lr_schedule="cosine")
    with pytest.raises(ValueError, match="schedule_epochs"):
        tr.train_epoch(small.x_train, small.y_train)  # no horizon known outside fit()


# -- checkpoints validated by value (issue 14) ----------------------------------
def _tamper(tmp_path, trainer, name, change):
    """Save ``trainer``, apply ``change(meta, arrays)`` to the stored content, write it
    back as an intact (CRC-valid) checkpoint and return its path."""
    from neurolns.sim.checkpoint import read_checkpoint, save_checkpoint

    good = trainer.save_checkpoint(tmp_path / "good.npz")
    meta, arrays = read_checkpoint(good)
    change(meta, arrays)
    return save_checkpoint(tmp_path / f"{name}.npz", meta, arrays)


def _set(d, key, value):
    d[key] = value


@pytest.mark.parametrize("weights,rule,name,change,match", [
    ("lns", "lns-madam", "code", lambda m, a: a["param0"].flat.__setitem__(0, 30000),
     r"parameter 0\.weight \(param0\).*30000.*index \(0, 0\).*-2047 <= code <= 2047"),
    ("lns", "lns-madam", "negcode", lambda m, a: a["param1"].flat.__setitem__(3, -3000), r"param1.*-3000"),
    ("fp32", "adam", "nanweight", lambda m, a: a["param2"].flat.__setitem__(5, np.nan),
     r"parameter 2\.weight \(param2\).*nan at index \(0, 5\)"),
    ("fp32", "adam", "infbias", lambda m, a: a["param1"].flat.__setitem__(0, -np.inf), r"0\.bias.*-inf"),
    ("fp32", "adam", "epoch", lambda m, a: _set(m, "epoch", -5), r"epoch=-5"),
    ("fp32", "adam", "epochfloat", lambda m, a: _set(m, "epoch", 1.5), r"epoch=1\.5"),
    ("lns", "lns-madam", "scale", lambda m, a: m["scales"].__setitem__(1, -0.25), r"scales\[1\].*-0\.25"),
    ("lns", "lns-madam", "scalenan", lambda m, a: m["scales"].__setitem__(0, float("nan")), r"scales\[0\].*nan"),
    ("lns", "lns-madam", "scalestr", lambda m, a: m["scales"].__setitem__(0, "big"), r"scales\[0\]"),
    ("fp32", "adam", "step", lambda m, a: _set(m["optimizer"], "t", -1), r"optimizer\.t=-1"),
    ("fp32", "adam", "skipped", lambda m, a: _set(m["optimizer"], "skipped_steps", -2), r"optimizer\.skipped_steps=-2"),
    ("fp32", "adam", "state", lambda m, a: a[m["optimizer"]["state"][0]["v"]["__nd__"]].flat.__setitem__(2, np.inf),
     r"optimizer\.state\[0\]\.v.*inf"),
    ("lns", "lns-madam", "lnsstate",
     lambda m, a: a[m["optimizer"]["state"][1]["v"]["__nd__"]].flat.__setitem__(0, np.nan), r"optimizer\.state\[1\]\.v"),
    ("fp32", "adam", "seconds", lambda m, a: _set(m, "seconds", -3.0), r"seconds=-3\.0"),
])
def test_checkpoint_with_impossible_values_is_refused_and_changes_nothing(small, tmp_path, weights, rule, name,
                                                                         change, match):
    """An intact file (valid CRCs, right architecture) holding an out-of-range code,
    a non-finite weight, scale or optimizer state, or a negative counter raises a
    ValueError naming the field, and the trainer it was loaded into is unchanged."""
    tr = Trainer(_net(weights), rule, batch_size=50)
    tr.fit(small, 1)
    bad = _tamper(tmp_path, tr, name, change)
    fresh = Trainer(_net(weights), rule, batch_size=50)
    before = _codes(fresh)
    with pytest.raises(ValueError, match=match):
        fresh.load_checkpoint(bad)
    assert fresh.epoch == 0 and fresh.history == []
    for a, b in zip(before, _codes(fresh)):
        np.testing.assert_array_equal(a, b)
    fresh.load_checkpoint(tmp_path / "good.npz")  # the untampered file still loads
    assert fresh.epoch == 1


# -- non-finite data and state in training (issue 14) ---------------------------
def test_nan_features_are_refused_naming_the_first_index(small):
    """fit (any object with x_train/y_train, not only a Dataset), train_epoch, step
    and evaluate refuse NaN or inf features as they refuse bad labels."""
    from types import SimpleNamespace

    x = small.x_train.copy()
    x[7, 3] = np.nan
    x[9, 0] = np.inf
    tr = Trainer(_net(), "adam", batch_size=50)
    msg = r"features holds 2 non-finite.*nan at index \(7, 3\)"
    with pytest.raises(ValueError, match="training data " + msg):
        tr.fit(SimpleNamespace(x_train=x, y_train=small.y_train), 1)
    with pytest.raises(ValueError, match=msg):
        tr.train_epoch(x, small.y_train)
    with pytest.raises(ValueError, match=r"minibatch features.*index \(7, 3\)"):
        tr.step(x[:10], small.y_train[:10])
    with pytest.raises(ValueError, match=msg):
        tr.evaluate(x, small.y_train)
    xt = small.x_test.copy()
    xt[2, 1] = -np.inf
    with pytest.raises(ValueError, match=r"test data features.*-inf at index \(2, 1\)"):
        tr.fit(SimpleNamespace(x_train=small.x_train, y_train=small.y_train, x_test=xt, y_test=small.y_test), 1)
    assert tr.epoch == 0 and tr.optimizer.state_dict()["t"] == 0


@pytest.mark.parametrize("weights,rule", [("fp32", "adam"), ("fp32", "sgd")])
def test_a_nan_weight_is_never_reported_as_a_finite_loss(small, weights, rule):
    """A NaN weight anywhere (here a hidden unit's incoming weight, which a ReLU
    used to hide by mapping NaN to 0) makes step raise, naming the parameter."""
    tr = Trainer(_net(weights), rule, batch_size=50)
    tr.params[0].data[4, 10] = np.nan
    with pytest.raises(ValueError, match=r"parameter 0\.weight.*nan at index \(4, 10\).*before the step"):
        tr.step(small.x_train[:50], small.y_train[:50])
    # and the forward pass alone shows NaN, not a finite number
    assert np.isnan(tr.net.evaluate(small.x_train[:50], small.y_train[:50])[0])


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
def test_a_non_finite_loss_is_reported_as_non_finite(small):
    """Finite but huge output weights overflow float32 to ±inf logits: the loss is
    NaN and is returned as NaN. The optimizer then either skips the step with a
    RuntimeWarning and leaves the weights as they were (when it counts skipped
    steps), or the step makes a weight non-finite and the trainer raises."""
    tr = Trainer(_net(), "adam", batch_size=50)
    tr.params[2].data[...] = np.where(tr.params[2].data > 0, 3e38, -3e38).astype(np.float32)
    x, y = small.x_train[:50], small.y_train[:50]
    assert np.isnan(tr.net.evaluate(x, y)[0])
    before = _codes(tr)
    if hasattr(tr.optimizer, "skipped_steps"):
        with pytest.warns(RuntimeWarning, match="(?i)skip"):
            loss, _ = tr.step(x, y)
        assert np.isnan(loss) and tr.optimizer.skipped_steps == 1
        for a, b in zip(before, _codes(tr)):
            np.testing.assert_array_equal(a, b)
    else:
        with pytest.raises(ValueError, match="after the optimizer step"):
            tr.step(x, y)


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
def test_an_epoch_with_skipped_steps_reports_a_non_finite_loss_and_the_count(small):
    """Finite but huge output weights overflow every batch's logits to ±inf: each
    step's loss is NaN and the optimizer skips it; the epoch's train_loss is NaN
    (never a finite mean) and history counts the skipped steps."""
    from types import SimpleNamespace

    tr = Trainer(_net(), "adam", batch_size=50)
    if not hasattr(tr.optimizer, "skipped_steps"):
        pytest.skip("this optimizer does not skip non-finite steps")
    tr.params[2].data[...] = np.where(tr.params[2].data > 0, 3e38, -3e38).astype(np.float32)
    before = _codes(tr)
    with pytest.warns(RuntimeWarning, match="(?i)skip"):
        hist = tr.fit(SimpleNamespace(x_train=small.x_train, y_train=small.y_train), 1)
    n_batches = len(small.x_train) // 50
    assert np.isnan(hist[-1]["train_loss"]) and hist[-1]["skipped_steps"] == n_batches
    assert tr.optimizer.state_dict()["t"] == 0
    for a, b in zip(before, _codes(tr)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
def test_nonfinite_raise_reaches_the_optimizer_through_the_trainer(small):
    """Trainer(..., nonfinite="raise") hands the policy to the optimizer: a NaN-loss
    step raises ValueError and changes nothing."""
    tr = Trainer(_net(), "adam", batch_size=50, nonfinite="raise")
    if tr.optimizer.defaults.get("nonfinite") != "raise":
        pytest.skip("this optimizer has no non-finite policy")
    tr.params[2].data[...] = np.where(tr.params[2].data > 0, 3e38, -3e38).astype(np.float32)
    before = _codes(tr)
    with pytest.raises(ValueError, match="non-finite"):
        tr.step(small.x_train[:50], small.y_train[:50])
    for a, b in zip(before, _codes(tr)):
        np.testing.assert_array_equal(a, b)
