"""Architecture-aware rules (Fromage, Nero, AGD, Newton–Schulz, dualised/Muon) against
their formulas in float64: hand-derived values, independent transcriptions (scalar
loops, numpy's SVD), the invariants each rule promises, the Numba kernel against the
reference path, and bit-exact state_dict round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns.formats import LNSFormat
from neurolns.learning.architecture import (
    AGD,
    Dualised,
    Fromage,
    LNSNero,
    Muon,
    Nero,
    agd_gain,
    agd_init,
    agd_scale,
    agd_update,
    dual_norm,
    dualise,
    dualised_update,
    fromage_update,
    lns_nero_update,
    muon_update,
    nero_project,
    nero_update,
    newton_schulz,
    steepest_direction,
)

seeds = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------- Fromage
def test_fromage_hand_value():
    """w = (3, 4), g = (0, 1), η = 0.75: ‖w‖/‖g‖ = 5, (3, 4 − 3.75)/1.25 = (2.4, 0.2)."""
    w = np.array([3.0, 4.0])
    fromage_update(w, np.array([0.0, 1.0]), lr=0.75)
    np.testing.assert_allclose(w, [2.4, 0.2], rtol=0, atol=1e-15)


def test_fromage_zero_norm_falls_back_to_gradient_step():
    """w = 0: w ← (0 − η g)/√(1+η²) (no relative scaling possible); g = 0: w/√(1+η²)."""
    w = np.zeros(2)
    fromage_update(w, np.array([1.0, -2.0]), lr=0.5)
    np.testing.assert_allclose(w, np.array([-0.5, 1.0]) / math.sqrt(1.25), rtol=1e-15)
    w = np.array([1.0, 1.0])
    fromage_update(w, np.zeros(2), lr=0.5)
    np.testing.assert_allclose(w, np.array([1.0, 1.0]) / math.sqrt(1.25), rtol=1e-15)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, lr=st.floats(1e-3, 2.0))
def test_fromage_orthogonal_gradient_keeps_the_norm(seed, lr):
    """For g ⟂ w, ‖w − η‖w‖ĝ‖² = ‖w‖²(1+η²) (Pythagoras), so the √(1+η²) division keeps ‖w‖ exactly."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((5, 3))
    g = rng.standard_normal((5, 3))
    g -= (g * w).sum() / (w * w).sum() * w
    n0 = np.linalg.norm(w)
    fromage_update(w, g, lr=lr)
    assert np.linalg.norm(w) == pytest.approx(n0, rel=1e-12)


def test_fromage_p_bound_caps_the_norm():
    """Fromage(p_bound=1.1): ‖w‖ never exceeds 1.1·‖w₀‖, and a gradient along −w grows it to the cap."""
    w = np.array([3.0, 4.0])
    opt = Fromage([w], lr=0.5, p_bound=1.1)
    for _ in range(5):
        opt.step([-w.copy()])
    assert np.linalg.norm(w) == pytest.approx(5.5, rel=1e-14)


# --------------------------------------------------------------------- Nero
def nero_oracle(w, grads, *, lr, beta, constraints):
    """Scalar-loop float64 transcription of Nero (Liu et al. 2021), starting from the projection."""
    w = [list(map(float, r)) for r in w]
    rows, n = len(w), len(w[0])

    def project(r):
        m = sum(r) / n
        r = [x - m for x in r]
        s = math.sqrt(sum(x * x for x in r))
        return [x / s for x in r]

    if constraints:
        w = [project(r) for r in w]
    scale = sum(math.sqrt(sum(x * x for x in r)) for r in w) / rows
    v = [0.0] * rows
    for t, g in enumerate(grads, start=1):
        for i in range(rows):
            gi = [float(x) for x in g[i]]
            v[i] = beta * v[i] + (1 - beta) * sum(x * x for x in gi)
            den = math.sqrt(v[i] / (1 - beta**t))
            w[i] = [x - lr * scale * y / den for x, y in zip(w[i], gi)]
            if constraints:
                w[i] = project(w[i])
    return np.array(w)


