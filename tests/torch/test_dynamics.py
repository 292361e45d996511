"""The training-dynamics instruments against exact references: the full Hessian of small models
(``torch.autograd.functional.hessian`` + ``numpy.linalg.eigh``), explicit preconditioned matrices,
hand-computed margins; and the promise that an instrument changes nothing it measures."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from neurolns import LNS8
from neurolns.torch import LNSMadam, Madam, SignSGD, convert, quantize
from neurolns.torch.dynamics import (
    Tracker,
    adam_preconditioner,
    hvp,
    lanczos,
    madam_preconditioner,
    normalised_margin,
    preconditioned_sharpness,
    sharpness,
    stability_threshold,
    weight_norms,
)

MSE = nn.functional.mse_loss


def _mlp(seed=0, dtype=torch.float64, sizes=(5, 7, 3), act=nn.Tanh, bias=True):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(act())
        layers.append(nn.Linear(a, b, bias=bias))
    return nn.Sequential(*layers).to(dtype)


def _data(n=40, d=5, c=3, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = nn.functional.one_hot(torch.randint(0, c, (n,), generator=g), c).to(dtype)
    return x, y


def _exact_hessian(model, loss_fn, x, y):
    """The full Hessian of the loss in the flattened parameters, by torch.autograd.functional.hessian."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def f(flat):
        out, i = {}, 0
        for n, s in zip(names, shapes):
            k = math.prod(s)
            out[n] = flat[i:i + k].view(s)
            i += k
        return loss_fn(functional_call(model, out, (x,)), y)

    return torch.autograd.functional.hessian(f, flat0).numpy()


@pytest.mark.parametrize("backend", ["func", "autograd"])
def test_sharpness_equals_top_eigenvalues_of_exact_hessian(backend):
    """Invariant: Lanczos on HVPs gives the top-3 eigenvalues of the exact Hessian to 1e-4 relative."""
    model = _mlp()
    x, y = _data()
    exact = np.sort(np.linalg.eigvalsh(_exact_hessian(model, MSE, x, y)))[::-1][:3]
    got = sharpness(model, MSE, (x, y), k=3, backend=backend, iters=60).numpy()
    np.testing.assert_allclose(got, exact, rtol=1e-4)
    assert sharpness(model, MSE, (x, y), backend=backend, iters=60) == pytest.approx(exact[0], rel=1e-4)


def test_sharpness_float32_model_and_cross_entropy():
    """Invariant: a float32 model with a cross-entropy loss still matches the float64 exact Hessian to 1e-4."""
    model = _mlp(dtype=torch.float32)
    x, y = _data(dtype=torch.float32)
    labels = y.argmax(1)
    ref = _mlp(dtype=torch.float64)
    exact = np.linalg.eigvalsh(_exact_hessian(ref, nn.functional.cross_entropy, x.double(), labels)).max()
    assert sharpness(model, nn.functional.cross_entropy, (x, labels), iters=60) == pytest.approx(exact, rel=1e-4)


def test_full_set_in_batches_equals_one_batch():
    """Invariant: the loss over several batches is their size-weighted mean, so the HVP equals the one-batch HVP."""
    model = _mlp()
    x, y = _data(n=30)
    v = [torch.randn_like(p) for p in model.parameters()]
    one = hvp(model, MSE, (x, y), v)
    many = hvp(model, MSE, [(x[:7], y[:7]), (x[7:20], y[7:20]), (x[20:], y[20:])], v)
    h = _exact_hessian(model, MSE, x, y)
    ref = h @ torch.cat([t.reshape(-1) for t in v]).numpy()
    for a, b in ((one, ref), (many, ref)):
        np.testing.assert_allclose(torch.cat([t.reshape(-1) for t in a]).numpy(), b, rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 30), k=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_lanczos_top_k_equals_eigh(n, k, seed):
    """Property: on a random symmetric matrix Lanczos's top-k equal numpy.linalg.eigh's (Krylov space up to n)."""
    k = min(k, n)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    a = a + a.T
    got = lanczos(lambda v: torch.from_numpy(a) @ v, n, k=k, iters=n, tol=1e-12).numpy()
    exact = np.sort(np.linalg.eigvalsh(a))[::-1][:k]
    np.testing.assert_allclose(got, exact, rtol=1e-7, atol=1e-8 * np.abs(exact).max())


