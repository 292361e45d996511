"""Bipolar kernels, geometry, features and the hand-derived gradient against
float64 oracles written independently of the library's vectorised code."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurolns.sysid import (
    TRUE_TYPES,
    CircuitModel,
    CircuitWeights,
    DoGType,
    Geometry,
    bipolar_drive,
    bipolar_features,
    block_features,
    circuit_forward,
    circuit_grad,
    dog_kernel,
    kernel_bank,
)


def test_dog_kernel_matches_the_papers_formula_pointwise():
    """k(r) = s_c(0.4/σ_c)e^(−r²/2σ_c²) − s_s(0.4/σ_s)e^(−r²/2σ_s²), / max|k|, r on linspace(−5, 5, 11)."""
    sc, ss, ac, as_ = 2.0, 4.0, 20.0, 14.0
    raw = np.empty((11, 11))
    for i, x in enumerate(np.linspace(-5, 5, 11)):
        for j, y in enumerate(np.linspace(-5, 5, 11)):
            r2 = x * x + y * y
            raw[i, j] = ac * 0.4 / sc * np.exp(-r2 / (2 * sc * sc)) - as_ * 0.4 / ss * np.exp(-r2 / (2 * ss * ss))
    np.testing.assert_allclose(dog_kernel(sc, ss, ac, as_), raw / np.abs(raw).max(), rtol=1e-13)


def test_bank_sizes_and_flips():
    """The paper's bank sizes; the true types come first; the second half of 16/28 are the sign flips."""
    for n in (3, 8, 14, 16, 28):
        assert len(kernel_bank(n)) == n
    b = kernel_bank(28)
    assert b[:3] == TRUE_TYPES
    for t, f in zip(b[:14], b[14:]):
        np.testing.assert_array_equal(f.kernel(), -t.kernel())
        assert f.bias == t.bias
    with pytest.raises(ValueError, match="n_types=15"):
        kernel_bank(15)
    with pytest.raises(ValueError, match="sigma_c"):
        DoGType(0, 1, 1, 1)


def test_geometry_same_padding_and_errors():
    """TF 'SAME': a 10×10 grid for 100×100, kernel 11, stride 10; a pool that does not divide the grid raises."""
    g = Geometry()
    assert g.grid == (10, 10) and g.amacrine_grid == (5, 5) and g.padding == ((0, 1), (0, 1))
    assert Geometry(image_shape=(20, 30), pool=1).grid == (2, 3)
    with pytest.raises(ValueError, match="pool=2"):
        Geometry(image_shape=(30, 30))


