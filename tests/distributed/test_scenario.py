"""The majority-vote scenario: argument checks, and (slow) an end-to-end torchrun launch."""
import json

import pytest

from neurolns.scenarios import majority_vote_ddp as scenario


def test_rejects_bad_arguments():
    """Fewer than two workers or a Byzantine fraction outside [0, 1] stop with the allowed range."""
    with pytest.raises(SystemExit, match="allowed: >= 2"):
        scenario.main(["--workers", "1"])
    with pytest.raises(SystemExit, match="allowed: 0 <= F <= 1"):
        scenario.main(["--byzantine", "1.5"])


@pytest.mark.slow
def test_quick_run_through_torchrun_writes_results(tmp_path):
    """Two gloo workers, both methods: the vote sends 32x fewer bytes than FP32 at W=2
    (d rounded up to whole bytes, plus the one-byte non-finite flag of its one bucket) and
    both runs learn (accuracy above chance, 10%)."""
    assert scenario.main(["--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    by = {r["method"]: r for r in rows}
    n = by["vote"]["n_params"]
    assert by["vote"]["bytes_per_step"] == -(-n // 8) + 1
    assert by["fp32"]["bytes_per_step"] == 4 * n
    assert all(r["test_acc"] > 0.15 for r in rows)
    assert (tmp_path / "comparison.png").stat().st_size > 0
