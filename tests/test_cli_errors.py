"""The command line as a careful user meets it: scenario help, one-line errors, output checks,
no rewritten flags, progress and Ctrl-C.

Every test stops before training: the scenarios' work is replaced by stand-ins
that fail the test if reached, or return at once.
"""
import json

import pytest

from neurolns.cli.main import main
from neurolns.scenarios import bayes_point
from neurolns.scenarios import cuba_vs_brian2 as cuba
from neurolns.scenarios import edge_of_stability
from neurolns.scenarios import energy_footprint
from neurolns.scenarios import lns_vs_float
from neurolns.scenarios import lr_transfer
from neurolns.scenarios import majority_vote_ddp
from neurolns.scenarios import stdp_weights
from neurolns.scenarios import sysid_retina

#: scenario name -> (module, the function where its work starts)
WORK = {
    "lns-vs-float": (lns_vs_float, "load_data"),
    "cuba": (cuba, "run_neurolns"),
    "sysid": (sysid_retina, "make_dataset"),
    "energy": (energy_footprint, "account_model"),
    "majority-vote": (majority_vote_ddp, "_launch"),
    "stdp": (stdp_weights, "run_rule"),
    "edge-of-stability": (edge_of_stability, "load"),
    "bayes-point": (bayes_point, "load"),
    "lr-transfer": (lr_transfer, "load_data"),
}


def _call(argv, capsys):
    """(exit code, stdout, stderr) of ``neurolns ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _work_started(*args, **kwargs):
    raise AssertionError("the scenario started working before it checked its arguments")


# --- neurolns run NAME --help ----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["run", "cuba", "--help"], ["run", "cuba", "-h"], ["run", "cuba", "--", "--help"]])
def test_run_name_help_shows_the_scenarios_own_options(argv, capsys):
    """`neurolns run cuba --help` lists cuba's options (--seconds, --lns-format), not the generic run help."""
    code, out, err = _call(argv, capsys)
    assert code == 0, err
    assert "--seconds" in out and "--lns-format" in out


def test_run_help_without_a_name_lists_the_scenarios(capsys):
    code, out, _ = _call(["run", "--help"], capsys)
    assert code == 0 and "lns-vs-float" in out and "--seconds" not in out


# --- every user error: one line on stderr, exit code 2 ----------------------------------------------------------


