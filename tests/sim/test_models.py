"""models/: build_sim and build_torch are the same network — same parameter names,
order and shapes, and with torch's weights copied in, the same logits (float32)."""

import numpy as np
import pytest

from neurolns.models import cnn1d, mlp


@pytest.mark.parametrize("mod,kw,n_in", [(mlp, dict(in_features=64, hidden=(32, 16)), 64),
                                         (cnn1d, dict(length=40, channels=6), 40)])
def test_sim_and_torch_models_agree(mod, kw, n_in):
    torch = pytest.importorskip("torch")
    net = mod.build_sim(**kw, seed=0)
    tm = mod.build_torch(**kw, seed=0)
    sd = tm.state_dict()
    assert [(k, tuple(p.shape)) for k, p in net.named_params()] == [(k, tuple(v.shape)) for k, v in sd.items()]
    for k, p in net.named_params():
        p.set_value(sd[k].numpy())
    x = np.random.default_rng(0).normal(size=(5, n_in)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.forward(x), want, rtol=1e-5, atol=1e-5)


def test_lns_models_hold_codes_and_seeds_differ():
    a, b = mlp.build_sim(weights="lns", seed=0), mlp.build_sim(weights="lns", seed=1)
    assert a.on_codes and a.params()[0].data.dtype == np.int16
    assert not np.array_equal(a.params()[0].data, b.params()[0].data)
    np.testing.assert_array_equal(a.params()[0].data, mlp.build_sim(weights="lns", seed=0).params()[0].data)
    with pytest.raises(ValueError, match="layer size"):
        mlp.build_sim(hidden=(0,))
    with pytest.raises(ValueError, match="too short"):
        cnn1d.build_sim(length=2)


def test_scenario_quick_run_writes_every_output(tmp_path):
    """The scenario's smoke run produces the table files and the PNG; JSON holds each run's history."""
    import json

    from neurolns.scenarios.lns_vs_float import main

    out = tmp_path / "res"
    assert main(["--quick", "--epochs", "1", "--methods", "fp32-adam,lns8-lnsmadam,majority-vote",
                 "--out", str(out), "--no-progress"]) == 0
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert [r["method"] for r in runs] == ["fp32-adam", "lns8-lnsmadam", "majority-vote"]
    assert all(len(r["history"]) == 1 and 0.1 < r["test_acc"] <= 1.0 for r in runs)
    assert (out / "accuracy.png").stat().st_size > 1000
    assert (out / "runs.csv").read_text().count("\n") == 4 and (out / "summary.csv").exists()
    with pytest.raises(SystemExit):
        main(["--methods", "fp64-adam", "--out", str(out)])
