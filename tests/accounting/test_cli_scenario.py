"""The `neurolns energy` subcommand and the energy-footprint scenario, end to end on small models."""
import argparse
import csv
import importlib.util
import json

import pytest

pytest.importorskip("torch")

from neurolns.cli import energy as energy_cli  # noqa: E402


def _run(argv):
    p = argparse.ArgumentParser()
    energy_cli.register(p.add_subparsers(dest="command"))
    args, extra = p.parse_known_args(["energy", *argv])
    return args.handler(args, extra)


def test_energy_on_a_named_model_prints_every_format(capsys):
    assert _run(["mlp", "--formats", "fp32,bf16,int8,lns8"]) == 0
    out = capsys.readouterr().out
    assert "19,210 parameters" in out  # 64·256 + 256 + 256·10 + 10
    for name in ("FP32", "BF16", "INT8", "LNS8"):
        assert f"\n{name} " in out


def test_energy_on_a_user_file_factory_writes_json_and_png(tmp_path, capsys):
    src = tmp_path / "mynet.py"
    src.write_text("import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(5, 3))\n")
    js, png = tmp_path / "e.json", tmp_path / "e.png"
    rc = _run([f"{src}:make", "--input-shape", "4,5", "--train", "--workers", "2", "--formats", "fp32,lns8",
               "--json", str(js), "--png", str(png)])
    assert rc == 0
    data = json.loads(js.read_text())
    assert [r["recipe"] for r in data["reports"]] == ["FP32 Adam", "LNS8 full"]
    assert data["reports"][0]["macs"] == 2 * 4 * 5 * 3  # forward + weight gradient (no input gradient)
    assert set(data["reports"][1]["by_phase_pj"]) == {"forward", "backward", "update", "exchange"}
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_energy_toml_override_changes_the_reported_energy(tmp_path, capsys):
    js1, js2, toml = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "o.toml"
    toml.write_text("[op.fp32]\nadd = 1.9\n")
    assert _run(["mlp", "--formats", "fp32", "--json", str(js1)]) == 0
    assert _run(["mlp", "--formats", "fp32", "--json", str(js2), "--energy-toml", str(toml)]) == 0
    a, b = (json.loads(p.read_text())["reports"][0] for p in (js1, js2))
    # +1 pJ per FP32 add: one in every MAC's accumulation and one per bias add (256 + 10 outputs)
    assert b["total_pj"]["compute"] - a["total_pj"]["compute"] == pytest.approx(a["macs"] + 256 + 10)
    assert b["total_pj"]["memory"] == pytest.approx(a["total_pj"]["memory"])


def test_bad_model_specs_are_reported(tmp_path, capsys):
    assert _run(["nosuchnet"]) == 2
    assert "unknown model 'nosuchnet'" in capsys.readouterr().err
    assert _run([f"{tmp_path}/missing.py:f"]) == 2
    assert _run(["mlp", "--input-shape", "a,b"]) == 2


@pytest.mark.skipif(importlib.util.find_spec("codecarbon") or importlib.util.find_spec("zeus"),
                    reason="a measurement tool is installed")
def test_measure_without_codecarbon_or_zeus_says_so_and_goes_on(capsys):
    assert _run(["mlp", "--formats", "fp32", "--measure"]) == 0
    assert "neither CodeCarbon nor Zeus is installed" in capsys.readouterr().out


def test_energy_footprint_scenario_writes_its_tables(tmp_path, capsys):
    from neurolns.scenarios.energy_footprint import main

    assert main(["--models", "mlp", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "LNS-Madam reports" in out
    rows = list(csv.DictReader(open(tmp_path / "training.csv")))
    assert [r["recipe"] for r in rows] == ["FP32 Adam", "BF16 mixed precision", "INT8 QAT", "LNS8 weights", "LNS8 full"]
    data = json.loads((tmp_path / "energy_footprint.json").read_text())
    lns = data["lns8_vs_reported"][0]
    # arithmetic alone beats the reported 90% reduction; the total, memory included, does not
    assert lns["lns8_to_fp32_compute"] < 0.1 < lns["lns8_to_fp32_total"] < 0.5
    for f in ("inference.csv", "memory.csv", "training_mlp.png", "inference_mlp.png"):
        assert (tmp_path / f).stat().st_size > 0


def test_measured_baseline_calibrates_every_format(monkeypatch, capsys):
    """With a meter present (a stand-in returning 2 J over the repeats), every format is
    reported as its simulated ratio to FP32 times the measured FP32 energy per pass."""
    import neurolns.torch.counting as counting

    monkeypatch.setattr(counting, "_energy_meter", lambda: ("Stand-in", lambda: None, lambda: 2.0))
    res = counting.measure_baseline(torch_linear(), (4, 5), training=False, repeats=4)
    assert res["tool"] == "Stand-in" and res["joules"] == pytest.approx(0.5)
    assert _run(["mlp", "--formats", "fp32,lns8", "--measure"]) == 0
    out = capsys.readouterr().out
    fp32_line = next(line for line in out.splitlines() if line.strip().startswith("FP32 ") and " J (" in line)
    assert "0.1 J" in fp32_line and "ratio to FP32 1.000" in fp32_line  # 2 J over the 20 passes


def torch_linear():
    import torch

    return torch.nn.Linear(5, 3)
