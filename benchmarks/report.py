"""Rerun the README's quick headline figures and rewrite its marked tables.

The README keeps two tables that this script regenerates, each between a pair
of HTML comments (``<!-- report:measured:start -->`` ...
``<!-- report:measured:end -->``, and the same for ``modelled``):

measured (each a run on this machine, under a minute or two each)
    digits MLP accuracies, 3 seeds (``neurolns run lns-vs-float``); the
    ``lns8-full`` recipe against FP32 Adam on the digits MLP and the digits
    Conv2d CNN, 3 seeds (``neurolns run lns-vs-float --recipe lns8-full``); encode /
    decode / mul of 10^7 LNS8 values as fractions of the copy bound
    (``benchmarks/lns_kernels.py``); the LNS-Madam update of 10^8 synapses as
    a fraction of the copy bound (``benchmarks/learning_rules.py``); the
    simulator's LNS-Madam training step against torch's FP32 Adam step
    (``benchmarks/learning.py``). Timed figures are medians over interleaved
    rounds with the quartiles, on as many threads as the kernels use.
modelled (what the accounting module computes)
    training energy per epoch, LNS8 + LNS-Madam + 1-bit against FP32 Adam, and
    memory per parameter (``neurolns run energy``); bytes per step of the
    two-phase majority vote against an FP32 all-reduce
    (``neurolns.accounting.exchange_counts``).

Each block starts with the machine, the load average and the date of the
rerun. The other README rows (MNIST-1D, spiking, system identification) take
10 minutes or more each and are not rerun here.

Usage::

    .venv/bin/python benchmarks/report.py             # rerun, rewrite README.md
    .venv/bin/python benchmarks/report.py --dry-run   # rerun, print the tables only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine_line, median_spread  # noqa: E402

README = HERE.parent / "README.md"
SECTIONS = ("measured", "modelled")
HEADER = "| what | figure | command | page |"
RULE = "|---|---|---|---|"
#: the digits methods the README compares
DIGITS_METHODS = ("fp32-adam", "fp32-sgd", "lns8-lnsmadam", "majority-vote")


@dataclass(frozen=True)
class Row:
    """One README table row: what is measured, the figure, the command that regenerates it
    (shown as code) and the guide page (a Markdown link)."""

    what: str
    figure: str
    command: str
    page: str


def markers(section: str) -> tuple[str, str]:
    if section not in SECTIONS:
        raise ValueError(f"section {section!r}; allowed: {', '.join(SECTIONS)}")
    return f"<!-- report:{section}:start -->", f"<!-- report:{section}:end -->"


def render_block(section: str, note: str, rows: list[Row]) -> str:
    """The marked block: start marker, the note line (machine, load, date), the table, end marker."""
    start, end = markers(section)
    for r in rows:
        for cell in (r.what, r.figure, r.command, r.page):
            if "|" in cell or "\n" in cell:
                raise ValueError(f"a table cell may not hold '|' or a newline: {cell!r}")
        if "`" in r.command:
            raise ValueError(f"a command may not hold '`': {r.command!r}")
    lines = [start, note, "", HEADER, RULE]
    lines += [f"| {r.what} | {r.figure} | `{r.command}` | {r.page} |" for r in rows]
    lines.append(end)
    return "\n".join(lines)


def _span(text: str, section: str) -> tuple[int, int]:
    start, end = markers(section)
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"the text must hold {start} and {end} exactly once each")
    i, j = text.index(start), text.index(end)
    if j < i:
        raise ValueError(f"{end} comes before {start}")
    return i, j + len(end)


def parse_block(text: str, section: str) -> tuple[str, list[Row]]:
    """The note line and the rows of the marked block of ``section`` in ``text``."""
    i, j = _span(text, section)
    lines = text[i:j].splitlines()[1:-1]
    note = lines[0]
    rows = []
    for line in lines:
        if not line.startswith("| ") or line in (HEADER, RULE):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        what, figure, command, page = cells
        rows.append(Row(what, figure, command.strip("`"), page))
    return note, rows


def rewrite(text: str, section: str, block: str) -> str:
    """``text`` with the marked block of ``section`` replaced by ``block`` (which carries the markers)."""
    i, j = _span(text, section)
    if _span(block, section) != (0, len(block)):
        raise ValueError(f"the new block must start and end with the markers of {section!r}")
    return text[:i] + block + text[j:]


# ---- formatting of the figures (numbers in, table rows out) ----------------------------------------------


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}%"


def _count(n: int) -> str:
    """10⁷ for a power of ten, else the number with thousands separators."""
    k = len(str(n)) - 1
    if n == 10**k and k > 3:
        return "10" + str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{n:,}"


def _med(values) -> str:
    med, lo, hi = median_spread(values)
    return f"{med:.2f} [{lo:.2f}–{hi:.2f}]"


def measured_rows(fig: dict) -> list[Row]:
    """Rows of the measured block from the figures :func:`measure` returns.

    ``fig["digits"]``: method -> (mean, std) test accuracy (fractions) and ``"seeds"``;
    ``fig["codec"]``: ``"encode"``/``"decode"``/``"mul"`` -> per-round fractions of the bound
    (``out=``), with ``"n"``, ``"threads"``, ``"rounds"``; ``fig["update"]``: ``"int8"``/``"int16"``
    -> per-round fractions, with ``"n"``, ``"threads"``, ``"rounds"``; ``fig["step"]``: per-round
    ratios of the LNS8 LNS-Madam step to the torch FP32 Adam step, with ``"rounds"``."""
    rows = []
    if "digits" in fig:
        d = fig["digits"]
        k = d["seeds"]
        rows.append(Row(f"LNS8 LNS-Madam vs FP32 Adam, digits MLP 64-256-10, 20 epochs, {k} seeds (mean ± sd)",
                        f"{_pct(*d['lns8-lnsmadam'])} vs {_pct(*d['fp32-adam'])}",
                        "neurolns run lns-vs-float --dataset digits --methods fp32-adam,lns8-lnsmadam",
                        "[simulator](docs/simulator.md)"))
        gap = 100 * (d["majority-vote"][0] - d["fp32-sgd"][0])
        rows.append(Row(f"majority vote K = 5 vs FP32 SGD, digits MLP, {k} seeds",
                        f"{gap:+.2f} points ({_pct(*d['majority-vote'])} vs {_pct(*d['fp32-sgd'])})",
                        "neurolns run lns-vs-float --dataset digits --methods majority-vote,fp32-sgd",
                        "[simulator](docs/simulator.md)"))
    for model, label in (("mlp", "digits MLP 64-256-10"), ("cnn2d", "digits Conv2d CNN (25 channels)")):
        if f"recipe {model}" in fig:
            r = fig[f"recipe {model}"]
            gap = 100 * (r["lns8-full"][0] - r["fp32-adam"][0])
            rows.append(Row(f"LNS8 full (LNS8 weights, activations and error signals; LNS-Madam on a 1-bit vote of 4 "
                            f"workers) vs FP32 Adam, {label}, 20 epochs, {r['seeds']} seeds, simulator",
                            f"{_pct(*r['lns8-full'])} vs {_pct(*r['fp32-adam'])} ({gap:+.2f} points)",
                            "neurolns run lns-vs-float --recipe lns8-full"
                            + (" --model cnn2d" if model == "cnn2d" else ""),
                            "[recipes](docs/recipes.md)"))
    if "codec" in fig:
        c = fig["codec"]
        rows.append(Row(f"encode / decode / mul of {_count(c['n'])} LNS8 values (`out=`), fraction of the copy bound; "
                        f"kernels and copy on {c['threads']} threads, median [quartiles] of {c['rounds']} rounds",
                        " / ".join(_med(c[k]) for k in ("encode", "decode", "mul")),
                        "python benchmarks/lns_kernels.py", "[lns](docs/lns.md)"))
    if "update" in fig:
        u = fig["update"]
        rows.append(Row(f"LNS-Madam update of {_count(u['n'])} synapses (float64 ĝ), fraction of the copy bound, "
                        f"int8 / int16 codes; update and copy on {u['threads']} threads, median [quartiles] of "
                        f"{u['rounds']} rounds",
                        f"{_med(u['int8'])} / {_med(u['int16'])}",
                        "python benchmarks/learning_rules.py", "[learning](docs/learning.md)"))
    if "step" in fig:
        s = fig["step"]
        med, lo, hi = median_spread(s["ratios"])
        rows.append(Row(f"simulator LNS8 LNS-Madam training step / torch FP32 Adam step, MLP 64-256-10, batch 64, "
                        f"1 thread, median [quartiles] of {_count(s['rounds'])} rounds",
                        f"{med:.2f}× [{lo:.2f}–{hi:.2f}]",
                        "python benchmarks/learning.py", "[simulator](docs/simulator.md)"))
    return rows


def modelled_rows(fig: dict) -> list[Row]:
    """Rows of the modelled block. ``fig["energy"]``: ``"workers"``, ``"ratios"`` (model label ->
    LNS8 : FP32 training energy) and ``"recipes"`` (names of the FP32 and the LNS8 recipe compared);
    ``fig["memory"]``: ``"model"`` and ``"recipes"`` (recipe name ->
    (bytes per parameter, peak MB)); ``fig["bytes"]``: ``"ratio"`` (two-phase vote / FP32 all-reduce,
    link bits) and ``"workers"``."""
    rows = []
    if "energy" in fig:
        e = fig["energy"]
        labels = " / ".join(e["ratios"])
        lns, fp32 = e["recipes"][1], e["recipes"][0]
        rows.append(Row(f"training energy per epoch, {lns} (LNS8 weights, activations and error signals, LNS-Madam, "
                        f"1-bit vote) / {fp32}, {e['workers']} workers (whole system, horowitz45), {labels}",
                        " / ".join(f"{v:.3f}" for v in e["ratios"].values()),
                        "neurolns run energy", "[accounting](docs/accounting.md)"))
    if "memory" in fig:
        m = fig["memory"]
        names = " / ".join(m["recipes"])
        rows.append(Row(f"memory during a training step, {m['model']}: bytes per parameter; peak ({names})",
                        " / ".join(f"{b:g}" for b, _ in m["recipes"].values()) + " B; "
                        + " / ".join(f"{p:.2f}" for _, p in m["recipes"].values()) + " MB",
                        "neurolns run energy", "[accounting](docs/accounting.md)"))
    if "bytes" in fig:
        b = fig["bytes"]
        rows.append(Row(f"bytes per step, two-phase majority vote / FP32 all-reduce, {b['workers']} workers "
                        "(checked against the bytes gloo sends: tests/distributed/test_collective_bytes.py)",
                        f"1/{1 / b['ratio']:.1f}",
                        "neurolns run majority-vote --workers 4 --exchange two-phase",
                        "[distributed](docs/distributed.md)"))
    return rows


# ---- the measurements ---------------------------------------------------------------------------------------


def _lns_vs_float(argv: list[str], seeds: int) -> dict:
    """method -> (mean, std) test accuracy of ``neurolns run lns-vs-float ARGV --seeds SEEDS``."""
    from neurolns.scenarios.lns_vs_float import main as lns_vs_float

    with tempfile.TemporaryDirectory() as out:
        rc = lns_vs_float([*argv, "--seeds", str(seeds), "--out", out, "--no-progress"])
        if rc != 0:
            raise RuntimeError(f"neurolns run lns-vs-float {' '.join(argv)} exited with {rc}")
        summary = json.loads((Path(out) / "runs.json").read_text())["summary"]
    d = {r["method"]: (r["mean_test_acc"], r["std_test_acc"]) for r in summary}
    d["seeds"] = seeds
    return d


def measure_digits(seeds: int) -> dict:
    return _lns_vs_float(["--dataset", "digits", "--methods", ",".join(DIGITS_METHODS)], seeds)


def measure_recipe(model: str, seeds: int) -> dict:
    """FP32 Adam and the lns8-full recipe on digits (``model``: mlp or cnn2d), the scenario's defaults."""
    return _lns_vs_float(["--recipe", "lns8-full", "--model", model], seeds)


