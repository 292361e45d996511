"""encode/decode: the log-domain rounding rules, error bounds, edge cases, and
the Numba kernels against the float64 reference path."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurolns import LNS8, LNS16, LNSFormat
from neurolns.lns import choose_scale, decode, decode_codes, encode, encode_codes, quantize

FORMATS = [LNS8, LNSFormat(bits=4, gamma=1), LNSFormat(bits=12, gamma=64), LNS16,
           LNSFormat(bits=24, gamma=1 << 16), LNSFormat(bits=8, gamma=8, underflow="saturate")]


def test_xlns_grid_published_values():
    """At scale 1 the codes are round(γ log2|x|): xlns F=3 gives 3 → 13 and 0.1 → -27
    (references.md), values 3.08442 and 0.096388."""
    a = encode(np.array([3.0, 0.1]), LNS8, scale=1)
    np.testing.assert_array_equal(a.exponents, [13, -27])
    np.testing.assert_allclose(a.decode(), [3.08442, 0.096388], rtol=2e-6)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_kernel_matches_reference(fmt, rounding):
    """Kernel and float64 reference give identical codes on 200k values spanning
    (and exceeding) the format's range, with zeros and both signs."""
    rng = np.random.default_rng(7)
    span = (fmt.e_max - fmt.e_min) / fmt.gamma
    x = rng.choice([-1.0, 1.0], 200_000) * np.exp2(rng.uniform(-span - 4, span / 2 + 4, 200_000))
    x[::97] = 0.0
    for dt in (np.float64, np.float32):
        xs = x.astype(dt)
        k = encode_codes(xs, fmt, 0.5, rounding=rounding, seed=3)
        r = encode_codes(xs, fmt, 0.5, rounding=rounding, seed=3, reference=True)
        np.testing.assert_array_equal(k, r)
        np.testing.assert_array_equal(decode_codes(k, fmt, 0.5), decode_codes(k, fmt, 0.5, reference=True))


@pytest.mark.parametrize("fmt", [LNS8, LNS16], ids=str)
def test_nearest_error_bound_in_log_domain(fmt):
    """For in-range values, |log2|x̂| - log2|x|| <= 1/(2γ) (float64 oracle)."""
    rng = np.random.default_rng(1)
    x = np.exp2(rng.uniform(fmt.e_min / fmt.gamma + 0.1, fmt.e_max / fmt.gamma - 0.1, 100_000))
    x *= rng.choice([-1, 1], x.size)
    xq = quantize(x, fmt, scale=1.0)
    assert np.all(np.sign(xq) == np.sign(x))
    err = np.abs(np.log2(np.abs(xq)) - np.log2(np.abs(x)))
    assert err.max() <= 0.5 / fmt.gamma + 1e-12


def test_stochastic_rounding_is_unbiased_in_log_domain_and_seeded():
    """E[e] = γ log2|x|: the mean code over 200k draws is within 5 standard errors of t."""
    t = 8 * np.log2(0.3)  # -13.9, fractional part 0.1
    x = np.full(200_000, 0.3)
    e = encode(x, LNS8, scale=1, rounding="stochastic", seed=11).exponents
    se = np.sqrt((t - np.floor(t)) * (1 - (t - np.floor(t))) / x.size)
    assert abs(e.mean() - t) < 5 * se
    assert set(np.unique(e)) == {int(np.floor(t)), int(np.ceil(t))}
    again = encode(x, LNS8, scale=1, rounding="stochastic", seed=11).codes
    other = encode(x, LNS8, scale=1, rounding="stochastic", seed=12).codes
    np.testing.assert_array_equal(again, encode(x, LNS8, scale=1, rounding="stochastic", seed=11).codes)
    assert not np.array_equal(again, other)


def test_saturation_never_wraps_and_inf_warns():
    fmt = LNS8
    x = np.array([1e30, -1e30, np.inf, -np.inf, 1e-30, -1e-30])
    with pytest.warns(RuntimeWarning, match="2 infinite"):
        c = encode_codes(x, fmt, 1.0)
    np.testing.assert_array_equal(c, [127, -127, 127, -127, 0, 0])
    sat = LNSFormat(bits=8, gamma=8, underflow="saturate")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(encode_codes(x[4:], sat, 1.0), [1, -1])
    np.testing.assert_array_equal(encode_codes([0.0, -0.0], sat, 1.0), [0, 0])


