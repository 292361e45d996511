"""Accounting of the architecture-aware rules: per-parameter operations as in the rules table,
Newton–Schulz multiply-adds counted from the iteration itself, and a training step priced end to end."""

import numpy as np
import pytest

from neurolns.accounting import EnergyModel, Recipe, mlp_counts, training_step_energy, update_counts
from neurolns.accounting.rules import NS_STEPS, Rule, newton_schulz_macs, rule_ops_per_param


@pytest.mark.parametrize("rule,mul,add", [("fromage", 4, 3), ("nero", 4, 5), ("agd", 2, 2), ("dualised", 5, 4)])
def test_per_parameter_ops(rule, mul, add):
    """The counts of the module's table, all in the state format."""
    ops = rule_ops_per_param(rule, "fp32", "fp32", "fp32")
    assert ops == {("mul", "fp32"): mul, ("add", "fp32"): add}


class _CountingArray:
    """A square matrix that counts the multiply-adds of the products it takes part in."""

    macs = 0

    def __init__(self, a):
        self.a = a

    def __matmul__(self, other):
        m, k = self.a.shape
        _CountingArray.macs += m * k * other.a.shape[1]
        return _CountingArray(self.a @ other.a)


def test_newton_schulz_macs_count_the_iteration():
    """Run the quintic iteration on a d × d matrix with counting products: 3d³ per step, NS_STEPS steps."""
    d = 12
    x = _CountingArray(np.random.default_rng(0).standard_normal((d, d)) / 50)
    _CountingArray.macs = 0
    for _ in range(NS_STEPS):
        xt = _CountingArray(x.a.T)
        A = x @ xt
        A2 = A @ A
        x = _CountingArray(3.4445 * x.a + (_CountingArray(-4.7750 * A.a + 2.0315 * A2.a) @ x).a)
    assert _CountingArray.macs == newton_schulz_macs(d * d)


@pytest.mark.parametrize("m,n", [(1, 100), (10, 640), (64, 256), (256, 256), (7, 9)])
def test_square_pricing_bounds_any_shape(m, n):
    """2m²n + m³ (the cost of an m × n matrix, m ≤ n) never exceeds the square price of its size."""
    assert NS_STEPS * (2 * m * m * n + m**3) <= newton_schulz_macs(m * n)


def test_dualised_training_step_is_priced():
    """update_counts of the dualised rule adds the Newton–Schulz MACs to the per-parameter ops, and the
    momentum buffer is one state tensor: its step costs more energy than Fromage's, which has no state."""
    r = Recipe("FP32 dualised", compute="fp32", rule="dualised", exchange="none")
    (lc,) = update_counts(r, [256 * 64, 256])
    want = 5 * (256 * 64 + 256) + newton_schulz_macs(256 * 64) + newton_schulz_macs(256)
    assert lc.count("mul") == want
    counts = mlp_counts([64, 256, 10], 32)
    model = EnergyModel.preset()
    e_dual = training_step_energy(counts, r, model).total.total
    e_fromage = training_step_energy(counts, Recipe("FP32 Fromage", rule="fromage", exchange="none"), model).total.total
    assert e_dual > e_fromage > 0
    assert Rule("nero") is Rule.NERO


def test_energy_cli_prices_a_new_rule(capsys):
    """`neurolns energy mlp --train --rule R` prints a training-step row for rule R; an unknown rule is an error."""
    from neurolns.cli.main import main

    for rule in ("nero", "dualised"):
        assert main(["energy", "mlp", "--train", "--formats", "fp32", "--rule", rule]) == 0
        assert any(x.startswith(f"FP32 + {rule}") for x in capsys.readouterr().out.splitlines())
    assert main(["energy", "mlp", "--train", "--rule", "lion"]) == 2
    err = capsys.readouterr().err  # user errors: one line on stderr
    assert "lion" in err and len(err.strip().splitlines()) == 1
