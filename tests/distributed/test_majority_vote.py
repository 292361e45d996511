"""Majority-vote DDP hook on gloo with 2 and 3 processes on 127.0.0.1 (file init).

Each run is bounded in time. Invariants checked (see worker.py):
- the gradient each rank receives equals the majority vote of all ranks' full
  gradients (or momenta) gathered separately, at every step, before and after
  DDP's bucket rebuild;
- every rank holds identical parameters at the end;
- the bytes counted equal the theory for both exchange schemes (one flag byte
  per worker per bucket included);
- a rank whose gradient is NaN at one step makes every rank skip that step's
  update (zeros, counted), with no NaN anywhere and identical parameters after;
- a rank that dies makes the others fail with a clear error, not hang.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from neurolns.torch.distributed import (MajorityVoteState, pack_signs, ring_bytes, unpack_signs,
                                        vote_from_packed)

WORKER = Path(__file__).with_name("worker.py")


def _launch(world, cfg, tmp_path, timeout=120):
    init = tmp_path / "init"
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(world), str(init), str(tmp_path), json.dumps(cfg)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]
    results = []
    t0 = time.monotonic()
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"distributed run hung for {timeout} s")
        results.append((p.returncode, err))
    return results, time.monotonic() - t0


def _theory(exchange, n, world):
    """Bytes per bucket: the packed signs plus one non-finite flag byte per worker (all-gather)
    or per slice (two-phase)."""
    if exchange == "allgather":
        return ring_bytes("all_gather", -(-n // 8) + 1, world)
    n_pad = -(-n // (8 * world)) * 8 * world
    return ring_bytes("all_to_all", n_pad // 8 + world, world) + ring_bytes("all_gather", n_pad // (8 * world), world)


@pytest.mark.parametrize("world,exchange,momentum,cap", [
    (2, "allgather", 0.0, 25), (3, "two-phase", 0.9, 25), (3, "allgather", 0.9, 0.0005)],
    ids=["W2-allgather", "W3-two-phase-momentum", "W3-allgather-momentum-small-buckets"])
def test_vote_matches_reference_params_identical_bytes_theory(world, exchange, momentum, cap, tmp_path):
    """Rank 1's gradient is NaN at step 5: every rank gets zeros for every bucket of that step
    (no NaN vote, no disagreement), counts the skipped buckets, keeps its momentum as it was
    (the later steps still equal the reference), and all ranks end identical and finite."""
    cfg = {"exchange": exchange, "momentum": momentum, "steps": 12, "bucket_cap_mb": cap, "nan_at": [5, 1]}
    results, _ = _launch(world, cfg, tmp_path)
    for rc, err in results:
        assert rc == 0, err[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    for rep in reports:
        assert rep["mismatches"] == 0
        assert rep["identical"] and rep["finite"]
        assert rep["steps"] == cfg["steps"]
        assert rep["skipped"] == reports[0]["skipped"] >= 1
        if cap == 25:
            assert rep["skipped"] == 1  # one bucket: the whole model
        if cap == 25:  # one bucket: the whole model
            assert set(rep["bytes"]) == {_theory(exchange, rep["n_params"], world)}


def test_nan_gradient_with_error_feedback_skips_everywhere(tmp_path):
    """Error feedback, rank 1's gradient NaN at step 2: zeros on both ranks at that step
    (the mean of scaled signs would be NaN), one skipped bucket each, residuals not
    poisoned: identical, finite parameters at the end."""
    cfg = {"exchange": "allgather", "error_feedback": True, "steps": 4, "nan_at": [2, 1]}
    results, _ = _launch(2, cfg, tmp_path)
    for rc, err in results:
        assert rc == 0, err[-3000:]
    for r in range(2):
        rep = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert rep["mismatches"] == 0 and rep["identical"] and rep["finite"] and rep["skipped"] == 1


def test_dead_rank_fails_the_others_quickly(tmp_path):
    """Rank 1 exits at step 3; rank 0 must raise (not hang) within the group timeout."""
    results, elapsed = _launch(2, {"exchange": "allgather", "steps": 10, "die_at": 3, "timeout": 15}, tmp_path, timeout=90)
    (rc0, err0), (rc1, _) = results
    assert rc1 == 3
    assert rc0 != 0
    assert "majority-vote exchange failed" in err0 or "Connection closed" in err0 or "peer" in err0.lower(), err0[-2000:]
    assert elapsed < 60


def test_pack_matches_the_learning_package_bit_layout():
    """Packed bytes equal neurolns.learning.pack_signs (1 = negative, little-endian) for every length mod 8."""
    from neurolns.learning import pack_signs as np_pack

    rng = np.random.default_rng(0)
    for n in range(0, 41):
        x = rng.standard_normal(n).astype(np.float32)
        x[::5] = 0.0
        ours = pack_signs(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(ours, np_pack(x))
        np.testing.assert_array_equal(unpack_signs(torch.from_numpy(ours), n).numpy(), (x < 0).astype(np.uint8))


def test_vote_and_ties():
    """Two workers: agreeing signs pass through, a tie gives +1 (plus) or 0 (abstain); sign(0) = +1."""
    rows = torch.stack([pack_signs(torch.tensor(v)) for v in ([1.0, -1.0, 0.0], [-1.0, -1.0, 2.0])])
    np.testing.assert_array_equal(vote_from_packed(rows, 3, "plus", torch.float32).numpy(), [1.0, -1.0, 1.0])
    np.testing.assert_array_equal(vote_from_packed(rows, 3, "abstain", torch.float32).numpy(), [0.0, -1.0, 1.0])


def test_bytes_ratio_against_fp32_allreduce():
    """The compression the docs promise: 64/W× for all-gather, 32× for two-phase (d multiple of 8W)."""
    d = 8 * 3 * 4 * 1000
    for w in (2, 3, 4, 8):
        fp32 = ring_bytes("all_reduce", 4 * d, w)
        assert fp32 / _theory("allgather", d, w) == pytest.approx(64 / w, rel=1e-3)  # + a flag byte
        n_pad = -(-d // (8 * w)) * 8 * w
        assert fp32 / _theory("two-phase", d, w) == pytest.approx(32 * d / n_pad, rel=1e-3)


def test_invalid_options_are_clear_errors():
    """Options that cannot work raise ValueError at construction, naming the allowed values."""
    with pytest.raises(ValueError, match="allowed: 'allgather', 'two-phase'"):
        MajorityVoteState(exchange="ring")
    with pytest.raises(ValueError, match="momentum"):
        MajorityVoteState(momentum=1.0)
    with pytest.raises(ValueError, match="ternary"):
        MajorityVoteState(exchange="two-phase", ties="abstain")
    with pytest.raises(ValueError, match="error feedback"):
        MajorityVoteState(exchange="two-phase", error_feedback=True)
