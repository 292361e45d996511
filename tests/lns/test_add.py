"""LNS addition: every mode against a float64 oracle and the per-element reference.

The oracle (``add_oracle``) decodes both operands to float64, adds, and
re-encodes with nearest rounding: it never touches the Gaussian-log formulas,
so it can catch a wrong table, a wrong sign rule or a wrong saturation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurolns import LNS8, LNS12, LNS16, LNSFormat
from neurolns.lns import encode, encode_codes
from neurolns.lns._add_reference import add_codes_reference, add_oracle, phi_minus, phi_plus
from neurolns.lns.add import AddMode, add, add_codes, add_error_bound, correction_tables, default_table_size, sub

MODES = ["exact", "lut", "mitchell"]

# 8-bit formats: every γ the 7-bit field supports usefully, both underflow settings.
EIGHT_BIT = [LNSFormat(8, g) for g in (1, 2, 4, 8, 16, 32)] + [LNSFormat(8, 8, underflow="saturate")]


def _all_pairs(fmt):
    c = np.arange(-fmt.max_code, fmt.max_code + 1, dtype=np.int64)
    ca, cb = np.meshgrid(c, c, indexing="ij")
    return ca.ravel(), cb.ravel()


@pytest.mark.parametrize("fmt", EIGHT_BIT, ids=str)
def test_exact_mode_is_correctly_rounded_for_all_8bit_pairs(fmt):
    """Invariant: for all 255² code pairs, exact mode = nearest code to the float64 sum."""
    ca, cb = _all_pairs(fmt)
    got = add_codes(ca.astype(np.int8), cb.astype(np.int8), fmt, mode="exact")
    np.testing.assert_array_equal(got, add_oracle(ca, cb, fmt))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", EIGHT_BIT, ids=str)
def test_every_mode_within_its_bound_for_all_8bit_pairs(fmt, mode):
    """Error budget: |mode − correctly rounded| <= add_error_bound codes over all 255² pairs,
    and the kernel equals the per-element float64 reference exactly."""
    ca, cb = _all_pairs(fmt)
    got = add_codes(ca.astype(np.int8), cb.astype(np.int8), fmt, mode=mode).astype(np.int64)
    ref = add_codes_reference(ca, cb, fmt, mode).astype(np.int64)
    np.testing.assert_array_equal(got, ref)
    err = np.abs(got - add_oracle(ca, cb, fmt).astype(np.int64))
    bound = add_error_bound(fmt, mode)
    assert err.max() <= bound
    if mode == "exact":
        assert bound == 0


@pytest.mark.parametrize(
    "fmt, mode, bound",
    [(LNS8, "lut", 1), (LNS12, "lut", 1), (LNS16, "lut", 1),
     (LNS8, "mitchell", 1), (LNS12, "mitchell", 8), (LNS16, "mitchell", 125)],
    ids=str,
)
def test_documented_error_bounds(fmt, mode, bound):
    """The bounds docs/lns.md states (LUT at its default size; Mitchell), over every d."""
    assert add_error_bound(fmt, mode) == bound


def test_lut_error_shrinks_with_table_size():
    """A larger table never interpolates worse; a 4-entry table is visibly coarse."""
    errs = [add_error_bound(LNS16, "lut", n) for n in (4, 16, 64, 256, 1024)]
    assert errs == sorted(errs, reverse=True)
    assert errs[0] > 100 and errs[-1] <= 1
    assert default_table_size(LNS8) == 16 and default_table_size(LNS16) == 512


def test_tables_match_gaussian_log_formulas():
    """Exact tables are rint of γ·log2(1 ± 2^(−d/γ)), checked against mpmath at 50 digits."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    for fmt in (LNS8, LNS12):
        plus, minus = correction_tables(fmt, "exact")
        g = fmt.gamma
        for d in range(1, plus.size):
            t = mpmath.mpf(2) ** (-mpmath.mpf(d) / g)
            assert plus[d] == int(mpmath.nint(g * mpmath.log(1 + t, 2)))
            assert minus[d] == int(mpmath.nint(g * mpmath.log(1 - t, 2)))
        assert plus[-1] == 0 and minus[-1] == 0
    np.testing.assert_allclose(phi_plus(0, 8), 8.0)
    assert np.isneginf(phi_minus(0, 8))


