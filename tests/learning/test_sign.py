"""1-bit signals: pack/unpack against np.packbits for every length mod 8 (and empty),
the vote kernel against a numpy count, sign(0) and tie rules, Signum and EF-SignSGD
against scalar transcriptions of their formulas, and the 1-bit → one-code-step path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurolns.formats import LNS8, LNSFormat
from neurolns.learning import (
    MajorityVote,
    apply_signs,
    code_step_update,
    ef_sign_update,
    majority_vote,
    onebit_sign,
    pack_signs,
    packed_size,
    sign_sgd_update,
    signum_update,
    unpack_signs,
    update_format,
)


@pytest.mark.parametrize("n", list(range(0, 33)) + [1000, 1001, 1007])
def test_pack_unpack_every_length_mod_8(n):
    """For n = 0..32 (every n mod 8, and empty) and a few long ones: pack equals
    np.packbits(x < 0, little) byte for byte, unused bits are 0, and unpack inverts it."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    x[::5] = 0.0  # zeros pack as + (bit 0)
    packed = pack_signs(x)
    assert packed.dtype == np.uint8 and packed.shape == (packed_size(n),)
    np.testing.assert_array_equal(packed, np.packbits(x < 0, bitorder="little"))
    np.testing.assert_array_equal(packed, pack_signs(x, reference=True))
    if n % 8:
        assert packed[-1] >> (n % 8) == 0
    s = unpack_signs(packed, n)
    np.testing.assert_array_equal(s, np.where(x < 0, -1, 1))
    np.testing.assert_array_equal(s, unpack_signs(packed, n, reference=True))


@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(0, 70)), elements=st.floats(-5, 5, width=32)))
def test_pack_rows_roundtrip(x):
    """Packing along the last axis of a (K, n) stack row by row matches packbits; round trip is exact."""
    p = pack_signs(x)
    np.testing.assert_array_equal(p, np.packbits(x < 0, axis=-1, bitorder="little"))
    np.testing.assert_array_equal(unpack_signs(p, x.shape[1]), onebit_sign(x))


def test_sign_of_zero_is_plus_one():
    """sign(0) = sign(-0.0) = +1 everywhere a sign is formed."""
    x = np.array([0.0, -0.0, -1e-300, 1e-300, -5e-324])
    np.testing.assert_array_equal(onebit_sign(x), [1, 1, -1, 1, -1])
    np.testing.assert_array_equal(unpack_signs(pack_signs(x), 5), [1, 1, -1, 1, -1])
    w = np.zeros(5)
    sign_sgd_update(w, x, lr=1.0)
    np.testing.assert_array_equal(w, [-1, -1, 1, -1, 1])


@given(st.integers(1, 9), st.integers(0, 50), st.sampled_from(["plus", "abstain"]), st.randoms(use_true_random=False))
def test_vote_kernel_matches_numpy_count(k, n, ties, rnd):
    """Packed-bit vote == sign of the numpy sum of ±1 signs with the tie rule, for any K and n."""
    rng = np.random.default_rng(rnd.randint(0, 2**31))
    g = rng.integers(-2, 3, size=(k, n)).astype(np.float64)  # zeros included
    total = np.where(g < 0, -1, 1).sum(axis=0)
    want = np.where(total > 0, 1, np.where(total < 0, -1, 0 if ties == "abstain" else 1))
    np.testing.assert_array_equal(majority_vote(g, ties=ties), want)
    np.testing.assert_array_equal(majority_vote(pack_signs(g), n, ties=ties), want)
    np.testing.assert_array_equal(majority_vote(g, ties=ties, reference=True), want)
    np.testing.assert_array_equal(majority_vote(pack_signs(g), n, ties=ties, reference=True), want)


