"""Record Brian2 reference statistics for the spiking tests (brian2_reference.json).

Run from the repository root::

    .venv/bin/python tests/spiking/make_brian2_reference.py [--target cython] [--stdp-seconds 100]

CUBA (Brian2's examples/CUBA.py, built by neurolns.models.cuba.build_cuba_brian2):
mean rates of E and I and mean CV of ISI over 1 s for seeds 0..4. STDP (Brian2's
examples/synapses/STDP.py, via to_brian2 of the scenario's network): post rate
and weight fractions below 0.1 gmax / above 0.9 gmax after the run.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

HERE = pathlib.Path(__file__).parent


def cuba_stats(seed: int, duration_s: float = 1.0) -> dict:
    import brian2 as b2

    from neurolns.models.cuba import CUBAConfig, build_cuba_brian2
    from neurolns.sim.spiking.stats import mean_cv_isi, mean_rate

    cfg = CUBAConfig()
    net, mon = build_cuba_brian2(cfg, seed=seed)
    net.run(duration_s * b2.second)
    t, i = np.asarray(mon.t_[:]), np.asarray(mon.i[:])
    exc = i < cfg.n_exc
    return {
        "seed": seed,
        "rate_exc_hz": mean_rate(i[exc], cfg.n_exc, duration_s),
        "rate_inh_hz": mean_rate(i[~exc] - cfg.n_exc, cfg.n_inh, duration_s),
        "rate_hz": mean_rate(i, cfg.n, duration_s),
        "cv_isi": mean_cv_isi(t, i, cfg.n),
    }


def stdp_stats(seconds: float, seed: int = 0) -> dict:
    import brian2 as b2

    from neurolns.scenarios.stdp_weights import build_stdp
    from neurolns.sim.spiking import to_brian2

    b2.seed(seed)
    setup = build_stdp("additive", seed=seed)
    twin = to_brian2(setup.network)
    twin.run(seconds)
    w = np.asarray(twin.synapses[setup.synapses.name].w[:], dtype=np.float64)
    gmax = setup.synapses.plasticity.w_max
    t, _ = twin.spikes(setup.neuron.name)
    return {
        "seconds": seconds,
        "post_rate_hz": float(np.sum(t >= seconds - 10.0) / min(10.0, seconds)),
        "frac_below_0.1": float(np.mean(w < 0.1 * gmax)),
        "frac_above_0.9": float(np.mean(w > 0.9 * gmax)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="cython", choices=["numpy", "cython"])
    ap.add_argument("--stdp-seconds", type=float, default=100.0)
    ap.add_argument("--out", default=str(HERE / "brian2_reference.json"))
    args = ap.parse_args()
    import brian2 as b2

    b2.prefs.codegen.target = args.target
    t0 = time.time()
    cuba = [cuba_stats(s) for s in range(5)]
    stdp = stdp_stats(args.stdp_seconds)
    out = {
        "brian2_version": b2.__version__,
        "target": args.target,
        "cuba_1s": cuba,
        "cuba_1s_mean": {k: float(np.mean([c[k] for c in cuba])) for k in ("rate_exc_hz", "rate_inh_hz", "rate_hz", "cv_isi")},
        "stdp_additive": stdp,
        "wall_s": time.time() - t0,
    }
    pathlib.Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