def test_nan_raises_with_count_and_first_index():
    x = np.ones((3, 4))
    x[1, 2] = x[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 NaN value\(s\), the first at index \(1, 2\)"):
        encode(x, LNS8)
    with pytest.raises(ValueError, match="NaN"):
        encode(x, LNS8, reference=True)


@pytest.mark.parametrize("x", [np.array([]), np.array(2.5), np.arange(-3, 4), np.array([True, False]),
                               np.array([1.5, -0.25], dtype=np.float16)], ids=["empty", "0d", "int", "bool", "f16"])
def test_dtypes_and_shapes(x):
    """Empty, 0-d, int, bool and float16 inputs keep their shape and decode within half a code step."""
    a = encode(x, LNS8)
    assert a.shape == x.shape and a.codes.dtype == np.int8
    np.testing.assert_allclose(a.decode(), x.astype(np.float64), rtol=LNS8.resolution / 2 + 1e-12)


def test_bad_input_types_and_scales():
    """Complex data, a non-format, non-positive or non-broadcastable scales raise with the reason."""
    with pytest.raises(TypeError, match="dtype"):
        encode(np.array([1 + 1j]), LNS8)
    with pytest.raises(TypeError, match="LNSFormat"):
        encode([1.0], "lns8")
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        encode([1.0], LNS8, scale=0.0)
    with pytest.raises(ValueError, match="broadcast"):
        encode(np.ones((2, 3)), LNS8, scale=np.ones(2))
    with pytest.raises(ValueError, match="either scale or channel_axis"):
        encode(np.ones((2, 3)), LNS8, scale=1.0, channel_axis=0)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                  elements=st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-290)))
def test_auto_scale_maps_max_to_the_top_octave(x):
    """scale=None: a power of two; max|x| encodes within one octave below e_max, nothing saturates."""
    a = encode(x, LNS8)
    s = float(a.scale)
    assert np.log2(s) == np.round(np.log2(s))
    amax = np.abs(x).max()
    if amax > 0:
        top = a.exponents.flat[np.argmax(np.abs(x))]
        assert LNS8.e_max - LNS8.gamma <= top <= LNS8.e_max
        assert np.abs(a.decode()).max() <= s * LNS8.max_magnitude


def test_subnormal_input_keeps_a_normal_scale():
    """A subnormal maximum cannot reach the top code: the scale stays a normal
    float64 (2**-1022) instead of underflowing to 0; what lies in range encodes
    within the rounding bound, what lies below it flushes to zero."""
    a = encode(np.array([5e-324, -1e-310]), LNS8)
    assert float(a.scale) == 2.0**-1022
    assert a.codes[0] == 0
    assert a.decode()[1] == pytest.approx(-1e-310, rel=2 ** (0.5 / 8) - 1)


def test_per_channel_scales():
    """One power-of-two scale per row: rows spanning 1e-3..1e4 all encode within half a code step,
    and passing those scales explicitly gives the same codes."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 10)) * np.array([[1e-3], [1.0], [10.0], [1e4]])
    s = choose_scale(w, LNS8, channel_axis=0)
    assert s.shape == (4, 1)
    a = encode(w, LNS8, channel_axis=0)
    np.testing.assert_array_equal(a.scale, s)
    rel = np.abs(a.decode() - w) / np.abs(w)
    assert rel.max() <= 2 ** (0.5 / 8) - 1 + 1e-12
    given_scale = encode(w, LNS8, scale=s)
    np.testing.assert_array_equal(given_scale.codes, a.codes)


def test_decode_checks_its_input():
    """decode wants an LNSArray; decode_codes wants integer codes."""
    with pytest.raises(TypeError, match="LNSArray"):
        decode(np.ones(3))
    with pytest.raises(TypeError, match="integer"):
        decode_codes(np.ones(3), LNS8)
