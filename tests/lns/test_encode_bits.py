"""The bit-level encode and table decode kernels give exactly the float64 reference's codes/values.

The encoder reads exponent and mantissa bits instead of taking a log2 (see
``neurolns/lns/_codec_kernels.py``); these tests hold it to the reference
``rint(γ·(log2|x| − log2 σ))`` on millions of values, on every float32
mantissa of an octave, near every rounding threshold and on the edge cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurolns import LNS8, LNS12, LNS16, LNSFormat, Rounding
from neurolns.lns import decode_codes, encode_codes
from neurolns.lns._reference import decode_reference, encode_reference


def _ref(x, fmt, scale):
    return encode_reference(x, fmt, scale, Rounding.NEAREST)


SMALL_GAMMA = [LNSFormat(8, 1), LNSFormat(8, 4), LNSFormat(8, 8, underflow="saturate"), LNSFormat(10, 8)]


@pytest.mark.parametrize("fmt", SMALL_GAMMA, ids=str)
def test_every_float32_mantissa_of_an_octave(fmt):
    """All 2**23 float32 mantissas in [1, 2) (and their negatives at another exponent)
    encode exactly as the reference does."""
    m = np.arange(1 << 23, dtype=np.int32)
    if fmt.bits > 8:  # the int16-code variant: every third mantissa is enough
        m = m[::3]
    x = ((np.int32(127) << 23) | m).view(np.float32)
    np.testing.assert_array_equal(encode_codes(x, fmt, 1.0), _ref(x, fmt, 1.0))
    y = -((np.int32(120) << 23) | m[::7]).view(np.float32)
    np.testing.assert_array_equal(encode_codes(y, fmt, 2.0**-6), _ref(y, fmt, 2.0**-6))


def test_float32_thresholds_are_far_from_every_float32():
    """Proof that the float32 path (γ <= 8) is exact: at 50 digits, each rounding
    threshold 2**((k+1/2)/γ) lies more than 1e-9 (relative) from the nearest float32
    mantissa (the two integers around ``(2**((k+1/2)/γ) - 1)·2**23``), while the
    float64 ``(x·2**(-1/(2γ)))**γ`` of the kernel is off by at most 15·2**-53 and
    the reference's float64 log2 by below 1e-12."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    for g in (1, 2, 4, 8):
        for k in range(g):
            thr = (mpmath.mpf(2) ** ((k + mpmath.mpf(1) / 2) / g) - 1) * 2**23
            lo, hi = int(mpmath.floor(thr)), int(mpmath.ceil(thr))
            assert min(thr - lo, hi - thr) / 2**23 > 1e-9
    assert 15 * 2.0**-53 < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", [LNS8, LNS12, LNS16, LNSFormat(8, 4, underflow="saturate"), LNSFormat(20, 1 << 14),
                                 LNSFormat(32, 8)],
                         ids=str)
def test_random_values_over_the_whole_range(fmt, dtype):
    """Half a million values spread over all float exponents (saturating both ends),
    both signs, at per-tensor scales 2**-40..2**40, equal the reference."""
    rng = np.random.default_rng(fmt.bits * fmt.gamma)
    lim = 120 if dtype == np.float32 else 1000
    x = (rng.choice([-1.0, 1.0], 500_000) * np.exp2(rng.uniform(-lim, lim, 500_000))).astype(dtype)
    for scale in (1.0, 2.0**-40, 2.0**37):
        np.testing.assert_array_equal(encode_codes(x, fmt, scale), _ref(x, fmt, scale))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [1, 8, 64, 1024, 1 << 16])
