"""Non-finite values in the simulator: NaN propagates through every kernel exactly
as in its float64 numpy reference (and as in numpy/torch), ±inf follows IEEE
arithmetic, and the LNS activation/gradient quantisers keep NaN as NaN.

The oracle of each kernel test is the numpy reference *and* an explicit
statement of the expected value at the special points, so a kernel and a
reference that both lost the NaN would still fail."""

import warnings

import numpy as np
import pytest

from neurolns import LNS8
from neurolns.lns import quantize
from neurolns.sim import Dense, LeakyReLU, MaxPool1d, ReLU, Sequential, Sigmoid, Tanh, softmax_cross_entropy
from neurolns.sim import _kernels as K
from neurolns.sim import _reference as R

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0, 3e38, -3e38], np.float32)
ACTS = [ReLU(), LeakyReLU(0.2), Tanh(), Sigmoid()]


def _same(a, b):
    """Equal element by element to float32 rounding (1e-6 relative: the kernels
    compute in float32, the references in float64), NaN matching NaN only and
    ±inf matching the same infinity only."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all(np.isclose(a, b, rtol=1e-6, atol=0, equal_nan=True)))


@pytest.mark.parametrize("layer", ACTS, ids=lambda l: type(l).__name__)
def test_activation_forward_keeps_nan_and_matches_reference_on_inf(layer):
    """f(NaN) = NaN on both paths; on ±inf, ±0 and huge values the kernel equals
    the float64 reference rounded to float32."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp overflow in the reference sigmoid
        fast = layer.forward(SPECIAL)
        ref = layer.forward(SPECIAL, reference=True)
    assert np.isnan(fast[0]) and np.isnan(ref[0])
    assert _same(fast, ref), (fast, ref)
    assert not np.isnan(fast[1:]).any()  # no NaN made from ±inf by an activation


def test_relu_of_nan_is_nan_like_numpy():
    """The bug of issue 14: the kernel mapped NaN to 0 while np.maximum keeps it."""
    y = ReLU().forward(np.array([np.nan, -np.inf, np.inf], np.float32))
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == np.inf
    assert _same(y, np.maximum(np.array([np.nan, -np.inf, np.inf]), 0.0))


