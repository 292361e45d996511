"""Projections: connectivity, weights (float64 or LNS codes), delay and plasticity."""
from __future__ import annotations

import math

import numpy as np

from neurolns.formats import LNSFormat, Rounding, _StrEnum
from neurolns.sim.spiking.connectivity import Connectivity
from neurolns.sim.spiking.neurons import NeuronGroup, _Group
from neurolns.sim.spiking.plasticity import STDP, STDPRule

__all__ = ["Target", "Synapses"]


class Target(_StrEnum):
    """Which synaptic variable of the postsynaptic neuron a spike increments."""

    E = "e"
    I = "i"  # noqa: E741 - the variable is called gi


class Synapses:
    """A projection from ``pre`` to ``post``: ``g_target[j] += w`` at each spike of ``i``.

    Weights are stored either as float64 (the reference) or, with
    ``weight_format``, as signed LNS codes with one power-of-two scale per
    projection (``w = sign(c) σ 2^((|c| − β)/γ)``, :mod:`neurolns.lns`).
    With ``shared=True`` a float weight is stored once for the whole
    projection, as a Brian2 ``(shared)`` synaptic variable or a constant in
    ``on_pre`` (Brian2's CUBA example: ``ge += we``).

    Parameters
    ----------
    pre, post : group
        Source (any group) and target (a :class:`NeuronGroup`).
    connectivity : Connectivity
        From :func:`fixed_probability`, :func:`fixed_indegree` or :func:`from_lists`.
    weight : float or array_like
        Weight per synapse (mV for current-based targets — CUBA's we = 1.62 mV,
        wi = −9 mV —, dimensionless conductance for conductance-based ones).
    target : {"e", "i"}
        Increment ``ge`` or ``gi``.
    weight_format : LNSFormat, optional
        Store the weights as LNS codes of this format (None: float64).
    rounding : {"nearest", "stochastic"}
        How the initial weights are rounded to codes. Stochastic rounding is
        unbiased in the log domain, so a homogeneous weight keeps its mean
        instead of moving to the nearest code (up to 4.4% away in LNS8, γ=8).
    delay_ms : float
        Transmission delay (ms, ≥ 0), the same for every synapse of the
        projection; rounded to whole steps. Plastic projections need 0.
    shared : bool
        Store one float weight for every synapse (``weight`` a scalar; no
        ``weight_format``, no plasticity). A spike then reads only the
        targets of its row, 4 bytes a synapse instead of 12, and gives the
        same result as the same weight stored per synapse.
    plasticity : STDP, optional
    seed : int, optional
        Seed of the stochastic rounding of the initial weights.
    name : str, optional
    """

    _counter = 0

    def __init__(self, pre, post, connectivity: Connectivity, *, weight, target="e",
                 weight_format: LNSFormat | None = None, rounding="nearest", delay_ms: float = 0.0,
                 plasticity: STDP | None = None, seed=None, name: str | None = None, shared: bool = False):
        if not isinstance(pre, _Group):
            raise TypeError(f"pre must be a neuron group, got {type(pre).__name__}")
        if not isinstance(post, NeuronGroup):
            raise TypeError(f"post must be a NeuronGroup, got {type(post).__name__}")
        if not isinstance(connectivity, Connectivity):
            raise TypeError(f"connectivity must be a Connectivity, got {type(connectivity).__name__}")
        if (connectivity.n_pre, connectivity.n_post) != (pre.n, post.n):
            raise ValueError(
                f"connectivity is {connectivity.n_pre}x{connectivity.n_post} but the groups are "
                f"{pre.n}x{post.n}"
            )
        if weight_format is not None and not isinstance(weight_format, LNSFormat):
            raise TypeError(f"weight_format must be an LNSFormat or None, got {weight_format!r}")
        if plasticity is not None and not isinstance(plasticity, STDP):
            raise TypeError(f"plasticity must be an STDP or None, got {type(plasticity).__name__}")
        delay = float(delay_ms)
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"delay_ms={delay} is out of range; allowed: a finite value >= 0")
        if plasticity is not None and delay > 0:
            raise ValueError("plastic projections need delay_ms=0 (pairing happens at the spike)")
        if not isinstance(shared, (bool, np.bool_)):
            raise TypeError(f"shared must be a bool, got {shared!r}")
        if shared:
            if weight_format is not None:
                raise ValueError("shared=True stores one float weight; weight_format must be None")
            if plasticity is not None:
                raise ValueError("shared=True cannot learn (plasticity changes each synapse's weight)")
            if np.ndim(weight) != 0:
                raise ValueError(f"shared=True takes one weight, a scalar; got shape {np.shape(weight)}")
        self._shared = bool(shared)
        Synapses._counter += 1
        self.name = name or f"synapses_{Synapses._counter}"
        self.pre, self.post = pre, post
        self.connectivity = connectivity
        self.target = Target(target)
        self.weight_format = weight_format
        self.rounding = Rounding(rounding)
        self.delay_ms = delay
        self.plasticity = plasticity
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (connectivity.n_synapses,))
        if not np.all(np.isfinite(w)):
            raise ValueError("weight must be finite")
        if plasticity is not None:
            wmax = plasticity.w_max
            if plasticity.rule is STDPRule.LOG_DOMAIN:
                bad = np.abs(w) > wmax * (1 + 1e-12)
            else:
                bad = (w < 0) | (w > wmax * (1 + 1e-12))
            if np.any(bad):
                allowed = f"|w| <= {wmax}" if plasticity.rule is STDPRule.LOG_DOMAIN else f"0 <= w <= {wmax}"
                raise ValueError(f"initial weights out of range for {plasticity.rule.value} STDP; allowed: {allowed}")
        self._seed = seed
        self.scale = 1.0
        self.codes: np.ndarray | None = None
        self.w: np.ndarray | None = None
        if self.shared:  # one value, whatever the synapse count
            self.w = np.asarray(weight, dtype=np.float64).reshape(1).copy()
        else:
            self._set(w)

    # -- weights ------------------------------------------------------------
    def _set(self, w: np.ndarray) -> None:
        if self.weight_format is None:
            self.w = np.array(w, dtype=np.float64)
            return
        from neurolns.lns import choose_scale, encode_codes

        fmt = self.weight_format
        # the scale maps the largest magnitude the projection may reach onto the top code
        ref = self.plasticity.w_max if self.plasticity is not None else (np.max(np.abs(w)) if w.size else 0.0)
        self.scale = float(choose_scale(np.array([ref]), fmt)) if ref > 0 else 1.0
        self.codes = np.ascontiguousarray(
            encode_codes(w, fmt, self.scale, rounding=self.rounding, seed=self._seed), dtype=fmt.code_dtype
        )

    @property
    def weights(self) -> np.ndarray:
        """The effective weight of every synapse as float64 (decoded for LNS storage)."""
        if self.shared:
            return np.full(self.n_synapses, self.w[0], dtype=np.float64)
        if self.weight_format is None:
            return self.w.copy()
        from neurolns.lns import decode_codes

        return decode_codes(self.codes, self.weight_format, self.scale)

    @weights.setter
    def weights(self, value) -> None:
        if self.shared:
            v = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(v)):
                raise ValueError("weight must be finite")
            if v.size == 0 or np.any(v != v.flat[0]):
                raise ValueError(f"a shared weight takes one value for every synapse, got {v.size} values "
                                 "that differ" if v.size else "a shared weight takes one value, got none")
            self.w[0] = v.flat[0]  # in place: the network's copy is this array
            return
        w = np.broadcast_to(np.asarray(value, dtype=np.float64), (self.n_synapses,))
        if self.weight_format is None:
            self.w[:] = w
        else:
            self._set(w)

    @property
    def shared(self) -> bool:
        """Whether one weight serves every synapse (read-only: set at construction)."""
        return self._shared

    @property
    def i(self) -> np.ndarray:
        """Presynaptic index of every synapse (read-only, the connectivity's)."""
        return self.connectivity.i

    @property
    def j(self) -> np.ndarray:
        """Postsynaptic index of every synapse (read-only, the connectivity's)."""
        return self.connectivity.j

    @property
    def n_synapses(self) -> int:
        return self.connectivity.n_synapses

    def __len__(self) -> int:
        return self.n_synapses

    def decode_table(self) -> np.ndarray:
        """Weight of every code ``c`` in ``[−max_code, max_code]`` at this scale (index ``c + max_code``)."""
        fmt = self.weight_format
        c = np.arange(-fmt.max_code, fmt.max_code + 1)
        mag = np.where(c == 0, 0.0, self.scale * np.exp2((np.abs(c) - fmt.bias) / fmt.gamma))
        return np.sign(c) * mag

    def __repr__(self) -> str:
        fmt = "float64" if self.weight_format is None else str(self.weight_format)
        if self.shared:
            fmt = f"float64 shared ({self.w[0]:g})"
        return (f"Synapses({self.pre.name} -> {self.post.name}, n={self.n_synapses}, target={self.target.value}, "
                f"weights={fmt}, plasticity={None if self.plasticity is None else self.plasticity.rule.value})")