def test_bipolar_drive_matches_a_patch_by_patch_loop():
    """drive[n, t, i, j] = Σ k_t · x_pad[10i:10i+11, 10j:10j+11] (float64 loop oracle; float32 budget 1e-5)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 100, 100))
    bank = kernel_bank(5)
    d = bipolar_drive(x, bank, chunk=2)
    xp = np.pad(x, ((0, 0), (0, 1), (0, 1)))
    ref = np.empty(d.shape)
    for t, typ in enumerate(bank):
        k = typ.kernel()
        for i in range(10):
            for j in range(10):
                ref[:, t, i, j] = (xp[:, 10 * i : 10 * i + 11, 10 * j : 10 * j + 11] * k).sum((1, 2))
    np.testing.assert_allclose(d, ref, atol=1e-5 * np.abs(ref).max())
    feats = bipolar_features(x, bank)
    biases = np.array([t.bias for t in bank])[None, :, None, None]
    np.testing.assert_allclose(feats, np.maximum(ref + biases, 0), atol=1e-4)


@given(st.integers(1, 6), st.sampled_from([1, 2, 5]))
def test_block_layout_round_trip(n_types, pool):
    """to_blocks/from_blocks are inverse permutations, and block_features puts bipolar (t, i, j)
    under amacrine (i//p, j//p) at column t·p² + (i%p)·p + j%p."""
    m = CircuitModel(n_types=n_types, geometry=Geometry(pool=pool))
    w = np.random.default_rng(n_types).standard_normal(m.shapes["bg"])
    np.testing.assert_array_equal(m.from_blocks(m.to_blocks(w)), w)
    X = block_features(w[None].astype(np.float64), m)[0]
    aw = m.geometry.amacrine_grid[1]
    for t, i, j in [(0, 0, 0), (n_types - 1, 9, 9), (n_types // 2, 3, 8)]:
        assert X[(i // pool) * aw + j // pool, t * pool * pool + (i % pool) * pool + j % pool] == w[t, i, j]


def _direct_forward(B, w, m):
    """The circuit written out per amacrine (independent of the block layout)."""
    p = m.geometry.pool
    ah, aw = m.geometry.amacrine_grid
    a = np.zeros((B.shape[0], ah, aw))
    for u in range(ah):
        for v in range(aw):
            s = (B[:, :, p * u : p * u + p, p * v : p * v + p] * w.ba[None]).sum((1, 2, 3))
            pre = m.amacrine_gain * s - m.amacrine_threshold
            a[:, u, v] = np.maximum(pre, 0) if m.amacrine.value == "relu" else np.logaddexp(0, pre)
    z = (a * w.ag[None]).sum((1, 2)) + m.output_offset + (B * w.bg[None]).sum((1, 2, 3)) * m.skip
    return {"linear": z, "relu": np.maximum(z, 0), "softplus": np.logaddexp(0, z)}[m.output.value]


def _model_and_data(output="linear", amacrine="relu", skip=True, seed=0):
    m = CircuitModel(n_types=2, output=output, amacrine=amacrine, skip=skip, amacrine_threshold=0.5, output_offset=0.3)
    rng = np.random.default_rng(seed)
    B = np.maximum(rng.normal(0.2, 1.0, (16, 2, 10, 10)), 0)
    w = CircuitWeights(bg=rng.uniform(0, 0.3, m.shapes["bg"]), ba=rng.uniform(0, 0.5, m.shapes["ba"]),
                       ag=-rng.uniform(0, 0.5, m.shapes["ag"]))
    return m, B, w


@pytest.mark.parametrize("output,amacrine,skip", [("linear", "relu", True), ("relu", "softplus", True),
                                                  ("softplus", "relu", False)])
def test_forward_matches_the_direct_formula(output, amacrine, skip):
    """circuit_forward equals the circuit written amacrine by amacrine (float64, 1e-12)."""
    m, B, w = _model_and_data(output, amacrine, skip)
    np.testing.assert_allclose(circuit_forward(block_features(B, m), w, m), _direct_forward(B, w, m), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("output,amacrine,skip", [("linear", "relu", True), ("softplus", "softplus", True),
                                                  ("relu", "relu", False)])
def test_gradient_matches_central_differences(output, amacrine, skip):
    """∂loss/∂w by hand agrees with float64 central differences to 1e-6 relative (per pathway and offset)."""
    m, B, w = _model_and_data(output, amacrine, skip, seed=1)
    X = block_features(B, m)
    y = np.random.default_rng(2).normal(size=len(X))
    loss, g, g_off = circuit_grad(X, y, w, m)
    h = 1e-6
    for k in ("bg", "ba", "ag"):
        base = getattr(w, k)
        num = np.zeros_like(base)
        for idx in list(np.ndindex(base.shape))[:: max(1, base.size // 25)]:
            wp, wm = base.copy(), base.copy()
            wp[idx] += h
            wm[idx] -= h
            lp = circuit_grad(X, y, CircuitWeights(**{**w.as_dict(), k: wp}), m)[0]
            lm = circuit_grad(X, y, CircuitWeights(**{**w.as_dict(), k: wm}), m)[0]
            num[idx] = (lp - lm) / (2 * h)
            assert abs(num[idx] - getattr(g, k)[idx]) <= 1e-6 * max(1.0, abs(num[idx])), (k, idx)
    lp = circuit_grad(X, y, w, m, offset=0.3 + h)[0]
    lm = circuit_grad(X, y, w, m, offset=0.3 - h)[0]
    assert abs((lp - lm) / (2 * h) - g_off) < 1e-6


def test_model_validation_errors():
    with pytest.raises(ValueError, match="sign_ag"):
        CircuitModel(n_types=2, sign_ag=0)
    with pytest.raises(ValueError, match="'tanh' is not a valid Nonlinearity"):
        CircuitModel(n_types=2, output="tanh")
    with pytest.raises(ValueError, match="amacrine='linear'"):
        CircuitModel(n_types=2, amacrine="linear")
    m = CircuitModel(n_types=2)
    with pytest.raises(ValueError, match=r"weights 'ba' have shape \(3, 2, 2\)"):
        CircuitWeights(bg=np.zeros((2, 10, 10)), ba=np.zeros((3, 2, 2)), ag=np.zeros((5, 5))).check(m)
    with pytest.raises(ValueError, match="images have shape"):
        bipolar_drive(np.zeros((2, 50, 50)), kernel_bank(2))