#: case -> (command line, the bad value its one line must name); "{t}" is the test's folder, and
#: every `run` also gets --out {t}/o, which must not appear
USER_ERRORS = {
    "format-nan": (["format", "--values", "nan"], "nan"),
    "format-gamma": (["format", "--gamma", "3"], "gamma=3"),
    "format-bits": (["format", "--bits", "x"], "'x'"),
    "unknown-scenario": (["run", "no-such-scenario"], "no-such-scenario"),
    "cuba-n": (["run", "cuba", "--n", "0"], "0"),
    "cuba-seconds": (["run", "cuba", "--seconds", "nan"], "nan"),
    "cuba-format": (["run", "cuba", "--lns-format", "lns99"], "lns99"),
    "sysid-circuit": (["run", "sysid", "--circuit", "9"], "'9'"),
    "sysid-n-types": (["run", "sysid", "--n-types", "2"], "2"),
    "energy-toml-missing": (["run", "energy", "--energy-toml", "{t}/none.toml"], "none.toml"),
    "energy-toml-malformed": (["run", "energy", "--energy-toml", "{t}/bad.toml"], "bad.toml"),
    "energy-preset": (["run", "energy", "--preset", "3nm"], "3nm"),
    "energy-cmd-toml": (["energy", "mlp", "--energy-toml", "{t}/none.toml"], "none.toml"),
    "energy-cmd-shape": (["energy", "mlp", "--input-shape", "1,65"], "1,65"),
    "energy-cmd-workers": (["energy", "mlp", "--train", "--workers", "0"], "0"),
    "lns-device-sim": (["run", "lns-vs-float", "--device", "cuda"], "cuda"),
    "lns-batch-size": (["run", "lns-vs-float", "--batch-size", "0"], "0"),
    "lns-channels": (["run", "lns-vs-float", "--channels", "0"], "0"),
    "lns-track": (["run", "lns-vs-float", "--backend", "torch", "--track", "sharpness,foo"], "'foo'"),
    "mv-workers": (["run", "majority-vote", "--workers", "1"], "1"),
    "mv-byzantine": (["run", "majority-vote", "--byzantine", "1.5"], "1.5"),
    "mv-batch": (["run", "majority-vote", "--batch-size", "2"], "2"),
    "stdp-seconds": (["run", "stdp", "--seconds", "-1"], "-1"),
    "stdp-format": (["run", "stdp", "--log-format", "lns99"], "lns99"),
    "eos-rows": (["run", "edge-of-stability", "--rows", "nope"], "nope"),
    "eos-steps": (["run", "edge-of-stability", "--steps", "0"], "0"),
    "bp-targets": (["run", "bayes-point", "--targets", "0.001,nan"], "nan"),
    "lr-points": (["run", "lr-transfer", "--points", "99"], "99"),
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_errors_are_one_line_on_stderr_with_exit_code_2(case, tmp_path, capsys, monkeypatch):
    """No traceback, nothing on stdout, one line naming the bad value; no work and no output folder."""
    for module, name in WORK.values():
        monkeypatch.setattr(module, name, _work_started)
    (tmp_path / "bad.toml").write_text("x = [\n")
    argv, value = USER_ERRORS[case]
    argv = [a.replace("{t}", str(tmp_path)) for a in argv]
    if argv[0] == "run":
        argv += ["--out", str(tmp_path / "o")]
    code, out, err = _call(argv, capsys)
    assert code == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and value in lines[0] and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cuda_without_cuda_is_a_user_error(tmp_path, capsys, monkeypatch):
    """--device cuda on a machine without CUDA stops before loading data, with one line."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(lns_vs_float, "load_data", _work_started)
    code, out, err = _call(["run", "lns-vs-float", "--backend", "torch", "--device", "cuda",
                            "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--device cuda" in err


# --- output paths are checked before any work -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(WORK))
def test_unwritable_out_is_refused_before_work(scenario, tmp_path, capsys, monkeypatch):
    """--out below a plain file cannot be created: exit 2 before the scenario starts working."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    module, work = WORK[scenario]
    monkeypatch.setattr(module, work, _work_started)
    code, out, err = _call(["run", scenario, "--out", str(blocker / "results")], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and str(blocker / "results") in err


def test_energy_json_path_is_checked_before_counting(tmp_path, capsys, monkeypatch):
    import neurolns.torch.counting as counting

    monkeypatch.setattr(counting, "count_torch", _work_started)
    code, out, err = _call(["energy", "mlp", "--json", str(tmp_path / "missing" / "r.json")], capsys)
    assert code == 2 and "--json" in err and len(err.strip().splitlines()) == 1


def test_out_check_leaves_a_writable_folder_and_nothing_in_it(tmp_path):
    from neurolns.cli.common import OutputDir

    d = OutputDir(tmp_path / "a" / "b")
    assert d.path.is_dir() and list(d.path.iterdir()) == []
    assert d.discard_if_empty() and not (tmp_path / "a").exists()


# --- no flag is silently rewritten ------------------------------------------------------------------------------


def _fake_run(method, args, data, seed):
    return {"history": [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0, "test_acc": 0.5}],
            "test_acc": 0.5, "seconds": 0.0}


def test_quick_keeps_explicit_seeds(tmp_path, capsys, monkeypatch):
    """`--quick --seeds 3` runs three seeds (it ran one)."""
    seeds = []
    monkeypatch.setattr(lns_vs_float, "load_data", lambda name, quick: None)
    monkeypatch.setattr(lns_vs_float, "run_sim", lambda m, a, d, s: seeds.append(s) or _fake_run(m, a, d, s))
    monkeypatch.setattr(lns_vs_float, "write_outputs", lambda *a: None)
    code, out, err = _call(["run", "lns-vs-float", "--quick", "--seeds", "3", "--methods", "fp32-adam",
                            "--no-progress", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert seeds == [0, 1, 2]


def test_sysid_quick_and_full_keep_explicit_options(tmp_path):
    """--quick/--full fill only the options left out; together they are refused."""
    a = sysid_retina._parse(["--quick", "--seeds", "2", "--sizes", "60,100", "--max-steps", "50",
                             "--out", str(tmp_path)])
    assert (a.seeds, a.sizes, a.overrides["max_steps"], a.n_test) == (2, [60, 100], 50, 300)
    a = sysid_retina._parse(["--full", "--seeds", "3", "--out", str(tmp_path)])
    assert a.seeds == 3 and a.sizes == list(sysid_retina.PAPER_SIZES)
    with pytest.raises(SystemExit) as e:
        sysid_retina._parse(["--full", "--quick", "--out", str(tmp_path)])
    assert e.value.code == 2


def test_majority_vote_quick_keeps_explicit_workers_and_epochs(tmp_path, monkeypatch):
    seen = {}

    def launch(args, method, byzantine, flags):
        seen.update(workers=args.workers, epochs=args.epochs, samples=args.samples)
        raise KeyboardInterrupt

    monkeypatch.setattr(majority_vote_ddp, "_launch", launch)
    with pytest.raises(KeyboardInterrupt):
        majority_vote_ddp.main(["--quick", "--workers", "4", "--epochs", "5", "--out", str(tmp_path / "o")])
    assert seen == {"workers": 4, "epochs": 5, "samples": 2000}


# --- progress and Ctrl-C ----------------------------------------------------------------------------------------


def _fake_cuba(cfg, seconds, seeds, fmt=None, threads=1, dtype="float64"):
    import numpy as np

    row = {"rate_exc_hz": 5.0, "rate_inh_hz": 5.0, "cv_isi": 1.0, "spikes": 10, "synapses": 100,
           "first_s": 0.1, "warm_s": 0.1}
    return row, (np.array([0.1, 0.2]), np.array([0, 1]))


def test_cuba_reports_progress_on_stderr(tmp_path, capsys, monkeypatch):
    """Each stage announces itself on stderr (the scenario printed nothing for over a minute)."""
    monkeypatch.setattr(cuba, "run_neurolns", _fake_cuba)
    code, out, err = _call(["run", "cuba", "--n", "100", "--no-brian2", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "cuba: [1/2] neurolns float64" in err and "cuba: [2/2] neurolns LNS8" in err
    assert "cuba: [" not in out and "results in" in out


def test_ctrl_c_writes_the_finished_runs_and_says_where(tmp_path, capsys, monkeypatch):
    """Ctrl-C after one finished run: exit 130, one line naming the folder, runs.json holds that run."""
    calls = []

    def run(method, args, data, seed):
        calls.append(seed)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return _fake_run(method, args, data, seed)

    monkeypatch.setattr(lns_vs_float, "load_data", lambda name, quick: None)
    monkeypatch.setattr(lns_vs_float, "run_sim", run)
    out_dir = tmp_path / "o"
    code, out, err = _call(["run", "lns-vs-float", "--methods", "fp32-adam,fp32-sgd", "--seeds", "1",
                            "--no-progress", "--out", str(out_dir)], capsys)
    assert code == 130
    assert err.strip().splitlines() == [f"interrupted: 1 finished run(s) written to {out_dir}/"]
    saved = json.loads((out_dir / "runs.json").read_text())
    assert [r["method"] for r in saved["runs"]] == ["fp32-adam"]


@pytest.mark.parametrize("scenario", list(WORK))
def test_ctrl_c_before_anything_finished_leaves_no_empty_folder(scenario, tmp_path, capsys, monkeypatch):
    """Ctrl-C as the work starts: exit 130, one line, and the folder the run created is gone again."""
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    module, work = WORK[scenario]
    monkeypatch.setattr(module, work, interrupt)
    out_dir = tmp_path / "new" / scenario
    code, out, err = _call(["run", scenario, "--out", str(out_dir)], capsys)
    assert code == 130
    # progress lines may come first; the last line says what happened
    assert "nothing written" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "new").exists()


def test_stdp_reports_progress_on_stderr(tmp_path, capsys, monkeypatch):
    import numpy as np

    def run_rule(rule, fmt, seconds, seed):
        row = {"simulator": "neurolns", "rule": rule, "weights": "float64", "post_rate_hz": 1.0,
               "frac_below_0.1": 0.0, "frac_above_0.9": 0.0, "mean_w_over_gmax": 0.5, "sd_log10_w": 0.1,
               "wall_s": 0.0}
        return row, np.full(10, 0.005)

    monkeypatch.setattr(stdp_weights, "run_rule", run_rule)
    code, out, err = _call(["run", "stdp", "--no-brian2", "--rules", "additive,soft_bound", "--out", str(tmp_path)],
                           capsys)
    assert code == 0, err
    assert "stdp: [1/2] additive rule" in err and "stdp: [2/2] soft_bound rule" in err
    assert "stdp: [" not in out


def test_lr_transfer_ctrl_c_keeps_the_finished_runs(tmp_path, capsys, monkeypatch):
    done = []

    def train_one(data, name, width, depth, lr, seed, *, epochs, batch_size):
        if done:
            raise KeyboardInterrupt
        done.append(lr)
        return {"final_loss": 1.0}

    monkeypatch.setattr(lr_transfer, "load_data", lambda name, quick: None)
    monkeypatch.setattr(lr_transfer, "train_one", train_one)
    code, out, err = _call(["run", "lr-transfer", "--quick", "--optimizers", "sgd", "--no-progress",
                            "--out", str(tmp_path)], capsys)
    assert code == 130 and f"1 finished run(s) written to {tmp_path}/" in err
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 2