def test_vote_ties_and_symmetry():
    """Even K ties: 'plus' gives +1 (one bit), 'abstain' gives 0 and is odd-symmetric."""
    s = np.array([[1, -1, 1, -1], [-1, 1, 1, -1]])
    np.testing.assert_array_equal(majority_vote(s), [1, 1, 1, -1])
    np.testing.assert_array_equal(majority_vote(s, ties="abstain"), [0, 0, 1, -1])
    np.testing.assert_array_equal(majority_vote(-s, ties="abstain"), -majority_vote(s, ties="abstain"))
    with pytest.raises(ValueError, match="2-D"):
        majority_vote(np.ones(3))
    with pytest.raises(ValueError, match="n=30"):
        majority_vote(np.zeros((2, 2), np.uint8), 30)


def test_signum_and_signsgd_match_oracle():
    """Signum (momentum before the sign) over 50 steps equals a float64 scalar transcription;
    with beta = 0 it is signSGD."""
    rng = np.random.default_rng(2)
    grads = rng.normal(size=(50, 7))
    w, m = np.zeros(7), np.zeros(7)
    ow, om = [0.0] * 7, [0.0] * 7
    for g in grads:
        signum_update(w, g, m, lr=0.01, beta=0.9)
        for i in range(7):
            om[i] = 0.9 * om[i] + 0.1 * g[i]
            ow[i] -= 0.01 * (-1.0 if om[i] < 0 else 1.0)
    np.testing.assert_allclose(w, ow, rtol=0, atol=1e-15)
    w1, w2, m = np.ones(7), np.ones(7), np.zeros(7)
    signum_update(w1, grads[0], m, lr=0.1, beta=0.0)
    sign_sgd_update(w2, grads[0], lr=0.1)
    np.testing.assert_array_equal(w1, w2)


@pytest.mark.parametrize("reference", [False, True])
def test_ef_sign_matches_karimireddy_formula(reference):
    """EF-SignSGD: p = ηg + e, Δ = (‖p‖₁/d) sign(p), e ← p − Δ, over 40 steps against a
    scalar oracle (1e-12), and the invariant w − e = w0 − η Σ g (the residual holds what was not applied)."""
    rng = np.random.default_rng(4)
    grads = rng.normal(size=(40, 9)).astype(np.float64)
    w, e = np.zeros(9), np.zeros(9)
    ow, oe = np.zeros(9), np.zeros(9)
    for g in grads:
        ef_sign_update(w, g, e, lr=0.1, reference=reference)
        p = 0.1 * g + oe
        scale = sum(abs(x) for x in p) / 9
        delta = np.array([scale if x >= 0 else -scale for x in p])
        ow, oe = ow - delta, p - delta
    np.testing.assert_allclose(w, ow, atol=1e-12)
    np.testing.assert_allclose(e, oe, atol=1e-12)
    np.testing.assert_allclose(w - e, -0.1 * grads.sum(0), atol=1e-12)


@given(arrays(np.float32, st.integers(0, 100), elements=st.floats(-10, 10, width=32)), st.data())
def test_sign_kernels_match_reference(w, data):
    """signSGD, Signum and EF kernels == numpy reference paths on float32 storage (1 ulp)."""
    g = data.draw(arrays(np.float32, w.shape, elements=st.floats(-10, 10, width=32)))
    m = data.draw(arrays(np.float32, w.shape, elements=st.floats(-1, 1, width=32)))
    for fn, extra in [(sign_sgd_update, {}), (signum_update, {"m": m}), (ef_sign_update, {"e": m})]:
        a, b = w.copy(), w.copy()
        sa = {k: v.copy() for k, v in extra.items()}
        sb = {k: v.copy() for k, v in extra.items()}
        fn(a, g, *sa.values(), lr=0.01)
        fn(b, g, *sb.values(), lr=0.01, reference=True)
        np.testing.assert_allclose(a, b, rtol=2**-22, atol=1e-6)
        for k in sa:
            np.testing.assert_allclose(sa[k], sb[k], rtol=2**-22, atol=1e-6)


