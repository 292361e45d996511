"""The `neurolns` command: --help, --version, format, run."""
import subprocess
import sys

import pytest

import neurolns
from neurolns.cli.main import main


def test_version_and_help(capsys):
    """--version prints the package version and exits 0; no command prints the help."""
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert neurolns.__version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "format" in capsys.readouterr().out


def test_format_prints_range_resolution_and_codes(capsys):
    """The printed figures are the format's own (LNS8 γ=8: ±63 exponents, 94.82 dB) and
    3.0 / 0.1 encode to exponents 13 / -27 (the xlns F=3 grid)."""
    assert main(["format", "--bits", "8", "--gamma", "8"]) == 0
    out = capsys.readouterr().out
    assert "[-63, 63]" in out and "94.82 dB" in out and "0.0905077" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()[:1].isdigit() or line.strip()[:2] == "-1"}
    assert rows["3"][2] == "13" and rows["0.1"][2] == "-27"


def test_format_rejects_bad_values(capsys):
    """A gamma that is not a power of two is refused with exit code 2 and the reason, on stderr."""
    assert main(["format", "--gamma", "3"]) == 2
    assert "power of two" in capsys.readouterr().err


def test_console_script_runs():
    """The entry point runs in a fresh interpreter and describes the format it was given."""
    out = subprocess.run([sys.executable, "-m", "neurolns.cli.main", "format", "--bits", "12", "--gamma", "64"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LNS12" in out.stdout


def test_run_unknown_scenario(capsys):
    """An unknown scenario name is refused with exit code 2, naming the available ones."""
    assert main(["run", "no-such-scenario"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
