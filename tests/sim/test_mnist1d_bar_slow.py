"""The MNIST-1D accuracy bar of the LNS-vs-float scenario, on its full default settings
(slow: about 10 minutes on 2 cores; run with ``pytest -m slow tests/sim/test_mnist1d_bar_slow.py``)."""

import json

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sim", "torch"])
def test_lns8_lns_madam_meets_the_mnist1d_bar(tmp_path, backend):
    """The default MNIST-1D run (CNN, 128 channels, 60 epochs, cosine rate, seeds 0-2): LNS8
    LNS-Madam's mean test accuracy is >= 90% and within 1.0 point of FP32 Adam's in the same run
    (the MNIST-1D paper's float CNN: 94%)."""
    from neurolns.scenarios.lns_vs_float import main

    rc = main(["--dataset", "mnist1d", "--methods", "fp32-adam,lns8-lnsmadam", "--backend", backend,
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    summary = {r["method"]: r["mean_test_acc"] for r in json.loads((tmp_path / "runs.json").read_text())["summary"]}
    assert summary["fp32-adam"] > 0.92, summary  # the float baseline itself is sound
    assert summary["lns8-lnsmadam"] >= 0.90, summary
    assert summary["lns8-lnsmadam"] >= summary["fp32-adam"] - 0.010, summary
