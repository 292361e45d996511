"""Turn counts into energy: per layer and phase, compute against memory, and reports.

The energy of a :class:`~neurolns.accounting.LayerCounts` priced in format ``F``
under an :class:`~neurolns.accounting.EnergyModel` (all in pJ):

.. math::

    E_\\text{compute} = N_\\text{MAC}\\, e_\\text{fma}(F) + N_\\text{out}\\, e_\\text{conv}(F)
        + \\sum_{op,f} n_{op,f}\\, e_{op}(f) + e_\\text{overhead}\\,(N_\\text{MAC} + \\sum n)

    E_\\text{memory} = N_\\text{MAC}\\, r\\, b_F\\, e_\\text{reg}
        + \\sum_{\\text{accesses}} n\\, b_f\\, e_{\\text{level}(\\text{tensor bytes})} + B_\\text{link}\\, e_\\text{link}

with ``r`` register operands per MAC, ``b`` bits per element and the level SRAM
when the tensor fits the on-chip buffer, DRAM otherwise.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from neurolns.accounting.counts import Counts, LayerCounts, Phase
from neurolns.accounting.energy import EnergyModel, format_bits, format_key
from neurolns.accounting.memory import MemoryFootprint, memory_footprint
from neurolns.accounting.rules import RECIPES, Recipe, exchange_counts, update_counts

__all__ = [
    "EnergyBreakdown",
    "EnergyReport",
    "price_layer",
    "inference_energy",
    "training_step_energy",
    "format_table",
    "counts_table",
    "reports_to_json",
    "plot_energy_bars",
    "get_recipe",
]

LEVELS = ("register", "sram", "dram", "link")


@dataclass
class EnergyBreakdown:
    """Energy in pJ: ``compute`` and memory by level."""

    compute: float = 0.0
    register: float = 0.0
    sram: float = 0.0
    dram: float = 0.0
    link: float = 0.0

    @property
    def memory(self) -> float:
        return self.register + self.sram + self.dram + self.link

    @property
    def total(self) -> float:
        return self.compute + self.memory

    def __iadd__(self, other: "EnergyBreakdown") -> "EnergyBreakdown":
        for k in ("compute",) + LEVELS:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        return self

    def scaled(self, k: float) -> "EnergyBreakdown":
        return EnergyBreakdown(*(getattr(self, a) * k for a in ("compute",) + LEVELS))

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("compute",) + LEVELS}
        d.update(memory=self.memory, total=self.total)
        return d


def price_layer(lc: LayerCounts, fmt, model: EnergyModel) -> EnergyBreakdown:
    """Energy of one layer's counts with unnamed-format work priced in ``fmt`` (pJ).

    Raises ``ValueError`` naming the field if a count is negative, NaN or infinite
    (:meth:`LayerCounts.check`): a negative count would be priced as negative energy.
    """
    if not isinstance(lc, LayerCounts):
        raise TypeError(f"lc must be a LayerCounts, got {type(lc).__name__}")
    lc.check()
    e = EnergyBreakdown()
    n_ops = lc.macs
    e.compute += lc.macs * model.mac_pj(fmt) + lc.dot_outputs * model.conversion_pj(fmt)
    for (op, f), n in lc.ops.items():
        e.compute += n * model.cost(fmt if f is None else f, op).value
        n_ops += n
    e.compute += model.setting("overhead_pj_per_op") * n_ops
    bits = format_bits(fmt)
    e.register += lc.macs * model.setting("register_operands_per_mac") * bits * model.level_pj_per_bit("register")
    for counter in (lc.reads, lc.writes):
        for (numel, f), n in counter.items():
            b = bits if f is None else format_bits(f)
            level = model.level_for(numel * b / 8)
            setattr(e, level, getattr(e, level) + n * b * model.level_pj_per_bit(level))
    e.link += lc.link_bits * model.level_pj_per_bit("link")
    return e


@dataclass
class EnergyReport:
    """Energy of one run (an inference or a training step) under one recipe.

    Attributes
    ----------
    recipe : Recipe
    rows : list of (layer, phase, EnergyBreakdown)
    batch : int
        Samples the run processed.
    memory : MemoryFootprint
    model_name : str
        Energy model used.
    """

    recipe: Recipe
    rows: list = field(default_factory=list)
    batch: int = 1
    memory: MemoryFootprint | None = None
    model_name: str = ""
    macs: float = 0.0

    @property
    def total(self) -> EnergyBreakdown:
        t = EnergyBreakdown()
        for _, _, e in self.rows:
            t += e
        return t

    def by_phase(self) -> dict:
        out: dict = {}
        for _, ph, e in self.rows:
            out.setdefault(ph.value, EnergyBreakdown())
            out[ph.value] += e
        return out

    def by_layer(self) -> dict:
        out: dict = {}
        for name, _, e in self.rows:
            out.setdefault(name, EnergyBreakdown())
            out[name] += e
        return out

    def per_sample(self) -> EnergyBreakdown:
        return self.total.scaled(1.0 / self.batch)

    def to_dict(self) -> dict:
        return dict(
            recipe=self.recipe.name, compute_format=format_key(self.recipe.compute), energy_model=self.model_name,
            batch=self.batch, macs=self.macs, total_pj=self.total.to_dict(),
            per_sample_pj=self.per_sample().to_dict(),
            by_phase_pj={k: v.to_dict() for k, v in self.by_phase().items()},
            by_layer_pj={k: v.to_dict() for k, v in self.by_layer().items()},
            memory_bytes=self.memory.to_dict() if self.memory else None,
        )


def get_recipe(recipe) -> Recipe:
    """A :class:`Recipe`, a key of :data:`RECIPES` (or an underscored name of
    earlier releases), or a format name: inference in that format."""
    from neurolns.recipes import get_recipe as _preset

    if isinstance(recipe, str):
        try:
            return _preset(recipe)
        except ValueError:
            return Recipe(format_key(recipe).upper(), compute=recipe, rule="none", exchange="none")
    return _preset(recipe)


def phase_format(recipe: Recipe, phase) -> str:
    """The format unnamed work of a phase is priced in: forward work in the
    recipe's ``compute``, backward work in its error-signal format, the update
    and the exchange in ``compute`` (their operations name their own formats)."""
    return recipe.errors_fmt if Phase(phase) is Phase.BACKWARD else recipe.compute


def _price(counts_layers, recipe: Recipe, model: EnergyModel) -> list:
    return [(lc.name, lc.phase, price_layer(lc, phase_format(recipe, lc.phase), model)) for lc in counts_layers]


def _check_counts(counts) -> None:
    if not isinstance(counts, Counts):
        raise TypeError(f"counts must be a Counts, got {type(counts).__name__}")
    counts.check()


def inference_energy(counts: Counts, recipe="fp32", model: EnergyModel | None = None) -> EnergyReport:
    """Energy of the forward pass of ``counts`` (training counts: their forward phase).

    Parameters
    ----------
    counts : Counts
    recipe : Recipe or str
        A recipe, a :data:`RECIPES` key or a format name (``"lns8"``).
    model : EnergyModel, optional
        Default ``EnergyModel.preset("horowitz45")``.
    """
    recipe = get_recipe(recipe)
    _check_counts(counts)
    model = model or EnergyModel.preset()
    layers = counts.phase(Phase.FORWARD)
    rep = EnergyReport(recipe, _price(layers, recipe, model), counts.batch,
                       memory_footprint(counts, recipe, training=False), model.name,
                       sum(lc.macs for lc in layers))
    return rep


def training_step_energy(counts: Counts, recipe="fp32-adam", model: EnergyModel | None = None, *,
                         workers: int = 1) -> EnergyReport:
    """Energy of one training step: forward and backward of ``counts`` (the global
    batch), the optimizer update on each of ``workers`` replicas, and the
    gradient exchange among them.

    Raises
    ------
    ValueError
        If the recipe has no update rule or ``counts`` has no backward phase.
    """
    recipe = get_recipe(recipe)
    _check_counts(counts)
    if not recipe.trains:
        raise ValueError(f"recipe {recipe.name!r} has rule 'none': it does not train; use inference_energy")
    if not counts.phase(Phase.BACKWARD):
        raise ValueError("counts have no backward phase: count with training=True")
    model = model or EnergyModel.preset()
    layers = list(counts.layers)
    layers += update_counts(recipe, counts.param_tensors, replicas=workers)
    layers += exchange_counts(recipe, counts.param_tensors, workers)
    return EnergyReport(recipe, _price(layers, recipe, model), counts.batch, memory_footprint(counts, recipe),
                        model.name, sum(lc.macs for lc in layers))


# ----------------------------------------------------------------------------- outputs
def _eng(x: float, unit: str = "J") -> str:
    for scale, prefix in ((1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if abs(x) >= scale:
            return f"{x / scale:8.3f} {prefix}{unit}"
    return f"{x:8.3g} {unit}"


def format_table(reports, *, per_sample: bool = False, baseline: int = 0) -> str:
    """A terminal table: compute, on-chip memory, DRAM+link, total and the ratio
    to ``reports[baseline]``, plus bytes per parameter and peak memory."""
    head = f"{'recipe':<28s} {'compute':>12s} {'reg+SRAM':>12s} {'DRAM+link':>12s} {'total':>12s} {'ratio':>7s} {'B/param':>8s} {'peak':>11s}"
    lines = [head, "-" * len(head)]
    base = None
    for i, r in enumerate(reports):
        e = r.per_sample() if per_sample else r.total
        if i == baseline:
            base = e.total
        ratio = e.total / base if base else float("nan")
        mem = r.memory
        bpp = f"{mem.bytes_per_param:8.2f}" if mem else f"{'-':>8s}"
        lines.append(
            f"{r.recipe.name:<28s} {_eng(e.compute * 1e-12):>12s} {_eng((e.register + e.sram) * 1e-12):>12s} "
            f"{_eng((e.dram + e.link) * 1e-12):>12s} {_eng(e.total * 1e-12):>12s} {ratio:7.3f} {bpp} {_bytes(mem.peak) if mem else '':>11s}"
        )
    return "\n".join(lines)


def counts_table(counts: Counts, fmt="fp32", *, phase=None) -> str:
    """Per layer and phase: MACs, multiplies, adds, compares, other operations and
    bytes read/written at ``fmt``'s width (named-format entries at their own)."""
    _check_counts(counts)
    head = (f"{'layer':<28s} {'kind':<14s} {'phase':<9s} {'MACs':>14s} {'mul':>11s} {'add':>11s} {'cmp':>11s} "
            f"{'other':>9s} {'read':>10s} {'written':>10s}")
    lines = [head, "-" * len(head)]
    layers = counts.layers if phase is None else counts.phase(phase)
    for lc in layers + [counts.total(phase)]:
        other = sum(lc.count(o) for o in ("div", "sqrt", "exp", "lut", "shift", "fma"))
        lines.append(
            f"{lc.name[:28]:<28s} {lc.kind[:14]:<14s} {lc.phase.value if lc.name != 'total' else '':<9s} "
            f"{lc.macs:>14,.0f} {lc.count('mul'):>11,.0f} {lc.count('add'):>11,.0f} {lc.count('cmp'):>11,.0f} "
            f"{other:>9,.0f} {_bytes(lc.bytes_moved(fmt, 'read')):>10s} {_bytes(lc.bytes_moved(fmt, 'write')):>10s}"
        )
    return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n:.0f} B"


def reports_to_json(reports, path=None, **extra) -> str:
    """JSON of the reports (and ``extra`` fields); written to ``path`` if given."""
    text = json.dumps(dict(reports=[r.to_dict() for r in reports], **extra), indent=2, default=str)
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text


def plot_energy_bars(reports, path, *, per_sample: bool = False, title: str = "") -> None:
    """PNG of stacked bars per recipe: compute, register, SRAM, DRAM and link energy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.recipe.name for r in reports]
    parts = ("compute",) + LEVELS
    colors = {"compute": "#4c72b0", "register": "#8fbc8f", "sram": "#55a868", "dram": "#c44e52", "link": "#8172b2"}
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(reports), 4.0))
    totals = [(r.per_sample() if per_sample else r.total) for r in reports]
    top = max((e.total for e in totals), default=1.0)
    scale, unit = next(((k, u) for k, u in ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ")) if top >= k),
                       (1.0, "pJ"))
    bottom = [0.0] * len(reports)
    for p in parts:
        vals = [getattr(e, p) / scale for e in totals]
        ax.bar(names, vals, bottom=bottom, label=p, color=colors[p])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel(f"energy ({unit}" + (" per sample)" if per_sample else ")"))
    ax.set_title(title or "compute vs memory energy")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

