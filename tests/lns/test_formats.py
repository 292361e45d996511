"""LNSFormat and the baseline formats: validation and the properties' values."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurolns import BF16, FP8_E4M3, FP8_E5M2, FP16, FP32, INT8, LNS8, LNSFormat, Rounding, Underflow, parse_format


@pytest.mark.parametrize("kw", [{"bits": 1}, {"bits": 33}, {"gamma": 0}, {"gamma": 3}, {"gamma": 1 << 21}, {"bias": -1}])
def test_invalid_fields_raise_valueerror_naming_the_range(kw):
    """Out-of-range bits, gamma and bias raise ValueError whose message names the allowed range."""
    with pytest.raises(ValueError, match="allowed"):
        LNSFormat(**kw)


@pytest.mark.parametrize("kw", [{"bits": 8.0}, {"bits": True}, {"gamma": "8"}])
def test_non_integer_fields_raise_typeerror(kw):
    """Floats, bools and strings are not silently truncated to ints."""
    with pytest.raises(TypeError):
        LNSFormat(**kw)


def test_str_enums_accept_values_and_reject_typos():
    """Modes accept their string values; a typo lists the allowed ones."""
    assert Rounding("stochastic") is Rounding.STOCHASTIC
    assert LNSFormat(underflow="saturate").underflow is Underflow.SATURATE
    with pytest.raises(ValueError, match="allowed: 'nearest', 'stochastic'"):
        Rounding("nearst")


def test_lns8_properties_by_hand():
    """LNS8 γ=8: field 1..127, bias 64 → e in [-63, 63]; range 126/8 octaves."""
    f = LNS8
    assert (f.max_code, f.bias, f.e_min, f.e_max, f.frac_bits) == (127, 64, -63, 63, 3)
    assert f.code_dtype == np.int8
    assert f.max_magnitude == pytest.approx(2 ** (63 / 8))
    assert f.min_magnitude == pytest.approx(2 ** (-63 / 8))
    assert f.dynamic_range_db == pytest.approx(20 * math.log10(2) * 126 / 8)
    assert f.resolution == pytest.approx(2 ** (1 / 8) - 1)


@given(st.integers(2, 32), st.sampled_from([1, 2, 8, 64, 1024]))
def test_code_dtype_is_the_narrowest_that_holds_every_code(bits, gamma):
    """The code dtype holds ±max_code and the next narrower signed dtype does not."""
    f = LNSFormat(bits=bits, gamma=gamma)
    info = np.iinfo(f.code_dtype)
    assert info.max >= f.max_code and -info.max <= -f.max_code
    if f.code_dtype.itemsize > 1:
        narrower = np.iinfo({2: np.int8, 4: np.int16}[f.code_dtype.itemsize])
        assert narrower.max < f.max_code


@given(st.integers(2, 16), st.data())
def test_word_roundtrip(bits, data):
    """Signed codes -> B-bit sign-magnitude words -> codes is the identity, and words fit in B bits."""
    f = LNSFormat(bits=bits, gamma=2)
    codes = np.array(data.draw(st.lists(st.integers(-f.max_code, f.max_code), max_size=20)), dtype=f.code_dtype)
    words = f.to_word(codes)
    assert np.all(words < (1 << bits))
    np.testing.assert_array_equal(f.from_word(words), codes)


def test_float_baselines_match_numpy_and_published_limits():
    """FP16/FP32 against numpy's finfo; FP8 maxima from the OCP FP8 spec (448, 57344)."""
    for fmt, dt in [(FP16, np.float16), (FP32, np.float32)]:
        fi = np.finfo(dt)
        assert fmt.max_magnitude == pytest.approx(float(fi.max), rel=1e-6)
        assert fmt.min_normal == pytest.approx(float(fi.tiny), rel=1e-6)
        assert fmt.resolution == pytest.approx(float(fi.eps))
    assert FP16.min_magnitude == pytest.approx(2.0**-24)
    assert BF16.max_magnitude == pytest.approx(3.3895313892515355e38)
    assert FP8_E4M3.max_magnitude == 448.0
    assert FP8_E5M2.max_magnitude == 57344.0
    assert INT8.dynamic_range_db == pytest.approx(20 * math.log10(127))


def test_parse_format():
    """Names and lns<B>g<γ> specs give the same objects as the constructors; unknown names are refused."""
    assert parse_format("LNS8") == LNS8
    assert parse_format("lns10g16") == LNSFormat(bits=10, gamma=16)
    assert parse_format("bf16") is BF16
    with pytest.raises(ValueError, match="unknown format"):
        parse_format("fp12")
