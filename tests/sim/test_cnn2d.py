"""models/cnn2d.py: build_sim and build_torch are the same network (same names, order,
shapes, initial weights for a seed, and logits to float32 rounding, also against a
torch model written out independently), and it learns digits in the simulator:
FP32 Adam and LNS8 LNS-Madam."""

import numpy as np
import pytest

from neurolns.models import cnn2d


def _independent_torch(channels, n_classes=10):
    """The architecture as its docstring states it, written with plain torch layers."""
    from torch import nn

    c = channels
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * c, n_classes))


@pytest.mark.parametrize("weights", ["fp32", "lns"])
def test_sim_and_torch_builds_share_initial_weights_and_logits(weights):
    torch = pytest.importorskip("torch")
    net = cnn2d.build_sim(channels=6, weights=weights, seed=3)
    tm = cnn2d.build_torch(channels=6, weights=weights, seed=3)
    sd = tm.state_dict()
    names = [k for k, _ in net.named_params()]
    assert names == ["1.weight", "1.bias", "4.weight", "4.bias", "8.weight", "8.bias"]
    assert names == [k for k, _ in tm.named_parameters()]
    for k, p in net.named_params():
        layer, name = k.split(".")
        mod = tm.get_submodule(layer)
        assert tuple(sd[k].shape) == p.shape
        if weights == "fp32":
            np.testing.assert_array_equal(p.data, sd[k].numpy(), err_msg=k)
        else:  # identical codes and scales, hence identical forward weights
            codes, scale = mod.param_codes(name)
            np.testing.assert_array_equal(p.data, codes.numpy(), err_msg=k)
            assert p.scale == float(scale)
            np.testing.assert_array_equal(p.forward_value(), mod.forward_weight(name).detach().numpy(), err_msg=k)
    x = np.random.default_rng(0).normal(size=(7, 64)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
        plain = _independent_torch(6)
        plain.load_state_dict({k: torch.from_numpy(p.forward_value()) for k, p in net.named_params()})
        want_plain = plain(torch.from_numpy(x)).numpy()
    got = net.forward(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want_plain, rtol=1e-5, atol=1e-5)


def test_seeds_and_sizes():
    a, b = cnn2d.build_sim(weights="lns", seed=0), cnn2d.build_sim(weights="lns", seed=1)
    assert a.on_codes and not np.array_equal(a.params()[0].data, b.params()[0].data)
    np.testing.assert_array_equal(a.params()[0].data, cnn2d.build_sim(weights="lns", seed=0).params()[0].data)
    assert a.params()[0].shape == (32, 1, 3, 3) and a.params()[-2].shape == (10, 128)
    assert cnn2d.output_sizes(8) == [4, 2] and cnn2d.output_sizes(13) == [6, 3]
    assert cnn2d.build_sim(13, channels=2).forward(np.zeros((1, 169))).shape == (1, 10)
    assert cnn2d.image_size(64) == 8
    with pytest.raises(ValueError, match=r"size=3 is out of range; allowed: an int >= 4"):
        cnn2d.build_sim(3)
    with pytest.raises(ValueError, match=r"channels=0 is out of range; allowed: an int >= 1"):
        cnn2d.build_sim(channels=0)
    with pytest.raises(ValueError, match=r"n_features=40 is out of range; allowed: a square"):
        cnn2d.image_size(40)


def test_fp32_adam_reaches_95_percent_on_digits_within_10_epochs():
    """FP32 Adam (trainer defaults, lr 1e-3, batch 32): 97.5% test accuracy after 10
    epochs (96.4% after 6) on the 1,438/359 split; about 1.5 s of training on 2 cores."""
    from neurolns.data import load_digits
    from neurolns.sim import Trainer

    tr = Trainer(cnn2d.build_sim(seed=0), "adam", batch_size=32, seed=0)
    hist = tr.fit(load_digits(), 10)
    assert hist[-1]["test_acc"] >= 0.95, hist[-1]


def test_lns8_weights_train_with_lns_madam():
    """LNS8 forward weights on the γ=128 update grid under LNS-Madam (trainer defaults):
    98.1% test accuracy after 15 epochs here (per-epoch values move by a few points);
    the master copy stays integer codes."""
    from neurolns.data import load_digits
    from neurolns.sim import Trainer

    net = cnn2d.build_sim(weights="lns", seed=0)
    before = [p.data.copy() for p in net.params()]
    hist = Trainer(net, "lns-madam", batch_size=32, seed=0).fit(load_digits(), 15)
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert hist[-1]["test_acc"] >= 0.93, hist[-1]
    assert all(p.data.dtype == np.int16 and not np.array_equal(p.data, b) for p, b in zip(net.params(), before))


def test_a_recipe_builds_and_trains_the_2d_cnn():
    """recipe_model_kwargs gives cnn2d.build_sim its formats, as for the other models; the
    LNS8 recipe's net (LNS8 activations, LNS8 errors rounded to nearest as the recipe says)
    takes steps."""
    from neurolns.data import load_digits
    from neurolns.recipes import RECIPES
    from neurolns.sim import Trainer
    from neurolns.sim.trainer import recipe_model_kwargs

    recipe = RECIPES["lns8-full"]
    net = cnn2d.build_sim(channels=4, seed=0, **recipe_model_kwargs(recipe))
    hist = Trainer(net, recipe, batch_size=32, seed=0).fit(load_digits().subset(200, 50), 1)
    assert np.isfinite(hist[-1]["train_loss"]) and net.grad_rounding.value == recipe.error_rounding.value == "nearest"