def measure_codec() -> dict:
    from lns_kernels import streaming_fractions

    st = streaming_fractions()
    return {"encode": st["encode out"], "decode": st["decode out"], "mul": st["mul out"],
            "n": st["n"], "threads": st["threads"], "rounds": st["rounds"]}


def measure_update() -> dict:
    from learning_rules import FORMATS, update_fractions

    r = update_fractions(extras=False)
    int8, int16 = FORMATS
    return {"int8": r[int8], "int16": r[int16], "n": r["n"], "threads": r["threads"], "rounds": r["rounds"]}


def measure_step() -> dict:
    from learning import step_ratios

    rounds = 3000
    return {"ratios": step_ratios(rounds=rounds)["ratios"]["lns-madam"], "rounds": rounds}


def model_energy() -> dict:
    from neurolns.accounting import get_recipe
    from neurolns.scenarios.energy_footprint import main as energy

    with tempfile.TemporaryDirectory() as out:
        rc = energy(["--out", out, "--no-progress"])
        if rc != 0:
            raise RuntimeError(f"neurolns run energy exited with {rc}")
        payload = json.loads((Path(out) / "energy_footprint.json").read_text())
    ratios = {r["model"]: r["lns8_to_fp32_total"] for r in payload["lns8_vs_reported"]}
    first = payload["memory"][0]["model"]
    names = [get_recipe(k).name for k in ("fp32-adam", "lns8-full")]  # the pair the energy ratio compares
    mem = {r["recipe"]: (r["bytes_per_param"], r["peak_MB"]) for r in payload["memory"] if r["model"] == first}
    return {"energy": {"workers": payload["workers"], "ratios": ratios, "recipes": names},
            "memory": {"model": first, "recipes": {n: mem[n] for n in names}}}


