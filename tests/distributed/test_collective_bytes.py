"""The README's bytes claim, majority vote / FP32 all-reduce = 1/32 (two-phase), held against
the bytes the gloo collectives actually sent, on 2 and 4 processes of this machine.

Each rank (bytes_worker.py) runs one DDP step of the same MLP (2,099,712 parameters, one
bucket) under the FP32 all-reduce hook, the two-phase vote and the all-gather vote, and
records the bytes its process wrote to its sockets during the backward pass (where the
hooks run) and the collectives the hook called. Invariants:

- what the collectives were handed accounts for what was sent: the bytes written equal
  the bytes each call must deliver to the other ranks (all_to_all: the (W-1)/W of the
  buffer that belongs to them; all_gather: this rank's part to each of the W-1 others;
  all_reduce: 2(W-1)/W of the buffer, the ring), plus gloo's message headers: at most 64
  bytes per write call;
  the hook's own byte counter equals the same figure;
- the measured ratio, vote / FP32, is 1/32 for the two-phase scheme and W/64 for the
  all-gather scheme within 1%, and agrees within 1% with the ratio of the link bits of
  ``neurolns.accounting.exchange_counts`` for the README's recipes ("lns8-full": LNS8,
  LNS-Madam, 1-bit vote; against "fp32-adam"); the bits all ranks sent together match
  those link bits within 1%.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurolns.accounting import exchange_counts, get_recipe

WORKER = Path(__file__).with_name("bytes_worker.py")

pytestmark = pytest.mark.skipif(not Path("/proc/self/io").exists(),
                                reason="needs /proc/self/io (Linux) to read the bytes a process wrote")


def _launch(world, tmp_path, timeout=180):
    init = tmp_path / "init"
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(world), str(init), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]
    t0 = time.monotonic()
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"distributed run hung for {timeout} s")
        assert p.returncode == 0, err[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]


def _delivered(call, world):
    """Bytes one rank must send to the others for one collective call on ``call['bytes']``."""
    b = call["bytes"]
    if call["op"] == "all_reduce":
        return 2 * (world - 1) * b / world  # the bandwidth-optimal ring; gloo runs it
    if call["op"] == "all_to_all_single":
        return (world - 1) * b / world
    return (world - 1) * b  # all_gather


@pytest.mark.parametrize("world", [2, 4])
def test_vote_sends_one_32nd_of_fp32_allreduce(world, tmp_path):
    """Bytes written to the sockets: two-phase vote / FP32 all-reduce = 1/32 and all-gather vote
    / FP32 = W/64 (within 1%), as the accounting module's link bits say (the all-gather is what a
    recipe with ties="abstain" is priced as); the collectives called
    and the hook's counter explain the bytes written."""
    reports = _launch(world, tmp_path)
    ops = {"fp32": {"all_reduce"}, "two-phase": {"all_to_all_single", "all_gather_single", "all_gather_into_tensor"},
           "allgather": {"all_gather_single", "all_gather_into_tensor"}}
    for rep in reports:
        for scheme, r in rep.items():
            assert r["calls"], (scheme, "no collective recorded")
            assert {c["op"] for c in r["calls"]} <= ops[scheme], (scheme, r["calls"])
            delivered = sum(_delivered(c, world) for c in r["calls"])
            assert r["counted"] == pytest.approx(delivered, abs=1), (scheme, r)
            assert delivered <= r["wrote"] <= delivered + 64 * r["writes"], (scheme, r, delivered)
        assert [c["op"] for c in rep["fp32"]["calls"]] == ["all_reduce"]  # one bucket
    params = reports[0]["fp32"]["params"]
    d = sum(params)
    assert reports[0]["fp32"]["calls"][0]["bytes"] == 4 * d  # the whole FP32 gradient in one bucket

    sent = {s: sum(rep[s]["wrote"] for rep in reports) for s in ("fp32", "two-phase", "allgather")}
    measured = sent["two-phase"] / sent["fp32"]
    assert measured == pytest.approx(1 / 32, rel=0.01), measured  # the README figure
    assert sent["allgather"] / sent["fp32"] == pytest.approx(world / 64, rel=0.01)

    fp32_bits = sum(lc.link_bits for lc in exchange_counts(get_recipe("fp32-adam"), params, world))
    vote_bits = sum(lc.link_bits for lc in exchange_counts(get_recipe("lns8-full"), params, world))
    assert vote_bits / fp32_bits == pytest.approx(1 / 32, rel=1e-12)
    assert measured == pytest.approx(vote_bits / fp32_bits, rel=0.01)
    assert 8 * sent["fp32"] == pytest.approx(fp32_bits, rel=0.01)
    assert 8 * sent["two-phase"] == pytest.approx(vote_bits, rel=0.01)
    # an abstaining vote (ties="abstain") is priced as the all-gather it needs
    abstain = get_recipe("lns8-full").replace(ties="abstain")
    abstain_bits = sum(lc.link_bits for lc in exchange_counts(abstain, params, world))
    assert 8 * sent["allgather"] == pytest.approx(abstain_bits, rel=0.01)
