"""The README's headline figures, rerun and held at the precision the README writes them.

Figures in the README's marked tables (rewritten by ``benchmarks/report.py``) are read
from the README itself, so a regenerated table is what the tests hold; figures of the
longer runs are written here and checked to appear verbatim in the README, so the two
cannot drift apart silently. The modelled table is held in tests/test_report.py (it
reruns the report's own accounting). Timed figures (fractions of the copy bound, speed-ups) move
with the machine and its load and are not held here; their medians and quartiles are
reported by their benchmarks.

All are slow (``pytest -m slow``): about 15 minutes together on 2 cores.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.slow


def _row(command: str) -> tuple[str, str]:
    """(what, figure) of the README table row whose command cell is ``command``."""
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 4 and cells[2] == f"`{command}`":
            return cells[0], cells[1]
    raise AssertionError(f"the README has no table row with the command `{command}`")


def _pct_pairs(text: str) -> list[tuple[float, float]]:
    """Every 'M ± S%' in ``text`` as fractions (M/100, S/100)."""
    return [(float(m) / 100, float(s) / 100) for m, s in re.findall(r"(\d+\.\d+) ± (\d+\.\d+)%", text)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits runs of the README's two digits rows (3 seeds, the scenario's defaults)."""
    from neurolns.scenarios.lns_vs_float import main

    out = tmp_path_factory.mktemp("digits")
    assert main(["--dataset", "digits", "--methods", "fp32-adam,fp32-sgd,lns8-lnsmadam,majority-vote",
                 "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "runs.json").read_text())["summary"]
    assert all(r["n_seeds"] == 3 for r in summary)
    return {r["method"]: r["mean_test_acc"] for r in summary}


def test_digits_lns_madam_and_adam_within_their_stated_spread(digits):
    """Digits MLP, 3 seeds: the rerun's mean test accuracy of LNS8 LNS-Madam and of FP32 Adam each
    lies within the README's stated sd of the README's mean."""
    what, figure = _row("neurolns run lns-vs-float --dataset digits --methods fp32-adam,lns8-lnsmadam")
    assert "3 seeds" in what
    (lns, lns_sd), (adam, adam_sd) = _pct_pairs(figure)
    assert abs(digits["lns8-lnsmadam"] - lns) <= lns_sd + 5e-5, (digits, figure)
    assert abs(digits["fp32-adam"] - adam) <= adam_sd + 5e-5, (digits, figure)


def test_digits_majority_vote_gap_within_its_stated_spread(digits):
    """Digits MLP, 3 seeds: the majority vote (K = 5) and FP32 SGD each within their stated sd, and
    their gap within the README's points ± the two sds combined (sqrt of the sum of squares)."""
    what, figure = _row("neurolns run lns-vs-float --dataset digits --methods majority-vote,fp32-sgd")
    assert "3 seeds" in what
    gap = float(re.match(r"([+-]\d+\.\d+) points", figure).group(1)) / 100
    (vote, vote_sd), (sgd, sgd_sd) = _pct_pairs(figure)
    assert abs(digits["majority-vote"] - vote) <= vote_sd + 5e-5, (digits, figure)
    assert abs(digits["fp32-sgd"] - sgd) <= sgd_sd + 5e-5, (digits, figure)
    measured_gap = digits["majority-vote"] - digits["fp32-sgd"]
    assert abs(measured_gap - gap) <= math.hypot(vote_sd, sgd_sd) + 5e-5, (measured_gap, figure)
    assert gap == pytest.approx(vote - sgd, abs=1.5e-4)  # the row is self-consistent


#: README row of the CUBA statistics (written here so that the test and the README agree)
CUBA_FIGURE = "within 2% (measured +0.8%: 5.71 vs 5.67 Hz); within 0.01 (measured 0.002: 0.526 vs 0.524)"


def test_cuba_rate_and_cv_within_the_stated_bars_of_brian2():
    """CUBA 4,000 neurons × 1 s, seeds 0-4, against the recorded Brian2 statistics (cython, the
    same seeds): mean rate within 2% and mean CV of ISI within 0.01 (the README's bars); the
    measured figures the README gives (5.71 vs 5.67 Hz, +0.8%; CV 0.526 vs 0.524) to their last
    written digit."""
    from neurolns.models.cuba import CUBAConfig, build_cuba
    from neurolns.sim.spiking import mean_cv_isi, mean_rate

    assert _row("neurolns run cuba --seeds 5")[1] == CUBA_FIGURE
    ref = json.loads((ROOT / "tests" / "spiking" / "brian2_reference.json").read_text())["cuba_1s_mean"]
    stats = []
    for seed in range(5):
        net = build_cuba(CUBAConfig(), seed=seed)
        net.run(1.0, progress=False)
        e, i = net.spikes_exc, net.spikes_inh
        t = np.concatenate([e.t, i.t])
        idx = np.concatenate([e.i, i.i + net.exc.n])
        stats.append((mean_rate(idx, 4000, 1.0), mean_cv_isi(t, idx, 4000)))
    rate, cv = np.mean(stats, axis=0)
    rel = rate / ref["rate_hz"] - 1
    assert abs(rel) < 0.02 and abs(cv - ref["cv_isi"]) < 0.01  # the bars
    assert rate == pytest.approx(5.71, abs=0.01) and ref["rate_hz"] == pytest.approx(5.67, abs=0.01)
    assert 100 * rel == pytest.approx(0.8, abs=0.1)
    assert cv == pytest.approx(0.526, abs=0.001) and ref["cv_isi"] == pytest.approx(0.524, abs=0.001)
    assert abs(cv - ref["cv_isi"]) == pytest.approx(0.002, abs=0.001)


#: README row of the circuit recovery
SYSID_FIGURE = "0.986 ± 0.001 vs 0.81 ± 0.01"


def test_sysid_r_sys_at_5500_images_to_the_stated_digits(tmp_path):
    """Circuit 2, 28 candidate types, 5,500 training images, seeds 0-2 (the default sweep's largest
    size): sign-constrained Madam's mean R_sys is 0.986 and unconstrained Adam's 0.81, each within
    one unit of the last written digit, and the sds within one unit too."""
    from neurolns.scenarios.sysid_retina import main

    assert _row("neurolns run sysid")[1] == SYSID_FIGURE
    assert main(["--sizes", "5500", "--methods", "madam,adam", "--out", str(tmp_path), "--no-progress"]) == 0
    summary = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())["summary"]}
    assert summary["madam"]["seeds"] == summary["adam"]["seeds"] == 3
    assert summary["madam"]["r_sys_mean"] == pytest.approx(0.986, abs=0.001)
    assert summary["madam"]["r_sys_std"] == pytest.approx(0.001, abs=0.001)
    assert summary["adam"]["r_sys_mean"] == pytest.approx(0.81, abs=0.01)
    assert summary["adam"]["r_sys_std"] == pytest.approx(0.01, abs=0.01)


