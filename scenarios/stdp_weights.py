"""STDP weight distributions: 1000 Poisson inputs at 15 Hz onto one LIF neuron.

The setup of Song, Miller & Abbott (Nat. Neurosci. 3:919, 2000) as in Brian2's
``examples/synapses/STDP.py``: conductance-based LIF (τm 10 ms, El −74 mV,
Vt −54 mV, Vr −60 mV, Ee 0 mV, τe 5 ms, Euler), g_max 0.01, A+ = 0.01,
A− = 1.05 A+, τ± = 20 ms, initial weights uniform in [0, g_max]. Each
plasticity rule runs for ``--seconds`` (100 by default); the additive rule is
also run in Brian2 (the same network through ``to_brian2``) and compared: post
rate and the fractions of weights below 0.1 g_max and above 0.9 g_max.

Expected: additive STDP gives a bimodal histogram (Song et al.), soft-bound
(A− = 2 A+) a unimodal one near the middle, the log-domain rule on LNS8 codes
(started from w = g_max/2 so that the spread is its own, A− = 1.15 A+, cap
4 g_max) a unimodal, log-normal distribution (symmetric in log w).

Usage::

    python -m neurolns.scenarios.stdp_weights [--seconds 100] [--rules additive,log_domain]
        [--no-brian2] [--out results/stdp_weights]
"""
from __future__ import annotations

import csv
import json
import pathlib
import sys
import time
from dataclasses import dataclass

import numpy as np

from neurolns.cli.common import ArgumentParser, OutputDir, Progress, checked, float_range, int_range, interrupted
from neurolns.formats import LNS8, parse_format
from neurolns.sim.spiking import (
    STDP,
    LIFParams,
    Network,
    NeuronGroup,
    PoissonGroup,
    SpikeMonitor,
    Synapses,
    fixed_probability,
    to_brian2,
)

GMAX = 0.01
#: columns of the printed table and of summary.csv
COLS = ["simulator", "rule", "weights", "post_rate_hz", "frac_below_0.1", "frac_above_0.9", "mean_w_over_gmax",
        "sd_log10_w", "wall_s"]
RULES = ("additive", "soft_bound", "log_domain")


@dataclass
class StdpSetup:
    network: Network
    inputs: PoissonGroup
    neuron: NeuronGroup
    synapses: Synapses
    spikes: SpikeMonitor


def build_stdp(rule: str = "additive", *, weight_format=None, n_inputs: int = 1000, rate_hz: float = 15.0,
               seed: int = 0) -> StdpSetup:
    """The Song et al. network with one plasticity rule (weights float64 or ``weight_format``)."""
    params = LIFParams(tau_m_ms=10.0, v_rest_mV=-74.0, v_thresh_mV=-54.0, v_reset_mV=-60.0, refractory_ms=0.0,
                       synapse="conductance", tau_e_ms=5.0, E_e_mV=0.0, integration="euler")
    inputs = PoissonGroup(n_inputs, rate_hz=rate_hz, name="inputs")
    neuron = NeuronGroup(1, params, name="neuron")
    # soft bounds (μ+=0, μ−=1) settle where A+ = A− w̃, so A− = 2 A+ puts the mean at g_max/2
    a_minus = 0.02 if rule == "soft_bound" else 0.0105
    w_max = GMAX
    if rule == "log_domain":
        # no hard bound in sight (cap 4 g_max) and depression 15% above potentiation:
        # log w then walks without drifting into the cap (post rate ~19 Hz after 100 s)
        a_minus, w_max = 0.0115, 4 * GMAX
    stdp = STDP(rule, w_max=w_max, a_plus=0.01, a_minus=a_minus, tau_plus_ms=20.0, tau_minus_ms=20.0)
    if rule == "log_domain":
        # a log-domain walk from one value: the spread it builds is the rule's own
        w0 = np.full(n_inputs, 0.5 * GMAX)
    else:
        w0 = np.random.default_rng(seed).random(n_inputs) * GMAX
    syn = Synapses(inputs, neuron, fixed_probability(n_inputs, 1, 1.0), weight=w0, plasticity=stdp,
                   weight_format=weight_format, rounding="stochastic", seed=seed, name="input_synapses")
    spikes = SpikeMonitor(neuron)
    net = Network(syn, spikes, seed=seed, memory_budget_mb=256)
    return StdpSetup(net, inputs, neuron, syn, spikes)


def weight_stats(w: np.ndarray, post_t: np.ndarray, seconds: float) -> dict:
    window = min(10.0, seconds)
    return {
        "post_rate_hz": float(np.sum(post_t >= seconds - window) / window),
        "frac_below_0.1": float(np.mean(w < 0.1 * GMAX)),
        "frac_above_0.9": float(np.mean(w > 0.9 * GMAX)),
        "mean_w_over_gmax": float(np.mean(w) / GMAX),
        "sd_log10_w": float(np.std(np.log10(w[w > 0]))) if np.any(w > 0) else float("nan"),
    }


def run_rule(rule: str, fmt, seconds: float, seed: int) -> tuple[dict, np.ndarray]:
    setup = build_stdp(rule, weight_format=fmt, seed=seed)
    t0 = time.perf_counter()
    setup.network.run(seconds, progress=seconds >= 10)
    wall = time.perf_counter() - t0
    w = setup.synapses.weights
    row = {"simulator": "neurolns", "rule": rule, "weights": "float64" if fmt is None else fmt.name, "wall_s": wall}
    row.update(weight_stats(w, setup.spikes.t, seconds))
    return row, w


