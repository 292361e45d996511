"""Stateful optimizers: float baselines against torch.optim (a peer library),
Madam against its pure function, and the shared interface (defaults, state_dict
round trips that resume the identical trajectory, clear errors)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from neurolns.formats import LNSFormat
from neurolns.learning import (
    SGD,
    Adam,
    EFSignSGD,
    LNSMadam,
    Madam,
    MajorityVote,
    SignSGD,
    Signum,
    madam_p_max,
    madam_update,
)


def _problem(seed=0, shapes=((5, 3), (3,))):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(25)]
    return params, grads


@pytest.mark.parametrize(
    "cls, kw, torch_name",
    [
        (SGD, dict(lr=0.1), "SGD"),
        (SGD, dict(lr=0.05, momentum=0.9), "SGD"),
        (Adam, dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8), "Adam"),
    ],
)
def test_float_baselines_match_torch(cls, kw, torch_name):
    """25 steps of SGD / SGD+momentum / Adam agree with torch.optim within float32 rounding (1e-5)."""
    torch = pytest.importorskip("torch")
    params, grads = _problem()
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    topt = getattr(torch.optim, torch_name)(tparams, **kw)
    opt = cls(params, **kw)
    for gs in grads:
        for tp, g in zip(tparams, gs):
            tp.grad = torch.tensor(g)
        topt.step()
        opt.step(gs)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_madam_class_is_the_pure_function_with_first_step_cap():
    """Madam.step == madam_update with p_max = p_scale·RMS(w at step 1), per parameter."""
    params, grads = _problem(1)
    ref = [p.copy() for p in params]
    vs = [np.zeros(p.shape) for p in params]  # float64 state, as the class keeps
    caps = [madam_p_max(p, 2.0) for p in ref]
    opt = Madam(params, lr=0.05, p_scale=2.0)
    for t, gs in enumerate(grads, start=1):
        opt.step(gs)
        for r, g, v, c in zip(ref, gs, vs, caps):
            madam_update(r, g, v, t, lr=0.05, beta=0.999, g_bound=10.0, p_max=c)
    for p, r in zip(params, ref):
        np.testing.assert_array_equal(p, r)
    assert opt.defaults == dict(lr=0.05, beta=0.999, g_bound=10.0, p_scale=2.0, nonfinite="skip")


def _code_problem(seed=0):
    rng = np.random.default_rng(seed)
    f = LNSFormat(bits=16, gamma=128)
    codes = [rng.integers(-20000, 20000, size=s).astype(np.int16) for s in ((6, 4), (4,))]
    codes[1][0] = 0
    grads = [[rng.normal(size=c.shape).astype(np.float32) for c in codes] for _ in range(25)]
    return f, codes, grads


def _make(name):
    """(optimizer factory over params, params, list of step arguments) for every class."""
    params, grads = _problem(2)
    f, codes, cgrads = _code_problem(3)
    rng = np.random.default_rng(4)
    worker_grads = [[[g + rng.normal(size=g.shape).astype(np.float32) for g in gs] for _ in range(3)] for gs in grads]
    worker_cgrads = [[[g + rng.normal(size=g.shape).astype(np.float32) for g in gs] for _ in range(4)] for gs in cgrads]
    table = {
        "sgd": (lambda p: SGD(p, lr=0.1, momentum=0.9), params, grads),
        "adam": (lambda p: Adam(p, lr=0.01), params, grads),
        "madam": (lambda p: Madam(p, lr=0.01, p_scale=3.0), params, grads),
        "lns-madam": (lambda p: LNSMadam(p, fmt=f, p_scale=4.0), codes, cgrads),
        "signsgd": (lambda p: SignSGD(p, lr=0.01), params, grads),
        "signum": (lambda p: Signum(p, lr=0.01, beta=0.9), params, grads),
        "ef-signsgd": (lambda p: EFSignSGD(p, lr=0.01), params, grads),
        "majority-vote": (lambda p: MajorityVote(p, lr=0.01, workers=3, momentum=0.9), params, worker_grads),
        "majority-vote-mult": (
            lambda p: MajorityVote(p, workers=4, multiplicative=True, fmt=f, ties="abstain"),
            codes,
            worker_cgrads,
        ),
    }
    return table[name]


ALL = ["sgd", "adam", "madam", "lns-madam", "signsgd", "signum", "ef-signsgd", "majority-vote", "majority-vote-mult"]


def _roundtrip_npz(sd):
    """Flatten a state_dict into np.savez and back (JSON for the non-array parts)."""
    arrays = {f"s{i}_{k}": v for i, st in enumerate(sd["state"]) for k, v in st.items() if isinstance(v, np.ndarray)}
    meta = dict(sd, state=[{k: v for k, v in st.items() if not isinstance(v, np.ndarray)} for st in sd["state"]])
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    buf.seek(0)
    z = np.load(buf)
    meta = json.loads(str(z["meta"]))
    for key in z.files:
        if key != "meta":
            i, k = key[1:].split("_", 1)
            meta["state"][int(i)][k] = z[key]
    return meta


@pytest.mark.parametrize("name", ALL)
def test_resume_gives_identical_trajectory(name):
    """Stopping after 10 steps, saving state_dict through npz+JSON into a fresh optimizer
    and going on gives bit-identical parameters to an uninterrupted run."""
    make, params, steps = _make(name)
    straight = [p.copy() for p in params]
    opt = make(straight)
    for s in steps:
        opt.step(s)
    first = [p.copy() for p in params]
    opt1 = make(first)
    for s in steps[:10]:
        opt1.step(s)
    saved = _roundtrip_npz(opt1.state_dict())
    resumed = [p.copy() for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(saved)
    assert opt2.t == 10
    for s in steps[10:]:
        opt2.step(s)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(straight, params))  # they did move


@pytest.mark.parametrize("name", ALL)
def test_state_dict_restores_hyperparameters_and_is_a_copy(name):
    """load_state_dict brings the saved hyperparameters; state_dict() arrays are copies."""
    make, params, steps = _make(name)
    opt = make([p.copy() for p in params])
    opt.step(steps[0])
    sd = opt.state_dict()
    if "lr" in sd["defaults"]:
        sd["defaults"]["lr"] = sd["defaults"]["lr"] * 2
    other = make([p.copy() for p in params])
    other.load_state_dict(sd)
    assert other.defaults["lr"] == opt.defaults["lr"] * 2
    for st in sd["state"]:
        for v in st.values():
            if isinstance(v, np.ndarray):
                v[...] = 123
    assert all(not np.any(v == 123) for st in opt.state for v in st.values() if isinstance(v, np.ndarray) and v.size)


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    """Another rule, other shapes or unknown keys raise ValueError; the optimizer is untouched."""
    params, grads = _problem()
    opt = Madam([p.copy() for p in params])
    opt.step(grads[0])
    before = opt.state_dict()
    with pytest.raises(ValueError, match="rule 'adam'"):
        opt.load_state_dict(Adam([p.copy() for p in params]).state_dict())
    with pytest.raises(ValueError, match="shapes"):
        opt.load_state_dict(Madam([np.ones((2, 2), np.float32)]).state_dict())
    bad = opt.state_dict()
    bad["defaults"]["momentum"] = 0.5
    with pytest.raises(ValueError, match="momentum"):
        opt.load_state_dict(bad)
    bad = opt.state_dict()
    bad["defaults"]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="lacks"):
        opt.load_state_dict({"rule": "madam"})
    after = opt.state_dict()
    assert after["t"] == before["t"] and after["defaults"] == before["defaults"]
    np.testing.assert_array_equal(after["state"][0]["v"], before["state"][0]["v"])


def test_constructor_errors_name_the_problem():
    """Unknown hyperparameters, wrong param dtypes and wrong grad lists raise clearly."""
    w = [np.ones(3, np.float32)]
    with pytest.raises(TypeError, match="unknown hyperparameter.*'momentum'"):
        Madam(w, momentum=0.9)
    with pytest.raises(ValueError, match="p_scale"):
        Madam(w, p_scale=0.0)
    with pytest.raises(TypeError, match="signed integer"):
        LNSMadam(w)
    with pytest.raises(TypeError, match="float dtype"):
        Adam([np.ones(3, np.int16)])
    with pytest.raises(TypeError, match="cannot hold"):
        LNSMadam([np.ones(3, np.int8)])  # LNS16 codes do not fit int8
    with pytest.raises(ValueError, match="lr=-0.001 is out of range"):  # fractional steps are allowed
        LNSMadam([np.ones(3, np.int16)], lr=-0.001)
    with pytest.raises(TypeError, match="list of numpy arrays"):
        SGD(np.ones(3))
    opt = SGD(w)
    with pytest.raises(ValueError, match="1 arrays"):
        opt.step([np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="shape"):
        opt.step([np.ones(4)])
    mv = MajorityVote(w, workers=3)
    with pytest.raises(ValueError, match="3 workers"):
        mv.step([[np.ones(3)]] * 2)
    with pytest.raises(ValueError, match="not a valid TieRule"):
        MajorityVote(w, ties="random")
    with pytest.raises(TypeError, match="cannot hold"):
        MajorityVote([np.ones(3, np.int8)], multiplicative=True)  # LNS16 codes do not fit int8
    sd = MajorityVote(w).state_dict()
    sd["defaults"]["multiplicative"] = True
    with pytest.raises(ValueError, match="does not match"):
        MajorityVote(w).load_state_dict(sd)


def test_defaults_hold_every_hyperparameter():
    """Each class exposes every hyperparameter (with the papers' defaults) in .defaults."""
    w = [np.ones(3, np.float32)]
    assert Madam(w).defaults == dict(lr=0.01, beta=0.999, g_bound=10.0, p_scale=3.0, nonfinite="skip")
    assert SGD(w).defaults == dict(lr=0.1, momentum=0.0, nonfinite="skip")
    assert Adam(w).defaults == dict(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, nonfinite="skip")
    assert Signum(w).defaults["beta"] == 0.9
    d = LNSMadam([np.ones(3, np.int16)]).defaults
    assert d["lr"] == 1 / 128 and d["fmt"] == LNSFormat(bits=16, gamma=128) and d["p_scale"] == math.inf
    mv = MajorityVote([np.ones(3, np.int16)], multiplicative=True).defaults
    assert mv["lr"] == 1 / 128 and mv["ties"] == "plus" and mv["workers"] == 5