def test_one_bit_signal_grows_or_shrinks_by_one_code_step():
    """End to end: each of 5 workers sends only sign(g) (packed bits), the vote comes back,
    and every synapse moves by exactly one code step of the update grid: it shrinks where
    the voted sign agrees with its own sign, grows where it disagrees; zero stays zero,
    the top code saturates; decoded values change by 2^(∓1/128) (float64 oracle)."""
    fmt = update_format(LNS8)  # γ_u = 128
    codes = np.array([1500, -1500, 1500, -1500, 0, fmt.max_code], dtype=np.int16)
    true_g = np.array([1.0, 1.0, -1.0, -1.0, 1.0, -1.0])
    rng = np.random.default_rng(0)
    worker_g = [true_g + 0.3 * rng.normal(size=6) for _ in range(5)]
    packed = np.stack([pack_signs(g) for g in worker_g])  # 1 byte per worker for 6 synapses
    assert packed.shape == (5, 1)
    vote = majority_vote(packed, 6)
    np.testing.assert_array_equal(vote, np.sign(true_g))
    before = codes.copy()
    code_step_update(codes, vote, fmt=fmt)
    np.testing.assert_array_equal(codes, [1499, -1501, 1501, -1499, 0, fmt.max_code])
    dec = lambda c: np.sign(c) * 2.0 ** ((np.abs(c) - fmt.bias) / fmt.gamma)  # noqa: E731
    np.testing.assert_allclose(dec(codes[:4]) / dec(before[:4]), 2.0 ** (np.array([-1, 1, 1, -1]) / 128))
    # the same through the optimizer, and with packed bits fed straight in
    c2 = before.copy()
    MajorityVote([c2], workers=5, multiplicative=True, fmt=fmt).step([[g] for g in worker_g])
    np.testing.assert_array_equal(c2, codes)
    c3 = before.copy()
    code_step_update(c3, pack_signs(true_g), fmt=fmt)
    np.testing.assert_array_equal(c3, codes)


@given(st.data())
def test_code_step_properties(data):
    """For any codes and any ternary signal: kernel == reference, sign kept, zero kept,
    |Δ|c|| <= k, |c| in [1, cap]."""
    fmt = LNSFormat(bits=data.draw(st.sampled_from([8, 12])), gamma=8)
    n = data.draw(st.integers(0, 100))
    codes = data.draw(arrays(fmt.code_dtype, n, elements=st.integers(-fmt.max_code, fmt.max_code)))
    s = data.draw(arrays(np.int8, n, elements=st.integers(-1, 1)))
    k = data.draw(st.integers(1, 3))
    a, b = codes.copy(), codes.copy()
    code_step_update(a, s, fmt=fmt, lr=k / 8)
    code_step_update(b, s, fmt=fmt, lr=k / 8, reference=True)
    np.testing.assert_array_equal(a, b)
    nz = codes != 0
    assert np.all(a[~nz] == 0) and np.all(np.sign(a[nz]) == np.sign(codes[nz]))
    assert np.all(np.abs(np.abs(a.astype(int)) - np.abs(codes.astype(int)))[nz] <= k)
    assert np.all((np.abs(a[nz]) >= 1) & (np.abs(a[nz]) <= fmt.max_code))


def test_apply_signs_and_errors():
    """w ← w − η s for ternary or packed s; values outside {-1, 0, 1} and wrong shapes raise."""
    w = np.zeros(4)
    apply_signs(w, np.array([1, 0, -1, 1], np.int8), lr=0.5)
    np.testing.assert_array_equal(w, [-0.5, 0, 0.5, -0.5])
    apply_signs(w, pack_signs(np.array([-1.0, 1, 1, 1])), lr=0.5)
    np.testing.assert_array_equal(w, [0.0, -0.5, 0.0, -1.0])
    with pytest.raises(ValueError, match="allowed: -1, 0, \\+1"):
        apply_signs(w, np.array([2, 0, 0, 0]), lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        apply_signs(w, np.array([1, 0, 0]), lr=0.1)
    with pytest.raises(ValueError, match="n=17"):
        unpack_signs(np.zeros(1, np.uint8), 17)
    with pytest.raises(ValueError, match="lr"):
        sign_sgd_update(w, w.copy(), lr=-1.0)