def test_values_next_to_every_rounding_threshold(gamma, dtype):
    """The 8 floats on each side of every threshold 2**((k+1/2)/γ), at several exponents:
    the kernel (exact thresholds) and the reference (float log2, exact where undecided) agree."""
    fmt = LNSFormat(bits=24, gamma=gamma)
    k = np.arange(gamma, dtype=np.float64)
    thr = np.exp2((k + 0.5) / gamma).astype(dtype)
    steps = []
    for direction in (np.inf, -np.inf):
        v = thr.copy()
        for _ in range(8):
            v = np.nextafter(v, dtype(direction))
            steps.append(v.copy())
    base = np.concatenate([thr] + steps)
    x = np.concatenate([base * dtype(2.0**e) for e in (-9, 0, 5)] + [-base])
    np.testing.assert_array_equal(encode_codes(x, fmt, 1.0), _ref(x, fmt, 1.0))
    np.testing.assert_array_equal(encode_codes(x, fmt, 2.0**-3), _ref(x, fmt, 2.0**-3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", [LNS8, LNSFormat(8, 8, underflow="saturate"), LNS16], ids=str)
def test_edge_cases(fmt, dtype):
    """±0, subnormals, the largest float, powers of two, values at the saturation and
    underflow boundaries, ±inf (saturate, with a warning); NaN raises."""
    fi = np.finfo(dtype)
    edge = np.array([0.0, -0.0, fi.smallest_subnormal, -fi.smallest_subnormal, fi.tiny, fi.max, -fi.max,
                     1.0, 2.0, 0.5, -4.0, fmt.max_magnitude, fmt.min_magnitude, fmt.min_magnitude / 1.05,
                     fmt.min_magnitude * 0.5, fmt.max_magnitude * 1.05] * 5000, dtype=dtype)
    np.testing.assert_array_equal(encode_codes(edge, fmt, 1.0), _ref(edge, fmt, 1.0))
    # at a tiny scale the subnormals themselves are in range and must be encoded exactly
    sub = np.array([fi.smallest_subnormal * k for k in (1, 3, 100, 12345)] * 3000, dtype=dtype)
    tiny = float(fi.smallest_subnormal) * 4.0
    np.testing.assert_array_equal(encode_codes(sub, fmt, tiny), _ref(sub, fmt, tiny))
    assert np.all(encode_codes(sub, fmt, tiny) != 0)
    with pytest.warns(RuntimeWarning, match="infinite"):
        c = encode_codes(np.array([np.inf, -np.inf, 1.0] * 30000, dtype=dtype), fmt, 1.0)
    assert c[0] == fmt.max_code and c[1] == -fmt.max_code
    bad = np.ones(100_000, dtype=dtype)
    bad[77_777] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        encode_codes(bad, fmt, 1.0)


def test_per_channel_and_odd_scales_match_reference():
    """Per-element power-of-two scales take the table kernel; a non-power-of-two scale
    and stochastic rounding take the log2 kernel; all equal the reference."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 400)).astype(np.float32) * np.logspace(-5, 5, 300, dtype=np.float32)[:, None]
    s = np.exp2(np.round(np.log2(np.abs(x).max(axis=1, keepdims=True))) - 7)
    np.testing.assert_array_equal(encode_codes(x, LNS8, s), _ref(x, LNS8, s))
    np.testing.assert_array_equal(encode_codes(x, LNS8, 0.3), _ref(x, LNS8, 0.3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", [LNS8, LNS12, LNS16], ids=str)
def test_decode_table_path_equals_reference(fmt, dtype):
    """Every signed code, repeated past the table-path threshold, decodes to the
    correctly rounded value in the output dtype, at scale 1 and 2**-9."""
    c = np.arange(-fmt.max_code, fmt.max_code + 1).astype(fmt.code_dtype)
    c = np.tile(c, max(5, (1 << 18) // c.size))
    for scale in (1.0, 2.0**-9):
        got = decode_codes(c, fmt, scale, dtype=dtype)
        np.testing.assert_array_equal(got, decode_reference(c, fmt, scale, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_finite_absmax_equals_numpy(dtype):
    """The bit-level max of |x| over finite values equals numpy's, with inf/NaN/-0
    mixed in, on small (serial) and large (parallel) arrays; 0.0 when nothing is finite."""
    from neurolns.lns._codec_kernels import finite_absmax

    rng = np.random.default_rng(9)
    for n in (1, 1000, (1 << 20) + 5):
        x = (rng.normal(size=n) * 100).astype(dtype)
        x[:: max(1, n // 7)] = np.inf
        x[1:: max(2, n // 5)] = -np.nan
        x[2:: max(3, n // 3)] = -np.inf
        fin = np.abs(x[np.isfinite(x)].astype(np.float64))
        assert finite_absmax(x) == (fin.max() if fin.size else 0.0)
    assert finite_absmax(np.array([np.nan, -np.inf], dtype=dtype)) == 0.0
    assert finite_absmax(np.array([-0.0, -3.5], dtype=dtype)) == 3.5
