"""Peer tests against the ``xlns`` package (same base, F = log2 γ fractional bits).

xlns stores ``x = round(log_B |v|)`` with ``B = 2**(2**-F)``; its array type
``xlnsnp`` packs ``2·x + sign`` in int64, with a sentinel for zero. Its default
adder is correctly rounded: ``max + round(log_B|1 ± B**(-|Δ|)|)``. Where the two
libraries differ on purpose, the tests say so.
"""

from __future__ import annotations

import numpy as np
import pytest

xlns = pytest.importorskip("xlns")

from neurolns import LNSFormat  # noqa: E402
from neurolns.lns import add_codes, encode, encode_codes  # noqa: E402

_ZERO = -0x7FFFFFFFFFFFFFFF - 1


def _fmt(F: int) -> LNSFormat:
    # wide enough that nothing saturates: xlns has (practically) unbounded range
    return LNSFormat(bits=24, gamma=1 << F)


def _xlns_codes(nd: np.ndarray, fmt: LNSFormat) -> np.ndarray:
    """xlnsnp's packed ``2x + s`` as neurolns signed codes ``±(x + bias)``."""
    nd = np.asarray(nd, dtype=np.int64)
    zero = (nd | 1) == (_ZERO | 1)
    x = nd >> 1
    m = np.where(zero, 0, x + fmt.bias)
    return np.where(nd & 1, -m, m)


def _values(rng, n):
    return rng.choice([-1.0, 1.0], n) * np.exp(rng.uniform(-9, 9, n))


@pytest.mark.parametrize("F", [3, 6, 10])
def test_encode_matches_xlns_grid(F):
    """With scale 1 our exponent codes equal xlns's x on 3000 random values, and the
    published examples at F=3: 3 -> 13, 0.1 -> -27."""
    xlns.xlnssetF(F)
    fmt = _fmt(F)
    v = _values(np.random.default_rng(F), 3000)
    ours = encode_codes(v, fmt, 1.0).astype(np.int64)
    theirs = _xlns_codes(xlns.xlnsnp(v).nd, fmt)
    np.testing.assert_array_equal(ours, theirs)
    if F == 3:
        assert xlns.xlns(3.0).x == 13 and xlns.xlns(0.1).x == -27
        np.testing.assert_array_equal(encode(np.array([3.0, 0.1]), fmt, scale=1.0).exponents, [13, -27])


@pytest.mark.parametrize("F", [3, 6, 10])
def test_exact_add_matches_xlns_default_add(F):
    """Exact mode equals xlns's (correctly rounded) array add on random pairs, including
    pairs a few codes apart, except where xlns leaves x + (-x) non-zero."""
    xlns.xlnssetF(F)
    fmt = _fmt(F)
    rng = np.random.default_rng(100 + F)
    a = _values(rng, 4000)
    b = np.where(rng.random(4000) < 0.5, -a * np.exp2(rng.integers(-20, 21, 4000) / fmt.gamma), _values(rng, 4000))
    b[:50] = -a[:50]  # exact cancellation
    xa, xb = xlns.xlnsnp(a), xlns.xlnsnp(b)
    theirs = _xlns_codes((xa + xb).nd, fmt)
    ca, cb = _xlns_codes(xa.nd, fmt), _xlns_codes(xb.nd, fmt)
    ours = add_codes(ca.astype(fmt.code_dtype), cb.astype(fmt.code_dtype), fmt).astype(np.int64)
    cancel = ca == -cb
    assert cancel[:50].all()
    np.testing.assert_array_equal(ours[~cancel], theirs[~cancel])
    # known weak spot of xlns: x + (-x) is a tiny non-zero value there, exact zero here
    assert not ours[cancel].any()
    assert np.all(theirs[cancel] != 0)


def test_xlns_has_no_inf_or_nan_handling_we_do():
    """xlns raises on NaN/inf deep inside math.log; we raise a ValueError that counts the NaNs
    and saturate ±inf with a warning."""
    xlns.xlnssetF(3)
    with pytest.raises((ValueError, OverflowError)):
        xlns.xlns(float("inf"))
    fmt = _fmt(3)
    with pytest.warns(RuntimeWarning):
        c = encode_codes(np.array([np.inf]), fmt, 1.0)
    assert c[0] == fmt.max_code
    with pytest.raises(ValueError, match="NaN"):
        encode_codes(np.array([1.0, np.nan]), fmt, 1.0)
