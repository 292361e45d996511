"""Conv2d and MaxPool2d: the Numba kernels against their float64 numpy references,
and both against torch (``torch.nn.functional.conv2d`` / ``max_pool2d``, values and
autograd gradients) as the peer oracle; exact products, bad input, spec and
checkpoints."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns.sim import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Reshape, Sequential, Trainer, storage_kwargs
from neurolns.sim import _kernels as K
from neurolns.sim import _reference as R

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _conv_torch(layer, x, dy):
    """``(y, dx, dW, db)`` of torch's conv2d at the layer's forward weights (float64 autograd)."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(layer.weight.forward_value(), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(layer.bias.forward_value(), dtype=torch.float64, requires_grad=True)
    y = F.conv2d(xt, w, b, stride=layer.stride, padding=layer.padding)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), xt.grad.numpy(), w.grad.numpy(), b.grad.numpy()


# -- kernels against references ---------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       seed=st.integers(0, 2**31))
def test_im2col2d_and_col2im2d_match_reference(n, c, h, w, kh, kw, sh, sw, ph, pw, seed):
    """im2col2d equals the numpy reference exactly (copies); col2im2d equals it to
    float32 rounding (sums) and is its adjoint: <im2col(x), d> = <x, col2im(d)>."""
    h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if h_out < 1 or w_out < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    cols = np.empty((n, h_out * w_out, c * kh * kw), np.float32)
    K.im2col2d(x, kh, kw, sh, sw, ph, pw, cols)
    np.testing.assert_array_equal(cols, R.im2col2d(x, kh, kw, sh, sw, ph, pw, h_out, w_out))
    d = rng.normal(size=cols.shape).astype(np.float32)
    dx = np.empty_like(x)
    K.col2im2d(d, kh, kw, sh, sw, ph, pw, dx)
    np.testing.assert_allclose(dx, R.col2im2d(d, kh, kw, sh, sw, ph, pw, x.shape), rtol=1e-6, atol=1e-6)
    assert np.isclose(np.vdot(cols.astype(np.float64), d), np.vdot(x.astype(np.float64), dx), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("cfg", [dict(c_in=1, c_out=4, k=3, stride=1, padding=1, shape=(3, 8, 8)),
                                 dict(c_in=3, c_out=5, k=(3, 2), stride=(2, 1), padding=(1, 2), shape=(4, 9, 7)),
                                 dict(c_in=2, c_out=3, k=2, stride=3, padding=0, shape=(2, 5, 11))],
                         ids=["same", "rect", "strided"])
@pytest.mark.parametrize("reference", [False, True], ids=["kernel", "reference"])
def test_conv2d_matches_torch_values_and_gradients(cfg, reference):
    """Output, input gradient, weight gradient and bias gradient equal torch's float64
    autograd to float32 rounding (relative 1e-5 of the largest entry), on both paths."""
    layer = Conv2d(cfg["c_in"], cfg["c_out"], cfg["k"], stride=cfg["stride"], padding=cfg["padding"], seed=0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(cfg["shape"][0], cfg["c_in"]) + cfg["shape"][1:]).astype(np.float32)
    y = layer.forward(x, train=True, reference=reference)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = layer.backward(dy, reference=reference)
    want = _conv_torch(layer, x, dy)
    for got, ref in zip((y, dx, layer.weight.grad, layer.bias.grad), want):
        assert got.shape == ref.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * max(1.0, np.abs(ref).max()))


def test_conv2d_kernel_and_reference_paths_agree():
    layer = Conv2d(3, 4, 3, stride=2, padding=1, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 9, 6)).astype(np.float32)
    y = layer.forward(x, train=True)
    np.testing.assert_allclose(y, layer.forward(x, train=True, reference=True), rtol=1e-6, atol=1e-6)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy), layer.backward(dy, reference=True), rtol=1e-6, atol=1e-6)


def test_conv2d_without_bias_and_with_lns_weights_matches_torch():
    """bias=False has one parameter; LNS storage convolves with the decoded LNS8 forward copy."""
    layer = Conv2d(2, 3, 3, padding=1, bias=False, seed=0)
    assert [p.name for p in layer.params()] == ["weight"]
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 5)).astype(np.float32)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(layer.weight.forward_value()), padding=1).numpy()
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-5, atol=1e-6)
    lns = Conv2d(2, 3, 3, padding=1, seed=0, **storage_kwargs("lns"))
    w = lns.weight.forward_value()
    assert len(np.unique(np.abs(w))) < w.size  # on the LNS8 grid
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(lns.bias.forward_value()), padding=1)
    np.testing.assert_allclose(lns.forward(x), want.numpy(), rtol=1e-5, atol=1e-6)


