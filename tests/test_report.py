"""benchmarks/report.py: the README's marked tables are rendered from figures and rewritten in place.

The fast tests feed synthetic figures (no measurement runs); the slow one runs the real
quick report with ``--dry-run`` and checks that the README is left as it was.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_report():
    spec = importlib.util.spec_from_file_location("neurolns_benchmarks_report", ROOT / "benchmarks" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


report = _load_report()

SYNTHETIC = {
    "digits": {"fp32-adam": (0.9786, 0.0013), "fp32-sgd": (0.9684, 0.0035), "lns8-lnsmadam": (0.9786, 0.0047),
               "majority-vote": (0.9805, 0.0023), "seeds": 3},
    "codec": {"encode": np.array([0.5, 0.6, 0.7]), "decode": np.array([0.4, 0.44, 0.48]), "mul": np.array([0.9]),
              "n": 10**7, "threads": 2, "rounds": 15},
    "update": {"int8": np.array([0.5, 0.58, 0.66]), "int16": np.array([0.61]), "n": 10**8, "threads": 2,
               "rounds": 7},
    "step": {"ratios": np.array([0.5, 0.6, 0.7, 0.8, 0.9]), "rounds": 3000},
    "recipe mlp": {"fp32-adam": (0.9786, 0.0013), "lns8-full": (0.9861, 0.0023), "seeds": 3},
    "recipe cnn2d": {"fp32-adam": (0.9842, 0.0035), "lns8-full": (0.9749, 0.0023), "seeds": 3},
    "load measured": (1.04, 1.96),
    "energy": {"workers": 4, "ratios": {"digits MLP": 0.1191, "MNIST-1D CNN": 0.1604},
               "recipes": ["FP32 Adam", "LNS8 full"]},
    "memory": {"model": "digits MLP", "recipes": {"FP32 Adam": (16.0, 0.4576), "LNS8": (4.5, 0.124)}},
    "bytes": {"ratio": 1 / 32, "workers": 4},
}

README_LIKE = """# title

```bash
first command
```

## Measured

text before
<!-- report:measured:start -->
old note

| what | figure | command | page |
|---|---|---|---|
| old | 1 | `old` | [x](x.md) |
<!-- report:measured:end -->

| what | figure | command | page |
|---|---|---|---|
| a long run, not rerun | 95.3% | `neurolns run x` | [y](y.md) |

## Modelled

<!-- report:modelled:start -->
<!-- report:modelled:end -->
tail
"""


def test_rows_say_what_the_figures_are():
    """Synthetic figures come out formatted as the README states them: accuracies as mean ± sd in %,
    the vote's gap in signed points, timed figures as medians with quartiles, the bytes ratio as 1/N."""
    rows = {r.command: r for r in report.measured_rows(SYNTHETIC) + report.modelled_rows(SYNTHETIC)}
    lns = rows["neurolns run lns-vs-float --dataset digits --methods fp32-adam,lns8-lnsmadam"]
    assert lns.figure == "97.86 ± 0.47% vs 97.86 ± 0.13%"
    assert "3 seeds" in lns.what
    vote = rows["neurolns run lns-vs-float --dataset digits --methods majority-vote,fp32-sgd"]
    assert vote.figure == "+1.21 points (98.05 ± 0.23% vs 96.84 ± 0.35%)"
    full = rows["neurolns run lns-vs-float --recipe lns8-full"]
    assert full.figure == "98.61 ± 0.23% vs 97.86 ± 0.13% (+0.75 points)"  # the gap of the unrounded means
    assert "digits MLP" in full.what and "3 seeds" in full.what and "1-bit vote" in full.what
    conv = rows["neurolns run lns-vs-float --recipe lns8-full --model cnn2d"]
    assert conv.figure == "97.49 ± 0.23% vs 98.42 ± 0.35% (-0.93 points)" and "Conv2d" in conv.what
    assert rows["python benchmarks/lns_kernels.py"].figure == "0.60 [0.55–0.65] / 0.44 [0.42–0.46] / 0.90 [0.90–0.90]"
    assert "on 2 threads" in rows["python benchmarks/lns_kernels.py"].what
    assert "15 rounds" in rows["python benchmarks/lns_kernels.py"].what
    assert "of 10⁷ LNS8 values" in rows["python benchmarks/lns_kernels.py"].what
    assert "of 10⁸ synapses" in rows["python benchmarks/learning_rules.py"].what
    assert "of 3,000 rounds" in rows["python benchmarks/learning.py"].what
    assert rows["python benchmarks/learning_rules.py"].figure == "0.58 [0.54–0.62] / 0.61 [0.61–0.61]"
    assert rows["python benchmarks/learning.py"].figure == "0.70× [0.60–0.80]"
    modelled = {r.what.split(",")[0]: r for r in report.modelled_rows(SYNTHETIC)}
    energy = modelled["training energy per epoch"]
    assert energy.command == "neurolns run energy"
    assert energy.figure == "0.119 / 0.160"
    assert "digits MLP / MNIST-1D CNN" in energy.what and "LNS8 full (" in energy.what
    assert rows["neurolns run majority-vote --workers 4 --exchange two-phase"].figure == "1/32.0"
    memory = modelled["memory during a training step"]
    assert memory.command == "neurolns run energy"
    assert memory.figure == "16 / 4.5 B; 0.46 / 0.12 MB"


