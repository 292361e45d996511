"""make_optimizer / Rule: every rule name builds its class with the trainer defaults
(or the published ones), the trainer-facing flags are right, and bad names raise."""

from __future__ import annotations

import numpy as np
import pytest

from neurolns.formats import LNS8
from neurolns.learning import (
    TRAINER_DEFAULTS,
    EFSignSGD,
    LNSMadam,
    Madam,
    MajorityVote,
    Rule,
    make_optimizer,
    update_format,
)


@pytest.mark.parametrize("rule", list(Rule))
def test_every_rule_builds_and_steps(rule):
    """Each rule builds over matching params with TRAINER_DEFAULTS and one step changes them."""
    params = [np.full((4, 3), 1000, np.int16)] if rule.on_codes else [np.linspace(-1, 1, 12).reshape(4, 3).astype(np.float32)]
    opt = make_optimizer(rule, params)
    assert isinstance(opt, rule.optimizer_class)
    assert opt.on_codes == rule.on_codes and opt.needs_worker_grads == rule.needs_worker_grads
    for k, v in TRAINER_DEFAULTS[rule].items():
        got = opt.defaults[k]
        assert (list(got) if isinstance(got, (list, tuple)) else got) == (list(v) if isinstance(v, tuple) else v)
    before = params[0].copy()
    g = [np.linspace(-2, 3, 12).reshape(4, 3).astype(np.float32)]
    opt.step([g] * opt.defaults["workers"] if rule.needs_worker_grads else g)
    assert not np.array_equal(before, params[0])


def test_published_defaults_and_overrides():
    """published=True gives the papers' values; overrides win over either set."""
    w = [np.ones(3, np.float32)]
    assert make_optimizer("madam", w, published=True).defaults["p_scale"] == 3.0
    assert make_optimizer("madam", w).defaults["p_scale"] == 10.0
    assert make_optimizer("madam", w, p_scale=2.0).defaults["p_scale"] == 2.0
    c = [np.ones(3, np.int16)]
    assert make_optimizer("lns-madam", c, published=True).defaults["lr"] == 1 / 128
    opt = make_optimizer(Rule.LNS_MADAM, c, fmt=update_format(LNS8))
    assert isinstance(opt, LNSMadam) and opt.defaults["fmt"].bits == 12
    assert isinstance(make_optimizer("ef-signsgd", w), EFSignSGD)
    mv = make_optimizer("lns-majority-vote", c, workers=3)
    assert isinstance(mv, MajorityVote) and mv.defaults["multiplicative"] and mv.defaults["workers"] == 3
    assert isinstance(make_optimizer("madam", w), Madam)


def test_bad_rule_names_and_combinations():
    """Unknown names list the allowed ones; contradictory flags raise."""
    with pytest.raises(ValueError, match="allowed: 'sgd', 'adam'"):
        make_optimizer("rmsprop", [np.ones(3)])
    with pytest.raises(ValueError, match="lns-majority-vote"):
        make_optimizer("majority-vote", [np.ones(3, np.int16)], multiplicative=True)
    with pytest.raises(ValueError, match="multiplicative"):
        make_optimizer("lns-majority-vote", [np.ones(3, np.int16)], multiplicative=False)
    with pytest.raises(TypeError, match="signed integer"):
        make_optimizer("lns-madam", [np.ones(3, np.float32)])