def test_conv_net_backward_matches_torch_autograd():
    """Reshape → Conv2d → ReLU → MaxPool2d → Conv2d → Flatten → Dense with softmax
    cross-entropy: every parameter gradient equals torch autograd on the same weights."""
    net = Sequential([Reshape(1, 6, 6), Conv2d(1, 3, 3, padding=1, seed=0), ReLU(), MaxPool2d(2),
                      Conv2d(3, 2, 2, seed=1), Flatten(), Dense(8, 4, seed=2)])
    tm = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 6, 6)), torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(),
                             torch.nn.MaxPool2d(2), torch.nn.Conv2d(3, 2, 2), torch.nn.Flatten(),
                             torch.nn.Linear(8, 4)).double()
    with torch.no_grad():
        for k, p in net.named_params():
            tm.state_dict()[k].copy_(torch.from_numpy(p.data))
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 36)).astype(np.float32), rng.integers(0, 4, 5)
    loss, _ = net.loss_and_grads(x, y)
    tl = F.cross_entropy(tm(torch.from_numpy(x).double()), torch.from_numpy(y))
    tl.backward()
    assert np.isclose(loss, tl.item(), rtol=1e-5)
    grads = dict(tm.named_parameters())
    for k, p in net.named_params():
        g = grads[k].grad.numpy()
        np.testing.assert_allclose(p.grad, g, rtol=0, atol=1e-5 * max(1.0, np.abs(g).max()), err_msg=k)


# -- max pooling ----------------------------------------------------------------------
@pytest.mark.parametrize("k,shape", [(2, (2, 3, 8, 8)), (3, (1, 2, 7, 8)), ((2, 3), (2, 2, 5, 9))])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_maxpool2d_matches_torch_and_reference(k, shape, ties):
    """Values, indices (flat in each H×W plane) and gradients equal torch's, ties
    included (values drawn from {0, 1}: the first maximum in row-major order wins);
    kernel and reference agree exactly."""
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 2, size=shape) if ties else rng.normal(size=shape)).astype(np.float32)
    pool = MaxPool2d(k)
    y = pool.forward(x, train=True)
    arg = pool._arg.copy()
    yr, argr = R.maxpool2d_forward(x, *pool.kernel_size)
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = F.max_pool2d(xt, k, return_indices=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(arg, it.numpy())
    np.testing.assert_array_equal(argr, it.numpy())
    dy = rng.normal(size=y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(pool.backward(dy), xt.grad.numpy())
    np.testing.assert_array_equal(pool.backward(dy, reference=True), xt.grad.numpy())


def test_maxpool2d_window_holding_nan_is_nan():
    """As MaxPool1d: a NaN anywhere in a window pools to NaN at the first NaN
    (numpy.argmax), on both paths; ±inf pool as ordinary values."""
    x = np.zeros((1, 1, 2, 8), np.float32)
    x[0, 0, 1, 1] = np.nan  # window 0: last element
    x[0, 0, 0, 2], x[0, 0, 1, 3] = np.nan, np.nan  # window 1: two NaN, the first wins
    x[0, 0, 0, 5] = np.inf  # window 2
    x[0, 0, 0, 6], x[0, 0, 1, 7] = -np.inf, 5.0  # window 3
    pool = MaxPool2d(2)
    y = pool.forward(x, train=True)
    yr, argr = R.maxpool2d_forward(x, 2, 2)
    assert np.isnan(y[0, 0, 0, :2]).all() and y[0, 0, 0, 2] == np.inf and y[0, 0, 0, 3] == 5.0
    np.testing.assert_array_equal(y, yr.astype(np.float32))
    np.testing.assert_array_equal(pool._arg[0, 0, 0], [9, 2, 5, 15])
    np.testing.assert_array_equal(argr[0, 0, 0], [9, 2, 5, 15])


# -- exact products ----------------------------------------------------------------------
def test_conv2d_exact_products_equal_the_lns_products_summed_in_float64():
    """products='exact' (as Conv1d): the unrolled input is encoded in the weights' forward
    format and the LNS products are summed exactly; the result equals the float64 sum of
    the same decoded products to float32 rounding, and differs from the fast path."""
    from neurolns import LNS8
    from neurolns.lns import encode

    kw = storage_kwargs("lns")
    exact = Conv2d(2, 3, 3, stride=2, padding=1, seed=1, products="exact", **kw)
    fast = Conv2d(2, 3, 3, stride=2, padding=1, seed=1, **kw)
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 6)).astype(np.float32)
    cols = R.im2col2d(x, 3, 3, 2, 2, 1, 1, 3, 3).reshape(18, -1)
    want = encode(cols, LNS8).decode() @ exact.weight.forward_value().reshape(3, -1).astype(np.float64).T
    want = want.reshape(2, 3, 3, 3).transpose(0, 3, 1, 2) + exact.bias.forward_value()[None, :, None, None]
    np.testing.assert_allclose(exact.forward(x), want, rtol=1e-6, atol=1e-6)
    assert np.abs(fast.forward(x) - exact.forward(x)).max() > 0
    with pytest.raises(ValueError, match="products='exact' needs LNS weights"):
        Conv2d(1, 1, 3, products="exact")


