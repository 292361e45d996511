"""neurolns: learning in logarithmic number systems.

Synapses stored in a logarithmic number system (LNS), multiplicative plasticity
(Madam, LNS-Madam) driven by 1-bit learning signals (signSGD, Signum, majority
vote), bit-faithful Numba kernels, a PyTorch bridge, energy accounting and
system identification of sign-constrained circuits.

``import neurolns`` is light: it imports neither torch nor brian2 and compiles
nothing; kernels are compiled on first use.
"""

from neurolns.formats import (
    BF16,
    FP8_E4M3,
    FP8_E5M2,
    FP16,
    FP32,
    INT8,
    INT32,
    LNS8,
    LNS12,
    LNS16,
    FloatFormat,
    IntFormat,
    LNSFormat,
    Rounding,
    Underflow,
    parse_format,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "LNSFormat",
    "FloatFormat",
    "IntFormat",
    "Rounding",
    "Underflow",
    "parse_format",
    "FP32",
    "FP16",
    "BF16",
    "FP8_E4M3",
    "FP8_E5M2",
    "INT8",
    "INT32",
    "LNS8",
    "LNS12",
    "LNS16",
]