@pytest.mark.parametrize("constraints", [True, False])
def test_nero_matches_scalar_oracle(constraints):
    """20 steps of Nero on a 4×6 matrix agree with the scalar loop to 1e-12 (with and without constraints)."""
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((4, 6))
    grads = [rng.standard_normal((4, 6)) for _ in range(20)]
    w = w0.copy()
    opt = Nero([w], lr=0.05, beta=0.9, constraints=constraints)
    for g in grads:
        opt.step([g])
    np.testing.assert_allclose(w, nero_oracle(w0, grads, lr=0.05, beta=0.9, constraints=constraints),
                               rtol=0, atol=1e-12)


def test_nero_hand_value_and_bias():
    """Row (0.6, 0.8), g = (1, −1), t = 1: v̂ = ‖g‖² = 2, step η s g/√2 (s = 1). A bias moves by ±η s per element."""
    w = np.array([[0.6, 0.8]])
    nero_update(w, np.array([[1.0, -1.0]]), np.zeros(1), 1, lr=0.1, constraints=False)
    np.testing.assert_allclose(w, [[0.6 - 0.1 / math.sqrt(2), 0.8 + 0.1 / math.sqrt(2)]], rtol=0, atol=1e-15)
    b = np.array([0.5, -0.25])
    opt = Nero([b], lr=0.1)
    opt.step([np.array([2.0, -3.0])])
    assert opt.state[0]["scale"] == 0.375  # mean |b| at step 1
    np.testing.assert_allclose(b, [0.5 - 0.0375, -0.25 + 0.0375], rtol=0, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, rows=st.integers(1, 7), cols=st.integers(2, 9), constraints=st.booleans())
