"""The sweep scenario runs end to end (smoke size) and writes its table, CSV, JSON and figure."""
import csv
import json

from neurolns.scenarios.sysid_retina import main


def test_quick_sweep_writes_all_outputs(tmp_path, capsys):
    """--quick: 2 sizes × 1 seed × 4 fits; every (method, size) appears once in summary.csv,
    R_sys lies in [−1, 1], and the sign-constrained methods report no wrong-signed synapse."""
    assert main(["--quick", "--informed-adam", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "R_sys" in out and "madam" in out
    for name in ("runs.csv", "summary.csv", "results.json", "recovery.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert sorted((r["method"], r["n_images"]) for r in rows) == sorted(
        (m, n) for m in ("madam", "abs-adam", "adam", "adam+signs") for n in ("60", "200"))
    res = json.load(open(tmp_path / "results.json"))
    for r in res["runs"]:
        assert -1.0 <= r["r_sys"] <= 1.0
        if r["method"] in ("madam", "abs-adam"):
            assert r["wrong_signs"] == 0
