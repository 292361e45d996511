"""Spiking networks with LNS synapses and log-domain plasticity.

Leaky integrate-and-fire neurons (current- or conductance-based synapses),
Poisson and spike-generator inputs, sparse event-driven projections whose
weights are float64 or LNS codes, pair-based STDP in three forms (additive,
soft-bound, log-domain) with an optional third factor, monitors with a memory
budget, and :func:`to_brian2` to rebuild any network in Brian2.

The whole time loop runs in Numba; nothing here imports brian2 until
:func:`to_brian2` is called.
"""
from neurolns.sim.spiking.brian2_export import Brian2Network, to_brian2
from neurolns.sim.spiking.connectivity import Connectivity, fixed_indegree, fixed_probability, from_lists
from neurolns.sim.spiking.monitors import MemoryBudgetError, RateMonitor, SpikeMonitor, StateMonitor, WeightMonitor
from neurolns.sim.spiking.network import Backend, Network, RunReport
from neurolns.sim.spiking.neurons import (
    Integration,
    LIFParams,
    NeuronGroup,
    PoissonGroup,
    SpikeGeneratorGroup,
    SynapseModel,
)
from neurolns.sim.spiking.plasticity import STDP, STDPRule, depress, potentiate
from neurolns.sim.spiking.stats import cv_isi, firing_rates, mean_cv_isi, mean_rate
from neurolns.sim.spiking.synapses import Synapses, Target

__all__ = [
    "LIFParams", "SynapseModel", "Integration", "NeuronGroup", "PoissonGroup", "SpikeGeneratorGroup",
    "Connectivity", "fixed_probability", "fixed_indegree", "from_lists",
    "Synapses", "Target", "STDP", "STDPRule", "potentiate", "depress",
    "Network", "Backend", "RunReport",
    "SpikeMonitor", "RateMonitor", "StateMonitor", "WeightMonitor", "MemoryBudgetError",
    "firing_rates", "mean_rate", "cv_isi", "mean_cv_isi",
    "to_brian2", "Brian2Network",
]
