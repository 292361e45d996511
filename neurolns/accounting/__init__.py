"""Energy and memory accounting: what a network costs in LNS against floating-point baselines.

* :class:`EnergyModel` — per-operation energies per format and per-bit memory
  energies, every number with its source (presets ``horowitz45``, the default,
  and ``7nm``; TOML and in-code overrides).
* Counting — :class:`Counts` of multiply-accumulates, elementwise operations and
  traffic per layer and phase; from plain layer descriptions here
  (:func:`mlp_counts`, :func:`dense_counts`, :func:`conv_counts`,
  :func:`spiking_counts`) and from a PyTorch model with
  ``neurolns.torch.counting.count_torch``.
* Rules — optimizer updates (Adam, Madam, LNS-Madam, ...), gradient exchange
  (FP32 all-reduce, 1-bit majority vote) and :data:`RECIPES`.
* Reports — :func:`inference_energy`, :func:`training_step_energy`,
  :func:`memory_footprint`, terminal table, JSON and stacked-bar PNG.

Nothing here imports torch.
"""
from neurolns.accounting.counts import (
    Counts,
    LayerCounts,
    Phase,
    conv_counts,
    dense_counts,
    log_softmax_nll_counts,
    maxpool_counts,
    mlp_counts,
    relu_counts,
    spiking_counts,
)
from neurolns.accounting.energy import EnergyModel, Figure, Kind, Op, available_presets, format_key
from neurolns.accounting.networks import count_sim, count_spiking
from neurolns.accounting.memory import MemoryFootprint, memory_footprint
from neurolns.accounting.report import (
    EnergyBreakdown,
    EnergyReport,
    counts_table,
    format_table,
    get_recipe,
    inference_energy,
    plot_energy_bars,
    price_layer,
    reports_to_json,
    training_step_energy,
)
from neurolns.accounting.rules import RECIPES, Exchange, Recipe, Rule, exchange_counts, update_counts

__all__ = [
    "EnergyModel", "Figure", "Kind", "Op", "available_presets", "format_key",
    "Counts", "LayerCounts", "Phase", "dense_counts", "conv_counts", "relu_counts", "maxpool_counts",
    "log_softmax_nll_counts", "mlp_counts", "spiking_counts", "count_sim", "count_spiking",
    "Recipe", "Rule", "Exchange", "RECIPES", "update_counts", "exchange_counts",
    "MemoryFootprint", "memory_footprint",
    "EnergyBreakdown", "EnergyReport", "price_layer", "inference_energy", "training_step_energy",
    "format_table", "counts_table", "reports_to_json", "plot_energy_bars", "get_recipe",
]
