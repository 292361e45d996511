"""Exact transfer between torch and the simulator: identical codes, forward passes equal to
float32 tolerance, one LNS-Madam step giving identical codes on both sides."""
import numpy as np
import pytest
import torch
from torch import nn

from neurolns import LNS8, learning
from neurolns.models import cnn1d, mlp
from neurolns.torch import LNSConv1d, LNSLinear, LNSMadam, convert, from_sim, to_sim


def _x(n, f, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(np.float32)


def _assert_forward_close(model, net, x):
    """Same input, both forward passes: equal to float32 rounding of the sums (1e-5 of the scale)."""
    yt = model(torch.from_numpy(x)).detach().numpy()
    ys = net.forward(x)
    np.testing.assert_allclose(yt, ys, rtol=1e-5, atol=1e-5 * float(np.abs(ys).max()))


@pytest.mark.parametrize("storage", ["fp32", "lns"])
def test_torch_to_sim_cnn_identical_parameters_and_forward(storage):
    """The MNIST-1D CNN converted to LNS8 goes to the simulator with identical codes (lns) or
    float32 values (fp32) and the same forward pass; back again, the state_dict is identical."""
    model = cnn1d.build_torch(seed=3)
    convert(model, LNS8, storage=storage)
    net = to_sim(model)
    for (name, p), (tname, t) in zip(net.named_params(), model.named_parameters()):
        assert name == tname
        mod = model.get_submodule(name.split(".")[0])
        if storage == "lns":
            codes, scale = mod.param_codes(name.split(".")[1])
            np.testing.assert_array_equal(p.data, codes.numpy())
            assert p.scale == float(scale)
        else:
            np.testing.assert_array_equal(p.data, t.detach().numpy())
    _assert_forward_close(model, net, _x(32, 40))
    back = from_sim(net)
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_sim_to_torch_lns_mlp_forward_and_one_lns_madam_step():
    """A simulator MLP with LNS storage → torch: same forward; then one LNS-Madam step on the
    same gradients (k = 2, the trainer's η = 2/128) gives identical codes in both."""
    net = mlp.build_sim(64, (32,), 10, weights="lns", seed=1)
    model = from_sim(net)
    assert isinstance(model[0], LNSLinear) and model[0].storage.value == "lns"
    x = _x(16, 64, seed=2)
    _assert_forward_close(model, net, x)
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(0))
    nn.functional.cross_entropy(model(torch.from_numpy(x)), y).backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    params = net.params()
    ref = learning.LNSMadam([p.data for p in params], fmt=params[0].master_format, lr=2 / 128)
    ref.step(grads)
    LNSMadam(model.parameters(), lr=2 / 128).step()
    back = to_sim(model)
    for a, b in zip(back.params(), params):
        np.testing.assert_array_equal(a.data, b.data)
        assert a.scale == b.scale


def test_fp32_sim_model_maps_to_plain_torch_layers():
    """Float storage without a forward format maps to nn.Linear / nn.Conv1d and back."""
    net = cnn1d.build_sim(seed=0)
    model = from_sim(net)
    assert type(model[1]) is nn.Conv1d and type(model[8]) is nn.Linear
    _assert_forward_close(model, net, _x(8, 40))
    assert type(to_sim(model).layers[1]).__name__ == "Conv1d"


def test_activation_layers_map_both_ways():
    """LeakyReLU (slope kept), Tanh, Sigmoid, MaxPool1d and Unflatten have twins."""
    model = nn.Sequential(nn.Unflatten(1, (2, 8)), LNSConv1d(2, 3, 3, padding=1), nn.LeakyReLU(0.2),
                          nn.MaxPool1d(2), nn.Tanh(), nn.Flatten(), nn.Linear(12, 4), nn.Sigmoid())
    net = to_sim(model)
    _assert_forward_close(model, net, _x(5, 16))
    back = from_sim(net)
    assert [type(m).__name__ for m in back] == [type(m).__name__ for m in model]
    assert back[2].negative_slope == 0.2


def test_unsupported_layers_are_refused_by_name():
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm1d\)"):
        to_sim(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    with pytest.raises(ValueError, match="dilation"):
        to_sim(nn.Sequential(nn.Conv1d(1, 2, 3, dilation=2)))
    with pytest.raises(TypeError, match="Sequential"):
        to_sim(nn.Linear(2, 2))


def test_activation_formats_warn_when_not_carried():
    """LNS layers that quantize activations are transferred with a warning (placement differs)."""
    model = nn.Sequential(LNSLinear(4, 2, act_format=LNS8))
    with pytest.warns(UserWarning, match="not carried"):
        net = to_sim(model)
    assert net.act_format is None
    assert to_sim(model, act_format=LNS8).act_format == LNS8
