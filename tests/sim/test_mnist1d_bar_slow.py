"""The MNIST-1D accuracy bar of the LNS-vs-float scenario, on its full default settings
(slow: about 10 minutes on 2 cores; run with ``pytest -m slow tests/sim/test_mnist1d_bar_slow.py``)."""

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
COMMAND = "neurolns run lns-vs-float --dataset mnist1d --methods fp32-adam,lns8-lnsmadam"


def _readme_figures(backend: str) -> dict:
    """Per machine named in the README's row for this backend ("Intel Xeon: A ± a% vs B ± b%; AMD
    EPYC: ..."), the mean ± sd (fractions) of LNS8 LNS-Madam and FP32 Adam."""
    command = COMMAND + (" --backend torch" if backend == "torch" else "")
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 4 and cells[2] == f"`{command}`":
            out = {}
            for part in cells[1].split(";"):
                machine, figures = part.split(":", 1)
                (lns, lns_sd), (adam, adam_sd) = [(float(m) / 100, float(s) / 100) for m, s in
                                                  re.findall(r"(\d+\.\d+) ± (\d+\.\d+)%", figures)]
                out[machine.strip()] = {"lns8-lnsmadam": (lns, lns_sd), "fp32-adam": (adam, adam_sd)}
            return out
    raise AssertionError(f"the README has no row with the command `{command}`")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sim", "torch"])
def test_lns8_lns_madam_meets_the_mnist1d_bar(tmp_path, backend):
    """The default MNIST-1D run (CNN, 128 channels, 60 epochs, cosine rate, seeds 0-2; LNS-Madam
    16/128 octave with beta 0.9): LNS8 LNS-Madam's mean test accuracy is >= 90% (the MNIST-1D
    paper's float CNN: 94%) and within 1.0 point of FP32 Adam's in the same run, and both methods'
    means lie within the sds the README states around its means for a machine it names (float
    rounding, and so the runs, differ between machines)."""
    from neurolns.scenarios.lns_vs_float import main

    rc = main(["--dataset", "mnist1d", "--methods", "fp32-adam,lns8-lnsmadam", "--backend", backend,
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    summary = {r["method"]: r["mean_test_acc"] for r in json.loads((tmp_path / "runs.json").read_text())["summary"]}
    assert summary["fp32-adam"] > 0.92, summary  # the float baseline itself is sound
    assert summary["lns8-lnsmadam"] >= 0.90, summary
    assert summary["lns8-lnsmadam"] >= summary["fp32-adam"] - 0.010, summary
    figures = _readme_figures(backend)
    matches = [machine for machine, fig in figures.items()
               if all(abs(summary[m] - mean) <= sd + 5e-5 for m, (mean, sd) in fig.items())]
    assert matches, (summary, figures)  # the rerun is one of the machines the README names
