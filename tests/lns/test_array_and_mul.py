"""LNSArray behaviour and exact multiplication/division against float64."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurolns import LNS8, LNSFormat
from neurolns.lns import LNSArray, div, encode, load, mul, save

finite = st.floats(-1e3, 1e3, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-3)


def _assert_exact_or_flushed(got, want, fmt):
    """Exact where the result lies within the format's range below the largest
    result (less one octave: scales move in whole octaves); flushed to zero only below it."""
    top = np.abs(want).max() if want.size else 0.0
    floor = top * 2.0 ** (-(fmt.e_max - fmt.e_min - fmt.gamma + 1) / fmt.gamma)
    inside = np.abs(want) >= floor
    np.testing.assert_allclose(got[inside], want[inside], rtol=1e-12, atol=0)
    assert np.all((got[~inside] == 0) | np.isclose(got[~inside], want[~inside], rtol=1e-12, atol=0))


@given(hnp.arrays(np.float64, 8, elements=finite), hnp.arrays(np.float64, 8, elements=finite))
def test_mul_div_are_exact(x, y):
    """Products/quotients of representable values are exact: decode(a*b) equals the
    float64 product of the decoded operands (to float64 rounding), zeros stay zero."""
    a, b = encode(x, LNS8), encode(y, LNS8)
    xa, yb = a.decode(), b.decode()
    _assert_exact_or_flushed(mul(a, b).decode(), xa * yb, LNS8)
    nz = yb != 0
    _assert_exact_or_flushed(div(a[nz], b[nz]).decode(), xa[nz] / yb[nz], LNS8)


def test_products_of_large_values_do_not_saturate():
    """Renormalisation moves the shift into the scale: max-range operands multiply exactly."""
    x = np.array([200.0, -150.0, 0.0])
    a = encode(x, LNS8, scale=1.0)
    p = a * a
    np.testing.assert_allclose(p.decode(), a.decode() ** 2, rtol=1e-12)
    assert np.log2(float(p.scale)) % 1 == 0


def test_division_by_zero_saturates_with_warning():
    a = encode(np.array([2.0, -3.0, 0.0]), LNS8, scale=1.0)
    z = encode(np.zeros(3), LNS8, scale=1.0)
    with pytest.warns(RuntimeWarning, match="2 division"):
        q = div(a, z)
    assert q.codes[0] == LNS8.max_code and q.codes[1] == -LNS8.max_code and q.codes[2] == 0


def test_mul_broadcasts_and_checks_formats():
    """Products broadcast like numpy (exact against float64); mixing formats is refused."""
    a = encode(np.arange(1.0, 7.0).reshape(2, 3), LNS8)
    b = encode(np.array([1.0, 2.0, 4.0]), LNS8)
    np.testing.assert_allclose((a * b).decode(), a.decode() * b.decode(), rtol=1e-12)
    with pytest.raises(ValueError, match="formats differ"):
        mul(a, encode([1.0], LNSFormat(bits=8, gamma=4)))


def test_operators_with_numbers_and_arrays():
    """Numbers on either side are encoded first; neg and abs act on the sign only (float64 oracle)."""
    a = encode(np.array([1.5, -2.0]), LNS8)
    np.testing.assert_allclose((a * 2).decode(), a.decode() * 2, rtol=1e-12)
    np.testing.assert_allclose((2 * a).decode(), a.decode() * 2, rtol=1e-12)
    np.testing.assert_allclose((-a).decode(), -a.decode())
    np.testing.assert_allclose(abs(a).decode(), np.abs(a.decode()))


@given(hnp.arrays(np.float64, 10, elements=finite), hnp.arrays(np.float64, 10, elements=finite))
def test_comparisons_agree_with_decoded_values(x, y):
    a = encode(x, LNS8, scale=1.0)
    b = encode(y, LNS8, scale=1.0)
    for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        np.testing.assert_array_equal(getattr(a, op)(b), getattr(a.decode(), op)(b.decode()))
    c = encode(y, LNS8)  # a different scale goes through values
    np.testing.assert_array_equal(a < c, a.decode() < c.decode())


def test_astype_refine_exact_and_coarsen_nearest():
    fine = LNSFormat(bits=16, gamma=128)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(5000)
    a = encode(x, LNS8)
    up = a.astype(fine)
    np.testing.assert_allclose(up.decode(), a.decode(), rtol=1e-12)
    np.testing.assert_array_equal(up.astype(LNS8).codes, a.codes)
    f = encode(x, fine, scale=a.scale)
    down = f.astype(LNS8)
    # coarsening the fine code = nearest rounding of the fine value's exact log2
    t = f.exponents / 16.0
    np.testing.assert_array_equal(down.exponents[f.codes != 0], np.rint(t)[f.codes != 0])
    s = f.astype(LNS8, rounding="stochastic", seed=0)
    assert np.all(np.abs(s.exponents - t)[f.codes != 0] < 1)


def test_indexing_reshape_transpose_keep_per_channel_scales():
    """Views carry their scales along: each equals the same view of the decoded array."""
    w = np.arange(1.0, 13.0).reshape(3, 4) * np.array([[1.0], [100.0], [1e4]])
    a = encode(w, LNS8, channel_axis=0)
    np.testing.assert_allclose(a[1].decode(), a.decode()[1])
    np.testing.assert_allclose(a[:, 2].decode(), a.decode()[:, 2])
    np.testing.assert_allclose(a.T.decode(), a.decode().T)
    np.testing.assert_allclose(a.reshape(12).decode(), a.decode().reshape(12))
    assert "LNSArray(" in repr(a) and a.nbytes == 12


def test_constructor_validates():
    """Out-of-range codes, float codes and non-positive scales are refused."""
    with pytest.raises(ValueError, match="out of range"):
        LNSArray(np.array([128]), LNS8)
    with pytest.raises(TypeError, match="integer"):
        LNSArray(np.array([1.0]), LNS8)
    with pytest.raises(ValueError, match="scale"):
        LNSArray(np.array([1]), LNS8, scale=-1.0)


def test_save_load_roundtrip_and_bad_files(tmp_path):
    """Codes, scales and format survive a save/load; a corrupt or foreign file raises ValueError."""
    a = encode(np.array([[1.0, -2.0], [3.0, 0.0]]), LNSFormat(bits=12, gamma=64, underflow="saturate"), channel_axis=0)
    p = tmp_path / "w.npz"
    a.save(p)
    b = load(p)
    assert b.format == a.format
    np.testing.assert_array_equal(b.codes, a.codes)
    np.testing.assert_array_equal(b.scale, a.scale)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read"):
        load(bad)
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(ValueError, match="not an LNSArray"):
        load(tmp_path / "other.npz")


def test_parallel_product_path_equals_float64(monkeypatch):
    """Arrays above the parallel threshold take the threaded writer; products stay exact."""
    from neurolns.lns import multiply

    monkeypatch.setattr(multiply, "_PARALLEL_MIN", 1 << 16)
    n = (1 << 16) + 12345
    rng = np.random.default_rng(5)
    x = rng.standard_normal(n) * np.exp2(rng.uniform(-3, 3, n))
    y = rng.standard_normal(n)
    x[::1000] = 0.0
    a, b = encode(x, LNS8), encode(y, LNS8)
    _assert_exact_or_flushed(mul(a, b).decode(), a.decode() * b.decode(), LNS8)
    nz = b.codes != 0
    _assert_exact_or_flushed(div(a[nz], b[nz]).decode(), a.decode()[nz] / b.decode()[nz], LNS8)


def test_wide_format_products_keep_a_float64_scale():
    """LNS16 at γ = 8 spans 2048 octaves, more than float64: the automatic scale of small data is
    2**-1022 and the plain product of two such scales underflows to 0 (the product used to come
    back as all zeros). mul keeps the scale a normal float64 and the products exact (float64
    oracle in the log domain: log2|x| = (|c| − β)/γ + log2 σ), and raises OverflowError when
    the true product is itself below float64's range."""
    fmt = LNSFormat(bits=16, gamma=8)
    a = encode(np.array([3.0, -0.5, 2.0 ** -20]), fmt)
    assert a.scale == 2.0 ** -1022

    def log2_abs(x):
        return (np.abs(x.codes.astype(np.int64)) - fmt.bias) / fmt.gamma + np.log2(x.scale)

    p = mul(a, a)
    assert 2.0 ** -1022 <= p.scale < np.inf
    np.testing.assert_array_equal(log2_abs(p), 2 * log2_abs(a))
    # decode splits 2**((|c| − β)/γ), which alone would overflow here (codes ~1025 octaves up)
    np.testing.assert_array_equal(p.decode(), a.decode() ** 2)
    assert np.isfinite(p.decode()).all() and p.decode()[0] == pytest.approx(3.0 ** 2, rel=0.1)  # 2**(13/8) squared
    np.testing.assert_array_equal(np.sign(p.codes), [1, 1, 1])
    q = div(a, a)
    np.testing.assert_array_equal(q.decode(), np.ones(3))
    tiny = encode(np.array([2.0 ** -1010]), fmt, scale=2.0 ** -1010)
    t2 = mul(tiny, tiny)  # 2**-2020: below float64, but a code below β at scale 2**-1022 holds it
    assert t2.scale == 2.0 ** -1022 and log2_abs(t2)[0] == -2020.0
    huge = LNSArray(np.array([fmt.max_code], fmt.code_dtype), fmt, 2.0 ** 1023)  # 2**(1023 + 2048)
    with pytest.raises(OverflowError, match=r"2\*\*4094"):
        mul(huge, huge)  # the product needs a scale of 2**4094
