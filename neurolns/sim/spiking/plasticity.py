"""Pair-based spike-timing-dependent plasticity with traces, in three named forms.

Every plastic synapse sees two traces: ``x`` of its presynaptic neuron and ``y``
of its postsynaptic neuron. Each jumps by 1 at a spike of its neuron and decays
as ``τ+ dx/dt = −x``, ``τ− dy/dt = −y`` (all-to-all pairing). A presynaptic
spike depresses with ``y``, a postsynaptic spike potentiates with ``x``.
With ``w̃ = w / w_max`` and an optional third factor ``m ∈ {−1, 0, +1}``:

``additive`` (Song, Miller & Abbott, Nat. Neurosci. 3:919, 2000; hard bounds)::

    post spike: w ← clip(w + m A+ w_max x, 0, w_max)
    pre spike:  w ← clip(w − m A− w_max y, 0, w_max)

``soft_bound`` — "multiplicative" STDP (van Rossum, Bi & Turrigiano, J. Neurosci.
20:8812, 2000; NEST ``stdp_synapse`` with exponents μ+, μ−; μ=0 is additive,
van Rossum's rule is μ+=0, μ−=1)::

    post spike: w̃ ← clip(w̃ + m A+ (1 − w̃)^μ+ x, 0, 1)
    pre spike:  w̃ ← clip(w̃ − m A− w̃^μ− y, 0, 1)

``log_domain`` — grow/shrink by a factor, additive in log w::

    post spike: w ← w (1 + A+)^(m x)
    pre spike:  w ← w (1 + A−)^(−m y),    |w| ≤ w_max

With LNS weights (base 2^(1/γ)) the log-domain step is an integer add of
``k = round(m γ log2(1 + A) x)`` to the exponent code — stochastic rounding keeps
it unbiased for steps below one code — and the sign of w never changes; a zero
weight stays zero. The other two rules decode, update and re-encode.

The third factor (``third_factor=True``) multiplies every weight change by the
sign of a modulatory signal given per time step to :meth:`Network.run` — a
1-bit reward or error signal gating (m=+1), reversing (m=−1) or freezing (m=0)
STDP at the moment of each pairing.

The functions :func:`potentiate` and :func:`depress` are the float64 reference of
the updates the Numba kernel applies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurolns.formats import Rounding, _StrEnum

__all__ = ["STDPRule", "STDP", "potentiate", "depress"]


class STDPRule(_StrEnum):
    """The three plasticity forms; see the module docstring for the formulas."""

    ADDITIVE = "additive"
    SOFT_BOUND = "soft_bound"
    LOG_DOMAIN = "log_domain"


#: integer ids the kernel dispatches on
RULE_ID = {STDPRule.ADDITIVE: 0, STDPRule.SOFT_BOUND: 1, STDPRule.LOG_DOMAIN: 2}


@dataclass(frozen=True)
class STDP:
    """Pair-based STDP configuration.

    Parameters
    ----------
    rule : STDPRule or str
        ``"additive"``, ``"soft_bound"`` or ``"log_domain"``.
    w_max : float
        Upper bound of |w| (weight units: mV for current-based targets,
        dimensionless for conductance-based). Song et al.'s g_max = 0.01.
    a_plus, a_minus : float
        Potentiation / depression amplitudes: fractions of ``w_max`` for the
        additive and soft-bound rules, factors ``1 + A`` for the log-domain
        rule. Song et al.: A+ = 0.01, A− = 1.05 A+ (with τ+ = τ−).
    tau_plus_ms, tau_minus_ms : float
        Decay times of the pre (x) and post (y) traces, ms. Song et al.: 20 ms.
    mu_plus, mu_minus : float
        Soft-bound exponents (NEST's μ+, μ−), ≥ 0; only for ``soft_bound``.
    third_factor : bool
        Multiply each change by the per-step modulatory sign given to ``run``.
    rounding : Rounding or str
        How an updated LNS weight is rounded to a code (``"stochastic"``
        default: unbiased in the log domain; ``"nearest"`` freezes any change
        smaller than half a code step).
    """

    rule: STDPRule = STDPRule.ADDITIVE
    w_max: float = 0.01
    a_plus: float = 0.01
    a_minus: float = 0.0105
    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    mu_plus: float = 0.0
    mu_minus: float = 1.0
    third_factor: bool = False
    rounding: Rounding = Rounding.STOCHASTIC

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", STDPRule(self.rule))
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        for name in ("w_max", "tau_plus_ms", "tau_minus_ms"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v} is out of range; allowed: a finite value > 0")
            object.__setattr__(self, name, v)
        for name in ("a_plus", "a_minus", "mu_plus", "mu_minus"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}={v} is out of range; allowed: a finite value >= 0")
            object.__setattr__(self, name, v)
        if self.rule is STDPRule.LOG_DOMAIN and (self.a_plus >= 1 or self.a_minus >= 1):
            raise ValueError(
                f"log_domain factors a_plus={self.a_plus}, a_minus={self.a_minus} out of range; "
                "allowed: 0 <= a < 1"
            )
        if not isinstance(self.third_factor, (bool, np.bool_)):
            raise TypeError(f"third_factor must be a bool, got {self.third_factor!r}")

    @property
    def rule_id(self) -> int:
        return RULE_ID[self.rule]


def potentiate(w, x, stdp: STDP, m=1.0) -> np.ndarray:
    """Weight after a postsynaptic spike with presynaptic trace ``x`` (float64 reference).

    Examples
    --------
    >>> from neurolns.sim.spiking import STDP, potentiate
    >>> float(potentiate(0.005, 1.0, STDP("additive", w_max=0.01, a_plus=0.1)))
    0.006
    """
    return _update(np.asarray(w, dtype=np.float64), np.asarray(x, dtype=np.float64), stdp, float(m), +1)


def depress(w, y, stdp: STDP, m=1.0) -> np.ndarray:
    """Weight after a presynaptic spike with postsynaptic trace ``y`` (float64 reference)."""
    return _update(np.asarray(w, dtype=np.float64), np.asarray(y, dtype=np.float64), stdp, float(m), -1)


def _update(w, tr, stdp: STDP, m: float, direction: int) -> np.ndarray:
    a = stdp.a_plus if direction > 0 else stdp.a_minus
    wmax = stdp.w_max
    if stdp.rule is STDPRule.ADDITIVE:
        return np.clip(w + direction * m * a * wmax * tr, 0.0, wmax)
    if stdp.rule is STDPRule.SOFT_BOUND:
        wt = w / wmax
        if direction > 0:
            wt = wt + m * a * (1.0 - wt) ** stdp.mu_plus * tr
        else:
            wt = wt - m * a * np.abs(wt) ** stdp.mu_minus * tr
        return np.clip(wt, 0.0, 1.0) * wmax
    # log domain: sign-preserving, capped in magnitude
    out = w * np.exp(direction * m * tr * math.log1p(a))
    return np.clip(out, -wmax, wmax)