def test_lanczos_restarts_on_an_invariant_subspace():
    """Invariant: a multiple of the identity (Krylov space of dimension 1) still gives k equal eigenvalues,
    and a matrix with a repeated top eigenvalue gives it k times."""
    vals = lanczos(lambda v: 2.0 * v, 5, k=3, iters=5)
    np.testing.assert_allclose(vals.numpy(), [2.0, 2.0, 2.0], rtol=1e-12)
    a = torch.diag(torch.tensor([4.0, 4.0, 1.0, 0.5], dtype=torch.float64))
    np.testing.assert_allclose(lanczos(lambda v: a @ v, 4, k=2, iters=4).numpy(), [4.0, 4.0], rtol=1e-12)


def test_lanczos_vectors_are_eigenvectors():
    """Invariant: returned Ritz vectors satisfy A v = λ v."""
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.standard_normal((12, 12)))
    a = a + a.T
    vals, vecs = lanczos(lambda v: a @ v, 12, k=2, iters=12, tol=1e-12, return_vectors=True)
    for i in range(2):
        np.testing.assert_allclose((a @ vecs[:, i]).numpy(), (vals[i] * vecs[:, i]).numpy(), atol=1e-8)


def test_adam_preconditioned_sharpness_equals_explicit_matrix():
    """Invariant: λ_max(P⁻¹H) from Lanczos equals the top eigenvalue of the explicit P^(-1/2) H P^(-1/2),
    with P = (1 − β₁ᵗ)(sqrt(v/(1 − β₂ᵗ)) + ε) transcribed from Adam's state."""
    model = _mlp()
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-4)
    for _ in range(5):
        opt.zero_grad()
        MSE(model(x), y).backward()
        opt.step()
    b1, b2 = 0.9, 0.999
    pre = []
    for p in model.parameters():
        s = opt.state[p]
        t = float(s["step"])
        pre.append((1 - b1**t) * (np.sqrt(s["exp_avg_sq"].double().numpy() / (1 - b2**t)) + 1e-4))
    pflat = np.concatenate([q.reshape(-1) for q in pre])
    got_p = torch.cat([q.reshape(-1) for q in adam_preconditioner(opt)]).numpy()
    np.testing.assert_allclose(got_p, pflat, rtol=1e-12)
    h = _exact_hessian(model, MSE, x, y)
    d = 1 / np.sqrt(pflat)
    exact = np.sort(np.linalg.eigvalsh(d[:, None] * h * d[None, :]))[::-1][:2]
    got = preconditioned_sharpness(model, MSE, (x, y), adam_preconditioner(opt), k=2, iters=80).numpy()
    np.testing.assert_allclose(got, exact, rtol=1e-4)
    # and it equals the largest real eigenvalue of the (non-symmetric) P⁻¹H
    assert np.linalg.eigvals(h / pflat[:, None]).real.max() == pytest.approx(exact[0], rel=1e-6)


