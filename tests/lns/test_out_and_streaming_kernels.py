"""``out=`` of encode_codes/decode_codes/mul/div, and the streaming kernels behind them.

Each kernel is held to a reference: the float64 numpy codec reference
(:mod:`neurolns.lns._reference`) for encode and decode, and an int64 numpy
transcription of the product rule for mul/div, on serial and parallel sizes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neurolns import LNS8, LNS12, LNS16, LNSFormat, Rounding
from neurolns.lns import decode, decode_codes, div, encode, encode_codes, mul
from neurolns.lns import _codec_kernels as ck
from neurolns.lns import multiply
from neurolns.lns._reference import decode_reference, encode_reference

PAR = ck._PARALLEL_MIN + 4097  # above the parallel threshold of the codec kernels


def _ref_codes(x, fmt, scale):
    return encode_reference(x, fmt, scale, Rounding.NEAREST)


def _ref_products(ca, cb, fmt, sign_b, k_min=None):
    """int64 transcription of the exact product/quotient rule: field ``|a| ± |b| ∓ β``
    shifted by ``kγ`` so the largest field of non-zero pairs is <= max_code — but never
    by less than ``k_min`` (formats wider than 8 bits at operand scales 1: −1022, the
    shift that keeps the result's scale 2**k a normal float64) — saturated at max_code,
    below 1 flushed (or saturated to 1), zero operands as documented."""
    a = ca.astype(np.int64)
    b = cb.astype(np.int64)
    base = -fmt.bias if sign_b > 0 else fmt.bias
    f = np.abs(a) + sign_b * np.abs(b) + base
    both = (a != 0) & (b != 0)
    k = -((fmt.max_code - int(f[both].max())) // fmt.gamma) if both.any() else 0
    if k_min is None and fmt.bits > 8:
        k_min = -1022
    if k_min is not None:
        k = max(k, k_min)
    f = np.minimum(f - k * fmt.gamma, fmt.max_code)
    f = np.where(f > 0, f, 1 if fmt.underflow.value == "saturate" else 0)
    f = np.where(b != 0, f, 0 if sign_b > 0 else fmt.max_code)
    f = np.where(a != 0, f, 0)
    return np.where((a < 0) != (b < 0), -f, f).astype(fmt.code_dtype), k


# -- the float32 γ <= 8 encoder --------------------------------------------------------
@pytest.mark.parametrize("n", [5000, PAR])
@pytest.mark.parametrize("fmt", [LNS8, LNSFormat(8, 1), LNSFormat(8, 2, underflow="saturate"), LNSFormat(8, 4),
                                 LNSFormat(8, 8, underflow="saturate"), LNSFormat(10, 8)], ids=str)
def test_float32_small_gamma_encoder_equals_reference(fmt, n):
    """float32 values over every exponent (normal, subnormal, ±0, ±max, ±inf) encode to
    the reference's codes, serially and in parallel chunks, at scales on both sides of
    the limit where the fast path hands tiny values to the bit-level kernel
    (β − γ·log2 σ = 1022)."""
    rng = np.random.default_rng(fmt.gamma * n)
    x = (rng.choice([-1.0, 1.0], n) * np.exp2(rng.uniform(-152, 128, n))).astype(np.float32)
    fi = np.finfo(np.float32)
    x[:10] = [0.0, -0.0, fi.smallest_subnormal, -fi.tiny, fi.max, -fi.max, np.inf, -np.inf, 1.0, -0.5]
    edge = (fmt.bias - 1022) / fmt.gamma  # log2 σ at the limit
    for log2s in (0.0, -40.0, 37.0, np.floor(edge), np.floor(edge) - 1, np.ceil(edge) + 1):
        with pytest.warns(RuntimeWarning, match="infinite"):
            got = encode_codes(x, fmt, 2.0**log2s)
        np.testing.assert_array_equal(got, _ref_codes(x, fmt, 2.0**log2s))


def test_float32_encoder_counts_nan_and_inf():
    """NaN raises with its count, ±inf saturate with a warning, also in parallel chunks."""
    x = np.ones(PAR, np.float32)
    x[[3, PAR - 2]] = np.inf
    with pytest.warns(RuntimeWarning, match="2 infinite"):
        c = encode_codes(x, LNS8, 1.0)
    assert c[3] == LNS8.max_code
    x[100] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        encode_codes(x, LNS8, 1.0)


# -- encode_codes(out=) ------------------------------------------------------------------
@pytest.mark.parametrize("n", [1000, PAR])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encode_out_equals_fresh_result(dtype, n):
    """With out=, the codes equal those of a fresh call (and the reference), are written
    into out and out itself is returned, for C-contiguous and strided out, 2-d shapes,
    the bit, log2 (odd scale, stochastic) and reference paths."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, n // 2)).astype(dtype)
    for kwargs in ({"scale": 2.0**-5}, {"scale": 0.3}, {"scale": 1.0, "rounding": "stochastic", "seed": 3},
                   {"scale": 2.0**-5, "reference": True}):
        want = encode_codes(x, LNS8, **kwargs)
        out = np.full(x.shape, 99, dtype=np.int8)
        assert encode_codes(x, LNS8, **kwargs, out=out) is out
        np.testing.assert_array_equal(out, want)
        strided = np.zeros((2, 2 * x.shape[1]), dtype=np.int8)[:, ::2]
        assert encode_codes(x, LNS8, **kwargs, out=strided) is strided
        np.testing.assert_array_equal(strided, want)
    np.testing.assert_array_equal(want, _ref_codes(x, LNS8, 2.0**-5))


def test_encode_out_is_checked():
    """A wrong dtype or a non-array out is a TypeError, a wrong shape or a read-only out
    a ValueError; each message names the bad value."""
    x = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="dtype int16; expected int8"):
        encode_codes(x, LNS8, out=np.empty((3, 4), np.int16))
    with pytest.raises(ValueError, match=r"shape \(12,\); expected \(3, 4\)"):
        encode_codes(x, LNS8, out=np.empty(12, np.int8))
    with pytest.raises(TypeError, match="numpy.ndarray, got list"):
        encode_codes(x, LNS8, out=[0] * 12)
    ro = np.empty((3, 4), np.int8)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        encode_codes(x, LNS8, out=ro)


