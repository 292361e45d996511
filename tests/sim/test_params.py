"""Synapse storage: the forward copy of LNS-code weights is the core's own
re-gridding (``LNSArray.astype``) decoded; float storage is untouched."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns import LNS8, LNSFormat
from neurolns.lns import LNSArray, decode, encode
from neurolns.sim import Param, forward_table, storage_kwargs, update_format


@settings(max_examples=30, deadline=None)
@given(fb=st.integers(4, 9), fg=st.sampled_from([1, 2, 4, 8]), r=st.sampled_from([1, 2, 16]),
       seed=st.integers(0, 2**31), headroom=st.integers(0, 4))
def test_forward_copy_equals_astype_then_decode(fb, fg, r, seed, headroom):
    """Bit-exact: table lookup == decode(LNSArray(codes, master, scale).astype(forward))."""
    fwd = LNSFormat(bits=fb, gamma=fg)
    master = update_format(fwd, fg * r)
    w = np.random.default_rng(seed).normal(size=(5, 7)) * 0.3
    p = Param("weight", w, master_format=master, forward_format=fwd, headroom=headroom)
    want = LNSArray(p.data, master, p.scale).astype(fwd).decode().astype(np.float32)
    np.testing.assert_array_equal(p.forward_value(), want)
    np.testing.assert_array_equal(p.forward_value(reference=True), want)
    np.testing.assert_array_equal(p.forward_array().decode().astype(np.float32), want)


def test_master_copy_is_the_encoded_initial_value_with_headroom():
    """Codes encode w at scale choose_scale(w, LNS8)·2**h: max|w| sits h octaves under the top."""
    w = np.random.default_rng(0).uniform(-0.2, 0.2, size=(30, 20))
    p = Param("weight", w, **storage_kwargs("lns", headroom=3))
    enc = encode(w, p.master_format, scale=p.scale)
    big = enc.codes != 0
    np.testing.assert_array_equal(p.value()[big], enc.decode()[big])
    # a weight too small for the format keeps its sign at the smallest magnitude, never the zero code
    assert np.all(p.data != 0) and np.all(np.sign(p.data) == np.sign(w))
    top = LNS8.max_magnitude * p.scale
    assert top / 2**4 < np.abs(w).max() <= top / 2**3 * (1 + 1e-12)
    # forward values are within half an LNS8 step (in log2) of the true weights
    fv = p.forward_value().astype(np.float64)
    ok = np.abs(w) > 2 * LNS8.min_magnitude * p.scale
    rel = np.abs(np.log2(np.abs(fv[ok]) / np.abs(w[ok])))
    assert rel.max() <= 0.5 / 8 + 1.0 / 256 + 1e-9


def test_float_storage_forward_is_the_data_itself_or_its_quantisation():
    w = np.linspace(-1, 1, 12).reshape(3, 4)
    p = Param("weight", w)
    assert p.forward_value() is p.data and p.data.dtype == np.float32 and not p.on_codes
    q = Param("weight", w, forward_format=LNS8)
    np.testing.assert_array_equal(q.forward_value(), decode(encode(p.data, LNS8)).astype(np.float32))


def test_forward_table_is_cached_and_read_only():
    t = forward_table(update_format(LNS8), LNS8)
    assert t is forward_table(update_format(LNS8), LNS8) and not t.flags.writeable and t[0] == 0.0


def test_param_errors():
    master = update_format(LNS8)
    p = Param("w", np.ones((2, 2)) * 0.1, master_format=master, forward_format=LNS8)
    with pytest.raises(ValueError, match="codes out of range"):
        p.set_codes(np.full((2, 2), 5000, np.int16), 1.0)
    with pytest.raises(ValueError, match="shape"):
        p.set_codes(np.zeros((3, 2), np.int16), 1.0)
    with pytest.raises(ValueError, match="scale must be finite"):
        p.set_codes(np.zeros((2, 2), np.int16), -1.0)
    with pytest.raises(TypeError, match="not codes"):
        Param("w", np.ones(2)).set_codes(np.zeros(2, np.int16), 1.0)
    with pytest.raises(ValueError, match="finite"):
        Param("w", np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="headroom"):
        Param("w", np.ones(2), headroom=-1)
    with pytest.raises(ValueError, match="'fp32', 'lns'"):
        storage_kwargs("fp16")