def test_nero_kernel_matches_reference(seed, rows, cols, constraints):
    """The Numba row kernel and the numpy reference agree to 1e-13 (only summation order differs),
    and constrained rows end with mean 0 and norm 1."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols, 1))
    nero_project(w)
    w2, v, v2 = w.copy(), np.zeros(rows), np.zeros(rows)
    for t in range(1, 4):
        g = rng.standard_normal(w.shape)
        g[0] = 0.0  # a row with no gradient yet: 0/0 := 0
        nero_update(w, g, v, t, lr=0.1, beta=0.9, constraints=constraints)
        nero_update(w2, g, v2, t, lr=0.1, beta=0.9, constraints=constraints, reference=True)
    np.testing.assert_allclose(w, w2, rtol=0, atol=1e-13)
    np.testing.assert_allclose(v, v2, rtol=1e-13)
    if constraints and cols > 1:
        np.testing.assert_allclose(w.reshape(rows, -1).mean(1), 0.0, atol=1e-14)
        np.testing.assert_allclose(np.linalg.norm(w.reshape(rows, -1), axis=1), 1.0, rtol=1e-13)


# --------------------------------------------------------------------- LNS-Nero
def lns_nero_oracle(c, g, v, t, *, gamma, bias, max_code, k, beta, g_bound):
    """Scalar transcription of lns_nero_update on one row list (decoded values in float64)."""
    n = len(c)
    v = beta * v + (1 - beta) * sum(x * x for x in g)
    den = math.sqrt(v / (1 - beta**t))
    out = []
    for ci, gi in zip(c, g):
        if ci == 0:
            out.append(0)
            continue
        gh = max(-g_bound, min(g_bound, math.sqrt(n) * gi / den)) if den > 0 else 0.0
        q = round(gh)  # Python round: ties to even, as rint
        s = 1 if ci > 0 else -1
        out.append(s * max(1, min(max_code, abs(ci) - k * q * s)))
    norm = math.sqrt(sum(2.0 ** (2 * (abs(x) - bias) / gamma) for x in out if x))
    d = round(gamma * math.log2(norm)) if norm > 0 else 0
    return [0 if x == 0 else (1 if x > 0 else -1) * max(1, min(max_code, abs(x) - d)) for x in out], v


@settings(max_examples=40, deadline=None)
@given(seed=seeds, rows=st.integers(1, 5), cols=st.integers(1, 12), k=st.sampled_from([1, 2, 4]))
def test_lns_nero_matches_scalar_oracle_and_keeps_unit_rows(seed, rows, cols, k):
    """Codes equal the scalar transcription exactly; signs never flip, zeros stay zero, and every row's
    norm ends within 2^(±1/(2γ)) of 1 (the per-row shift is exact: all codes move by the same d)."""
    f = LNSFormat(bits=16, gamma=128)
    rng = np.random.default_rng(seed)
    c = (np.where(rng.random((rows, cols)) < 0.5, -1, 1)
         * (f.bias + rng.integers(-300, 300, (rows, cols)))).astype(np.int32)
    c[0, 0] = 0
    v = np.zeros(rows)
    c0 = c.copy()
    for t in (1, 2):
        g = rng.standard_normal((rows, cols))
        expect = [lns_nero_oracle(list(map(int, c[r])), list(g[r]), v[r], t, gamma=128, bias=f.bias,
                                  max_code=f.max_code, k=k, beta=0.9, g_bound=10.0) for r in range(rows)]
        lns_nero_update(c, g, v, t, fmt=f, lr=k / 128, beta=0.9, constraints=True)
        assert c.tolist() == [e[0] for e in expect]
        np.testing.assert_allclose(v, [e[1] for e in expect], rtol=1e-15)
    assert np.all(np.sign(c) == np.sign(c0))
    mags = np.where(c != 0, np.exp2((np.abs(c) - f.bias) / 128.0), 0.0)
    norms = np.linalg.norm(mags, axis=1)
    live = norms > 0
    assert np.all(np.abs(128 * np.log2(norms[live])) <= 0.5 + 1e-9)


def test_lns_nero_state_dict_round_trip():
    """LNSNero resumes bit for bit from its state_dict (codes are integers: equality is exact)."""
    rng = np.random.default_rng(4)
    f = LNSFormat(bits=16, gamma=128)
    c = (f.bias + rng.integers(-200, 200, (6, 5))).astype(np.int16)
    opt = LNSNero([c], fmt=f, lr=2 / 128, constraints=True)
    grads = [rng.standard_normal((6, 5)) for _ in range(6)]
    for g in grads[:3]:
        opt.step([g])
    other = LNSNero([c.copy()], fmt=f, lr=4 / 128)
    other.load_state_dict(opt.state_dict())
    for g in grads[3:]:
        opt.step([g])
        other.step([g])
    np.testing.assert_array_equal(opt.params[0], other.params[0])
    with pytest.raises(ValueError, match="lr"):
        LNSNero([c], fmt=f, lr=1.5 / 128)


# --------------------------------------------------------------------- AGD
def test_agd_gain_and_update_hand_values():
    """Two layers: W1 (4×1) with ∇ all 0.5 (s = 2, ‖∇‖ = 1), W2 (1×4) with ∇ = (3, 4, 0, 0) (s = 1/2, ‖∇‖ = 5).
    G = (2·1 + 0.5·5)/2 = 2.25, η = log((1 + √10)/2); W_l −= η/2 · s_l ∇_l/‖∇_l‖."""
    g1, g2 = np.full((4, 1), 0.5), np.array([[3.0, 4.0, 0.0, 0.0]])
    G, eta = agd_gain([g1, g2])
    assert G == 2.25 and eta == pytest.approx(math.log((1 + math.sqrt(10)) / 2), rel=1e-15)
    w1, w2 = np.zeros((4, 1)), np.ones((1, 4))
    agd_update([w1, w2], [g1, g2])
    np.testing.assert_allclose(w1, np.full((4, 1), -eta / 2 * 2 * 0.5), rtol=1e-15)
    np.testing.assert_allclose(w2, 1 - eta / 2 * 0.5 * g2 / 5, rtol=1e-15)


def test_agd_convolution_normalises_each_kernel_position():
    """A (2, 1, 2) kernel: s = √2/√2 = 1; each position's gradient slice is normalised on its own."""
    g = np.zeros((2, 1, 2))
    g[:, 0, 0] = [3.0, 4.0]
    g[:, 0, 1] = [0.0, 2.0]
    assert agd_scale(g.shape) == 1.0
    G, eta = agd_gain([g])
    assert G == 7.0  # 5 + 2
    w = np.zeros_like(g)
    agd_update([w], [g])
    np.testing.assert_allclose(w[:, 0, 0], -eta * np.array([0.6, 0.8]), rtol=1e-15)
    np.testing.assert_allclose(w[:, 0, 1], -eta * np.array([0.0, 1.0]), rtol=1e-15)


