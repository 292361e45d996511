"""LNS codes and fake quantization on torch tensors against the core codec.

The oracle is :func:`neurolns.lns.encode_codes` (itself checked against a
float64 reference and xlns): codes must be equal bit for bit, on both
backends, for float32/float16/bfloat16/float64 inputs, per-tensor and
per-channel scales, both underflow modes and the edge cases of the codec.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns import LNS8, LNSFormat
from neurolns.lns import choose_scale as np_choose_scale
from neurolns.lns import decode_codes, encode_codes
from neurolns.lns import quantize as np_quantize
from neurolns.torch import (
    choose_scale,
    decode_codes_t,
    encode_codes_t,
    mantissa_thresholds,
    quantize,
    quantize_grad,
)

FORMATS = [
    LNS8,
    LNSFormat(bits=12, gamma=128, bias=1024),
    LNSFormat(bits=16, gamma=1024),
    LNSFormat(bits=6, gamma=2, underflow="saturate"),
    LNSFormat(bits=10, gamma=1),
]
BACKENDS = ["torch", "numba"]


def _wide_f32(n, seed=0):
    """Random float32 over ~60 octaves, both signs, plus the codec's edge cases."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * np.exp2(rng.uniform(-30, 30, n))).astype(np.float32)
    edge = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-40, 3.4e38, -3.4e38, 1.0, -1.0, 0.5, 2.0], np.float32)
    return np.concatenate([edge, x])


def _threshold_neighbours(fmt):
    """Every mantissa threshold of the format and its float32 neighbours, at several octaves:
    the values where a single ulp changes the code."""
    t = mantissa_thresholds(fmt.gamma).astype(np.float32)
    near = np.concatenate([t, np.nextafter(t, np.float32(0)), np.nextafter(t, np.float32(1))])
    octaves = np.exp2(np.arange(-12, 13, 3)).astype(np.float32)
    x = (near[None, :] * octaves[:, None]).reshape(-1)
    return np.concatenate([x, -x])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_codes_equal_core_codec_float32(fmt, backend):
    """Codes of float32 input equal encode_codes at the scale choose_scale picks, at 1 and at 2**-5."""
    x = np.concatenate([_wide_f32(200_000), _threshold_neighbours(fmt)])
    for scale in (None, 1.0, 2.0**-5):
        codes, s = encode_codes_t(torch.from_numpy(x), fmt, scale=scale, backend=backend)
        s_np = np_choose_scale(x, fmt) if scale is None else scale
        assert float(s) == float(s_np)
        np.testing.assert_array_equal(codes.numpy(), encode_codes(x, fmt, s_np))
        assert codes.dtype == getattr(torch, str(fmt.code_dtype))