@pytest.mark.parametrize("layer", ACTS, ids=lambda l: type(l).__name__)
def test_activation_backward_propagates_nan_of_x_and_dy(layer):
    """dx is NaN exactly where x or dy is NaN (a NaN unit's gradient is not 0);
    elsewhere kernel == reference."""
    x = np.array([np.nan, -1.0, 2.0, -1.0, 2.0, np.inf, -np.inf, 0.5], np.float32)
    dy = np.array([1.0, np.nan, np.nan, 1.0, 1.0, 1.0, 1.0, np.inf], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        layer.forward(x, train=True)
        fast = layer.backward(dy)
        ref = layer.backward(dy, reference=True)
    assert np.array_equal(np.isnan(fast[:3]), [True, True, True])
    assert not np.isnan(fast[3:5]).any()
    assert _same(fast, ref), (fast, ref)


def test_maxpool_of_a_window_holding_nan_is_nan():
    """A NaN anywhere in a window (first, middle, last) pools to NaN, at the index
    numpy.argmax gives (the first NaN); ±inf pool as ordinary values."""
    x = np.array([[[1, np.nan, 2, 5, 3, 0, 1, np.nan, np.nan, np.nan, 1, 2, -np.inf, np.inf, 1, -1]]], np.float32)
    pool = MaxPool1d(4)
    fast = pool.forward(x, train=True)
    arg_fast = pool._arg.copy()
    ref = pool.forward(x, reference=True)
    assert np.isnan(fast[0, 0, :3]).all() and fast[0, 0, 3] == np.inf
    assert _same(fast, ref)
    assert np.array_equal(arg_fast[0, 0], [1, 7, 8, 13])
    assert np.array_equal(R.maxpool_forward(x, 4)[1][0, 0], [1, 7, 8, 13])


def test_softmax_xent_of_nan_or_inf_logits_matches_reference():
    """A row with NaN (or +inf, where inf - inf = NaN) has a NaN loss and NaN
    gradient on both paths; a -inf logit is an ordinary zero-probability class;
    the arg-max (n_correct) of a NaN row is its first NaN, as numpy.argmax."""
    z = np.array([[0.0, np.nan, 1.0], [2.0, 0.0, 1.0]], np.float32)
    loss, d, k = softmax_cross_entropy(z, np.array([1, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loss_r, d_r, k_r = softmax_cross_entropy(z, np.array([1, 0]), reference=True)
    assert np.isnan(loss) and np.isnan(loss_r)
    assert np.isnan(d[0]).all() and _same(d, d_r)
    assert k == k_r == 2  # row 0: argmax is the NaN at 1 == label; row 1: 0 == label

    z = np.array([[0.0, -np.inf, 1.0]], np.float32)
    loss, d, k = softmax_cross_entropy(z, np.array([2]))
    loss_r, d_r, k_r = softmax_cross_entropy(z, np.array([2]), reference=True)
    assert np.isfinite(loss) and abs(loss - np.log1p(np.exp(-1.0))) < 1e-6
    assert d[0, 1] == 0 and _same(d, d_r) and k == k_r == 1

    z = np.array([[0.0, np.inf, 1.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loss_r = softmax_cross_entropy(z, np.array([0]), reference=True)[0]
    assert np.isnan(softmax_cross_entropy(z, np.array([0]))[0]) and np.isnan(loss_r)


def test_im2col_and_col2im_carry_nan_and_inf():
    x = np.array([[[np.nan, 1.0, np.inf, -np.inf, 2.0]]], np.float32)
    cols = np.empty((1, 3, 3), np.float32)
    K.im2col(x, 3, 1, 0, cols)
    assert _same(cols, R.im2col(x, 3, 1, 0, 3))
    dx = np.empty((1, 1, 5), np.float32)
    K.col2im(cols, 3, 1, 0, dx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf + -inf
        assert _same(dx, R.col2im(cols, 3, 1, 0, (1, 1, 5)))
    assert np.isnan(dx[0, 0, 0])


def test_lns_activation_format_keeps_nan_and_saturates_inf():
    """With act_format, the finite activations are quantised as before, NaN stays
    NaN (it used to become 0, or raise), ±inf saturate to ± the largest magnitude
    with the codec's RuntimeWarning."""
    net = Sequential([Sigmoid()], act_format=LNS8)
    x = np.array([[np.nan, 0.3, -1.0, 4.0]], np.float32)
    y = net.forward(x)
    assert np.isnan(y[0, 0])
    finite = Sigmoid().forward(x[:, 1:])
    assert np.array_equal(y[:, 1:], quantize(finite, LNS8).astype(np.float32))

    net = Sequential([ReLU()], act_format=LNS8)
    x = np.array([[np.nan, np.inf, -np.inf, 2.0, 0.5]], np.float32)
    with pytest.warns(RuntimeWarning, match="saturated"):
        y = net.forward(x)
    assert np.isnan(y[0, 0])
    assert np.isfinite(y[0, 1]) and y[0, 1] == y[0, 1:].max() and y[0, 1] >= 2.0
    assert y[0, 2] == 0 and y[0, 3] == quantize(np.array([2.0, 0.5], np.float32), LNS8)[0]


def test_lns_layer_with_nan_input_gives_nan_logits_and_nan_gradients():
    """A NaN feature reaches the logits of its row as NaN (not 0) through Dense,
    ReLU and the LNS activation and gradient quantisers; the other row stays finite."""
    net = Sequential([Dense(3, 4, seed=0, forward_format=LNS8), ReLU(), Dense(4, 2, seed=1)],
                     act_format=LNS8, grad_format=LNS8)
    x = np.array([[np.nan, 1, 2], [1, 2, 3]], np.float32)
    z = net.forward(x)
    assert np.isnan(z[0]).all() and np.isfinite(z[1]).all()
    loss, _ = net.loss_and_grads(x, np.array([0, 1]))
    assert np.isnan(loss)
    assert np.isnan(net.layers[2].weight.grad).any()


@pytest.mark.parametrize("bad", [2048, -2048, 30000, -32768])
@pytest.mark.parametrize("reference", [False, True])
def test_code_out_of_range_in_a_param_raises_instead_of_reading_past_the_table(bad, reference):
    """Param.data is public: a code written into it past the master format's range
    (LNS12: |c| <= 2047) makes the forward copy raise ValueError naming the index,
    on the kernel and the reference path alike, instead of reading out of bounds."""
    from neurolns.sim import storage_kwargs

    d = Dense(3, 2, seed=0, **storage_kwargs("lns"))
    d.weight.data[1, 2] = bad
    with pytest.raises(ValueError, match=rf"weight codes holds 1 value.*{bad} at index \(1, 2\).*2047"):
        d.weight.forward_value(reference=reference)
    with pytest.raises(ValueError, match=r"index \(1, 2\)"):
        d.weight.value()