# -- errors, spec, checkpoints -------------------------------------------------------------
def test_conv2d_and_maxpool2d_errors_name_the_value_and_the_range():
    with pytest.raises(ValueError, match=r"kernel_size=0 is out of range; allowed: an int >= 1 or a pair"):
        Conv2d(1, 1, 0)
    with pytest.raises(ValueError, match=r"kernel_size=\(3, 3, 3\) is out of range"):
        Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(ValueError, match=r"stride=\(1, 0\) is out of range; allowed: an int >= 1"):
        Conv2d(1, 1, 3, stride=(1, 0))
    with pytest.raises(ValueError, match=r"padding=-1 is out of range; allowed: an int >= 0"):
        Conv2d(1, 1, 3, padding=-1)
    with pytest.raises(ValueError, match=r"kernel_size=2.0 is out of range"):
        Conv2d(1, 1, 2.0)
    with pytest.raises(ValueError, match="out_channels=0 is out of range"):
        Conv2d(1, 0, 3)
    with pytest.raises(ValueError, match=r"Conv2d expects input \(N, 2, H, W\), got \(3, 2, 8\)"):
        Conv2d(2, 1, 3).forward(np.zeros((3, 2, 8)))
    with pytest.raises(ValueError, match=r"Conv2d expects input \(N, 2, H, W\), got \(3, 1, 8, 8\)"):
        Conv2d(2, 1, 3).forward(np.zeros((3, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"input 2×8 is smaller than the kernel 3×3 .*allowed: H \+ 2·padding"):
        Conv2d(1, 1, 3).forward(np.zeros((1, 1, 2, 8)))
    Conv2d(1, 1, 3, padding=1).forward(np.zeros((1, 1, 1, 1)))  # padding makes room
    with pytest.raises(RuntimeError, match="forward"):
        Conv2d(1, 1, 3).backward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"kernel_size=0 is out of range; allowed: an int >= 1"):
        MaxPool2d(0)
    with pytest.raises(ValueError, match=r"MaxPool2d\(2×2\) expects input \(N, C, H, W\) with H >= 2"):
        MaxPool2d(2).forward(np.zeros((1, 1, 8)))
    with pytest.raises(ValueError, match=r"with H >= 3 and W >= 3, got \(1, 1, 8, 2\)"):
        MaxPool2d(3).forward(np.zeros((1, 1, 8, 2)))
    with pytest.raises(RuntimeError, match="forward"):
        MaxPool2d(2).backward(np.zeros((1, 1, 2, 2)))


def test_spec_and_repr_are_json_able_and_complete():
    import json

    conv = Conv2d(1, 4, (3, 2), stride=2, padding=(1, 0), seed=0, **storage_kwargs("lns"))
    spec = conv.spec()
    assert json.loads(json.dumps(spec)) == spec
    assert (spec["type"], spec["kernel_size"], spec["stride"], spec["padding"]) == ("Conv2d", [3, 2], [2, 2], [1, 0])
    assert spec["params"][0]["shape"] == [4, 1, 3, 2]
    assert MaxPool2d((2, 3)).spec() == {"type": "MaxPool2d", "params": [], "kernel_size": [2, 3]}
    assert repr(conv).startswith("Conv2d(1, 4, k=(3, 2), stride=(2, 2), padding=(1, 0), master=LNS12")


def _tiny_cnn(weights, seed=0):
    kw = storage_kwargs(weights)
    return Sequential([Reshape(1, 8, 8), Conv2d(1, 4, 3, padding=1, seed=seed, **kw), ReLU(), MaxPool2d(2),
                       Flatten(), Dense(64, 10, seed=seed + 1, **kw)])


@pytest.mark.parametrize("rule,weights", [("adam", "fp32"), ("lns-madam", "lns")])
def test_checkpoint_of_a_conv2d_net_resumes_identically(tmp_path, rule, weights):
    """2 epochs straight == 1 epoch, checkpoint, load into a differently seeded net, 1 more;
    a checkpoint of another kernel size is refused."""
    from neurolns.data import load_digits

    data = load_digits().subset(200, 50)
    straight = Trainer(_tiny_cnn(weights), rule, batch_size=32, seed=1)
    straight.fit(data, 2)
    ck = tmp_path / "c.npz"
    Trainer(_tiny_cnn(weights), rule, batch_size=32, seed=1).fit(data, 1, checkpoint=ck)
    resumed = Trainer(_tiny_cnn(weights, seed=7), rule, batch_size=32, seed=5)
    resumed.load_checkpoint(ck)
    resumed.fit(data, 2)
    assert resumed.history == straight.history
    for a, b in zip(resumed.params, straight.params):
        np.testing.assert_array_equal(a.data, b.data)
    kw = storage_kwargs(weights)
    other = Sequential([Reshape(1, 8, 8), Conv2d(1, 4, (3, 1), padding=(1, 0), **kw), ReLU(), MaxPool2d(2),
                        Flatten(), Dense(64, 10, **kw)])
    with pytest.raises(ValueError, match="another setup"):
        Trainer(other, rule, batch_size=32).load_checkpoint(ck)
