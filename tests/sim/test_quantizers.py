"""Fake quantisation to LNS, float and integer formats (neurolns.sim.quantizers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurolns.formats import BF16, FP8_E4M3, FP16, FP32, INT8, LNS8, FloatFormat, IntFormat
from neurolns.lns import quantize
from neurolns.sim.quantizers import fake_quantize

torch = pytest.importorskip("torch")

finite32 = arrays(np.float32, st.integers(1, 64), elements=st.floats(width=32, allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(finite32)
def test_bf16_and_fp16_equal_torchs_casts(x):
    """Peer oracle: BF16/FP16 rounding equals torch's correctly rounded casts
    (ties to even, subnormals, overflow to ±inf) on every float32 input."""
    for fmt, dtype in ((BF16, torch.bfloat16), (FP16, torch.float16)):
        want = torch.from_numpy(x).to(dtype).float().numpy()
        assert np.array_equal(fake_quantize(x, fmt), want, equal_nan=True)


def test_fp8_e4m3_saturates_and_rounds_to_its_grid():
    """E4M3 (finite only): 1 + 2^-4 is a tie between 1 and 1.125 (to even: 1), past 448 saturates."""
    x = np.array([1.0625, 1.1, 500.0, -1e6, np.inf, 2.0**-9, 2.0**-10], np.float32)
    y = fake_quantize(x, FP8_E4M3)
    assert y.tolist() == [1.0, 1.125, 448.0, -448.0, 448.0, 2.0**-9, 0.0]


def test_int8_is_symmetric_per_tensor_with_ties_to_even():
    """s = max|x|/127, value s·rint(x/s): the formula in float64."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    s = np.abs(x.astype(np.float64)).max() / 127
    assert np.array_equal(fake_quantize(x, INT8), (np.rint(x / s) * s).astype(np.float32))
    assert np.array_equal(fake_quantize(np.zeros(3), INT8), np.zeros(3, np.float32))


def test_lns_is_the_codecs_quantize_and_fp32_is_the_identity():
    x = np.random.default_rng(1).standard_normal(500).astype(np.float32)
    assert np.array_equal(fake_quantize(x, LNS8), quantize(x, LNS8).astype(np.float32))
    assert fake_quantize(x, FP32) is not None and np.array_equal(fake_quantize(x, FP32), x)
    assert np.array_equal(fake_quantize(x, None), x)


@pytest.mark.parametrize("fmt", [LNS8, BF16, INT8])
def test_nan_stays_nan_and_does_not_change_the_others(fmt):
    x = np.array([np.nan, 0.3, -1.5, 2.0], np.float32)
    y = fake_quantize(x, fmt)
    assert np.isnan(y[0])
    assert np.array_equal(y[1:], fake_quantize(x[1:], fmt))


@pytest.mark.parametrize("fmt", [BF16, INT8])
def test_stochastic_rounding_is_unbiased_in_the_formats_grid(fmt):
    """E[q(x)] = x for stochastic rounding in a linear grid: the mean of 200,000
    draws is within 5 standard errors of x."""
    x = np.full(200_000, 1.0 + 2.0**-9, np.float32) if fmt is BF16 else np.r_[127.0, np.full(199_999, 0.3)]
    y = fake_quantize(x, fmt, rounding="stochastic", rng=0).astype(np.float64)
    tail = y[1:] if fmt is INT8 else y
    target = x[1:].astype(np.float64) if fmt is INT8 else x.astype(np.float64)
    step = 2.0**-7 if fmt is BF16 else 1.0
    assert abs(tail.mean() - target.mean()) < 5 * 0.5 * step / np.sqrt(len(tail))
    assert set(np.unique(tail)).issubset(set(np.unique(fake_quantize(x, fmt))) | {tail.max(), tail.min()})


def test_bad_format_is_a_type_error():
    with pytest.raises(TypeError, match="fmt must be an LNSFormat, FloatFormat, IntFormat or None"):
        fake_quantize(np.ones(2), "bf16")
    assert isinstance(FloatFormat("x", 5, 2), FloatFormat) and isinstance(IntFormat("i4", 4), IntFormat)