def test_madam_preconditioner_formula_and_frozen_entries():
    """Invariant: P = sqrt(v/(1−βᵗ))/(c|w|) with c = 1 (Madam), ln 2 (LNS-Madam); inf where w = 0."""
    w = nn.Parameter(torch.tensor([0.5, -0.25, 0.0], dtype=torch.float64))
    opt = Madam([w], lr=0.01, beta=0.9, p_scale=math.inf)
    grads = [torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64), torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64)]
    v = np.zeros(3)
    for t, g in enumerate(grads, 1):
        w.grad = g
        opt.step()
        v = 0.9 * v + 0.1 * g.numpy() ** 2
    vhat = v / (1 - 0.9**2)
    got = madam_preconditioner(opt)[0].numpy()
    np.testing.assert_allclose(got[:2], np.sqrt(vhat[:2]) / np.abs(w.detach().numpy()[:2]), rtol=1e-12)
    assert got[2] == math.inf
    p = nn.Parameter(torch.tensor([1.0, -1.0]))
    lo = LNSMadam([p], beta=0.9)
    p.grad = torch.tensor([1.0, 2.0])
    lo.step()
    np.testing.assert_allclose(madam_preconditioner(lo)[0].numpy(),
                               np.array([1.0, 2.0]) / (math.log(2) * np.abs(p.detach().double().numpy())), rtol=1e-6)
    with pytest.raises(TypeError, match="Madam"):
        madam_preconditioner(torch.optim.SGD([p], lr=0.1))


@pytest.mark.parametrize("cls", [Madam, LNSMadam])
def test_madam_step_is_preconditioned_gd_to_first_order(cls):
    """Invariant behind the derived threshold (docs/dynamics.md): one Madam / LNS-Madam step is
    Δw = −η P⁻¹ g + O(η²) with P = madam_preconditioner, so the linearised map is GD preconditioned by P
    (LNS-Madam: with |ĝ| whole numbers, where rint(ĝ) = ĝ)."""
    w0 = torch.tensor([0.5, -0.25, 2.0], dtype=torch.float32)
    g1 = torch.tensor([1.0, -2.0, 3.0])
    eta = 1 / 128 if cls is LNSMadam else 0.01
    w = nn.Parameter(w0.clone())
    opt = cls([w], lr=eta, beta=0.0)  # β = 0: v̂ = g², ĝ = sign g (whole numbers)
    w.grad = g1
    opt.step()
    w_before = w.detach().double().clone()
    w.grad = g1
    pre = madam_preconditioner(opt)[0]  # v̂ of the first step = g1², |w| = w_before: what the next step uses
    opt.step()
    dw = w.detach().double() - w_before
    lin = -eta * g1.double() / pre
    np.testing.assert_allclose(dw.numpy(), lin.numpy(), rtol=3 * eta)


def test_converted_model_hessian_is_float_hessian_at_quantized_weights():
    """Invariant (module docstring): for LNS layers the instrument measures ∇²L(Q(w)), the Hessian of the float
    network at the quantized weights, through the straight-through quantizer; a grad_format is set aside."""
    model = _mlp(dtype=torch.float32)
    x, y = _data(dtype=torch.float32)
    convert(model, LNS8, grad_format=LNS8)
    ref = _mlp(dtype=torch.float64)
    with torch.no_grad():
        for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
            q.copy_(quantize(p.detach(), LNS8).double())
    exact = np.sort(np.linalg.eigvalsh(_exact_hessian(ref, MSE, x.double(), y.double())))[::-1][:2]
    got = sharpness(model, MSE, (x, y), k=2, iters=60).numpy()
    np.testing.assert_allclose(got, exact, rtol=1e-4)
    assert all(m.grad_format is LNS8 for m in model.modules() if hasattr(m, "grad_format"))
    with pytest.raises(Exception):  # the quantizers are not torch.func-ready: the autograd backend is required
        sharpness(model, MSE, (x, y), backend="func")


def _state(model, opt):
    return ([p.detach().clone() for p in model.parameters()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            {id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()} for p, s in opt.state.items()})


