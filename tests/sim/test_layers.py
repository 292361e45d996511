"""Rate-network layers: Numba kernels against their float64 references, and
back-propagated gradients against float64 central finite differences of an
independent numpy forward pass (loops over windows, no im2col)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns.sim import (
    Conv1d, Dense, Flatten, LeakyReLU, MaxPool1d, ReLU, Reshape, Sequential, Sigmoid, Tanh,
    softmax_cross_entropy,
)
from neurolns.sim import _kernels as K
from neurolns.sim import _reference as R


# -- float64 oracle of a whole network ------------------------------------------
def _ref_forward(net, x, values):
    """Forward pass in float64 with explicit loops; ``values`` maps param id -> float64 array."""
    h = np.asarray(x, dtype=np.float64)
    for layer in net.layers:
        if isinstance(layer, Dense):
            h = h @ values[id(layer.weight)].T + values[id(layer.bias)]
        elif isinstance(layer, Conv1d):
            w, b = values[id(layer.weight)], values[id(layer.bias)]
            n, c, length = h.shape
            hp = np.zeros((n, c, length + 2 * layer.padding))
            hp[:, :, layer.padding : layer.padding + length] = h
            l_out = layer.output_length(length)
            out = np.empty((n, w.shape[0], l_out))
            for t in range(l_out):
                win = hp[:, :, t * layer.stride : t * layer.stride + layer.kernel_size]
                out[:, :, t] = np.einsum("nck,ock->no", win, w) + b
            h = out
        elif isinstance(layer, (Flatten,)):
            h = h.reshape(len(h), -1)
        elif isinstance(layer, Reshape):
            h = h.reshape((len(h),) + layer.shape)
        elif isinstance(layer, MaxPool1d):
            h = R.maxpool_forward(h, layer.kernel_size)[0]
        else:
            h = R.activation_forward(h, layer.kind, layer.alpha)
    return h


def _ref_loss(net, x, y, values):
    z = _ref_forward(net, x, values)
    return R.softmax_xent(z, y)[0]


def _check_gradients(net, x, y, n_probe=12, seed=0):
    """Each analytic gradient entry matches a float64 central difference to 2e-3 relative
    (float32 forward/backward against a float64 oracle)."""
    net.loss_and_grads(x, y)
    values = {id(p): p.forward_value().astype(np.float64) for p in net.params()}
    rng = np.random.default_rng(seed)
    h = 1e-5
    for p in net.params():
        v = values[id(p)]
        for flat in rng.choice(v.size, size=min(n_probe, v.size), replace=False):
            idx = np.unravel_index(flat, v.shape)
            old = v[idx]
            v[idx] = old + h
            up = _ref_loss(net, x, y, values)
            v[idx] = old - h
            down = _ref_loss(net, x, y, values)
            v[idx] = old
            fd = (up - down) / (2 * h)
            assert abs(p.grad[idx] - fd) <= 2e-3 * max(abs(fd), 1e-2), (p, idx, p.grad[idx], fd)


def test_dense_mlp_gradients_match_finite_differences():
    """Dense + tanh + leaky ReLU + sigmoid MLP: backward equals d(loss)/dw of the float64 oracle."""
    net = Sequential([Dense(6, 7, seed=0), Tanh(), Dense(7, 5, seed=1), LeakyReLU(0.1), Dense(5, 5, seed=2),
                      Sigmoid(), Dense(5, 3, seed=3)])
    rng = np.random.default_rng(1)
    _check_gradients(net, rng.normal(size=(9, 6)), rng.integers(0, 3, 9))


def test_conv_net_gradients_match_finite_differences():
    """Reshape → strided, padded Conv1d → ReLU → Conv1d → MaxPool → Flatten → Dense."""
    net = Sequential([Reshape(2, 11), Conv1d(2, 4, 3, stride=2, padding=1, seed=0), ReLU(),
                      Conv1d(4, 3, 2, stride=1, padding=0, seed=1), MaxPool1d(2), Flatten(), Dense(6, 4, seed=2)])
    rng = np.random.default_rng(2)
    _check_gradients(net, rng.normal(size=(5, 22)), rng.integers(0, 4, 5))


def test_lns_weights_gradients_are_taken_at_the_forward_values():
    """With LNS8 forward weights the gradient is that of the loss at the decoded LNS8 weights."""
    from neurolns.sim import storage_kwargs

    kw = storage_kwargs("lns")
    net = Sequential([Dense(5, 6, seed=0, **kw), ReLU(), Dense(6, 3, seed=1, **kw)])
    rng = np.random.default_rng(3)
    _check_gradients(net, rng.normal(size=(7, 5)), rng.integers(0, 3, 7))


# -- kernels against references ---------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 3), length=st.integers(1, 13), k=st.integers(1, 5),
       stride=st.integers(1, 3), pad=st.integers(0, 2), seed=st.integers(0, 2**31))
def test_im2col_and_col2im_match_reference(n, c, length, k, stride, pad, seed):
    """im2col/col2im kernels equal the numpy reference exactly (copies and sums of float32)."""
    l_out = (length + 2 * pad - k) // stride + 1
    if l_out < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, length)).astype(np.float32)
    cols = np.empty((n, l_out, c * k), np.float32)
    K.im2col(x, k, stride, pad, cols)
    np.testing.assert_array_equal(cols, R.im2col(x, k, stride, pad, l_out))
    d = rng.normal(size=cols.shape).astype(np.float32)
    dx = np.empty_like(x)
    K.col2im(d, k, stride, pad, dx)
    np.testing.assert_allclose(dx, R.col2im(d, k, stride, pad, x.shape), rtol=1e-6, atol=1e-6)
    # adjointness: <im2col(x), d> == <x, col2im(d)>
    assert np.isclose(np.vdot(cols.astype(np.float64), d), np.vdot(x.astype(np.float64), dx), rtol=1e-5)


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.2), Tanh(), Sigmoid()], ids=lambda l: type(l).__name__)
def test_activation_kernels_match_reference(layer):
    """Forward and backward kernels agree with float64 numpy to float32 rounding."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=200) * 4, [0.0, -0.0, 50.0, -50.0]]).astype(np.float32).reshape(4, -1)
    dy = rng.normal(size=x.shape).astype(np.float32)
    y = layer.forward(x, train=True)
    yr = layer.forward(x, train=True, reference=True)
    np.testing.assert_allclose(y, yr, rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(layer.backward(dy), layer.backward(dy, reference=True), rtol=2e-7, atol=1e-7)


def test_maxpool_kernels_match_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 11)).astype(np.float32)
    layer = MaxPool1d(3)
    y = layer.forward(x, train=True)
    np.testing.assert_array_equal(y, layer.forward(x, train=True, reference=True))
    dy = rng.normal(size=y.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dy), layer.backward(dy, reference=True))


