"""Dot products, matmul and sums: hardware partial sums against a Python-int reference
and against float64 products of the decoded values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurolns import LNS8, LNS12, LNS16, LNSFormat
from neurolns.lns import Accumulator, AccumulatorStats, MatmulMode, SumMode, encode
from neurolns.lns._dot_reference import exact_matmul_reference
from neurolns.lns.array import LNSArray
from neurolns.lns.dot import _pack, dot, matmul
from neurolns.lns.dot import sum as lns_sum


def _reference(a, b, acc):
    """Reference result of exact mode for 2-D a @ b with the given register."""
    g = max(a.format.gamma, b.format.gamma)
    ea, na, za, sa = _pack(a, 1, g)
    eb, nb, zb, sb = _pack(b, 0, g)
    out, over, under = exact_matmul_reference(ea, na, za, eb, nb, zb, g, acc.bits, acc.frac_bits)
    return out * sa[:, None] * sb[None, :], over, under


def _operands(rng, m, k, n, fa=LNS8, fb=LNS8, zeros=0.1):
    x = rng.normal(size=(m, k)) * np.exp(rng.normal(size=(m, 1)))
    y = rng.normal(size=(k, n))
    x[rng.random(x.shape) < zeros] = 0.0
    return encode(x, fa, channel_axis=0), encode(y, fb)


@given(seed=st.integers(0, 2**31), shape=st.tuples(st.integers(1, 5), st.integers(1, 40), st.integers(1, 4)),
       fb=st.sampled_from([LNS8, LNSFormat(8, 16), LNS12]))
def test_exact_matmul_equals_reference_and_float64(seed, shape, fb):
    """Invariant: with the default (exact) register, the kernel equals the Python-int
    reference bit for bit, nothing saturates or is dropped, and the result equals the
    float64 product of the decoded values to 1e-12 (relative to Σ|a||b|)."""
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, *shape, fb=fb)
    out, stats = matmul(a, b, mode="exact", return_stats=True)
    ref, over, under = _reference(a, b, stats.accumulator)
    np.testing.assert_array_equal(out, ref)
    assert stats.overflows == over == 0 and stats.underflows == under == 0
    assert stats.products == int(((a.codes != 0).astype(int) @ (b.codes != 0).astype(int)).sum())
    budget = 1e-12 * (np.abs(a.decode()) @ np.abs(b.decode())) + 1e-300
    assert np.all(np.abs(out - a.decode() @ b.decode()) <= budget)


@pytest.mark.parametrize("acc", [Accumulator(bits=10, frac_bits=3), Accumulator(bits=40, frac_bits=-6),
                                 Accumulator(bits=6, frac_bits=-2)], ids=str)
def test_narrow_register_saturates_and_counts_like_reference(acc):
    """Saturation and dropped products follow the register add by add: same values and
    the same overflow/underflow counts as the reference."""
    rng = np.random.default_rng(5)
    a, b = _operands(rng, 4, 50, 3)
    out, stats = matmul(a, b, mode="exact", accumulator=acc, return_stats=True)
    ref, over, under = _reference(a, b, acc)
    np.testing.assert_array_equal(out, ref)
    assert (stats.overflows, stats.underflows) == (over, under)
    assert over + under > 0
    assert stats.accumulator == acc


def test_fast_mode_matches_float64_within_float32_rounding():
    """fast = float32 BLAS on decoded values, a float32 result: within 1e-5 of the float64
    product (relative to Σ|a||b|)."""
    rng = np.random.default_rng(1)
    a, b = _operands(rng, 30, 200, 20)
    want = a.decode() @ b.decode()
    got = matmul(a, b)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - want) <= 1e-5 * (np.abs(a.decode()) @ np.abs(b.decode())))
    np.testing.assert_allclose(matmul(a, b.decode()), got, rtol=1e-6)  # a float operand is fine


def test_shapes_follow_numpy_matmul():
    rng = np.random.default_rng(2)
    v = encode(rng.normal(size=7), LNS8)
    w = encode(rng.normal(size=(3, 7)), LNS8, channel_axis=0)
    t = encode(rng.normal(size=(2, 4, 7)), LNS8)
    m = encode(rng.normal(size=(7, 5)), LNS8)
    for x, y in [(v, v), (w, v), (v, m), (t, m), (w, m)]:
        for mode in ("fast", "exact"):
            got = matmul(x, y, mode=mode)
            want = x.decode() @ y.decode()
            assert np.shape(got) == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    assert np.ndim(dot(v, v, mode="exact")) == 0


def test_per_channel_scales():
    """Weights (out, in) with one scale per row @ x, and scales that vary along the summed
    axis by powers of two (folded into the exponents) are exact; other ratios need fast mode."""
    rng = np.random.default_rng(3)
    w = encode(rng.normal(size=(6, 9)) * np.logspace(-3, 3, 6)[:, None], LNS8, channel_axis=0)
    x = encode(rng.normal(size=(9, 2)), LNS8, channel_axis=1)
    np.testing.assert_allclose(matmul(w, x, mode="exact"), w.decode() @ x.decode(), rtol=1e-12)
    cols = encode(rng.normal(size=(6, 9)) * np.logspace(-2, 2, 9), LNS8, channel_axis=1)
    np.testing.assert_allclose(matmul(cols, x, mode="exact"), cols.decode() @ x.decode(), rtol=1e-12)
    odd = LNSArray(cols.codes, LNS8, np.linspace(1, 3, 9))
    with pytest.raises(ValueError, match="powers of two"):
        matmul(odd, x, mode="exact")
    np.testing.assert_allclose(matmul(odd, x), odd.decode() @ x.decode(), rtol=1e-5)


def test_out_format_and_operator():
    """out_format re-encodes the float64 result (nearest); ``@`` returns an LNSArray."""
    rng = np.random.default_rng(4)
    a, b = _operands(rng, 3, 8, 2)
    r = matmul(a, b, mode="exact", out_format=LNS12)
    assert isinstance(r, LNSArray) and r.format == LNS12
    np.testing.assert_array_equal(r.codes, encode(matmul(a, b, mode="exact"), LNS12).codes)
    assert isinstance(a @ b, LNSArray)


def test_long_sum_drift_and_the_accumulator_that_fixes_it():
    """references.md: LNS16 sequential sums of 1e5 values in ±[0.1, 10] drift far from the
    true sum; the exact partial-sum register is within 1e-9 of float64 on the decoded
    values, and a register too narrow to hold the small products drifts too."""
    rng = np.random.default_rng(0)
    n = 100_000
    x = rng.uniform(0.1, 10, n) * rng.choice([-1, 1], n)
    a = encode(x, LNS16, scale=1.0)
    true = a.decode().sum()
    seq = lns_sum(a, mode="sequential")
    exact, stats = lns_sum(a, mode="exact", return_stats=True)
    assert abs(seq - true) > 0.1 * abs(true)  # drift: -256 against -335
    assert abs(exact - true) <= 1e-9 * np.abs(x).sum()
    assert stats.overflows == stats.underflows == 0
    narrow, ns = lns_sum(a, mode="exact", accumulator=Accumulator(bits=16, frac_bits=0), return_stats=True)
    assert ns.underflows > 0 and abs(narrow - true) > 10
    sat, ss = lns_sum(a, mode="exact", accumulator=Accumulator(bits=8, frac_bits=4), return_stats=True)
    assert ss.overflows > 0
    wide = lns_sum(a, mode="exact", accumulator=Accumulator(bits=40, frac_bits=16))
    assert abs(wide - true) <= 1e-9 * np.abs(x).sum()


def test_sum_axes_and_modes_agree():
    """Every mode and axis against numpy's float64 sum of the decoded values (sequential:
    within the drift of a few dozen roundings)."""
    rng = np.random.default_rng(6)
    a = encode(rng.normal(size=(4, 5, 6)), LNS12, channel_axis=1)
    v = a.decode()
    for axis in (None, 0, 1, 2, -1):
        want = v.sum(axis=axis)
        np.testing.assert_allclose(lns_sum(a, axis=axis), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(lns_sum(a, axis=axis, mode="exact"), want, rtol=1e-12, atol=1e-12)
        seq = lns_sum(a, axis=axis, mode="sequential")
        assert np.all(np.abs(seq - want) <= 0.02 * np.abs(v).sum(axis=axis))
    odd = LNSArray(a.codes, LNS12, np.linspace(1, 2, 6))
    with pytest.raises(ValueError, match="powers of two"):
        lns_sum(odd, mode="sequential")
    assert isinstance(a.sum(), LNSArray)


def test_sequential_sum_does_not_saturate_on_tight_scales():
    """The running sum gets headroom: 1000 copies of the largest value sum to about 1000×
    it, far past the top of the addends' own scale (where it would otherwise saturate)."""
    a = encode(np.full(1000, 3.0), LNS16)  # auto scale puts 3.0 at the top code
    s = lns_sum(a, mode="sequential")
    assert abs(s - 1000 * a.decode()[0]) <= 0.05 * 1000 * 3.0