@pytest.mark.parametrize("opt_name", ["adam", "lnsmadam"])
def test_instruments_change_nothing(opt_name):
    """Invariant: parameters, .grad, optimizer state, the train/eval mode and torch's global RNG are as before."""
    model = _mlp(dtype=torch.float32, sizes=(5, 16, 3), act=nn.ReLU)
    model.insert(1, nn.Dropout(0.3)) if hasattr(model, "insert") else None
    x, y = _data(dtype=torch.float32)
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        convert(model, LNS8, storage="lns")
        opt = LNSMadam(model.parameters())
    for _ in range(3):
        opt.zero_grad()
        MSE(model(x), y).backward()
        opt.step()
    model.train()
    before = _state(model, opt)
    rng = torch.get_rng_state()
    pre = adam_preconditioner(opt) if opt_name == "adam" else madam_preconditioner(opt)
    sharpness(model, MSE, (x, y), k=2)
    preconditioned_sharpness(model, MSE, (x, y), pre)
    normalised_margin(model, x, y.argmax(1))
    tr = Tracker(["sharpness", "preconditioned", "margin", "weight_norm", "codes"], loss_fn=MSE, data=(x, y.argmax(1)))
    tr.loss_fn = lambda out, t: MSE(out, nn.functional.one_hot(t, 3).float())
    tr.after_step(0, model, opt)
    after = _state(model, opt)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    for a, b in zip(before[0], after[0]):
        assert torch.equal(a, b)
    for a, b in zip(before[1], after[1]):
        assert torch.equal(a, b)
    for k in before[2]:
        for name, v in before[2][k].items():
            w = after[2][k][name]
            assert torch.equal(v, w) if torch.is_tensor(v) else v == w


def test_normalised_margin_by_hand_both_norms():
    """Invariant: (f_y − max_{j≠y} f_j)/(Π‖W_k‖·‖x‖) for a 2-layer ReLU net, computed by hand in float64."""
    w1 = np.array([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.0]])
    w2 = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [1.0, 1.0, 1.0]])
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    y = np.array([1, 2])
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 3, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1))
        model[2].weight.copy_(torch.from_numpy(w2))
    f = np.maximum(x @ w1.T, 0) @ w2.T
    raw = np.array([f[i, y[i]] - max(f[i, j] for j in range(3) if j != y[i]) for i in range(2)])
    xn = np.sqrt((x**2).sum(1))
    for norm, nf in (("frobenius", lambda m: np.sqrt((m**2).sum())), ("spectral", lambda m: np.linalg.svd(m)[1][0])):
        want = raw / (nf(w1) * nf(w2) * xn)
        got = normalised_margin(model, torch.from_numpy(x), torch.from_numpy(y), norm).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(weight_norms(model, norm), [nf(w1), nf(w2)], rtol=1e-12)
    with pytest.raises(ValueError, match="allowed"):
        normalised_margin(model, torch.from_numpy(x), torch.from_numpy(y), "l1")


@settings(max_examples=20, deadline=None)
@given(c1=st.floats(0.1, 10), c2=st.floats(0.1, 10), cx=st.floats(0.1, 10), seed=st.integers(0, 1000))
def test_normalised_margin_is_scale_invariant(c1, c2, cx, seed):
    """Property: a bias-free ReLU net's normalised margin is unchanged by rescaling any layer or the input."""
    model = _mlp(seed=seed, sizes=(4, 6, 3), act=nn.ReLU, bias=False)
    x = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(10) % 3
    base = normalised_margin(model, x, y)
    with torch.no_grad():
        model[0].weight.mul_(c1)
        model[2].weight.mul_(c2)
    for norm in ("frobenius", "spectral"):
        np.testing.assert_allclose(normalised_margin(model, cx * x, y, norm).numpy(),
                                   normalised_margin(model, x, y, norm).numpy(), rtol=1e-9)
    np.testing.assert_allclose(normalised_margin(model, x, y).numpy(), base.numpy(), rtol=1e-9)