def test_conv_forward_backward_reference_switch_agrees():
    layer = Conv1d(3, 4, 3, stride=2, padding=1, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 9)).astype(np.float32)
    y = layer.forward(x, train=True)
    np.testing.assert_allclose(y, layer.forward(x, train=True, reference=True), rtol=1e-6, atol=1e-6)
    dy = np.ones_like(y)
    np.testing.assert_allclose(layer.backward(dy), layer.backward(dy, reference=True), rtol=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 6), scale=st.floats(0.01, 200.0), seed=st.integers(0, 2**31))
def test_softmax_cross_entropy_kernel_matches_reference(n, c, scale, seed):
    """Loss to 1e-9 relative and gradient to float32 rounding, even for logits of
    size 200 (the max shift prevents overflow); the gradient rows sum to 0."""
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, c)) * scale).astype(np.float32)
    y = rng.integers(0, c, n)
    loss, d, k = softmax_cross_entropy(z, y)
    lr, dr, kr = softmax_cross_entropy(z, y, reference=True)
    assert np.isfinite(loss) and np.isclose(loss, lr, rtol=1e-9, atol=1e-12) and k == kr
    np.testing.assert_allclose(d, dr, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d.astype(np.float64).sum(axis=1), 0.0, atol=1e-6)


def test_softmax_cross_entropy_value_against_log():
    """Uniform logits give log C; a confident correct row gives ~0."""
    loss, _, _ = softmax_cross_entropy(np.zeros((3, 7)), np.array([0, 3, 6]))
    assert np.isclose(loss, np.log(7))
    loss, _, k = softmax_cross_entropy(np.array([[100.0, 0.0]]), np.array([0]))
    assert 0.0 <= loss < 1e-20
    assert k == 1


# -- errors ---------------------------------------------------------------------------
def test_layer_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="in_features"):
        Dense(0, 3)
    with pytest.raises(ValueError, match=r"Dense expects input \(N, 4\)"):
        Dense(4, 2).forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="shorter than the kernel"):
        Conv1d(1, 1, 5).forward(np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match="labels must lie in"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="allowed: 'fast', 'exact'"):
        Dense(2, 2, products="slow")
    with pytest.raises(TypeError, match="LNSFormat or None"):
        Dense(2, 2, master_format="lns8")
    with pytest.raises(RuntimeError, match="forward"):
        Dense(2, 2).backward(np.zeros((1, 2)))


def test_network_spec_and_named_params_follow_torch_order():
    net = Sequential([Dense(3, 4), ReLU(), Dense(4, 2, bias=False)])
    assert [k for k, _ in net.named_params()] == ["0.weight", "0.bias", "2.weight"]
    spec = net.spec()
    assert spec["layers"][0]["type"] == "Dense" and spec["layers"][0]["params"][0]["shape"] == [4, 3]


def test_exact_products_equal_the_lns_products_summed_in_float64():
    """products='exact': x is encoded in the weights' forward format and the LNS products
    are summed exactly (hardware partial sums); the result equals the float64 sum of
    the same decoded products to float32 rounding, for Dense and Conv1d."""
    from neurolns import LNS8
    from neurolns.lns import encode
    from neurolns.sim import storage_kwargs

    kw = storage_kwargs("lns")
    rng = np.random.default_rng(0)
    d = Dense(6, 4, seed=0, products="exact", **kw)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    want = encode(x, LNS8).decode() @ d.weight.forward_value().astype(np.float64).T + d.bias.forward_value()
    np.testing.assert_allclose(d.forward(x), want, rtol=1e-6, atol=1e-6)
    c = Conv1d(2, 3, 3, stride=2, padding=1, seed=1, products="exact", **kw)
    xc = rng.normal(size=(2, 2, 7)).astype(np.float32)
    fast = Conv1d(2, 3, 3, stride=2, padding=1, seed=1, **kw)
    # the exact path differs from the fast one only by the LNS8 encoding of the inputs
    xq = encode(R.im2col(xc, 3, 2, 1, 4).reshape(8, -1), LNS8).decode()
    want_c = (xq @ c.weight.forward_value().reshape(3, -1).astype(np.float64).T).reshape(2, 4, 3)
    want_c = want_c.transpose(0, 2, 1) + c.bias.forward_value()[None, :, None]
    np.testing.assert_allclose(c.forward(xc), want_c, rtol=1e-6, atol=1e-6)
    assert np.abs(fast.forward(xc) - c.forward(xc)).max() > 0  # the modes differ (the test can fail)