def model_bytes(workers: int = 4) -> dict:
    from neurolns.accounting import exchange_counts, get_recipe

    sizes = [64 * 256, 256, 256 * 10, 10]  # the digits MLP; the ratio does not depend on the sizes
    bits = {k: sum(lc.link_bits for lc in exchange_counts(get_recipe(k), sizes, workers))
            for k in ("fp32-adam", "lns8-full")}
    return {"ratio": bits["lns8-full"] / bits["fp32-adam"], "workers": workers}


def _timed(label, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    print(f"  {label}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def measure(seeds: int = 3, sections=SECTIONS) -> dict:
    """Run the measurements of the given sections; the figures :func:`measured_rows` and
    :func:`modelled_rows` take, plus ``"load measured"`` (load average before and after the
    measured section)."""
    fig = {}
    if "measured" in sections:
        load0 = os.getloadavg()[0]
        fig["codec"] = _timed("codec fractions (benchmarks/lns_kernels.py)", measure_codec)
        fig["update"] = _timed("LNS-Madam update fractions (benchmarks/learning_rules.py)", measure_update)
        fig["step"] = _timed("training step ratio (benchmarks/learning.py)", measure_step)
        fig["digits"] = _timed("digits accuracies (neurolns run lns-vs-float)", measure_digits, seeds)
        for model in ("mlp", "cnn2d"):
            fig[f"recipe {model}"] = _timed(f"lns8-full vs FP32 Adam, digits {model} (neurolns run lns-vs-float "
                                            "--recipe lns8-full)", measure_recipe, model, seeds)
        fig["load measured"] = (load0, os.getloadavg()[0])
    if "modelled" in sections:
        fig.update(_timed("energy and memory (neurolns run energy)", model_energy))
        fig["bytes"] = model_bytes()
    return fig


def note(load: tuple[float, float] | None, date: str, machine: str) -> str:
    where = f"Rerun by `python benchmarks/report.py` on {date}: {machine}"
    if load is not None:
        where += f"; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
    return f"_{where}._"


def blocks(fig: dict, date: str, machine: str) -> dict:
    """The marked block of each section ``fig`` holds figures for."""
    out = {}
    rows = measured_rows(fig)
    if rows:
        out["measured"] = render_block("measured", note(fig.get("load measured"), date, machine), rows)
    rows = modelled_rows(fig)
    if rows:
        out["modelled"] = render_block("modelled", note(None, date, "computed, no timing"), rows)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="print the tables, do not write the README")
    p.add_argument("--readme", type=Path, default=README, help="the file to rewrite (default: the README)")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the digits runs (default 3, as the README)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: measured, modelled")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad or not sections:
        p.error(f"--sections {args.sections!r}; allowed: {', '.join(SECTIONS)}")
    if args.seeds < 1:
        p.error(f"--seeds {args.seeds}; allowed: >= 1")
    text = None
    if not args.dry_run:
        text = args.readme.read_text()
        for s in sections:  # the markers are checked before the minutes of measurement
            try:
                _span(text, s)
            except ValueError as exc:
                p.error(f"{args.readme}: {exc}")
    fig = measure(args.seeds, sections)
    new = blocks(fig, datetime.date.today().isoformat(), machine_line())
    for section, block in new.items():
        print(block + "\n")
        if text is not None:
            text = rewrite(text, section, block)
    if text is not None:
        args.readme.write_text(text)
        print(f"rewrote the {', '.join(new)} table(s) of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
