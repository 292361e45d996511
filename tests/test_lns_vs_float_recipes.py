"""`neurolns run lns-vs-float --recipe`: accuracy (measured) beside the energy (modelled) of the same recipe."""

import csv
import json
import math

import pytest

from neurolns.accounting import EnergyModel, count_sim, training_step_energy
from neurolns.recipes import RECIPES
from neurolns.scenarios import lns_vs_float as scen


def test_recipes_print_accuracy_and_the_energy_of_what_was_trained(tmp_path, capsys):
    """The energy per epoch in summary.csv is training_step_energy of the counted
    simulator network under the very recipe trained, times the steps of an epoch;
    FP32 Adam is trained beside, and runs.json records every recipe's fields."""
    out = tmp_path / "r"
    assert scen.main(["--recipe", "lns8-full,bf16", "--quick", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "energy modelled (horowitz45)" in text and "vs FP32 Adam" in text
    rows = {r["method"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert list(rows) == ["fp32-adam", "lns8-full", "bf16"]
    data = scen.load_data("digits", True)
    net = scen.build("mlp", "fp32", data, 0)
    counts = count_sim(net, (32, data.n_features))
    steps = math.ceil(len(data.x_train) / 32)
    for key in rows:
        want = training_step_energy(counts, RECIPES[key], EnergyModel.preset(), workers=4).total.total * steps * 1e-12
        assert float(rows[key]["energy_J_per_epoch"]) == pytest.approx(want, rel=1e-9)
    assert float(rows["lns8-full"]["energy_ratio_to_fp32_adam"]) < 0.2
    meta = json.loads((out / "runs.json").read_text())
    assert meta["config"]["recipes"]["lns8-full"]["exchange"] == "sign"
    assert meta["runs"][1]["recipe"]["activations"] is None and meta["runs"][1]["recipe"]["compute"] == "lns8"
    assert (out / "pareto.png").stat().st_size > 10_000


def test_ablation_switches_one_part_back_per_row():
    full = RECIPES["lns8-full"]
    rows = scen.ablations(full)
    assert rows["- activations in FP32"].activations_fmt == "fp32" and rows["- activations in FP32"].errors_fmt == "lns8"
    assert rows["- error signals in FP32"].errors_fmt == "fp32" and rows["- error signals in FP32"].activations_fmt == "lns8"
    assert rows["+ stochastic rounding of error signals"].error_rounding.value == "stochastic"
    assert rows["- FP32 all-reduce instead of the 1-bit vote"].trainer_rule == "lns-madam"
    for lab, r in rows.items():
        changed = {k for k, v in r.to_dict().items() if v != full.to_dict()[k]} - {"name", "key"}
        assert lab == "lns8-full" or changed, lab


@pytest.mark.parametrize("argv, msg", [
    (["--recipe", "fp64"], "unknown recipe"),
    (["--ablate"], "--ablate needs --recipe lns8-full"),
    (["--recipe", "bf16", "--ablate"], "--ablate needs lns8-full"),
    (["--recipe", "bf16", "--backend", "torch"], "weights in BF16 is not a format the torch layers quantise"),
    (["--recipe", "lns8-full", "--batch-size", "3"], "--batch-size 3 is out of range with 4 workers"),
    (["--model", "cnn2d", "--dataset", "mnist1d"], "--model cnn2d needs --dataset digits"),
])
def test_bad_recipe_arguments_are_one_line_errors(argv, msg, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        scen.main(argv + ["--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert msg in capsys.readouterr().err


def test_pareto_front_keeps_the_recipes_nothing_beats_on_both_axes(tmp_path):
    """A recipe is on the front iff no cheaper recipe is at least as accurate (mean); the
    figure draws the front and one point per recipe."""
    rows = [{"method": m, "energy_J_per_epoch": e, "mean_test_acc": a, "std_test_acc": 0.01}
            for m, e, a in [("fp32", 6.0, 0.978), ("bf16", 3.6, 0.978), ("int8", 5.9, 0.977),
                            ("full", 0.7, 0.986), ("abl", 1.4, 0.981), ("cheap", 0.5, 0.90)]]
    assert [r["method"] for r in scen.pareto_front(rows)] == ["cheap", "full"]
    # brute force: not dominated by any other point with lower energy and >= accuracy
    brute = sorted((r["method"] for r in rows if not any(
        o["energy_J_per_epoch"] < r["energy_J_per_epoch"] and o["mean_test_acc"] >= r["mean_test_acc"]
        for o in rows)), key=lambda m: next(r["energy_J_per_epoch"] for r in rows if r["method"] == m))
    assert brute == ["cheap", "full"]
    scen.plot_pareto(rows, tmp_path / "p.png", "t")
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_mnist1d_trains_lns8_full_with_abstaining_ties_and_the_ablation_puts_plus_back():
    """RECIPE_CHANGES: on MNIST-1D lns8-full's tied votes abstain (priced as an all-gather), on
    digits the preset runs unchanged; --ablate then adds the row with the preset's +1 ties."""
    assert scen.dataset_recipe("lns8-full", "mnist1d").ties.value == "abstain"
    assert scen.dataset_recipe("lns8-full", "digits") is RECIPES["lns8-full"]
    rows = scen.ablations(scen.dataset_recipe("lns8-full", "mnist1d"))
    assert rows["- tied votes +1 (the preset) instead of abstaining"].ties.value == "plus"
    assert rows["- FP32 all-reduce instead of the 1-bit vote"].ties.value == "plus"
    assert "- tied votes +1 (the preset) instead of abstaining" not in scen.ablations(RECIPES["lns8-full"])
