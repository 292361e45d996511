"""The torch architecture-aware optimizers follow the numpy rules of
neurolns.learning.architecture (themselves tested against hand-derived float64
values) step for step on float64 parameters, hold their invariants on float32,
and resume bit for bit from a saved state_dict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neurolns.learning import architecture as A
from neurolns.torch.arch_optim import AGD, Dualised, Fromage, Muon, Nero, agd_init_, newton_schulz_t

SHAPES = [(5, 4), (5,), (3, 2, 3)]

PAIRS = {
    "fromage": (lambda ps: Fromage(ps, lr=0.1, p_bound=2.0), lambda ps: A.Fromage(ps, lr=0.1, p_bound=2.0)),
    "nero": (lambda ps: Nero(ps, lr=0.05, beta=0.9), lambda ps: A.Nero(ps, lr=0.05, beta=0.9)),
    "nero-free": (lambda ps: Nero(ps, lr=0.05, constraints=False), lambda ps: A.Nero(ps, lr=0.05, constraints=False)),
    "agd": (lambda ps: AGD(ps), lambda ps: A.AGD(ps)),
    "dualised": (lambda ps: Dualised(ps, lr=0.05, coefficients="cubic", ns_steps=8),
                 lambda ps: A.Dualised(ps, lr=0.05, coefficients="cubic", ns_steps=8)),
    "muon": (lambda ps: Muon(ps, lr=0.05), lambda ps: A.Muon(ps, lr=0.05)),
}


def _shapes(name):
    return [s for s in SHAPES if len(s) >= 2] if name == "agd" else SHAPES


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(sorted(PAIRS)))
def test_torch_follows_numpy_rule_in_float64(seed, name):
    """10 steps on float64 parameters: torch and numpy agree to 1e-12 absolute (only norm summation order differs)."""
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s) for s in _shapes(name)]
    grads = [[rng.standard_normal(s) for s in _shapes(name)] for _ in range(10)]
    tp = [nn.Parameter(torch.tensor(w)) for w in w0]
    npp = [w.copy() for w in w0]
    topt, nopt = PAIRS[name][0](tp), PAIRS[name][1](npp)
    for g in grads:
        for p, gi in zip(tp, g):
            p.grad = torch.tensor(gi)
        topt.step()
        nopt.step(g)
    for p, w in zip(tp, npp):
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_state_dict_round_trip_is_bit_exact(name, tmp_path):
    """Save after 3 steps (torch.save / torch.load(weights_only=True)); the original and a copy loaded from
    the file take the next 3 steps bit for bit on float32 parameters."""
    torch.manual_seed(0)
    a = [nn.Parameter(torch.randn(s)) for s in _shapes(name)]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    opt_a = PAIRS[name][0](a)
    grads = [[torch.randn(p.shape) for p in a] for _ in range(6)]
    for g in grads[:3]:
        for p, gi in zip(a, g):
            p.grad = gi.clone()
        opt_a.step()
    torch.save(opt_a.state_dict(), tmp_path / "opt.pt")
    with torch.no_grad():
        for p, q in zip(a, b):
            q.copy_(p)
    opt_b = PAIRS[name][0](b)
    opt_b.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in opt_a.param_groups]
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt_b.param_groups] == hyper
    for g in grads[3:]:
        for ps, opt in ((a, opt_a), (b, opt_b)):
            for p, gi in zip(ps, g):
                p.grad = gi.clone()
            opt.step()
    for p, q in zip(a, b):
        assert torch.equal(p.view(torch.int32), q.view(torch.int32))


def test_nero_float32_rows_stay_on_the_sphere():
    """Constrained Nero on float32: every row of a matrix keeps mean 0 and norm 1 to float32 precision."""
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(16, 9))
    opt = Nero([w], lr=0.1)
    for _ in range(20):
        w.grad = torch.randn(16, 9)
        opt.step()
    torch.testing.assert_close(w.detach().mean(1), torch.zeros(16), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.vector_norm(w.detach(), dim=1), torch.ones(16), atol=1e-6, rtol=0)


def test_newton_schulz_t_matches_numpy_svd():
    """30 cubic steps on a well-conditioned 12×7 float64 matrix: U Vᵀ of numpy's SVD within 1e-10."""
    rng = np.random.default_rng(2)
    g = rng.standard_normal((12, 7)) + 3 * np.eye(12, 7)
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    np.testing.assert_allclose(newton_schulz_t(torch.tensor(g), 30, "cubic").numpy(), u @ vt, atol=1e-10)


def test_agd_init_matches_numpy_scale():
    """agd_init_ gives singular values s = √(d_out/d_in)/√k per kernel position, as agd_scale."""
    w = torch.empty(4, 8, 3, dtype=torch.float64)
    agd_init_(w, torch.Generator().manual_seed(0))
    for k in range(3):
        torch.testing.assert_close(torch.linalg.svdvals(w[:, :, k]),
                                   torch.full((4,), A.agd_scale((4, 8, 3)), dtype=torch.float64))


@pytest.mark.parametrize("cls,kw,match", [
    (Fromage, {"lr": -1.0}, "lr"), (Nero, {"beta": 1.0}, "beta"), (Nero, {"constraints": "yes"}, "constraints"),
    (Dualised, {"ns_steps": 1.5}, "ns_steps"), (Muon, {"coefficients": "septic"}, "septic"), (AGD, {"gain": 0}, "gain"),
])
def test_bad_hyperparameters_name_the_value(cls, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls([nn.Parameter(torch.zeros(2, 2))], **kw)


def test_agd_rejects_biases_and_trains_without_a_rate():
    """AGD refuses 1-D parameters; on a bias-free 2-layer MLP it lowers a regression loss from its orthogonal init."""
    with pytest.raises(ValueError, match="no biases"):
        AGD([nn.Parameter(torch.zeros(3))])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32, bias=False), nn.ReLU(), nn.Linear(32, 1, bias=False))
    for p in net.parameters():
        agd_init_(p.data)
    x = torch.randn(64, 8)
    y = x[:, :1] - x[:, 1:2]
    opt = AGD(net.parameters())
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0] and math.isfinite(opt.last_eta)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_nonfinite_gradient_skips_the_whole_step(name):
    """A NaN in one gradient: torch and numpy optimizers change nothing, warn and count the skip
    (the base classes' policy, inherited)."""
    w0 = [np.random.default_rng(0).standard_normal(s) for s in _shapes(name)]
    tp = [nn.Parameter(torch.tensor(w)) for w in w0]
    npp = [w.copy() for w in w0]
    topt, nopt = PAIRS[name][0](tp), PAIRS[name][1](npp)
    grads = [np.ones(s) for s in _shapes(name)]
    grads[-1][0] = np.nan
    for p, g in zip(tp, grads):
        p.grad = torch.tensor(g)
    with pytest.warns(RuntimeWarning):
        topt.step()
    with pytest.warns(RuntimeWarning):
        nopt.step(grads)
    assert topt.skipped_steps == 1 and nopt.skipped_steps == 1 and nopt.t == 0
    for p, q, w in zip(tp, npp, w0):
        np.testing.assert_array_equal(p.detach().numpy(), w)
        np.testing.assert_array_equal(q, w)
