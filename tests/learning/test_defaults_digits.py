"""The trainer defaults (make_optimizer) work without tuning: a small numpy MLP on
scikit-learn digits, same data, init and batches for every rule, mean of 3 seeds.

Bars checked against FP32 baselines trained in the same test (design.md / the
capability text): Madam and LNS-Madam with LNS8 (γ = 8) forward weights within
1 point of FP32 Adam; majority vote over K = 5 workers within 2 points of FP32
SGD. Also shows why the trainer's Madam p_scale differs from the published 3.
Run with ``pytest -m slow tests/learning/test_defaults_digits.py -s`` for the table.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurolns import LNS8, lns
from neurolns.learning import Rule, make_optimizer, update_format

pytestmark = pytest.mark.slow

EPOCHS, BATCH, HIDDEN, SEEDS = 20, 32, 128, (0, 1, 2)


def _data():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm], d.target[perm]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _init(seed):
    r = np.random.default_rng(seed)
    return [
        (r.normal(size=(64, HIDDEN)) * math.sqrt(2 / 64)).astype(np.float32),
        np.full(HIDDEN, 0.01, np.float32),  # away from 0: multiplicative rules never move a zero
        (r.normal(size=(HIDDEN, 10)) * math.sqrt(1 / HIDDEN)).astype(np.float32),
        np.full(10, 0.01, np.float32),
    ]


def _grads(p, xb, yb):
    w1, b1, w2, b2 = p
    h = np.maximum(xb @ w1 + b1, 0)
    z = h @ w2 + b2
    e = np.exp(z - z.max(1, keepdims=True))
    dz = e / e.sum(1, keepdims=True)
    dz[np.arange(len(yb)), yb] -= 1
    dz /= len(yb)
    dh = dz @ w2.T
    dh[h <= 0] = 0
    return [xb.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]


def _accuracy(p, x, y):
    w1, b1, w2, b2 = p
    return float(((np.maximum(x @ w1 + b1, 0) @ w2 + b2).argmax(1) == y).mean())


def train(rule, seed, data, **overrides):
    """Train; for code rules the weights live as update-grid codes and the forward
    pass uses their LNS8 (γ = 8) conversion, gradients taken there (straight through)."""
    xtr, ytr, xte, yte = data
    rule = Rule(rule)
    p = _init(seed)
    if rule.on_codes:
        fmt = update_format(LNS8)
        # scale with 8x headroom above max|w0| so that weights may grow
        arrays = [lns.encode(w, fmt, scale=lns.choose_scale(8 * w, fmt)) for w in p]
        params = [a.codes for a in arrays]
        forward = lambda: [a.astype(LNS8).decode(np.float32) for a in arrays]  # noqa: E731
        opt = make_optimizer(rule, params, fmt=fmt, **overrides)
    else:
        forward = lambda: p  # noqa: E731
        opt = make_optimizer(rule, p, **overrides)
    k = opt.defaults.get("workers", 1) if opt.needs_worker_grads else 1
    rng = np.random.default_rng(seed + 100)
    for _ in range(EPOCHS):
        perm = rng.permutation(len(xtr))
        for i in range(0, len(xtr), BATCH * k):
            w = forward()
            parts = [perm[j : j + BATCH] for j in range(i, min(i + BATCH * k, len(xtr)), BATCH)]
            gs = [_grads(w, xtr[b], ytr[b]) for b in parts]
            if opt.needs_worker_grads:
                opt.step(gs + [gs[-1]] * (k - len(gs)))  # a short last round: repeat a worker
            else:
                opt.step(gs[0])
    return _accuracy(forward(), xte, yte)


@pytest.fixture(scope="module")
def results():
    data = _data()
    runs = {
        "adam": ("adam", {}),
        "sgd": ("sgd", {}),
        "madam": ("madam", {}),
        "madam p_scale=3 (published)": ("madam", {"p_scale": 3.0}),
        "lns-madam": ("lns-madam", {}),
        "lns-madam lr=1/128 (published)": ("lns-madam", {"lr": 1 / 128}),
        "majority-vote K=5": ("majority-vote", {}),
        "lns-majority-vote K=5": ("lns-majority-vote", {}),
        "signsgd": ("signsgd", {}),
        "signum": ("signum", {}),
        "ef-signsgd": ("ef-signsgd", {}),
    }
    out = {name: float(np.mean([train(r, s, data, **kw) for s in SEEDS])) for name, (r, kw) in runs.items()}
    for name, acc in out.items():
        print(f"{name:<34s} {100 * acc:6.2f}%")
    return out


def test_lns_madam_and_madam_within_one_point_of_adam(results):
    """Trainer-default Madam and LNS8 LNS-Madam: test accuracy >= FP32 Adam − 1 point."""
    assert results["madam"] >= results["adam"] - 0.01
    assert results["lns-madam"] >= results["adam"] - 0.01


def test_majority_vote_within_two_points_of_sgd(results):
    """Majority vote, K = 5 (additive and on codes): >= FP32 SGD − 2 points."""
    assert results["majority-vote K=5"] >= results["sgd"] - 0.02
    assert results["lns-majority-vote K=5"] >= results["sgd"] - 0.02


def test_sign_rules_learn(results):
    """signSGD, Signum and EF-SignSGD with trainer defaults reach >= 95% (10-class chance is 10%)."""
    for name in ("signsgd", "signum", "ef-signsgd"):
        assert results[name] >= 0.95, name
