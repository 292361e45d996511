"""Conv2d and MaxPool2d across the bridge: to_sim / from_sim keep codes and values exactly,
the forward passes agree to float32 rounding, one LNS-Madam step gives identical codes,
layers without a twin are refused by name, and the torch scenario builds the 2-D CNN."""
import numpy as np
import pytest
import torch
from torch import nn

from neurolns import LNS8, learning
from neurolns.models import cnn2d
from neurolns.torch import LNSConv2d, LNSMadam, convert, from_sim, to_sim


def _x(n, f, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(np.float32)


@pytest.mark.parametrize("storage", ["fp32", "lns"])
def test_torch_cnn2d_to_sim_and_back_is_exact(storage):
    """A plain torch 2-D CNN converted to LNS8 goes to the simulator with identical codes
    (lns) or float32 values (fp32) and the same forward pass; back again, the state is identical."""
    model = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 3, (3, 2), stride=(1, 2), padding=(1, 0)), nn.ReLU(), nn.Flatten(),
                          nn.Linear(24, 10))
    convert(model, LNS8, storage=storage)
    net = to_sim(model)
    assert [type(l).__name__ for l in net.layers][1:5] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d"]
    assert net.layers[4].kernel_size == (3, 2) and net.layers[4].stride == (1, 2)
    for name, p in net.named_params():
        layer, pname = name.split(".")
        mod = model.get_submodule(layer)
        if storage == "lns":
            codes, scale = mod.param_codes(pname)
            np.testing.assert_array_equal(p.data, codes.numpy())
            assert p.scale == float(scale)
        else:
            np.testing.assert_array_equal(p.data, getattr(mod, pname).detach().numpy())
    x = _x(16, 64)
    ys = net.forward(x)
    yt = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(yt, ys, rtol=1e-5, atol=1e-5 * float(np.abs(ys).max()))
    back = from_sim(net)
    assert type(back[1]) is LNSConv2d and type(back[3]) is nn.MaxPool2d
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_cnn2d_lns_forward_and_one_lns_madam_step_give_identical_codes():
    """models.cnn2d with LNS storage: the torch twin's forward equals the simulator's, and one
    LNS-Madam step (k = 2) on the same gradients gives identical codes on both sides."""
    net = cnn2d.build_sim(channels=4, weights="lns", seed=1)
    model = cnn2d.build_torch(channels=4, weights="lns", seed=1)
    x = _x(16, 64, seed=2)
    ys = net.forward(x)
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), ys, rtol=1e-5,
                               atol=1e-5 * float(np.abs(ys).max()))
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(0))
    nn.functional.cross_entropy(model(torch.from_numpy(x)), y).backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    params = net.params()
    learning.LNSMadam([p.data for p in params], fmt=params[0].master_format, lr=2 / 128).step(grads)
    LNSMadam(model.parameters(), lr=2 / 128).step()
    back = to_sim(model)
    moved = 0
    for a, b, g in zip(back.params(), params, grads):
        np.testing.assert_array_equal(a.data, b.data)
        assert a.scale == b.scale
        moved += int(np.any(g != 0))
    assert moved == len(params)


def test_conv2d_and_pool_without_a_twin_are_refused_by_name():
    with pytest.raises(ValueError, match=r"layer 0: the simulator's Conv2d has no dilation=\(2, 2\)"):
        to_sim(nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)))
    with pytest.raises(ValueError, match="groups=2"):
        to_sim(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)))
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        to_sim(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")))
    with pytest.raises(ValueError, match=r"layer 1: only non-overlapping MaxPool2d\(k\)"):
        to_sim(nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, stride=2)))
    with pytest.raises(ValueError, match=r"only non-overlapping MaxPool2d\(k\)"):
        to_sim(nn.Sequential(nn.MaxPool2d(2, padding=1)))
    with pytest.raises(ValueError, match=r"only non-overlapping MaxPool1d\(k\)"):
        to_sim(nn.Sequential(nn.MaxPool1d(2, ceil_mode=True)))
    assert to_sim(nn.Sequential(nn.MaxPool2d((2, 3)))).layers[0].kernel_size == (2, 3)


def test_torch_scenario_builds_and_trains_the_2d_cnn():
    """build_model("cnn2d") takes the flat feature count (a square) and returns build_torch's
    model; run_method trains it with LNS8 LNS-Madam (convert to LNS layers). Same initial
    weights and example order as the simulator's trainer, so after 2 epochs the two test
    accuracies are close (84.4% torch, 85.0% simulator here)."""
    from neurolns.data import load_digits
    from neurolns.sim import Trainer
    from neurolns.torch.scenario import build_model, run_method

    m = build_model("cnn2d", 64, 10, seed=0, channels=4)
    ref = cnn2d.build_torch(channels=4, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))
    with pytest.raises(ValueError, match="n_features=40 is out of range"):
        build_model("cnn2d", 40, 10)
    with pytest.raises(ValueError, match="'cnn2d'"):
        build_model("cnn3d", 64, 10)
    data = load_digits()
    r = run_method("lns8-lnsmadam", "cnn2d", data, epochs=2, batch_size=32, seed=0)
    sim = Trainer(cnn2d.build_sim(weights="lns", seed=0), "lns-madam", batch_size=32, seed=0).fit(data, 2)
    assert r["test_acc"] > 0.7 and abs(r["test_acc"] - sim[-1]["test_acc"]) < 0.05, (r["history"], sim)