def test_encode_out_overlapping_the_input():
    """An out that shares memory with the input still gets the codes of the input as it
    was (the kernel writes to a temporary first, as numpy does for overlapping operands)."""
    raw = np.zeros(4 * 4096, np.uint8)
    x = raw.view(np.float32)
    x[:] = np.linspace(-3, 3, x.size, dtype=np.float32)
    want = encode_codes(x.copy(), LNS8, 1.0)
    out = raw[: x.size].view(np.int8)  # the first quarter of the float bytes
    encode_codes(x, LNS8, 1.0, out=out)
    np.testing.assert_array_equal(out, want)


# -- decode_codes(out=) and the bit-pattern table ---------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fmt", [LNS8, LNSFormat(6, 2, underflow="saturate"), LNS12, LNS16], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_pattern_table_equals_reference(fmt, dtype, stream, monkeypatch):
    """Every code, tiled past the pattern-table threshold (serial and parallel sizes,
    regular and non-temporal stores), decodes to the reference's float64 value
    rounded once to the output dtype."""
    monkeypatch.setattr(ck, "_STREAM_MIN_BYTES", 0 if stream else 1 << 62)
    c = np.arange(-fmt.max_code, fmt.max_code + 1).astype(fmt.code_dtype)
    big = 4 << (8 * c.itemsize)
    for n in (big + 7, max(big, PAR) + 7):
        tiled = np.resize(c, n)
        for scale in (1.0, 2.0**-9):
            got = decode_codes(tiled, fmt, scale, dtype=dtype)
            np.testing.assert_array_equal(got, decode_reference(tiled, fmt, scale, dtype))


