"""The torch backend trains a recipe as the simulator does: the same roles quantised, the same rule."""

import numpy as np
import pytest
import torch
from torch import nn

from neurolns.data import Dataset
from neurolns.formats import LNS8
from neurolns.learning import update_format
from neurolns.recipes import RECIPES
from neurolns.torch import LNSLinear, LNSMadam, set_grad_rounding
from neurolns.torch.scenario import prepare_recipe, run_recipe


def _data(n=96, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return Dataset(x[:64], y[:64], x[64:], y[64:], n_classes=2)


def test_lns8_full_converts_every_role_and_votes_into_lns_madam():
    m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt, vote = prepare_recipe(RECIPES["lns8-full"], m, seed=0)
    layers = [x for x in m.modules() if isinstance(x, LNSLinear)]
    assert len(layers) == 2
    for layer in layers:
        assert (layer.weight_format, layer.act_format, layer.grad_format) == (LNS8, LNS8, LNS8)
        assert layer.storage == "lns" and layer.master_format == update_format(LNS8, 128)
        assert layer.grad_rounding == "nearest"
    opt, vote = prepare_recipe(RECIPES["lns8-full"].replace(error_rounding="stochastic"), m, seed=0)
    layers = [x for x in m.modules() if isinstance(x, LNSLinear)]
    assert all(x.grad_rounding == "stochastic" and x.grad_generator is layers[0].grad_generator for x in layers)
    assert isinstance(opt, LNSMadam) and vote.k == 4 and vote.apply_to is opt


def test_a_vote_moves_every_code_by_the_rate_against_the_voted_sign():
    """LNS-Madam fed the voted ±1: v̂ = 1 so ĝ = ±1, and a whole rate of 2 grid
    steps moves every non-zero code by exactly 2 steps against the vote, as the
    simulator's code_step_update does."""
    m = nn.Sequential(nn.Linear(4, 3))
    opt, vote = prepare_recipe(RECIPES["lns8-full"], m, seed=0, lr=2 / 128)
    w = m[0].weight
    grads = [[torch.ones_like(p) for p in m.parameters()] for _ in range(4)]
    vote.step(grads)  # first step: the codes are read, then moved
    before = opt.codes(w).to(torch.int64)
    vote.step(grads)
    after = opt.codes(w).to(torch.int64)
    nz = before != 0
    # a +1 vote is a positive gradient: positive weights shrink, negative ones grow
    assert torch.equal((before.abs() - after.abs())[nz], 2 * torch.sign(before[nz]))


def test_bf16_and_int8_are_refused_with_the_role_named():
    for key in ("bf16", "int8"):
        with pytest.raises(ValueError, match="is not a format the torch layers quantise"):
            prepare_recipe(RECIPES[key], nn.Sequential(nn.Linear(2, 2)))


def test_run_recipe_trains_and_records_the_recipe():
    r = run_recipe("lns8-full", "mlp", _data(), epochs=2, batch_size=16, seed=0)
    assert r["method"] == "lns8-full" and r["recipe"]["exchange"] == "sign"
    assert len(r["history"]) == 2 and np.isfinite(r["history"][-1]["train_loss"])
    a = run_recipe("fp32-adam", "mlp", _data(), epochs=2, batch_size=16, seed=0)
    assert 0.0 <= a["test_acc"] <= 1.0


def test_stochastic_error_rounding_is_unbiased_and_seeded():
    """set_grad_rounding('stochastic'): the error signal's mean over many draws is
    the float one in the log domain's expectation sense (mean within 1% here), two
    seeds give different draws, the same seed the same."""
    layer = nn.Sequential(nn.Linear(1, 1, bias=False))
    from neurolns.torch import convert

    convert(layer, None, grad_format=LNS8)

    def grad_of(seed):
        set_grad_rounding(layer, "stochastic", seed=seed)
        x = torch.ones(20000, 1)
        y = layer(x)
        g = torch.full_like(y, 0.3) * torch.linspace(0.5, 1.0, 20000)[:, None]
        y.backward(g)
        out = layer[0].weight.grad.clone()
        layer[0].weight.grad = None
        return out

    a, b, c = grad_of(0), grad_of(0), grad_of(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    exact = float((0.3 * torch.linspace(0.5, 1.0, 20000)).sum())
    assert abs(float(a) - exact) < 0.01 * exact


def test_the_recipes_tie_rule_reaches_the_torch_vote():
    """prepare_recipe votes with the recipe's ties (a tie abstains: 0; the preset: +1) and refuses
    an override that contradicts it."""
    m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    _, vote = prepare_recipe(RECIPES["lns8-full"].replace(ties="abstain"), m, seed=0)
    assert vote.tie == 0.0
    _, vote = prepare_recipe(RECIPES["lns8-full"], nn.Sequential(nn.Linear(8, 2)), seed=0)
    assert vote.tie == 1.0
    with pytest.raises(ValueError, match="differs from recipe"):
        prepare_recipe(RECIPES["lns8-full"], nn.Sequential(nn.Linear(8, 2)), seed=0, ties="abstain")