def test_stability_thresholds():
    """Invariant: 2/η for GD, (2+2β)/η heavy ball, (2+2β₁)/((1−β₁)η) = 38/η for Adam at β₁ = 0.9, none for signs."""
    w = [nn.Parameter(torch.ones(2))]
    assert stability_threshold(torch.optim.SGD(w, lr=0.1)) == pytest.approx(20)
    assert stability_threshold(torch.optim.SGD(w, lr=0.1, momentum=0.9)) == pytest.approx(38)
    assert stability_threshold(torch.optim.Adam(w, lr=0.01)) == pytest.approx(3800)
    assert stability_threshold(Madam(w, lr=0.05)) == pytest.approx(40)
    assert stability_threshold(LNSMadam(w)) == pytest.approx(256)
    assert stability_threshold(SignSGD(w, lr=0.1)) is None


def test_gd_on_quadratic_diverges_exactly_above_threshold():
    """Invariant: GD on ½ θᵀHθ is stable iff sharpness < 2/η; the instrument's λ_max predicts it."""
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    model = nn.Linear(2, 1, bias=False).double()
    x = torch.linalg.cholesky(a).T.contiguous()  # mse over 2 rows: H = 2XᵀX/2 = a
    lam = sharpness(model, MSE, (x, torch.zeros(2, 1, dtype=torch.float64)))
    assert lam == pytest.approx(float(torch.linalg.eigvalsh(a).max()), rel=1e-10)
    for eta, stable in ((1.99 / lam, True), (2.01 / lam, False)):
        th = torch.tensor([1.0, 1.0], dtype=torch.float64)
        for _ in range(3000):
            th = th - eta * (a @ th)
        assert (float(th.norm()) < 1.0) is stable


def test_tracker_lns_madam_code_fractions():
    """Invariant: codes_moved is the fraction of codes that differ across the recorded step, codes_saturated
    the fraction at the cap, as read from the optimizer's codes directly."""
    model = _mlp(dtype=torch.float32, sizes=(5, 8, 3), act=nn.ReLU)
    convert(model, LNS8, storage="lns")
    opt = LNSMadam(model.parameters(), lr=4 / 128, p_scale=1.5)
    x, y = _data(dtype=torch.float32)
    tr = Tracker(["codes", "update_size", "weight_norm"], every=3)
    for t in range(7):
        opt.zero_grad()
        MSE(model(x), y).backward()
        before = [opt.codes(p).clone() for p in model.parameters()] if opt.state else None
        tr.before_step(t, model, opt)
        opt.step()
        row = tr.after_step(t, model, opt)
        if row is not None and before is not None:
            after = [opt.codes(p) for p in model.parameters()]
            moved = sum(int((a != b).sum()) for a, b in zip(before, after)) / sum(a.numel() for a in after)
            sat = sum(int(((a.abs() >= opt.state[p]["max_code"]) & (a != 0)).sum())
                      for a, p in zip(after, model.parameters())) / sum(a.numel() for a in after)
            assert row["codes_moved"] == pytest.approx(moved)
            assert row["codes_saturated"] == pytest.approx(sat)
            assert 0 < row["update_size"] < 1
    assert [r["step"] for r in tr.history] == [0, 3, 6]


def test_errors_name_the_bad_value():
    """Invariant: bad inputs raise ValueError/TypeError naming the value and the range."""
    model = _mlp()
    x, y = _data()
    with pytest.raises(ValueError, match="k=9"):
        lanczos(lambda v: v, 4, k=9)
    with pytest.raises(ValueError, match="tol"):
        lanczos(lambda v: v, 4, tol=0.0)
    with pytest.raises(ValueError, match="backend|allowed"):
        sharpness(model, MSE, (x, y), backend="jax")
    with pytest.raises(TypeError, match="data"):
        sharpness(model, MSE, [])
    with pytest.raises(ValueError, match="> 0"):
        preconditioned_sharpness(model, MSE, (x, y), [-torch.ones_like(p) for p in model.parameters()])
    with pytest.raises(ValueError, match="every"):
        Tracker(["margin"], every=0, data=(x, y))
    with pytest.raises(ValueError, match="loss_fn"):
        Tracker(["sharpness"])
    with pytest.raises(ValueError, match="no exp_avg_sq"):
        adam_preconditioner(torch.optim.Adam(model.parameters()))