@pytest.mark.filterwarnings("ignore:.*infinite value")  # float16 overflows the widest test values
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_codes_equal_core_codec_other_dtypes(dtype, backend):
    """float16/bfloat16 are widened exactly to float32; float64 takes the float64 formula:
    codes equal the core codec on the same values."""
    x = torch.from_numpy(_wide_f32(50_000, seed=1)).to(dtype)
    if dtype == torch.float64:
        x = x * (1 + 1e-9 * torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    ref_in = x.to(torch.float64 if dtype == torch.float64 else torch.float32).numpy()
    for fmt in FORMATS[:3]:
        codes, _ = encode_codes_t(x, fmt, scale=None, backend=backend)
        np.testing.assert_array_equal(codes.numpy(), encode_codes(ref_in, fmt, np_choose_scale(ref_in, fmt)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_channel_scales_match_core(backend):
    """channel_axis gives one power-of-two scale per channel, as the core's choose_scale."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((6, 5, 3)) * np.exp2(np.arange(6) * 4.0)[:, None, None]).astype(np.float32)
    codes, s = encode_codes_t(torch.from_numpy(w), LNS8, channel_axis=0, backend=backend)
    s_np = np_choose_scale(w, LNS8, channel_axis=0)
    np.testing.assert_array_equal(s.numpy(), s_np)
    np.testing.assert_array_equal(codes.numpy(), encode_codes(w, LNS8, s_np))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=40),
       st.integers(-40, 40), st.sampled_from(FORMATS))
def test_codes_property_any_float32(values, log2_scale, fmt):
    """Property: for any finite float32 values and power-of-two scale, the torch backend's codes
    equal the core codec's."""
    x = np.array(values, dtype=np.float32)
    codes, _ = encode_codes_t(torch.from_numpy(x), fmt, scale=2.0**log2_scale, backend="torch")
    np.testing.assert_array_equal(codes.numpy(), encode_codes(x, fmt, 2.0**log2_scale))


def test_non_power_of_two_scale_takes_float64_path():
    """A scale that is not a power of two still gives the core's codes (float64 formula)."""
    x = _wide_f32(20_000, seed=5)
    codes, _ = encode_codes_t(torch.from_numpy(x), LNS8, scale=0.3, backend="torch")
    np.testing.assert_array_equal(codes.numpy(), encode_codes(x, LNS8, 0.3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantize_values_equal_numpy_quantize(backend):
    """float32 fake-quantized values equal neurolns.lns.quantize bit for bit."""
    x = _wide_f32(100_000, seed=7)
    for fmt in FORMATS[:3]:
        got = quantize(torch.from_numpy(x), fmt, backend=backend).numpy()
        np.testing.assert_array_equal(got, np_quantize(x, fmt))


def test_decode_equals_core_decode():
    """decode_codes_t equals decode_codes (float32 and float64) for every code of LNS8 and at
    a per-channel scale."""
    c = np.arange(-127, 128, dtype=np.int8)
    for dt, npdt in ((torch.float32, np.float32), (torch.float64, np.float64)):
        got = decode_codes_t(torch.from_numpy(c), LNS8, 2.0**-3, dtype=dt, backend="torch").numpy()
        np.testing.assert_array_equal(got, decode_codes(c, LNS8, 2.0**-3, dtype=npdt))
    wide = LNSFormat(bits=24, gamma=64)
    c = np.array([0, 1, -5, wide.bias, -wide.max_code], dtype=np.int32)
    np.testing.assert_array_equal(decode_codes_t(torch.from_numpy(c), wide, dtype=torch.float64).numpy(),
                                  decode_codes(c, wide))


def test_straight_through_gradient_and_dtype_device_kept():
    """quantize's backward passes the gradient unchanged; shape, dtype and device are kept."""
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        x = torch.randn(5, 7, dtype=dt, requires_grad=True)
        y = quantize(x, LNS8)
        assert y.dtype == dt and y.shape == x.shape
        g = torch.randn(5, 7, dtype=dt)
        y.backward(g)
        assert torch.equal(x.grad, g)


def test_bf16_values_are_lns_values_rounded_to_bf16():
    """For bfloat16 input the output is the float32 LNS value rounded to bfloat16."""
    x = torch.randn(1000).to(torch.bfloat16)
    ref = torch.from_numpy(np_quantize(x.float().numpy(), LNS8)).to(torch.bfloat16)
    assert torch.equal(quantize(x, LNS8), ref)


def test_quantize_grad_quantizes_only_the_gradient():
    """Forward identity; the gradient equals the numpy codec's quantization of it."""
    x = torch.randn(64, requires_grad=True)
    g = torch.randn(64) * 10
    y = quantize_grad(x, LNS8)
    assert torch.equal(y, x)
    y.backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), np_quantize(g.numpy(), LNS8))


def test_nan_raises_and_inf_warns_like_the_codec():
    """NaN raises ValueError naming the count; ±inf saturates with a RuntimeWarning."""
    with pytest.raises(ValueError, match="1 NaN"):
        encode_codes_t(torch.tensor([1.0, float("nan")]), LNS8)
    with pytest.warns(RuntimeWarning, match="infinite"):
        codes, _ = encode_codes_t(torch.tensor([1.0, float("inf"), -float("inf")]), LNS8, scale=1.0)
    assert codes.tolist() == [64, 127, -127]


def test_bad_arguments_raise_with_the_allowed_values():
    with pytest.raises(TypeError, match="LNSFormat"):
        quantize(torch.ones(2), "lns8")
    with pytest.raises(TypeError, match="allowed"):
        quantize(torch.ones(2, dtype=torch.int32), LNS8)
    with pytest.raises(ValueError, match="finite and > 0"):
        quantize(torch.ones(2), LNS8, scale=-1.0)
    with pytest.raises(ValueError, match="allowed"):
        quantize(torch.ones(2), LNS8, rounding="up")
    with pytest.raises(ValueError, match="not both"):
        quantize(torch.ones(2, 2), LNS8, scale=1.0, channel_axis=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stochastic_rounding_is_unbiased_in_the_log_domain(backend):
    """E[e] = γ log2|x/σ|: the mean code of 200k draws of one value is within 0.01 of t
    (the standard error is below 0.0012), and draws take only the two neighbouring codes."""
    t_true = 8 * np.log2(3.0)  # 12.68
    x = torch.full((200_000,), 3.0)
    codes, _ = encode_codes_t(x, LNS8, scale=1.0, rounding="stochastic",
                              generator=torch.Generator().manual_seed(0), backend=backend)
    e = codes.to(torch.float64) - LNS8.bias
    assert set(e.unique().tolist()) == {12.0, 13.0}
    assert abs(float(e.mean()) - t_true) < 0.01


def test_choose_scale_matches_core_and_handles_zeros():
    """The scale of all-zero or non-finite data is 1; otherwise equal to the core's."""
    assert float(choose_scale(torch.zeros(3), LNS8)) == 1.0
    x = torch.tensor([0.5, -3.0, float("inf")])
    assert float(choose_scale(x, LNS8)) == float(np_choose_scale(x.numpy(), LNS8))


@pytest.mark.gpu
def test_codes_on_gpu_equal_core_codec():
    """On CUDA (torch backend) the codes and float32 values equal the core codec's."""
    dev = torch.device("cuda")
    x = np.concatenate([_wide_f32(1_000_000, seed=11), _threshold_neighbours(LNS8)])
    for fmt in FORMATS[:3]:
        codes, s = encode_codes_t(torch.from_numpy(x).to(dev), fmt)
        assert codes.device.type == "cuda"
        np.testing.assert_array_equal(codes.cpu().numpy(), encode_codes(x, fmt, np_choose_scale(x, fmt)))
        got = quantize(torch.from_numpy(x).to(dev), fmt).cpu().numpy()
        np.testing.assert_array_equal(got, np_quantize(x, fmt))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_one_pass_cpu_scale_equals_choose_scale(dtype):
    """The CPU fast path (one aminmax pass for the scale and the NaN/inf check) picks the same
    power-of-two scale as the general masked path, choose_scale, and quantize gives the same
    values as with that scale given explicitly — for mixed signs, an all-negative and an all-zero tensor."""
    from neurolns.torch.quantize import _cpu_max_abs_if_finite, _pow2_scale

    g = torch.Generator().manual_seed(3)
    cases = [torch.randn(1000, generator=g) * 37, -torch.rand(50, generator=g) * 1e-3, torch.zeros(7)]
    for x in (c.to(dtype) for c in cases):
        amax = _cpu_max_abs_if_finite(x)
        assert amax is not None
        fast = _pow2_scale(torch.tensor(amax, dtype=torch.float64), LNS8)
        assert float(fast) == float(choose_scale(x, LNS8))
        torch.testing.assert_close(quantize(x, LNS8), quantize(x, LNS8, scale=float(fast)), rtol=0, atol=0)
    # a non-finite entry sends it to the masked path
    assert _cpu_max_abs_if_finite(torch.tensor([1.0, float("inf")])) is None
    assert _cpu_max_abs_if_finite(torch.tensor([1.0, float("nan")])) is None


@pytest.mark.parametrize("fmt", [LNSFormat(bits=16, gamma=8), LNSFormat(bits=12, gamma=2)])
def test_wide_range_formats_get_the_cores_clipped_scale(fmt):
    """For formats spanning more octaves than float64 (e_max/γ > 1022) the automatic scale is the
    core's, 2**k with k clipped to [-1022, 1023] (a normal float64, never 0), and the codes agree."""
    x = np.array([3.0, -0.5, 1e-3], np.float32)
    want = np_choose_scale(x, fmt)
    got = choose_scale(torch.from_numpy(x), fmt)
    assert float(got) == float(want) > 0
    codes_t, _ = encode_codes_t(torch.from_numpy(x), fmt)
    np.testing.assert_array_equal(codes_t.numpy(), encode_codes(x, fmt, want))


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_wide_format_decode_matches_the_core(backend):
    """LNS16 at γ = 8: codes ~1025 octaves above β at scale 2**-1022 decode to finite values, the
    same as neurolns.lns.decode_codes (float64), on both torch paths."""
    fmt = LNSFormat(bits=16, gamma=8)
    codes = np.array([24586, -24500, 16392, 0, 1], dtype=np.int16)  # 2**3.25, -2**2.5, 2**-1021, 0, tiny
    want = decode_codes(codes, fmt, 2.0 ** -1022, dtype=np.float64)
    assert np.isfinite(want).all() and want[0] > 9
    got = decode_codes_t(torch.from_numpy(codes), fmt, 2.0 ** -1022, dtype=torch.float64, backend=backend)
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("backend", ["auto", "numba", "torch"])
def test_nan_propagates_with_check_nan_false_on_every_cpu_backend(backend):
    """check_nan=False: NaN entries stay NaN and the others get the codes of the NaN-free
    tensor, also on the Numba path that large CPU tensors take (it used to raise)."""
    x = torch.randn(1 << 17, generator=torch.Generator().manual_seed(3))
    x[5] = float("nan")
    got = quantize(x, LNS8, check_nan=False, backend=backend)
    clean = x.clone()
    clean[5] = 0.0
    want = quantize(clean, LNS8, scale=float(choose_scale(clean, LNS8)), backend=backend)
    assert torch.isnan(got[5])
    got[5] = 0.0
    assert torch.equal(got, want)
    g = torch.ones_like(x, requires_grad=True)
    quantize_grad(g, LNS8, backend=backend).backward(x)
    assert torch.isnan(g.grad[5]) and torch.equal(g.grad[:5], want[:5])
