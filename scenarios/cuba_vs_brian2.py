"""CUBA in neurolns (float64 and LNS8 weights) against Brian2 (cython runtime, cpp_standalone).

The benchmark network of Brette et al. 2007 (``neurolns.models.cuba``): 4000
LIF neurons for 1 s by default. For each simulator the table gives the mean rate
of E and I neurons, the mean CV of ISI, synapse and spike counts, and the wall
time of the first run (including JIT or C++ compilation) and of a warm run;
statistics are averaged over ``--seeds`` seeds. Brian2 draws its own
connectivity and random numbers, so only statistics can agree (bars: rate within
10%, CV within 0.1; LNS8 rate within 15% of float64).

Usage::

    python -m neurolns.scenarios.cuba_vs_brian2 [--n 4000] [--seconds 1] [--seeds 1]
        [--no-brian2] [--no-standalone] [--out results/cuba_vs_brian2]
"""
from __future__ import annotations

import argparse
import csv
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from neurolns.cli.common import ArgumentParser, OutputDir, Progress, checked, float_range, int_range, interrupted
from neurolns.formats import parse_format
from neurolns.models.cuba import CUBAConfig, build_cuba, build_cuba_brian2
from neurolns.sim.spiking.stats import mean_cv_isi, mean_rate

COLS = ["simulator", "rate_exc_hz", "rate_inh_hz", "cv_isi", "synapses", "spikes", "first_s", "warm_s"]


def _stats(t, i, cfg: CUBAConfig, seconds: float) -> dict:
    exc = i < cfg.n_exc
    return {"rate_exc_hz": mean_rate(i[exc], cfg.n_exc, seconds),
            "rate_inh_hz": mean_rate(i[~exc] - cfg.n_exc, cfg.n_inh, seconds),
            "cv_isi": mean_cv_isi(t, i, cfg.n), "spikes": int(i.size)}


def run_neurolns(cfg: CUBAConfig, seconds: float, seeds: list[int], fmt=None, threads: int = 1,
                 dtype: str = "float64") -> tuple[dict, tuple]:
    """Mean statistics over seeds, first and warm wall times, and the first seed's spikes.

    ``threads`` does not change the spikes, only the wall times; ``dtype`` is
    the neuron state's float type.
    """
    stats, walls, first_spikes, n_syn = [], [], None, 0
    for k, seed in enumerate(seeds if len(seeds) > 1 else seeds * 2):
        net = build_cuba(cfg, weight_format=fmt, seed=seed, threads=threads, dtype=dtype)
        t0 = time.perf_counter()
        net.run(seconds, progress=False)
        walls.append(time.perf_counter() - t0)
        t = np.concatenate([net.spikes_exc.t, net.spikes_inh.t])
        i = np.concatenate([net.spikes_exc.i, net.spikes_inh.i + cfg.n_exc]).astype(np.int64)
        if k < len(seeds):
            stats.append(_stats(t, i, cfg, seconds))
        if first_spikes is None:
            first_spikes, n_syn = (t, i), net.network.n_synapses
    row = {key: float(np.mean([s[key] for s in stats])) for key in ("rate_exc_hz", "rate_inh_hz", "cv_isi", "spikes")}
    row.update(synapses=n_syn, first_s=walls[0], warm_s=float(np.median(walls[1:])))
    return row, first_spikes


def run_brian2_runtime(cfg: CUBAConfig, seconds: float, seeds: list[int], target: str = "cython") -> tuple[dict, tuple]:
    import brian2 as b2

    b2.prefs.codegen.target = target
    stats, walls, first_spikes, n_syn = [], [], None, 0
    for k, seed in enumerate(seeds if len(seeds) > 1 else seeds * 2):
        net, mon = build_cuba_brian2(cfg, seed=seed)
        t0 = time.perf_counter()
        net.run(seconds * b2.second)
        walls.append(time.perf_counter() - t0)
        t, i = np.asarray(mon.t_[:]), np.asarray(mon.i[:], dtype=np.int64)
        if k < len(seeds):
            stats.append(_stats(t, i, cfg, seconds))
        if first_spikes is None:
            first_spikes = (t, i)
            n_syn = sum(len(o) for o in net.objects if isinstance(o, b2.Synapses))
    row = {key: float(np.mean([s[key] for s in stats])) for key in ("rate_exc_hz", "rate_inh_hz", "cv_isi", "spikes")}
    row.update(synapses=n_syn, first_s=walls[0], warm_s=float(np.median(walls[1:])))
    return row, first_spikes