def test_blocks_round_trip_through_the_markers():
    """Rewriting puts the rendered rows between the markers, parsing gives the same rows back,
    everything outside the markers is kept byte for byte, and a second rewrite changes nothing."""
    new = report.blocks(SYNTHETIC, "2031-01-02", "Some CPU, 2 cores")
    assert set(new) == {"measured", "modelled"}
    text = README_LIKE
    for section, block in new.items():
        text = report.rewrite(text, section, block)
    for section in report.SECTIONS:
        note, rows = report.parse_block(text, section)
        rows_expected = (report.measured_rows if section == "measured" else report.modelled_rows)(SYNTHETIC)
        assert rows == rows_expected
        assert "2031-01-02" in note
    note, _ = report.parse_block(text, "measured")
    assert "Some CPU, 2 cores" in note and "load average 1.0 at the start, 2.0 at the end" in note
    # outside the markers: unchanged
    strip = lambda t: re.sub(r"<!-- report:(\w+):start -->.*?<!-- report:\1:end -->", "", t, flags=re.S)  # noqa: E731
    assert strip(text) == strip(README_LIKE)
    assert "| a long run, not rerun | 95.3% | `neurolns run x` | [y](y.md) |" in text
    again = text
    for section, block in new.items():
        again = report.rewrite(again, section, block)
    assert again == text
    # the rendered rows make a Markdown table of four cells each
    for line in text.splitlines():
        if line.startswith("| ") and "report" not in line:
            assert line.count(" | ") == 3, line


def test_markers_must_be_there_once_and_in_order():
    """A missing, doubled or reversed marker pair is an error, not a silent append."""
    block = report.render_block("measured", "note", report.measured_rows(SYNTHETIC))
    with pytest.raises(ValueError, match="exactly once"):
        report.rewrite("no markers here", "measured", block)
    start, end = report.markers("measured")
    with pytest.raises(ValueError, match="exactly once"):
        report.rewrite(f"{start}\n{end}\n{start}\n{end}", "measured", block)
    with pytest.raises(ValueError, match="before"):
        report.rewrite(f"{end}\n{start}", "measured", block)
    with pytest.raises(ValueError, match="allowed"):
        report.markers("other")
    with pytest.raises(ValueError, match=r"'\|'"):
        report.render_block("measured", "note", [report.Row("a | b", "1", "c", "d")])


def test_the_readme_holds_both_marked_blocks():
    """The README carries each marked block once, in order, and each parses to rows that name a command."""
    text = (ROOT / "README.md").read_text()
    for section in report.SECTIONS:
        note, rows = report.parse_block(text, section)
        assert "benchmarks/report.py" in note
        assert rows and all(r.command for r in rows)


@pytest.mark.slow
def test_modelled_figures_equal_a_rerun_at_their_written_digits():
    """Every figure of the README's modelled table (energy per epoch LNS8 : FP32 for each model to
    3 decimals, i.e. far inside ±0.01; memory per parameter and peak; the bytes ratio) is what the
    accounting computes now, written at the same digits."""
    _, rows = report.parse_block((ROOT / "README.md").read_text(), "modelled")
    fig = report.model_energy()
    fig["bytes"] = report.model_bytes()
    rerun = report.modelled_rows(fig)
    assert [(r.what, r.figure) for r in rerun] == [(r.what, r.figure) for r in rows]
    energy = [r for r in rows if r.what.startswith("training energy")][0]
    mlp = float(energy.figure.split(" / ")[0])
    assert fig["energy"]["ratios"]["digits MLP 64-256-10"] == pytest.approx(mlp, abs=5e-4)


@pytest.mark.slow
def test_real_quick_report_dry_run_leaves_the_readme(tmp_path, capsys):
    """The real measurements (about two minutes on 2 cores) with --dry-run: both blocks are printed,
    each with the rows (commands) the README has, and the file named by --readme is not touched."""
    readme = tmp_path / "README.md"
    readme.write_text(README_LIKE)
    assert report.main(["--dry-run", "--readme", str(readme)]) == 0
    assert readme.read_text() == README_LIKE
    out = capsys.readouterr().out
    printed = {}
    for section in report.SECTIONS:
        printed[section] = report.parse_block(out, section)[1]
    readme_rows = {s: report.parse_block((ROOT / "README.md").read_text(), s)[1] for s in report.SECTIONS}
    for section in report.SECTIONS:
        assert [r.command for r in printed[section]] == [r.command for r in readme_rows[section]]