def run_brian2(seconds: float, seed: int, target: str) -> tuple[dict, np.ndarray]:
    import brian2 as b2

    b2.prefs.codegen.target = target
    b2.seed(seed)
    setup = build_stdp("additive", seed=seed)
    twin = to_brian2(setup.network)
    t0 = time.perf_counter()
    twin.run(seconds)
    wall = time.perf_counter() - t0
    w = np.asarray(twin.synapses[setup.synapses.name].w[:], dtype=np.float64)
    t, _ = twin.spikes(setup.neuron.name)
    row = {"simulator": f"brian2 ({target})", "rule": "additive", "weights": "float64", "wall_s": wall}
    row.update(weight_stats(w, t, seconds))
    return row, w


def _plot(weights: dict, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(weights), figsize=(4 * len(weights), 3.2), squeeze=False)
    for ax, (label, w) in zip(axes[0], weights.items()):
        if "log_domain" in label:
            wp = w[w > 0] / GMAX
            ax.hist(np.log10(wp), bins=40, color="tab:green")
            ax.set_xlabel("log10(w / g_max)")
        else:
            ax.hist(w / GMAX, bins=40, range=(0, 1), color="tab:blue")
            ax.set_xlabel("w / g_max")
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("synapses")
    fig.tight_layout()
    fig.savefig(out / "weight_histograms.png", dpi=110)
    plt.close(fig)


def _parse(argv):
    ap = ArgumentParser(prog="neurolns run stdp", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float_range(1e-3), default=100.0, help="simulated time per rule (s)")
    ap.add_argument("--rules", default=",".join(RULES), help="comma-separated subset of " + ",".join(RULES))
    ap.add_argument("--log-format", default="lns8", help="LNS format of the log-domain rule's weights")
    ap.add_argument("--no-brian2", action="store_true", help="skip the Brian2 run of the additive rule")
    ap.add_argument("--brian2-target", default="cython", choices=["cython", "numpy"])
    ap.add_argument("--seed", type=int_range(0), default=0)
    ap.add_argument("--out", default="results/stdp_weights")
    ap.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    args.rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    if not args.rules:
        ap.error(f"--rules names no rule; allowed: {', '.join(RULES)}")
    for r in args.rules:
        if r not in RULES:
            ap.error(f"unknown rule {r!r}; allowed: {', '.join(RULES)}")
    args.log_fmt = (checked(ap, parse_format, args.log_format, flag=f"--log-format {args.log_format!r}")
                    if args.log_format else LNS8)
    args.out = checked(ap, OutputDir, args.out)
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    rules, log_fmt, out = args.rules, args.log_fmt, args.out.path
    brian2 = not args.no_brian2 and "additive" in rules
    progress = Progress("stdp", len(rules) + brian2, enabled=not args.no_progress)
    rows, weights = [], {}
    try:
        for rule in rules:
            progress.step(f"{rule} rule, {args.seconds:g} s simulated")
            fmt = log_fmt if rule == "log_domain" else None
            row, w = run_rule(rule, fmt, args.seconds, args.seed)
            rows.append(row)
            weights[f"{rule} ({row['weights']})"] = w
        if brian2:
            progress.step(f"additive rule in brian2 ({args.brian2_target})")
            try:
                row, w = run_brian2(args.seconds, args.seed, args.brian2_target)
            except Exception as exc:  # a missing compiler: fall back to numpy
                if args.brian2_target == "numpy":
                    raise
                print(f"brian2 {args.brian2_target} failed ({exc!r}); using numpy", file=sys.stderr)
                row, w = run_brian2(args.seconds, args.seed, "numpy")
            rows.append(row)
            weights[f"additive ({row['simulator']})"] = w
    except KeyboardInterrupt:
        raise interrupted(args.out, lambda: _write(rows, weights, args, out), len(rows), "rule") from None
    progress.close()
    print(f"\nSTDP, 1000 Poisson inputs at 15 Hz, {args.seconds:g} s")
    print(" | ".join(f"{c:>16s}" for c in COLS))
    for r in rows:
        print(" | ".join(f"{r[c]:>16.3f}" if isinstance(r[c], float) else f"{r[c]:>16s}" for c in COLS))
    summary = _write(rows, weights, args, out)
    if "vs_brian2" in summary:
        print("vs Brian2:", json.dumps(summary["vs_brian2"]))
    print(f"results in {out}/")
    return 0


def _write(rows: list, weights: dict, args, out: pathlib.Path) -> dict:
    """Write summary.json, summary.csv, weights.npz and the histograms of the rules run so far."""
    summary = {"seconds": args.seconds, "seed": args.seed, "rows": rows}
    ref = [r for r in rows if r["simulator"].startswith("brian2")]
    ours = [r for r in rows if r["simulator"] == "neurolns" and r["rule"] == "additive"]
    if ref and ours:
        a, b = ours[0], ref[0]
        summary["vs_brian2"] = {
            "post_rate_rel_diff": abs(a["post_rate_hz"] - b["post_rate_hz"]) / max(b["post_rate_hz"], 1e-9),
            "below_0.1_points": 100 * abs(a["frac_below_0.1"] - b["frac_below_0.1"]),
            "above_0.9_points": 100 * abs(a["frac_above_0.9"] - b["frac_above_0.9"]),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / "summary.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=COLS)
        wr.writeheader()
        for r in rows:
            wr.writerow({c: r[c] for c in COLS})
    np.savez(out / "weights.npz", **{k.replace(" ", "_"): v for k, v in weights.items()})
    _plot(weights, out)
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