@pytest.mark.parametrize("shape", [(8, 3), (3, 8), (5, 5), (6, 4, 3)])
def test_agd_init_is_scaled_orthogonal(shape):
    """Every (d_out, d_in) slice of agd_init has all singular values equal to agd_scale."""
    w = np.empty(shape)
    agd_init(w, 0)
    for k in range(int(np.prod(shape[2:]))):
        sv = np.linalg.svd(w.reshape(shape[0], shape[1], -1)[:, :, k], compute_uv=False)
        np.testing.assert_allclose(sv, agd_scale(shape), rtol=1e-12)


def test_agd_rejects_biases():
    with pytest.raises(ValueError, match="no biases"):
        AGD([np.zeros(3)])


# --------------------------------------------------------------------- Newton–Schulz, dualised, Muon
def _conditioned(rng, m, n, cond):
    u, _ = np.linalg.qr(rng.standard_normal((m, m)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    k = min(m, n)
    s = np.geomspace(1.0, 1.0 / cond, k)
    return (u[:, :k] * s) @ v[:, :k].T


@settings(max_examples=25, deadline=None)
@given(seed=seeds, m=st.integers(1, 12), n=st.integers(1, 12), coeff=st.sampled_from(["cubic", "muon"]),
       steps=st.integers(0, 6))
def test_newton_schulz_acts_on_singular_values_alone(seed, m, n, coeff, steps):
    """NS(G) = U p^k(Σ/‖G‖_F) Vᵀ: its singular values are the scalar polynomial iterated on G's (via numpy SVD)."""
    rng = np.random.default_rng(seed)
    g = _conditioned(rng, m, n, 10.0)
    a, b, c = {"cubic": (1.5, -0.5, 0.0), "muon": (3.4445, -4.7750, 2.0315)}[coeff]
    s = np.linalg.svd(g, compute_uv=False) / np.linalg.norm(g)
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    got = np.linalg.svd(newton_schulz(g, steps, coeff), compute_uv=False)
    np.testing.assert_allclose(np.sort(np.abs(got)), np.sort(np.abs(s)), rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, m=st.integers(1, 16), n=st.integers(1, 16))
def test_newton_schulz_cubic_converges_to_svd_polar_factor(seed, m, n):
    """Condition number ≤ 10, 30 cubic steps: NS(G) equals numpy's U Vᵀ within 1e-10 (σ/‖G‖_F ≥ 1/(10·4) grows
    ×1.5 per step to 1 in ≤ 10 steps, then converges quadratically)."""
    g = _conditioned(np.random.default_rng(seed), m, n, 10.0)
    np.testing.assert_allclose(newton_schulz(g, 30, "cubic"), steepest_direction(g, "spectral"), atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, m=st.integers(2, 16), n=st.integers(2, 16))
def test_newton_schulz_muon_band(seed, m, n):
    """Muon's quintic, 5 steps: every singular value with σ/‖G‖_F ≥ 0.01 lands in [0.68, 1.14]."""
    g = _conditioned(np.random.default_rng(seed), m, n, 10.0)
    sv = np.linalg.svd(newton_schulz(g, 5, "muon"), compute_uv=False)
    assert sv.min() >= 0.68 and sv.max() <= 1.14


@settings(max_examples=50, deadline=None)
@given(seed=seeds, d=st.integers(1, 20))
def test_linf_dual_is_l1_times_sign_and_maximises(seed, d):
    """Under ℓ∞ the dual vector is ‖g‖₁·sign(g) and sign(g) maximises ⟨g, t⟩ over ‖t‖∞ ≤ 1 (value ‖g‖₁)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(d)
    np.testing.assert_array_equal(dualise(g, "linf"), np.abs(g).sum() * np.where(g < 0, -1.0, 1.0))
    best = float(g @ steepest_direction(g, "linf"))
    assert best == pytest.approx(dual_norm(g, "linf"), rel=1e-14)
    t = rng.uniform(-1, 1, (200, d))
    assert (t @ g).max() <= best + 1e-12


def test_spectral_dual_attains_the_nuclear_norm():
    """⟨G, U Vᵀ⟩ = Σσ = ‖G‖_nuc, larger than ⟨G, T⟩ for random T of spectral norm 1; ℓ2's dual vector is g."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal((5, 3))
    nuc = np.linalg.norm(g, "nuc")
    assert float((g * steepest_direction(g, "spectral")).sum()) == pytest.approx(nuc, rel=1e-13)
    assert dual_norm(g, "spectral") == pytest.approx(nuc, rel=1e-13)
    for _ in range(50):
        t = rng.standard_normal((5, 3))
        t /= np.linalg.norm(t, 2)
        assert float((g * t).sum()) <= nuc + 1e-12
    np.testing.assert_allclose(dualise(g, "l2"), g, rtol=1e-14)


@pytest.mark.parametrize("shape", [(16, 4), (4, 16), (6, 2, 3), (9,)])
def test_dualised_step_has_spectral_norm_lr_times_shape_scale(shape):
    """Converged NS: ‖ΔW‖₂ = η·√(d_out/d_in) with W seen as (d_out, d_in) (a vector as a column)."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal(shape)
    w = np.zeros(shape)
    dualised_update(w, g, lr=0.1, ns_steps=40, coefficients="cubic")
    m = w.reshape(shape[0], -1)
    assert np.linalg.norm(m, 2) == pytest.approx(0.1 * math.sqrt(m.shape[0] / m.shape[1]), rel=1e-10)
    np.testing.assert_allclose(-m / np.linalg.norm(m, 2), steepest_direction(g.reshape(m.shape), "spectral"),
                               atol=1e-10)


def test_muon_momentum_hand_values():
    """1×1 matrices (converged cubic NS of x is sign(x)): b = μb + g; direction g + μb (Nesterov) or b."""
    w, b = np.zeros((1, 1)), np.zeros((1, 1))
    seq = [1.0, -3.0, 1.0]
    expect_w, bb, ww = [], 0.0, 0.0
    for g in seq:
        bb = 0.9 * bb + g
        ww -= 0.1 * math.copysign(1.0, g + 0.9 * bb)
        expect_w.append(ww)
    for g, e in zip(seq, expect_w):
        muon_update(w, np.array([[g]]), b, lr=0.1, momentum=0.9, nesterov=True, ns_steps=40, coefficients="cubic")
        assert w[0, 0] == pytest.approx(e, abs=1e-12)
    assert b[0, 0] == pytest.approx(bb, abs=1e-15)


# --------------------------------------------------------------------- optimizers, state_dict
def _make(name, params):
    return {
        "fromage": lambda: Fromage(params, lr=0.1, p_bound=2.0),
        "nero": lambda: Nero(params, lr=0.1, beta=0.9),
        "agd": lambda: AGD([p for p in params if p.ndim >= 2]),
        "dualised": lambda: Dualised(params, lr=0.05),
        "muon": lambda: Muon(params, lr=0.05, coefficients="cubic", ns_steps=7),
    }[name]()


@settings(max_examples=10, deadline=None)
@given(seed=seeds, name=st.sampled_from(["fromage", "nero", "agd", "dualised", "muon"]))
def test_state_dict_round_trip_is_bit_exact(seed, name):
    """Save after 3 steps; the saved optimizer and a fresh one loaded from the copy take the same next
    3 steps bit for bit (float32 weights), and hyperparameters travel with the state."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    opt = _make(name, params)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in opt.params] for _ in range(6)]
    for g in grads[:3]:
        opt.step(g)
    sd = opt.state_dict()
    copies = [p.copy() for p in opt.params]
    other = type(opt)(copies, **({} if name == "agd" else {"lr": 0.7}))
    other.load_state_dict(sd)
    assert other.defaults == opt.defaults and other.t == 3
    for g in grads[3:]:
        opt.step(g)
        other.step(g)
    for a, b in zip(opt.params, other.params):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("cls,kw,match", [
    (Fromage, {"lr": 0.0}, "lr"), (Nero, {"beta": 1.0}, "beta"), (Nero, {"constraints": 1}, "constraints"),
    (Dualised, {"ns_steps": -1}, "ns_steps"), (Dualised, {"coefficients": "quartic"}, "quartic"),
    (Muon, {"momentum": 1.5}, "momentum"), (AGD, {"gain": -1.0}, "gain"),
])
def test_bad_hyperparameters_name_the_value(cls, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls([np.zeros((2, 2))], **kw)
