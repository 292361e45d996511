"""LNS-Madam on exponent codes: kernel == numpy reference == a scalar transcription
of the formula, bit for bit; and the invariants, as hypothesis properties: a sign
never flips, zero stays zero, |c| stays within [1, cap] (saturation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurolns.formats import LNS8, LNSFormat
from neurolns.learning import code_step_size, lns_code_cap, lns_madam_update, update_format

F16 = LNSFormat(bits=16, gamma=128)
grads32 = st.floats(-1e4, 1e4, allow_nan=False, width=32)


def oracle_codes(c, grads, *, fmt, beta, g_bound, k, cap):
    """Scalar transcription with float64 normalisation (Python floats and math.sqrt, in the
    documented order) and Python-int codes: |c| -= k·round(ĝ)·sign(c), clamp to [1, cap]."""
    c = [int(x) for x in c]
    v = [0.0] * len(c)
    for t, g in enumerate(grads, start=1):
        inv_bc = 1.0 / (1 - beta**t)
        for i, gi in enumerate(g):
            gi = float(gi)
            v[i] = beta * v[i] + (1 - beta) * (gi * gi)
            den = math.sqrt(v[i] * inv_bc)
            gh = 0.0 if den == 0 else max(-g_bound, min(g_bound, float(gi / den)))
            if c[i] != 0:
                s = 1 if c[i] > 0 else -1
                m = abs(c[i]) - k * round(gh) * s  # Python round: ties to even, as rint
                c[i] = s * min(cap, max(1, m))
    return np.array(c)


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_trajectory_matches_scalar_oracle(reference, k):
    """200 steps with a cap that binds and codes that hit 1: identical codes to the oracle."""
    rng = np.random.default_rng(0)
    c0 = rng.integers(-3000, 3000, size=50).astype(np.int16)
    c0[:3] = [0, 1, -2]
    c0[3] = 2990
    grads = (rng.normal(size=(200, 50)) + rng.normal(size=50) * 2).astype(np.float32)
    grads[:, 4] = 0.0  # a never-driven code (0/0 -> 0) keeps its value
    fmt = LNSFormat(bits=13, gamma=128)  # max_code 4095
    cap = 3000
    want = oracle_codes(c0, grads, fmt=fmt, beta=0.99, g_bound=3.0, k=k, cap=cap)
    c, v = c0.copy(), np.zeros(50)
    for t, g in enumerate(grads, start=1):
        lns_madam_update(c, g, v, t, fmt=fmt, beta=0.99, g_bound=3.0, lr=k / 128, max_code=cap, reference=reference)
    np.testing.assert_array_equal(c, want)
    assert c[4] == c0[4] and c[0] == 0
    assert np.abs(c).max() == cap and np.abs(c[c != 0]).min() == 1  # both ends saturated somewhere


@st.composite
def code_problems(draw):
    bits = draw(st.sampled_from([8, 12, 16, 32]))  # 32: int32 codes, float64 code arithmetic
    fmt = LNSFormat(bits=bits, gamma=draw(st.sampled_from([8, 128])))
    n = draw(st.integers(1, 200))
    codes = draw(arrays(fmt.code_dtype, n, elements=st.integers(-fmt.max_code, fmt.max_code)))
    g = draw(arrays(np.float32, n, elements=grads32))
    v = draw(arrays(np.float32, n, elements=st.floats(0, 1e8, width=32)))
    t = draw(st.integers(1, 10**6))
    cap = draw(st.integers(1, fmt.max_code))
    return fmt, codes, g, v, t, cap


@given(code_problems(), st.sampled_from([1.0, 10.0]))
def test_properties_sign_kept_zero_kept_saturation(problem, g_bound):
    """For any codes, gradients, state and step: kernel == reference exactly; sign(c) never
    changes; c = 0 stays 0; non-zero |c| ends in [1, cap]; |Δ|c|| <= round(g_bound) (one step per unit)."""
    fmt, codes, g, v, t, cap = problem
    c1, v1, c2, v2 = codes.copy(), v.copy(), codes.copy(), v.copy()
    lns_madam_update(c1, g, v1, t, fmt=fmt, g_bound=g_bound, max_code=cap)
    lns_madam_update(c2, g, v2, t, fmt=fmt, g_bound=g_bound, max_code=cap, reference=True)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(v1, v2)
    nz = codes != 0
    assert np.all(c1[~nz] == 0)
    assert np.all(np.sign(c1[nz]) == np.sign(codes[nz]))
    assert np.all((np.abs(c1[nz]) >= 1) & (np.abs(c1[nz]) <= cap))
    moved = np.abs(np.abs(c1[nz]).astype(np.int64) - np.clip(np.abs(codes[nz]), 1, cap))
    assert np.all(moved <= round(g_bound))


def test_parallel_kernel_matches_reference():
    """The prange kernel (above the threshold) gives the reference codes."""
    rng = np.random.default_rng(3)
    n = (1 << 16) + 5
    c = rng.integers(-2047, 2048, size=n).astype(np.int16)
    g = rng.normal(size=n).astype(np.float32)
    v = rng.uniform(0, 2, size=n).astype(np.float32)
    c1, v1, c2, v2 = c.copy(), v.copy(), c.copy(), v.copy()
    fmt = update_format(LNS8)
    lns_madam_update(c1, g, v1, 9, fmt=fmt)
    lns_madam_update(c2, g, v2, 9, fmt=fmt, reference=True)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(v1, v2)


def test_value_changes_by_the_grid_step():
    """In value terms w ← w·2^(−η round(ĝ) sign(w)): at t=1 (ĝ = sign g) the decoded
    magnitude changes by exactly 2^(∓1/128) (float64 oracle of the decoded values)."""
    c = np.array([16384, 16384, -16384, 5], np.int16)
    w0 = np.sign(c) * 2.0 ** ((np.abs(c) - F16.bias) / F16.gamma)
    lns_madam_update(c, np.array([1.0, -1.0, 1.0, 1.0], np.float32), np.zeros(4, np.float32), 1, fmt=F16)
    w1 = np.sign(c) * 2.0 ** ((np.abs(c) - F16.bias) / F16.gamma)
    np.testing.assert_allclose(w1 / w0, 2.0 ** (np.array([-1, 1, 1, -1]) / 128), rtol=1e-15)


def test_update_format_refines_the_forward_format():
    """update_format(LNS8): |c_u| = 16·|c_f| encodes the same value at the same scale,
    for every forward code (float64 oracle of both decodings)."""
    u = update_format(LNS8, 128)
    cf = np.arange(1, LNS8.max_code + 1)
    vf = 2.0 ** ((cf - LNS8.bias) / LNS8.gamma)
    vu = 2.0 ** ((16 * cf - u.bias) / u.gamma)
    np.testing.assert_array_equal(vf, vu)
    assert 16 * LNS8.max_code <= u.max_code < 16 * (LNS8.max_code + 1)
    assert update_format(LNS8, 8) == LNS8
    with pytest.raises(ValueError, match="gamma"):
        update_format(LNS8, 4)


def test_lns_code_cap_is_madam_cap_in_the_log_domain():
    """cap = largest |c| whose magnitude <= p_scale·RMS (float64 oracle on decoded values)."""
    rng = np.random.default_rng(5)
    c = rng.integers(-18000, 18000, size=300).astype(np.int16)
    c[:10] = 0
    mag = np.where(c != 0, 2.0 ** ((np.abs(c) - F16.bias) / F16.gamma), 0.0)
    limit = 3.0 * np.sqrt(np.mean(mag**2))
    cap = lns_code_cap(c, F16, 3.0)
    assert 2.0 ** ((cap - F16.bias) / F16.gamma) <= limit < 2.0 ** ((cap + 1 - F16.bias) / F16.gamma)
    assert lns_code_cap(c, F16, math.inf) == F16.max_code
    assert lns_code_cap(np.zeros(3, np.int16), F16, 3.0) == F16.max_code


def test_errors():
    """lr off the grid, a cap out of range, a too-narrow dtype, a float code array."""
    c, g, v = np.ones(3, np.int16), np.ones(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"lr=-0.005 is out of range"):  # fractional steps are allowed
        lns_madam_update(c, g, v, 1, fmt=F16, lr=-1 / 200)
    with pytest.raises(ValueError, match="max_code"):
        lns_madam_update(c, g, v, 1, fmt=F16, max_code=0)
    with pytest.raises(TypeError, match="cannot hold"):
        lns_madam_update(np.ones(3, np.int8), g, v, 1, fmt=F16)
    with pytest.raises(TypeError, match="signed integer"):
        lns_madam_update(np.ones(3, np.float32), g, v, 1, fmt=F16)
    assert code_step_size(F16, None) == 1 and code_step_size(F16, 4 / 128) == 4


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("bad, arg", [(np.nan, "g"), (np.inf, "g"), (-np.inf, "g"), (np.nan, "v")])
def test_non_finite_input_raises_before_anything_changes(reference, bad, arg):
    """A NaN or ±inf in g or v raises ValueError naming the argument, the count and the
    first index; codes and v are untouched (a NaN in v would otherwise freeze the synapse)."""
    c = np.array([500, -500, 500, 500, 7], np.int16)
    v = np.full(5, 0.25)
    g = np.ones(5, np.float32)
    (g if arg == "g" else v)[[2, 4]] = bad
    c0, v0 = c.copy(), v.copy()
    with pytest.raises(ValueError, match=rf"^{arg} holds 2 non-finite value\(s\).* at index 2"):
        lns_madam_update(c, g, v, 3, fmt=F16, reference=reference)
    np.testing.assert_array_equal(c, c0)
    np.testing.assert_array_equal(v, v0)


@pytest.mark.parametrize("reference", [False, True])
def test_scale_invariant_for_every_finite_float32_gradient(reference):
    """ĝ is computed in float64 with a float64 v: a gradient history scaled by any power of
    two gives the same codes, from the smallest float32 subnormal to near the float32 maximum;
    at t = 1 every nonzero gradient moves its code by exactly one step (1e-30 included,
    which the authors' float32 square underflows to 10 steps)."""
    rng = np.random.default_rng(5)
    # 8-bit mantissas times 2^[-3, 3]: every scaled copy below is exact in float32, subnormals included
    base = (rng.integers(-255, 256, (8, 64)) * np.exp2(rng.integers(-3, 4, (8, 64)))).astype(np.float32)
    c0 = rng.integers(-4000, 4000, 64).astype(np.int16)
    c0[c0 == 0] = 1
    runs = []
    for e in (-140, -100, 0, 100, 110):  # 2^-140·|g| reaches into the float32 subnormals
        g = (base.astype(np.float64) * 2.0**e).astype(np.float32)
        assert np.array_equal(g.astype(np.float64), base.astype(np.float64) * 2.0**e)  # exact scaling
        c, v = c0.copy(), np.zeros(64)
        for t, gt in enumerate(g, start=1):
            lns_madam_update(c, gt, v, t, fmt=F16, reference=reference)
            if t == 1:
                np.testing.assert_array_equal(np.abs(c), np.abs(c0) - np.sign(c0) * np.sign(gt))
        runs.append(c)
    for c in runs[1:]:
        np.testing.assert_array_equal(c, runs[0])
    for g0 in (1e-30, 1e30, 1e-45, 3e38, -1e-45, -3.4e38):
        c, v = np.array([1000, -1000], np.int16), np.zeros(2)
        lns_madam_update(c, np.full(2, g0, np.float32), v, 1, fmt=F16, reference=reference)
        np.testing.assert_array_equal(c, [1000 - np.sign(g0), -1000 - np.sign(g0)])