def standalone_worker(n: int, seconds: float, seed: int, directory: str) -> dict:
    """Build and run CUBA with Brian2's cpp_standalone device (call in a fresh process)."""
    import brian2 as b2

    b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    cfg = CUBAConfig(n=n)
    net, mon = build_cuba_brian2(cfg, seed=seed)
    net.run(seconds * b2.second)
    t0 = time.perf_counter()
    b2.device.build(directory=directory, compile=True, run=True, debug=False)
    wall = time.perf_counter() - t0
    t, i = np.asarray(mon.t_[:]), np.asarray(mon.i[:], dtype=np.int64)
    out = _stats(t, i, cfg, seconds)
    out.update(wall_s=wall, loop_s=float(b2.device._last_run_time), t=t.tolist(), i=i.tolist())
    return out


def run_brian2_standalone(cfg: CUBAConfig, seconds: float, seeds: list[int], directory: str | None = None) -> dict:
    """cpp_standalone in subprocesses: the first build compiles, the later ones reuse the objects."""
    own = directory is None
    directory = directory or tempfile.mkdtemp(prefix="cuba_standalone_")
    try:
        results = []
        for seed in (seeds if len(seeds) > 1 else seeds * 2):
            cmd = [sys.executable, "-m", "neurolns.scenarios.cuba_vs_brian2", "--standalone-worker", directory,
                   "--n", str(cfg.n), "--seconds", str(seconds), "--worker-seed", str(seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        if own:
            shutil.rmtree(directory, ignore_errors=True)
    stats = results[: len(seeds)]
    row = {key: float(np.mean([s[key] for s in stats])) for key in ("rate_exc_hz", "rate_inh_hz", "cv_isi", "spikes")}
    row.update(synapses=-1, first_s=results[0]["wall_s"], warm_s=float(np.median([r["wall_s"] for r in results[1:]])),
               loop_s=float(np.median([r["loop_s"] for r in results[1:]])))
    return row


def _plot(spikes: dict, cfg: CUBAConfig, seconds: float, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(spikes), figsize=(4.2 * len(spikes), 5.5), squeeze=False)
    for col, (label, (t, i)) in enumerate(spikes.items()):
        ax = axes[0, col]
        sel = i < min(cfg.n, 400)
        ax.plot(t[sel], i[sel], ",k")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("t (s)")
        ax.set_ylabel("neuron")
        rates = np.bincount(i, minlength=cfg.n) / seconds
        axes[1, col].hist(rates, bins=40, color="tab:blue")
        axes[1, col].set_xlabel("rate (Hz)")
        axes[1, col].set_ylabel("neurons")
    fig.tight_layout()
    fig.savefig(out / "raster_rates.png", dpi=110)
    plt.close(fig)


def _parse(argv):
    ap = ArgumentParser(prog="neurolns run cuba", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int_range(10), default=4000, help="neurons (in-degree kept at 80 E + 20 I inputs)")
    ap.add_argument("--seconds", type=float_range(1e-3), default=1.0, help="simulated time (s)")
    ap.add_argument("--seeds", type=int_range(1), default=1,
                    help="number of seeds (0, 1, ...) the statistics average over")
    ap.add_argument("--lns-format", default="lns8")
    ap.add_argument("--threads", type=int_range(1), default=1,
                    help="threads of the neurolns loop (spikes do not change)")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                    help="float type of the neurolns neuron state and weights")
    ap.add_argument("--no-brian2", action="store_true")
    ap.add_argument("--no-standalone", action="store_true", help="skip Brian2's cpp_standalone device")
    ap.add_argument("--out", default="results/cuba_vs_brian2")
    ap.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--standalone-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.standalone_worker:
        return args
    # everything a stage would refuse is refused here, before minutes of simulation
    args.cfg = checked(ap, CUBAConfig, n=args.n, flag=f"--n {args.n}")
    args.fmt = checked(ap, parse_format, args.lns_format, flag=f"--lns-format {args.lns_format!r}")
    args.out = checked(ap, OutputDir, args.out)
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    if args.standalone_worker:
        print(json.dumps(standalone_worker(args.n, args.seconds, args.worker_seed, args.standalone_worker)))
        return 0
    seeds = list(range(args.seeds))
    cfg, fmt, out = args.cfg, args.fmt, args.out.path
    rows, spikes = [], {}
    standalone = not args.no_brian2 and not args.no_standalone and shutil.which("g++")
    progress = Progress("cuba", 2 + (0 if args.no_brian2 else 1) + (1 if standalone else 0),
                        enabled=not args.no_progress)
    try:
        progress.step(f"neurolns {args.dtype}, {cfg.n} neurons, {args.seconds:g} s, {len(seeds)} seed(s)")
        row, sp = run_neurolns(cfg, args.seconds, seeds, threads=args.threads, dtype=args.dtype)
        rows.append({"simulator": f"neurolns {args.dtype}", **row})
        spikes[f"neurolns {args.dtype}"] = sp
        progress.step(f"neurolns {fmt.name}")
        row, sp = run_neurolns(cfg, args.seconds, seeds, fmt, threads=args.threads, dtype=args.dtype)
        rows.append({"simulator": f"neurolns {fmt.name}", **row})
        spikes[f"neurolns {fmt.name}"] = sp
        if not args.no_brian2:
            progress.step("brian2 runtime (cython, numpy without a compiler)")
            try:
                row, sp = run_brian2_runtime(cfg, args.seconds, seeds, "cython")
                rows.append({"simulator": "brian2 cython", **row})
            except Exception as exc:  # no compiler: the numpy target always works
                print(f"brian2 cython unavailable ({exc!r}); using numpy", file=sys.stderr)
                row, sp = run_brian2_runtime(cfg, args.seconds, seeds, "numpy")
                rows.append({"simulator": "brian2 numpy", **row})
            spikes[rows[-1]["simulator"]] = sp
            if standalone:
                progress.step("brian2 cpp_standalone (compiles first)")
                try:
                    rows.append({"simulator": "brian2 cpp_standalone",
                                 **run_brian2_standalone(cfg, args.seconds, seeds)})
                except subprocess.CalledProcessError as exc:
                    print(f"cpp_standalone failed: {exc.stderr[-2000:]}", file=sys.stderr)
    except KeyboardInterrupt:
        raise interrupted(args.out, lambda: _write(rows, spikes, cfg, args, seeds, out), len(rows),
                          "simulator row") from None
    progress.close()
    print(f"\nCUBA, {cfg.n} neurons, {args.seconds:g} s, seeds {seeds}, neurolns on {args.threads} thread(s)")
    print(" | ".join(f"{c:>22s}" if c == "simulator" else f"{c:>12s}" for c in COLS))
    for r in rows:
        cells = []
        for c in COLS:
            v = r[c]
            cells.append(f"{v:>22s}" if isinstance(v, str) else (f"{v:>12d}" if isinstance(v, int) else f"{v:>12.3f}"))
        print(" | ".join(cells))
    summary = _write(rows, spikes, cfg, args, seeds, out)
    if "vs_brian2" in summary:
        print("vs Brian2:", json.dumps(summary["vs_brian2"]))
    print(f"LNS vs float64 rate difference: {summary['lns_rate_rel_diff']:.3f}")
    print(f"results in {out}/")
    return 0


def _write(rows: list, spikes: dict, cfg: CUBAConfig, args, seeds: list, out: pathlib.Path) -> dict:
    """Write summary.json, summary.csv and the raster of the rows finished so far; return the summary."""
    summary = {"n": cfg.n, "seconds": args.seconds, "seeds": seeds, "threads": args.threads, "dtype": args.dtype,
               "rows": rows}
    base = rows[0]
    if len(rows) > 1:
        summary["lns_rate_rel_diff"] = abs(rows[1]["rate_exc_hz"] * 0.8 + rows[1]["rate_inh_hz"] * 0.2
                                           - (base["rate_exc_hz"] * 0.8 + base["rate_inh_hz"] * 0.2)) / max(
            base["rate_exc_hz"] * 0.8 + base["rate_inh_hz"] * 0.2, 1e-9)
    b2rows = [r for r in rows if r["simulator"].startswith("brian2") and "standalone" not in r["simulator"]]
    if b2rows:
        b = b2rows[0]
        rate_b = b["rate_exc_hz"] * cfg.exc_fraction + b["rate_inh_hz"] * (1 - cfg.exc_fraction)
        rate_f = base["rate_exc_hz"] * cfg.exc_fraction + base["rate_inh_hz"] * (1 - cfg.exc_fraction)
        summary["vs_brian2"] = {"rate_rel_diff": abs(rate_f - rate_b) / rate_b,
                                "cv_abs_diff": abs(base["cv_isi"] - b["cv_isi"])}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / "summary.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=COLS)
        wr.writeheader()
        for r in rows:
            wr.writerow({c: r[c] for c in COLS})
    _plot(spikes, cfg, args.seconds, out)
    return summary

if __name__ == "__main__":
    raise SystemExit(main())