def test_decode_out_equals_fresh_result_and_is_checked():
    """With out=, the values equal a fresh call's; dtype defaults to out's; a dtype that
    contradicts out, a wrong shape or a non-float out are refused with the bad value named."""
    codes = encode_codes(np.random.default_rng(2).normal(size=(3, 5000)).astype(np.float32), LNS8)
    out = np.empty((3, 5000), np.float32)
    assert decode_codes(codes, LNS8, 2.0**-3, out=out) is out
    np.testing.assert_array_equal(out, decode_codes(codes, LNS8, 2.0**-3, dtype=np.float32))
    strided = np.empty((3, 10000), np.float64)[:, ::2]
    decode_codes(codes, LNS8, 2.0**-3, out=strided)
    np.testing.assert_array_equal(strided, decode_reference(codes, LNS8, 2.0**-3))
    a = encode(np.array([1.0, -2.0]), LNS8)
    buf = np.empty(2, np.float32)
    assert decode(a, out=buf) is buf
    np.testing.assert_array_equal(buf, a.decode().astype(np.float32))
    with pytest.raises(TypeError, match="dtype float32; expected float64"):
        decode_codes(codes, LNS8, dtype=np.float64, out=out)
    with pytest.raises(ValueError, match=r"shape \(5000, 3\)"):
        decode_codes(codes, LNS8, out=np.empty((5000, 3), np.float32))
    with pytest.raises(TypeError, match="float dtype, got int32"):
        decode_codes(codes, LNS8, out=np.empty((3, 5000), np.int32))


def test_decode_out_overlapping_the_codes():
    """An out that shares memory with the codes gets the values of the codes as they were."""
    raw = np.zeros(4 * 8192, np.uint8)
    codes = raw[:8192].view(np.int8)
    codes[:] = np.resize(np.arange(-127, 128, dtype=np.int8), 8192)
    want = decode_codes(codes.copy(), LNS8, 0.5, dtype=np.float32)
    out = raw.view(np.float32)
    decode_codes(codes, LNS8, 0.5, out=out)
    np.testing.assert_array_equal(out, want)


# -- mul/div: narrow-integer kernels and out= -------------------------------------------------
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("fmt", [LNS8, LNSFormat(8, 8, underflow="saturate"), LNSFormat(8, 1), LNSFormat(8, 256),
                                 LNSFormat(5, 2, underflow="saturate"), LNS12, LNS16, LNSFormat(24, 64)], ids=str)
def test_products_equal_the_integer_rule(fmt, parallel, monkeypatch):
    """Codes and shift of mul and div equal the int64 transcription of the rule, for
    8-bit codes (byte-lane kernels, also with a γ wider than the code range) and 16-
    and 32-bit codes (int32 and int64 field arithmetic, serially and in parallel
    chunks), with zeros, extreme codes and both signs."""
    if parallel:
        monkeypatch.setattr(multiply, "_PARALLEL_MIN", 1 << 12)
    n = 50_000
    rng = np.random.default_rng(fmt.bits)
    r = min(fmt.bias - 1, fmt.max_code - fmt.bias, 40 * fmt.gamma)

    def codes():
        return (rng.choice([-1, 1], n) * (fmt.bias + rng.integers(-r, r + 1, n))).astype(fmt.code_dtype)

    ca, cb = codes(), codes()
    ca[::97] = 0
    cb[::89] = 0
    ca[5], cb[5] = fmt.bias + r, -(fmt.bias + r)
    a, b = encode(np.zeros(1), fmt), encode(np.zeros(1), fmt)
    a.codes, b.codes = ca, cb
    for op, sign_b in ((mul, 1), (div, -1)):
        want, k = _ref_products(ca, cb, fmt, sign_b)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = op(a, b)
        assert len(caught) == (sign_b < 0)  # the zero divisors warn once
        np.testing.assert_array_equal(got.codes, want)
        assert float(got.scale) == (float(a.scale * b.scale) if sign_b > 0 else float(a.scale / b.scale)) * 2.0**k