def test_all_zero_and_empty_operands():
    z = encode(np.zeros((2, 3)), LNS8)
    y = encode(np.ones((3, 2)), LNS8)
    out, stats = matmul(z, y, mode="exact", return_stats=True)
    assert not out.any() and stats.products == 0
    assert lns_sum(encode(np.zeros(0), LNS8), mode="exact") == 0.0


def test_accumulator_validation_and_errors():
    with pytest.raises(ValueError, match="bits=63"):
        Accumulator(bits=63)
    with pytest.raises(ValueError, match="frac_bits"):
        Accumulator(frac_bits=100)
    with pytest.raises(TypeError):
        Accumulator(bits=3.5)
    assert Accumulator.exact_for(LNS8, LNS8, n=512) == Accumulator(bits=42, frac_bits=16)
    assert Accumulator.exact_for(LNS16, n=10**6).bits == 62
    a = encode(np.ones((2, 3)), LNS8)
    with pytest.raises(ValueError, match="allowed"):
        matmul(a, a.T, mode="slow")
    with pytest.raises(ValueError, match="exact"):
        matmul(a, a.T, return_stats=True)
    with pytest.raises(ValueError, match="align"):
        matmul(a, a, mode="exact")
    with pytest.raises(TypeError):
        matmul(a, np.ones((3, 2)), mode="exact")
    with pytest.raises(ValueError, match="axis"):
        lns_sum(a, axis=2)
    assert MatmulMode("exact") is MatmulMode.EXACT and SumMode("sequential") is SumMode.SEQUENTIAL
    assert isinstance(matmul(a, a.T, mode="exact", return_stats=True)[1], AccumulatorStats)
