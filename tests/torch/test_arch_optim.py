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


def test_scaled_relu_keeps_the_mean_square_of_a_standard_normal():
    """√2·ReLU: E[(√2·max(z, 0))²] = 1 for z ~ N(0, 1) (half the mass, doubled); on 10⁶ draws the
    sample mean lies within 4 of its standard errors of 1."""
    from neurolns.torch import ScaledReLU

    z = torch.randn(10**6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = ScaledReLU()(z)
    sq = y.square()
    se = float(sq.std()) / math.sqrt(z.numel())
    assert abs(float(sq.mean()) - 1.0) < 4 * se
    pos = z > 0  # the value itself: exactly √2·z where z > 0 (float64: one rounding of the product)
    np.testing.assert_allclose(y[pos].numpy() / z[pos].numpy(), math.sqrt(2.0), rtol=2**-52)
    assert torch.all(y[~pos] == 0)


def test_agd_prepare_makes_the_network_agd_is_derived_for():
    """agd_prepare_: no biases, every weight slice's singular values all equal agd_scale (numpy SVD in
    float64), ReLUs become √2·ReLU; a deep prepared MLP keeps the RMS of its activations (the
    property the √2 restores), the plain-ReLU one loses ~√2 per layer."""
    from neurolns.torch import ScaledReLU, agd_prepare_

    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Unflatten(1, (1, 40)), nn.Conv1d(1, 8, 5, stride=2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 18, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    assert agd_prepare_(net, gen) is net
    assert sum(isinstance(m, ScaledReLU) for m in net) == 2 and not any(isinstance(m, nn.ReLU) for m in net)
    for m in (net[1], net[4], net[6]):
        assert m.bias is None
        w = m.weight.detach().numpy().reshape(m.weight.shape[0], m.weight.shape[1], -1)
        for k in range(w.shape[2]):
            np.testing.assert_allclose(np.linalg.svd(w[:, :, k], compute_uv=False), A.agd_scale(m.weight.shape),
                                       rtol=1e-12)
    width, depth = 512, 8

    def rms_out(relu_gain):
        mlp = nn.Sequential(*[x for _ in range(depth) for x in (nn.Linear(width, width), nn.ReLU())]).double()
        agd_prepare_(mlp, torch.Generator().manual_seed(1))
        if not relu_gain:
            for i, m in enumerate(mlp):
                if isinstance(m, ScaledReLU):
                    mlp[i] = nn.ReLU()
        x = torch.randn(256, width, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        with torch.no_grad():
            return float(mlp(x).square().mean().sqrt())

    assert 0.8 < rms_out(True) < 1.25
    assert rms_out(False) < 2.0 ** (-depth / 2) * 1.25


def test_agd_prepare_refuses_layers_it_has_no_rule_for():
    from neurolns.torch import agd_prepare_

    with pytest.raises(TypeError, match="BatchNorm1d.*allowed: Linear, Conv1d, Conv2d"):
        agd_prepare_(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))


def test_agd_square_loss_is_the_mean_square_distance_to_sqrt_c_onehot():
    """Against a float64 numpy oracle: mean over (N, C) of (f − √C·onehot)²; wrong shapes refused."""
    from neurolns.torch import agd_square_loss

    rng = np.random.default_rng(0)
    out = rng.standard_normal((7, 5))
    y = rng.integers(0, 5, 7)
    target = np.zeros((7, 5))
    target[np.arange(7), y] = math.sqrt(5)
    want = ((out - target) ** 2).mean()
    got = agd_square_loss(torch.tensor(out), torch.tensor(y)).item()
    assert got == pytest.approx(want, rel=1e-14)
    with pytest.raises(ValueError, match="expected"):
        agd_square_loss(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    for bad in (5, -1):  # a label outside 0..C-1 names the range instead of indexing garbage
        with pytest.raises(ValueError, match=r"allowed: 0\.\.4"):
            agd_square_loss(torch.zeros(2, 5), torch.tensor([0, bad]))


def test_agd_on_its_network_and_loss_trains_the_digits_mlp_without_a_rate():
    """AGD + agd_prepare_ + agd_square_loss, no rate: the digits MLP (64-128-10, 5 epochs, batch 32)
    reaches >= 93% test accuracy (docs/architecture_aware.md: 97.59% at 20 epochs, 3 seeds)."""
    from neurolns.data import load_digits
    from neurolns.torch import agd_prepare_, agd_square_loss

    torch.manual_seed(0)
    data = load_digits()
    net = agd_prepare_(nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)), torch.Generator().manual_seed(0))
    opt = AGD(net.parameters())
    x, y = torch.tensor(data.x_train, dtype=torch.float32), torch.tensor(data.y_train, dtype=torch.long)
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = torch.as_tensor(rng.permutation(len(x)))
        for s in range(0, len(x), 32):
            idx = order[s:s + 32]
            opt.zero_grad()
            agd_square_loss(net(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = (net(torch.tensor(data.x_test, dtype=torch.float32)).argmax(1).numpy() == data.y_test).mean()
    assert acc >= 0.93, acc
