"""System identification of sign-constrained circuits.

Retina circuit models (a fixed bank of difference-of-Gaussians bipolar types,
amacrines pooling bipolar blocks, a ganglion cell with or without a skip path),
the ground-truth circuits of Bagherian et al. (KDD 2021), synthetic stimuli,
fitting with Madam (sign-preserving, zero stays zero), ``w = s·|v|`` with Adam,
or unconstrained Adam, recovery metrics (R_sys, R_supp), prediction metrics,
and loaders for a user's own recordings. See ``docs/sysid.md``.
"""

from neurolns.sysid.bank import CANDIDATE_TYPES, TRUE_TYPES, DoGType, Geometry, bank_kernels, dog_kernel, kernel_bank
from neurolns.sysid.circuits import (
    CIRCUITS,
    RetinaCircuit,
    SysIDData,
    circuit1,
    circuit2,
    circuit3a,
    circuit3b,
    make_circuit,
    make_dataset,
)
from neurolns.sysid.data import Recording, check_recording, fit_recording, load_recording, save_recording
from neurolns.sysid.fit import FitConfig, FitMethod, FitResult, InitSigns, fit_circuit, init_weights
from neurolns.sysid.metrics import SUPPORT_THRESHOLD, correlation, explained_variance, r_supp, r_sys
from neurolns.sysid.model import (
    CircuitModel,
    CircuitWeights,
    Nonlinearity,
    bipolar_drive,
    bipolar_features,
    block_features,
    circuit_forward,
    circuit_grad,
)
from neurolns.sysid.stimuli import Stimulus, binary_images, flicker, make_images, poisson_spikes, white_noise_images
from neurolns.sysid.temporal import biphasic_filter, temporal_bank, temporal_features

__all__ = [
    "DoGType", "Geometry", "TRUE_TYPES", "CANDIDATE_TYPES", "dog_kernel", "kernel_bank", "bank_kernels",
    "Nonlinearity", "CircuitModel", "CircuitWeights", "bipolar_drive", "bipolar_features", "block_features",
    "circuit_forward", "circuit_grad",
    "RetinaCircuit", "SysIDData", "circuit1", "circuit2", "circuit3a", "circuit3b", "make_circuit", "make_dataset",
    "CIRCUITS",
    "FitMethod", "InitSigns", "FitConfig", "FitResult", "fit_circuit", "init_weights",
    "r_sys", "r_supp", "correlation", "explained_variance", "SUPPORT_THRESHOLD",
    "Stimulus", "make_images", "white_noise_images", "binary_images", "flicker", "poisson_spikes",
    "biphasic_filter", "temporal_bank", "temporal_features",
    "Recording", "check_recording", "load_recording", "save_recording", "fit_recording",
]
