"""`neurolns run lr-transfer`: the rate grids are powers of two, the shift table is computed as
documented (checked on hand-made runs), and a tiny grid runs end to end and writes every output."""

from __future__ import annotations

import csv
import json
import math

import pytest

from neurolns.scenarios import lr_transfer as S


def test_grids_are_factors_of_two_and_quick_keeps_the_middle():
    for name in S.OPTIMIZERS:
        g = S.lr_grid(name)
        if name == "agd":
            assert len(g) == 1 and math.isnan(g[0])
            continue
        assert len(g) == S.GRID_POINTS and all(b == 2 * a for a, b in zip(g, g[1:]))
        assert S.lr_grid(name, 4) == g[2:6]
    assert S.architectures([8, 16], [2, 3]) == [(8, 2), (16, 2), (8, 3)]


def _run(opt, w, d, lr, loss):
    return {"optimizer": opt, "width": w, "depth": d, "lr": lr, "seed": 0, "train_loss": loss}


def test_shift_table_on_hand_made_runs():
    """Width 8: best rate 0.25; width 32: best 0.0625 → shift log2(0.0625/0.25) = −2 octaves; reusing 0.25 at
    width 32 costs 0.9 − 0.1 = 0.8. A diverged (nan) rate never wins."""
    runs = [_run("sgd", 8, 2, lr, loss) for lr, loss in ((0.0625, 0.5), (0.25, 0.2), (1.0, math.nan))]
    runs += [_run("sgd", 32, 2, lr, loss) for lr, loss in ((0.0625, 0.1), (0.25, 0.9), (1.0, math.nan))]
    (row,) = S.shifts(runs, ["sgd"], [8, 32], [2])
    assert row["best_lr_small"] == 0.25 and row["best_lr_large"] == 0.0625
    assert row["shift_octaves"] == -2.0 and row["loss_lost"] == pytest.approx(0.8)


def test_tiny_run_end_to_end(tmp_path):
    """2 widths × 2 depths (3 networks), SGD and Nero at 2 rates, AGD once, 1 epoch: all outputs written,
    one CSV row per run, a table row per optimizer and sweep."""
    out = tmp_path / "lrt"
    rc = S.main(["--optimizers", "sgd,nero,agd", "--widths", "8,16", "--depths", "2,3", "--epochs", "1",
                 "--points", "2", "--no-progress", "--out", str(out)])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert len(rows) == 3 * (2 + 2 + 1)
    table = list(csv.DictReader(open(out / "shifts.csv")))
    assert [(r["optimizer"], r["sweep"]) for r in table] == [(o, s) for o in ("sgd", "nero", "agd")
                                                              for s in ("width", "depth")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == len(rows) and summary["config"]["widths"] == [8, 16]
    assert (out / "lr_transfer.png").stat().st_size > 10_000


def test_bad_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit):
        S.main(["--optimizers", "lion"])
    assert "lion" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        S.main(["--depths", "1,2"])