def _fmt_strategy():
    return st.builds(
        lambda b, f, u: LNSFormat(b, 1 << min(f, b - 3), underflow=u),
        st.integers(9, 20), st.integers(0, 10), st.sampled_from(["zero", "saturate"]),
    )


@given(fmt=_fmt_strategy(), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(MODES))
def test_wide_formats_kernel_equals_reference_and_bound_holds(fmt, seed, mode):
    """Property (9..20-bit formats): kernel = float64 reference, and |mode − exact| <= bound;
    exact mode equals the float64 oracle. Pairs are drawn close together (where the
    Gaussian log matters) and anywhere."""
    rng = np.random.default_rng(seed)
    n = 2000
    ca = rng.integers(-fmt.max_code, fmt.max_code + 1, n)
    near = np.clip(np.abs(ca) + rng.integers(-3 * fmt.gamma, 3 * fmt.gamma + 1, n), 0, fmt.max_code)
    cb = np.where(rng.random(n) < 0.5, near, rng.integers(0, fmt.max_code + 1, n)) * rng.choice([-1, 1], n)
    ca_t, cb_t = ca.astype(fmt.code_dtype), cb.astype(fmt.code_dtype)
    got = add_codes(ca_t, cb_t, fmt, mode=mode).astype(np.int64)
    np.testing.assert_array_equal(got, add_codes_reference(ca, cb, fmt, mode).astype(np.int64))
    exact = add_oracle(ca, cb, fmt).astype(np.int64)
    assert np.abs(got - exact).max() <= add_error_bound(fmt, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", [LNS8, LNS12, LNS16, LNSFormat(20, 4096)], ids=str)
def test_x_plus_minus_x_is_exact_zero(fmt, mode):
    """Invariant: x + (−x) = 0 and x − x = 0 exactly, for every code, in every mode."""
    c = np.arange(-fmt.max_code, fmt.max_code + 1, max(1, fmt.max_code // 5000)).astype(fmt.code_dtype)
    assert not np.any(add_codes(c, -c, fmt, mode=mode))
    a = encode(np.linspace(-3, 3, 101), fmt)
    assert not np.any(sub(a, a, mode=mode).codes)


@pytest.mark.parametrize("mode", MODES)
def test_commutative_and_broadcasting(mode):
    """a + b = b + a code for code; shapes broadcast as numpy's do."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 1, 5))
    y = rng.normal(size=(3, 1))
    a, b = encode(x, LNS12, scale=1.0), encode(y, LNS12, scale=1.0)
    ab, ba = add(a, b, mode=mode), add(b, a, mode=mode)
    assert ab.shape == (4, 3, 5)
    np.testing.assert_array_equal(ab.codes, ba.codes)


def test_power_of_two_scales_align_exactly():
    """b at 4× a's scale: the sum equals the oracle on the true values (no extra rounding)."""
    rng = np.random.default_rng(2)
    ca = rng.integers(-127, 128, 5000).astype(np.int8)
    cb = rng.integers(-127, 128, 5000).astype(np.int8)
    from neurolns.lns.array import LNSArray

    a = LNSArray(ca, LNS8, 1.0)
    b = LNSArray(cb, LNS8, 4.0)  # a field shift of 2 octaves = 16 codes
    got = add(a, b)
    np.testing.assert_array_equal(got.codes, add_oracle(ca, cb, LNS8, shift_b=16))
    assert float(got.scale) == 1.0
    # per-channel scales: a per row, b per column
    a2 = LNSArray(ca[:20].reshape(4, 5), LNS8, np.array([[1.0], [2.0], [0.5], [8.0]]))
    b2 = LNSArray(cb[:5], LNS8, 0.25)
    want = add_oracle(a2.codes, b2.codes, LNS8, shift_b=np.array([[-16], [-24], [-8], [-40]]))
    np.testing.assert_array_equal(add(a2, b2).codes, want)


def test_non_power_of_two_scale_rounds_b_onto_a_grid():
    """A scale ratio of 3: b is encoded (nearest) at a's scale first, then added exactly."""
    from neurolns.lns.array import LNSArray

    x = np.array([0.7, -1.3, 2.2, 5.0])
    a = encode(x, LNS8, scale=1.0)
    b = LNSArray(encode_codes(x, LNS8, 3.0), LNS8, 3.0)
    cb = encode_codes(b.decode(), LNS8, 1.0)
    np.testing.assert_array_equal(add(a, b).codes, add_oracle(a.codes, cb, LNS8))


def test_saturation_and_underflow():
    """max + max saturates at the top code; the difference of neighbours at the bottom
    flushes to zero, or stays at the smallest magnitude with underflow='saturate'."""
    top = np.array([LNS8.max_code], dtype=np.int8)
    assert add_codes(top, top, LNS8)[0] == LNS8.max_code
    assert add_codes(-top, -top, LNS8)[0] == -LNS8.max_code
    lo = np.array([2], dtype=np.int8)
    assert add_codes(lo, np.array([-1], dtype=np.int8), LNS8)[0] == 0
    sat = LNSFormat(8, 8, underflow="saturate")
    assert add_codes(lo, np.array([-1], dtype=np.int8), sat)[0] == 1


@pytest.mark.parametrize("fmt", [LNS8, LNS12], ids=str)
def test_large_arrays_take_parallel_kernels(fmt):
    """Above the parallel threshold (2**20 elements) the prange kernels (pair table for
    8-bit formats, Gaussian-log tables otherwise) give the reference's codes."""
    rng = np.random.default_rng(3)
    n = (1 << 20) + 3
    ca = rng.integers(-fmt.max_code, fmt.max_code + 1, n).astype(fmt.code_dtype)
    cb = np.clip(np.abs(ca) + rng.integers(-40, 40, n), 0, fmt.max_code).astype(fmt.code_dtype)
    cb[::2] *= -1
    for mode in MODES:
        np.testing.assert_array_equal(add_codes(ca, cb, fmt, mode=mode), add_codes_reference(ca, cb, fmt, mode))


def test_very_fine_gamma_uses_reference_path():
    """γ = 2**18 needs a table too large for the kernel: the float64 path still agrees with the oracle."""
    fmt = LNSFormat(bits=24, gamma=1 << 18)
    rng = np.random.default_rng(4)
    ca = rng.integers(-fmt.max_code, fmt.max_code + 1, 200).astype(np.int32)
    cb = np.clip(np.abs(ca) + rng.integers(-1000, 1000, 200), 0, fmt.max_code).astype(np.int32)
    np.testing.assert_array_equal(add_codes(ca, cb, fmt), add_oracle(ca, cb, fmt))


def test_errors_name_the_bad_value():
    a = encode(np.ones(3), LNS8)
    with pytest.raises(ValueError, match="allowed"):
        add(a, a, mode="fast")
    with pytest.raises(ValueError, match="table_size"):
        add(a, a, mode="exact", table_size=64)
    with pytest.raises(ValueError, match="table_size=1"):
        add(a, a, mode="lut", table_size=1)
    with pytest.raises(TypeError):
        add(a, np.ones(3))
    with pytest.raises(TypeError):
        add_codes(np.ones(3), np.ones(3, dtype=np.int8), LNS8)
    assert AddMode("lut") is AddMode.LUT


def test_operators_use_exact_add():
    """LNSArray + and − call the exact adder."""
    a = encode(np.array([3.0, -1.0]), LNS8, scale=1.0)
    b = encode(np.array([1.0, 0.25]), LNS8, scale=1.0)
    np.testing.assert_array_equal((a + b).codes, add(a, b).codes)
    np.testing.assert_array_equal((a - b).codes, sub(a, b).codes)
