"""The simulator trains a recipe: formats per role, the rule and the workers the recipe names."""

import numpy as np
import pytest

from neurolns.data import Dataset
from neurolns.formats import BF16, INT8, LNS8, Rounding
from neurolns.models.mlp import build_sim
from neurolns.recipes import RECIPES, Recipe
from neurolns.sim import Trainer
from neurolns.sim.trainer import recipe_model_kwargs


def _data(n=96, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return Dataset(x[:64], y[:64], x[64:], y[64:], n_classes=2)


def _net(recipe, seed=0):
    return build_sim(8, (16,), 2, seed=seed, **recipe_model_kwargs(recipe))


@pytest.mark.parametrize("key", ["fp32-adam", "bf16", "int8", "lns8-weights", "lns8-full"])
def test_every_training_preset_builds_and_carries_its_formats(key):
    r = RECIPES[key]
    net = _net(r)
    kw = recipe_model_kwargs(r)
    assert net.act_format == r.role_format("activations") == kw["act_format"]
    assert net.grad_format == r.role_format("errors")
    tr = Trainer(net, r, batch_size=16, seed=0)
    assert tr.rule.value == r.trainer_rule
    assert tr.workers == (4 if r.voted else 1)
    h = tr.fit(_data(), 2)
    assert len(h) == 2 and np.isfinite(h[-1]["train_loss"])


def test_the_formats_each_preset_trains_with():
    """What the trainer quantises is what the accounting prices."""
    full = recipe_model_kwargs(RECIPES["lns8-full"])
    assert (full["weights"], full["forward_format"], full["act_format"], full["grad_format"]) == ("lns", LNS8, LNS8, LNS8)
    assert full["grad_rounding"] is Rounding.NEAREST and full["update_gamma"] == 128
    w_only = recipe_model_kwargs(RECIPES["lns8-weights"])
    assert (w_only["weights"], w_only["act_format"], w_only["grad_format"]) == ("lns", None, None)
    bf = recipe_model_kwargs(RECIPES["bf16"])
    assert (bf["weights"], bf["forward_format"], bf["act_format"], bf["grad_format"]) == ("fp32", BF16, BF16, BF16)
    i8 = recipe_model_kwargs(RECIPES["int8"])
    assert (i8["forward_format"], i8["act_format"], i8["grad_format"]) == (INT8, INT8, None)
    assert recipe_model_kwargs(RECIPES["fp32-adam"])["forward_format"] is None


def test_a_network_built_for_another_recipe_is_refused():
    net = _net(RECIPES["lns8-weights"])
    with pytest.raises(ValueError, match="act_format=None, recipe 'LNS8 full' trains with LNS8"):
        Trainer(net, RECIPES["lns8-full"])
    with pytest.raises(ValueError, match="workers=3 differs"):
        Trainer(_net(RECIPES["lns8-full"]), RECIPES["lns8-full"], workers=3)


def test_a_master_that_is_not_the_weights_update_grid_is_refused():
    r = Recipe("odd", compute="fp32", weights="lns8", master="lns16", rule="lns_madam", exchange="none")
    with pytest.raises(ValueError, match="is not the update grid"):
        recipe_model_kwargs(r)


def test_a_voted_lns_run_resumes_bit_for_bit_with_stochastic_rounding(tmp_path):
    """Stopping after 1 epoch and resuming gives the codes of an uninterrupted
    2-epoch run: the checkpoint keeps the stochastic-rounding generator too."""
    r = RECIPES["lns8-full"].replace(error_rounding="stochastic")
    d = _data()
    a = Trainer(_net(r), r, batch_size=16, seed=3)
    a.fit(d, 2)
    b = Trainer(_net(r), r, batch_size=16, seed=3)
    b.fit(d, 1, checkpoint=tmp_path / "c.npz")
    c = Trainer(_net(r), r, batch_size=16, seed=3)
    c.load_checkpoint(tmp_path / "c.npz")
    c.fit(d, 2)
    for pa, pc in zip(a.params, c.params):
        assert np.array_equal(pa.data, pc.data)
    # and a checkpoint of another recipe is refused
    other = Trainer(_net(RECIPES["lns8-full"]), RECIPES["lns8-full"], batch_size=16, seed=3)
    with pytest.raises(ValueError, match="another setup"):
        other.load_checkpoint(tmp_path / "c.npz")


def test_stochastic_rounding_of_error_signals_changes_the_run_and_nearest_does_not_draw():
    near = RECIPES["lns8-full"]
    r = near.replace(error_rounding="stochastic")
    runs = {}
    for name, rec in (("sr", r), ("near", near)):
        t = Trainer(_net(rec), rec, batch_size=16, seed=0)
        t.fit(_data(), 1)
        runs[name] = [p.data.copy() for p in t.params]
    assert any(not np.array_equal(a, b) for a, b in zip(runs["sr"], runs["near"]))


def test_the_recipes_tie_rule_reaches_the_vote_and_no_other_one_is_taken():
    """Trainer(net, recipe) votes with the recipe's ties (priced with it); a ties= that
    contradicts the recipe is refused rather than silently training another system."""
    r = RECIPES["lns8-full"].replace(ties="abstain")
    tr = Trainer(_net(r), r, batch_size=16, seed=0)
    assert tr.optimizer.defaults["ties"] == "abstain"
    assert Trainer(_net(RECIPES["lns8-full"]), RECIPES["lns8-full"], batch_size=16).optimizer.defaults["ties"] == "plus"
    with pytest.raises(ValueError, match="ties='plus' differs from recipe"):
        Trainer(_net(r), r, batch_size=16, ties="plus")