def _recipe_run(tmp_path, *argv) -> dict:
    """method -> mean test accuracy of ``neurolns run lns-vs-float --recipe lns8-full ARGV``."""
    from neurolns.scenarios.lns_vs_float import main

    assert main(["--recipe", "lns8-full", *argv, "--out", str(tmp_path), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "runs.json").read_text())["summary"]
    assert all(r["n_seeds"] == 3 for r in summary)
    return {r["method"]: r["mean_test_acc"] for r in summary}


@pytest.mark.parametrize("command", ["neurolns run lns-vs-float --recipe lns8-full",
                                     "neurolns run lns-vs-float --recipe lns8-full --model cnn2d",
                                     "neurolns run lns-vs-float --recipe lns8-full --dataset mnist1d"])
def test_lns8_full_recipe_rows_within_their_stated_spread(tmp_path, command):
    """The LNS8 full recipe against FP32 Adam (digits MLP, digits Conv2d, MNIST-1D CNN; 3 seeds,
    the scenario's defaults): each rerun mean lies within the README's stated sd of its mean, and
    the gap within the README's points ± the two sds combined (sqrt of the sum of squares). The
    MNIST-1D row is the one machine it names (the same code rounds floats differently on others)."""
    what, figure = _row(command)
    assert "3 seeds" in what
    (full, full_sd), (adam, adam_sd) = _pct_pairs(figure)[:2]
    gap = float(re.search(r"\(([+−-]\d+\.\d+) points", figure).group(1).replace("−", "-")) / 100
    got = _recipe_run(tmp_path, *command.split()[5:])
    assert abs(got["lns8-full"] - full) <= full_sd + 5e-5, (got, figure)
    assert abs(got["fp32-adam"] - adam) <= adam_sd + 5e-5, (got, figure)
    assert abs((got["lns8-full"] - got["fp32-adam"]) - gap) <= math.hypot(full_sd, adam_sd) + 5e-5, (got, figure)
    assert gap == pytest.approx(full - adam, abs=1.5e-4)  # the row is self-consistent