@pytest.mark.parametrize("fmt", [LNS8, LNSFormat(8, 8, underflow="saturate"), LNSFormat(8, 1), LNSFormat(6, 4)],
                         ids=str)
def test_blocked_product_shift_fixup_equals_the_integer_rule(fmt, monkeypatch):
    """The one-pass 8-bit product, with blocks of 1000 and magnitudes growing from block
    to block (so later blocks need a larger shift and the written prefix is shifted
    down), leading all-zero blocks, zeros and both signs, gives the codes and shift of
    the int64 rule, into a fresh array and in place into an operand."""
    monkeypatch.setattr(multiply, "_BLOCK", 1000)
    rng = np.random.default_rng(fmt.gamma + fmt.bits)
    n = 20_000
    ramp = np.linspace(1, fmt.max_code, n).astype(np.int64)
    ca = (rng.choice([-1, 1], n) * np.maximum(1, ramp - rng.integers(0, 3, n))).astype(fmt.code_dtype)
    cb = (rng.choice([-1, 1], n) * rng.integers(1, fmt.max_code + 1, n)).astype(fmt.code_dtype)
    ca[:2500] = 0
    cb[::37] = 0
    want, k = _ref_products(ca, cb, fmt, 1)
    a, b = encode(np.zeros(1), fmt, scale=1.0), encode(np.zeros(1), fmt, scale=1.0)
    for out in (None, ca):
        a.codes, b.codes = ca.copy() if out is None else ca, cb
        got = mul(a, b, out=out)
        np.testing.assert_array_equal(got.codes, want)
        assert float(got.scale) == 2.0**k


@pytest.mark.filterwarnings("ignore:.*division")
def test_mul_out_fresh_in_place_and_broadcast():
    """mul/div with out= equal the fresh result; out may be a.codes or b.codes (in place,
    elementwise), a strided array, or the broadcast shape; the result holds out."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(4, 3000)), rng.normal(size=(4, 3000))
    for op in (mul, div):
        a, b = encode(x, LNS8), encode(y, LNS8)
        want = op(a, b)
        out = np.empty((4, 3000), np.int8)
        r = op(a, b, out=out)
        assert r.codes is out
        np.testing.assert_array_equal(out, want.codes)
        assert np.array_equal(r.scale, want.scale)
        np.testing.assert_array_equal(op(a, b, out=a.codes).codes, want.codes)
        np.testing.assert_array_equal(a.codes, want.codes)  # a was overwritten in place
        a = encode(x, LNS8)
        op(a, b, out=b.codes)
        np.testing.assert_array_equal(b.codes, want.codes)
        b = encode(y, LNS8)
        strided = np.empty((4, 6000), np.int8)[:, ::2]
        np.testing.assert_array_equal(op(a, b, out=strided).codes, want.codes)
    row = encode(np.array([1.0, 2.0, 4.0]), LNS8)
    col = encode(np.array([[1.0], [0.5]]), LNS8)
    out = np.empty((2, 3), np.int8)
    np.testing.assert_array_equal(mul(row, col, out=out).decode(), mul(row, col).decode())


def test_mul_out_shifted_overlap_and_checks():
    """An out overlapping an operand at an offset gets the product of the operands as
    they were; a wrong dtype (TypeError) or shape (ValueError) is refused and named."""
    rng = np.random.default_rng(6)
    raw = encode(rng.normal(size=8001), LNS8).codes
    a = encode(np.zeros(1), LNS8)
    a.codes = raw[1:]
    b = encode(rng.normal(size=8000), LNS8)
    want = mul(a, b).codes.copy()
    got = mul(a, b, out=raw[:-1])
    np.testing.assert_array_equal(got.codes, want)
    with pytest.raises(TypeError, match="dtype int16; expected int8"):
        mul(a, b, out=np.empty(8000, np.int16))
    with pytest.raises(ValueError, match=r"shape \(8001,\); expected \(8000,\)"):
        mul(a, b, out=np.empty(8001, np.int8))
