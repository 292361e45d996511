"""Stateful optimizers: they hold state and walk parameters; the maths is in the
pure update functions of :mod:`neurolns.learning.madam` and
:mod:`neurolns.learning.sign`.

Every optimizer has the same interface::

    opt = Madam(params, lr=0.01)        # params: list of ndarrays, updated in place
    opt.step(grads)                      # grads: list of ndarrays, same shapes
    sd = opt.state_dict()                # arrays, ints, floats, strs, lists, dicts
    opt.load_state_dict(sd)              # restores state AND hyperparameters

``defaults`` holds every hyperparameter; ``state_dict()`` carries them, so a
resumed run continues with the hyperparameters it was started with. The step
count ``t`` is shared by all parameters (1-based inside the formulas).

Non-finite gradients: :meth:`Optimizer.step` checks every gradient of the step
(one streaming pass each) before it changes anything. If one holds NaN or
±inf, the whole step is skipped — no parameter, no state, no ``t`` changes,
as ``torch.amp.GradScaler`` skips — a :class:`RuntimeWarning` names the first
offending parameter, its count of non-finite values and the first index, and
``skipped_steps`` grows by one (kept in ``state_dict``). With
``nonfinite="raise"`` the step raises :class:`ValueError` with the same
message instead. The next finite step then behaves exactly as if the bad one
had never been offered.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np

from neurolns.formats import LNSFormat, Underflow
from neurolns.learning._checks import NonFinite, all_finite, check_real, nonfinite_message
from neurolns.learning.madam import (
    code_step_size,
    code_steps,
    lns_code_cap,
    lns_madam_update,
    madam_p_max,
    madam_update,
)
from neurolns.learning.sign import (
    TieRule,
    apply_signs,
    code_step_update,
    ef_sign_update,
    majority_vote,
    pack_signs,
    sign_sgd_update,
    signum_update,
)

__all__ = [
    "NonFinite",
    "Optimizer",
    "SGD",
    "Adam",
    "Madam",
    "LNSMadam",
    "SignSGD",
    "Signum",
    "EFSignSGD",
    "MajorityVote",
    "format_to_dict",
    "format_from_dict",
]

#: the update grid LNS-Madam uses unless told otherwise (γ_u = 128: η = 1/128)
DEFAULT_UPDATE_FORMAT = LNSFormat(bits=16, gamma=128)


def format_to_dict(fmt: LNSFormat) -> dict:
    """An :class:`LNSFormat` as plain ints and strs (for ``state_dict``)."""
    return {"bits": fmt.bits, "gamma": fmt.gamma, "bias": fmt.bias, "underflow": fmt.underflow.value}


def format_from_dict(d: dict) -> LNSFormat:
    """Inverse of :func:`format_to_dict`."""
    return LNSFormat(bits=int(d["bits"]), gamma=int(d["gamma"]), bias=int(d["bias"]), underflow=Underflow(str(d["underflow"])))


def _positive(name):
    return lambda x: check_real(name, x, 0.0, math.inf, lo_open=True, hi_open=True)


def _unit(name):
    return lambda x: check_real(name, x, 0.0, 1.0, hi_open=True)


def _cap_scale(name):
    """p_scale: > 0, inf switches the cap off."""
    return lambda x: check_real(name, x, 0.0, math.inf, lo_open=True)


def _nonfinite(x):
    return NonFinite(x).value


class Optimizer:
    """Base class: parameter list, hyperparameters, step count and per-parameter state.

    Subclasses set ``rule`` (the :class:`~neurolns.learning.Rule` value),
    ``_hyper`` (name → (default, validator)), ``_param_kind`` ('f' float
    weights or 'i' integer codes) and implement ``_init_state`` and ``_update``.
    Every optimizer also takes ``nonfinite`` (:class:`NonFinite`, ``"skip"``
    by default), validated here and kept in ``defaults``; :meth:`step` applies
    it before any ``_update`` runs, so subclasses inherit the policy.

    Attributes
    ----------
    t : int
        Steps taken (skipped steps do not count).
    skipped_steps : int
        Steps skipped because a gradient held NaN or ±inf.
    """

    rule: ClassVar[str] = ""
    _hyper: ClassVar[dict[str, tuple[Any, Any]]] = {}
    _param_kind: ClassVar[str] = "f"
    #: hyperparameters every optimizer has, on top of the subclass's ``_hyper``
    _common_hyper: ClassVar[dict[str, tuple[Any, Any]]] = {"nonfinite": (NonFinite.SKIP.value, _nonfinite)}

    def __init__(self, params, **hyperparameters):
        allowed = self._all_hyper()
        unknown = sorted(set(hyperparameters) - set(allowed))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown hyperparameter(s) {unknown}; allowed: {sorted(allowed)}"
            )
        self.params = self._check_params(params)
        self.defaults = self._validate({**{k: d for k, (d, _) in allowed.items()}, **hyperparameters})
        self.t = 0
        self.skipped_steps = 0
        self.state: list[dict[str, Any]] = [self._init_state(p) for p in self.params]

    @classmethod
    def _all_hyper(cls) -> dict[str, tuple[Any, Any]]:
        return {**cls._hyper, **cls._common_hyper}

    @property
    def on_codes(self) -> bool:
        """True when the parameters are integer LNS codes (LNS-Madam, multiplicative vote)."""
        return self._param_kind == "i"

    @property
    def needs_worker_grads(self) -> bool:
        """True when :meth:`step` takes ``grads[k][i]`` over K workers."""
        return False

    # -- validation ---------------------------------------------------------
    def _validate(self, hp: dict) -> dict:
        allowed = self._all_hyper()
        return {k: allowed[k][1](v) for k, v in hp.items()}

    def _check_params(self, params) -> list[np.ndarray]:
        if isinstance(params, np.ndarray) or not isinstance(params, (list, tuple)):
            raise TypeError(f"params must be a list of numpy arrays, got {type(params).__name__}")
        what = "a float dtype" if self._param_kind == "f" else "a signed integer dtype (LNS codes)"
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"params[{i}] must be a numpy ndarray, got {type(p).__name__}")
            if p.dtype.kind != self._param_kind:
                raise TypeError(f"params[{i}] has dtype {p.dtype}; {type(self).__name__} needs {what}")
            if not p.flags.c_contiguous or not p.flags.writeable:
                raise ValueError(f"params[{i}] must be C-contiguous and writeable (updated in place)")
        return list(params)

    def _check_grads(self, grads, where: str = "grads") -> list[np.ndarray]:
        if not isinstance(grads, (list, tuple)) or len(grads) != len(self.params):
            n = len(grads) if isinstance(grads, (list, tuple)) else type(grads).__name__
            raise ValueError(f"{where} must be a list of {len(self.params)} arrays (one per parameter), got {n}")
        out = []
        for i, (p, g) in enumerate(zip(self.params, grads)):
            g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"{where}[{i}] has shape {g.shape}; params[{i}] has shape {p.shape}")
            if g.dtype.kind != "f":
                raise TypeError(f"{where}[{i}] has dtype {g.dtype}; allowed: a float dtype")
            out.append(np.ascontiguousarray(g))
        return out

    # -- the step -----------------------------------------------------------
    def step(self, grads) -> None:
        """Apply one update to every parameter, in place.

        Every gradient is checked first; a NaN or ±inf anywhere skips the whole
        step with a :class:`RuntimeWarning` (``nonfinite="skip"``, counted in
        ``skipped_steps``) or raises :class:`ValueError` (``"raise"``); either
        way nothing changes.
        """
        grads = self._check_step_grads(grads)
        if not self._finite_or_skip(grads):
            return
        self.t += 1
        self._step(grads)

    def _check_step_grads(self, grads):
        """Validate the structure of ``step``'s argument (shapes, dtypes)."""
        return self._check_grads(grads)

    def _named_grads(self, grads):
        """``(label, array)`` for every gradient array of a step, in parameter order."""
        return ((f"params[{i}]", g) for i, g in enumerate(grads))

    def _finite_or_skip(self, grads) -> bool:
        """True when every gradient is finite; else apply the ``nonfinite`` policy."""
        for label, g in self._named_grads(grads):
            if all_finite(g):
                continue
            msg = f"{type(self).__name__}.step: the gradient of {nonfinite_message(label, g)}"
            if self.defaults["nonfinite"] == NonFinite.RAISE.value:
                raise ValueError(msg + "; nothing was changed (nonfinite='raise'); allowed: finite gradients")
            self.skipped_steps += 1
            warnings.warn(msg + f"; the whole step was skipped, nothing changed (skipped_steps={self.skipped_steps}; "
                          "nonfinite='raise' raises instead)", RuntimeWarning, stacklevel=3)
            return False
        return True

    def _step(self, grads) -> None:
        """The update of a checked, finite step (``t`` already counts it)."""
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self._update(i, p, g, self.state[i])

    def _init_state(self, p: np.ndarray) -> dict:
        return {}

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, st: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- persistence -------------------------------------------------------
    def _defaults_plain(self) -> dict:
        return {k: (format_to_dict(v) if isinstance(v, LNSFormat) else v) for k, v in self.defaults.items()}

    def state_dict(self) -> dict:
        """Copy of the state: ``{"rule", "t", "skipped_steps", "defaults", "shapes", "state"}``.

        Only numpy arrays, ints, floats, strs and (nested) lists/dicts, so that
        it can be flattened into ``np.savez`` or written as JSON (arrays as lists).
        """
        return {
            "rule": self.rule,
            "t": int(self.t),
            "skipped_steps": int(self.skipped_steps),
            "defaults": self._defaults_plain(),
            "shapes": [list(p.shape) for p in self.params],
            "state": [
                {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()} for st in self.state
            ],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (state and hyperparameters).

        Raises :class:`ValueError` if it comes from another rule or from
        parameters of other shapes; nothing is changed in that case. State
        dicts written before ``skipped_steps`` and ``nonfinite`` existed load
        with ``skipped_steps = 0`` and this optimizer's ``nonfinite``.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        missing = {"rule", "t", "defaults", "state"} - set(state)
        if missing:
            raise ValueError(f"state dict lacks {sorted(missing)}; is it an optimizer state_dict()?")
        if state["rule"] != self.rule:
            raise ValueError(f"state dict is for rule {state['rule']!r}; this optimizer is {self.rule!r}")
        shapes = [list(p.shape) for p in self.params]
        if "shapes" in state and [list(s) for s in state["shapes"]] != shapes:
            raise ValueError(f"state dict is for parameter shapes {state['shapes']}; these are {shapes}")
        if len(state["state"]) != len(self.params):
            raise ValueError(f"state dict holds {len(state['state'])} parameters; this optimizer has {len(self.params)}")
        hp = dict(state["defaults"])
        allowed = self._all_hyper()
        unknown = sorted(set(hp) - set(allowed))
        if unknown:
            raise ValueError(f"state dict has unknown hyperparameter(s) {unknown}; allowed: {sorted(allowed)}")
        defaults = self._validate({**self.defaults, **hp})
        old_defaults, self.defaults = self.defaults, defaults
        try:  # the state layout may depend on the hyperparameters (e.g. workers)
            fresh = [self._init_state(p) for p in self.params]
        finally:
            self.defaults = old_defaults
        new_state = []
        for i, (st, ref) in enumerate(zip(state["state"], fresh)):
            if set(st) != set(ref):
                raise ValueError(f"state of parameter {i} has keys {sorted(st)}; expected {sorted(ref)}")
            new = {}
            for k, v in st.items():
                if isinstance(ref[k], np.ndarray):
                    v = np.asarray(v)
                    if v.shape != ref[k].shape:
                        raise ValueError(f"state[{i}][{k!r}] has shape {v.shape}; expected {ref[k].shape}")
                    new[k] = np.ascontiguousarray(v, dtype=ref[k].dtype).copy()
                else:
                    new[k] = type(ref[k])(v)
            new_state.append(new)
        t = int(state["t"])
        if t < 0:
            raise ValueError(f"t={t} is out of range; allowed: t >= 0")
        skipped = int(state.get("skipped_steps", 0))
        if skipped < 0:
            raise ValueError(f"skipped_steps={skipped} is out of range; allowed: skipped_steps >= 0")
        self.defaults, self.state, self.t, self.skipped_steps = defaults, new_state, t, skipped

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({len(self.params)} params, t={self.t}, {hp})"


# ---------------------------------------------------------------------------
# float baselines


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball momentum (PyTorch convention).

    ``b ← μ b + g`` (``b = g`` at the first step), ``w ← w − η b``; ``μ = 0`` is
    plain SGD.

    Examples
    --------
    >>> w = np.array([1.0, 2.0]); opt = SGD([w], lr=0.1)
    >>> opt.step([np.array([1.0, -1.0])]); w
    array([0.9, 2.1])
    """

    rule = "sgd"
    _hyper = {"lr": (0.1, _positive("lr")), "momentum": (0.0, lambda x: check_real("momentum", x, 0.0, 1.0, hi_open=True))}

    def _init_state(self, p):
        return {"buf": np.zeros_like(p)}

    def _update(self, i, p, g, st):
        lr, mu = self.defaults["lr"], self.defaults["momentum"]
        if mu == 0.0:
            p -= (lr * g).astype(p.dtype, copy=False)
            return
        buf = st["buf"]
        if self.t == 1:
            buf[...] = g
        else:
            buf *= mu
            buf += g
        p -= (lr * buf).astype(p.dtype, copy=False)


def _check_betas(b):
    if not isinstance(b, (list, tuple)) or len(b) != 2:
        raise ValueError(f"betas={b!r} must be a pair (beta1, beta2), each in [0, 1)")
    return [check_real("betas[0]", b[0], 0.0, 1.0, hi_open=True), check_real("betas[1]", b[1], 0.0, 1.0, hi_open=True)]


class Adam(Optimizer):
    """Adam (Kingma & Ba, ICLR 2015), the float baseline.

    ``m ← β₁m + (1−β₁)g``, ``v ← β₂v + (1−β₂)g²``,
    ``w ← w − η m̂/(sqrt(v̂) + ε)`` with ``m̂ = m/(1−β₁^t)``, ``v̂ = v/(1−β₂^t)``.

    Examples
    --------
    >>> w = np.array([1.0, 2.0]); opt = Adam([w], lr=0.1)
    >>> opt.step([np.array([3.0, -0.5])]); w  # the first step is ±η whatever |g|
    array([0.9, 2.1])
    """

    rule = "adam"
    _hyper = {
        "lr": (1e-3, _positive("lr")),
        "betas": ((0.9, 0.999), _check_betas),
        "eps": (1e-8, lambda x: check_real("eps", x, 0.0, math.inf, hi_open=True)),
    }

    def _init_state(self, p):
        return {"m": np.zeros_like(p), "v": np.zeros_like(p)}

    def _update(self, i, p, g, st):
        b1, b2 = self.defaults["betas"]
        m, v = st["m"], st["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        bc1 = 1.0 - b1**self.t
        bc2 = 1.0 - b2**self.t
        denom = np.sqrt(v / bc2) + self.defaults["eps"]
        p -= ((self.defaults["lr"] / bc1) * m / denom).astype(p.dtype, copy=False)


# ---------------------------------------------------------------------------
# multiplicative rules


class Madam(Optimizer):
    """Madam on float weights (Bernstein et al., NeurIPS 2020).

    Per parameter: :func:`~neurolns.learning.madam_update` with
    ``p_max = p_scale · RMS(w)`` taken at the first step (``p_scale = inf``
    switches the cap off). Defaults are the paper's: η = 0.01, β = 0.999,
    g_bound = 10, p_scale = 3; :func:`~neurolns.learning.make_optimizer` uses
    a larger ``p_scale`` for training small networks (see ``docs/learning.md``).
    A weight initialised at exactly 0 never moves: initialise biases away from 0.

    Examples
    --------
    >>> w = np.array([0.5, -0.25], np.float32); opt = Madam([w], lr=0.01)
    >>> opt.step([np.array([1.0, 1.0], np.float32)]); w
    array([ 0.49502492, -0.25251254], dtype=float32)
    """

    rule = "madam"
    _hyper = {
        "lr": (0.01, _positive("lr")),
        "beta": (0.999, _unit("beta")),
        "g_bound": (10.0, _positive("g_bound")),
        "p_scale": (3.0, _cap_scale("p_scale")),
    }

    def _init_state(self, p):
        return {"v": np.zeros(p.shape, np.float64), "p_max": 0.0}  # float64 v: see madam_update

    def _update(self, i, p, g, st):
        d = self.defaults
        if self.t == 1:
            st["p_max"] = madam_p_max(p, d["p_scale"])
        madam_update(p, g, st["v"], self.t, lr=d["lr"], beta=d["beta"], g_bound=d["g_bound"], p_max=st["p_max"],
                     check_finite=False)


def _check_fmt(x):
    if isinstance(x, dict):
        x = format_from_dict(x)
    if not isinstance(x, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(x).__name__} {x!r}")
    return x


class _CodeOptimizer(Optimizer):
    """Shared parts of the optimizers whose parameters are LNS codes."""

    _param_kind = "i"

    #: whether ``lr`` must be a whole number of grid steps (False: fractional steps are rounded stochastically)
    _whole_steps: ClassVar[bool] = True

    def _validate(self, hp):
        hp = super()._validate(hp)
        fmt = hp["fmt"]
        if hp.get("lr") is None:
            hp["lr"] = 1.0 / fmt.gamma
        if self._whole_steps:
            code_step_size(fmt, hp["lr"])  # lr must be a whole number of grid steps
        _check_code_dtypes(self.params, fmt)
        return hp

    def _init_state(self, p):
        return {"max_code": int(self.defaults["fmt"].max_code) if hasattr(self, "defaults") else 0}

    def _set_caps(self):
        """Per-parameter cap on |c| from p_scale, fixed at the first step."""
        fmt, p_scale = self.defaults["fmt"], self.defaults["p_scale"]
        for p, st in zip(self.params, self.state):
            st["max_code"] = lns_code_cap(p, fmt, p_scale)


class LNSMadam(_CodeOptimizer):
    """LNS-Madam on integer exponent codes (Zhao et al., IEEE Trans. Computers 2022).

    Parameters are signed code arrays on the *update grid* ``fmt`` (default
    LNS16, γ_u = 128); each step is :func:`~neurolns.learning.lns_madam_update`,
    moving ``|c|`` by ``−k·round(ĝ)·sign(c)`` steps (``k = η γ_u``, 1 by
    default: η = 1/128 octave). The optimizer never sees the scale: it is the
    caller's (``LNSArray(codes, fmt, scale)``), and the forward weights are
    ``LNSArray(codes, fmt, scale).astype(forward_fmt)``; with
    ``fmt = update_format(forward_fmt)`` the forward code is ``round(c/r)``.

    ``p_scale`` (default ``inf``: only the format's own saturation) caps
    ``|w| ≤ p_scale·RMS(w at step 1)`` as in Madam, via :func:`lns_code_cap`.
    Signs never flip, zero codes stay zero, ``|c|`` saturates at the cap and at 1.

    ``lr`` may be any rate ``η >= 0`` (``None``: one step, ``1/γ_u``), and
    ``defaults["lr"]`` may be changed between steps (a schedule): a move of
    ``d = η γ_u round(ĝ)`` code steps that is not whole is rounded
    stochastically, ``floor(d)`` plus one more step with probability
    ``d − floor(d)``, so ``E[Δ|c|] = −d·sign(c)`` away from the clamps. The
    draws come from the counter-based generator of
    :func:`~neurolns.learning.rounding_draws`, keyed by ``seed`` (a
    hyperparameter, 0 by default), the parameter's index ``i`` and the step
    ``t``: the torch :class:`neurolns.torch.LNSMadam` with the same seed gives the
    same codes, and a whole ``η γ_u`` takes no draws at all.

    Examples
    --------
    >>> c = np.array([16384, -16000, 0], np.int16)
    >>> opt = LNSMadam([c])
    >>> opt.step([np.array([0.1, 0.1, 0.1], np.float32)]); c
    array([ 16383, -16001,      0], dtype=int16)
    """

    rule = "lns-madam"
    _hyper = {
        "fmt": (DEFAULT_UPDATE_FORMAT, _check_fmt),
        "lr": (None, lambda x: None if x is None else check_real("lr", x, 0.0, math.inf, hi_open=True)),
        "beta": (0.999, _unit("beta")),
        "g_bound": (10.0, _positive("g_bound")),
        "p_scale": (math.inf, _cap_scale("p_scale")),
        "seed": (0, lambda x: _check_seed(x)),
    }
    _whole_steps = False

    def _init_state(self, p):
        # float64 v: ĝ is then scale-invariant for every finite float32 gradient (see lns_madam_update)
        return {"v": np.zeros(p.shape, np.float64), **super()._init_state(p)}

    def _check_step_grads(self, grads):
        # the rate first (a schedule may have set it): a bad one raises before anything changes
        check_real("lr", self.defaults["lr"], 0.0, math.inf, hi_open=True)
        return super()._check_step_grads(grads)

    def _step(self, grads) -> None:
        if self.t == 1:
            self._set_caps()
        d = self.defaults
        lr = float(d["lr"])
        for i, (p, g, st) in enumerate(zip(self.params, grads, self.state)):
            lns_madam_update(p, g, st["v"], self.t, fmt=d["fmt"], beta=d["beta"], g_bound=d["g_bound"],
                             lr=lr, max_code=st["max_code"], seed=d["seed"], stream=i, check_finite=False)


# ---------------------------------------------------------------------------
# sign rules


class SignSGD(Optimizer):
    """signSGD: ``w ← w − η sign(g)``, sign(0) = +1 (Bernstein et al., ICML 2018).

    >>> w = np.zeros(2); SignSGD([w], lr=0.01).step([np.array([3.0, -1e-9])]); w
    array([-0.01,  0.01])
    """

    rule = "signsgd"
    _hyper = {"lr": (1e-3, _positive("lr"))}

    def _update(self, i, p, g, st):
        sign_sgd_update(p, g, lr=self.defaults["lr"], check_finite=False)


class Signum(Optimizer):
    """Signum: ``m ← βm + (1−β)g``, ``w ← w − η sign(m)`` (Bernstein et al. 2018).

    >>> w = np.zeros(1); opt = Signum([w], lr=0.1, beta=0.9)
    >>> opt.step([np.array([1.0])]); opt.step([np.array([-0.5])]); w  # m = 0.1, then 0.04
    array([-0.2])
    """

    rule = "signum"
    _hyper = {"lr": (1e-3, _positive("lr")), "beta": (0.9, _unit("beta"))}

    def _init_state(self, p):
        return {"m": np.zeros_like(p)}

    def _update(self, i, p, g, st):
        signum_update(p, g, st["m"], lr=self.defaults["lr"], beta=self.defaults["beta"], check_finite=False)


class EFSignSGD(Optimizer):
    """Scaled sign with error feedback (Karimireddy et al., ICML 2019).

    ``p = ηg + e``, ``Δ = (‖p‖₁/d) sign(p)``, ``w ← w − Δ``, ``e ← p − Δ`` per tensor.

    >>> w = np.zeros(2); EFSignSGD([w], lr=1.0).step([np.array([3.0, -1.0])]); w
    array([-2.,  2.])
    """

    rule = "ef-signsgd"
    _hyper = {"lr": (1e-2, _positive("lr"))}

    def _init_state(self, p):
        return {"e": np.zeros_like(p)}

    def _update(self, i, p, g, st):
        ef_sign_update(p, g, st["e"], lr=self.defaults["lr"], check_finite=False)


class MajorityVote(Optimizer):
    """signSGD / Signum with majority vote over ``K`` simulated workers (Bernstein et al., ICLR 2019).

    ``step(grads)`` takes ``grads[k][i]``, worker ``k``'s gradient of parameter
    ``i``. Each worker keeps its own momentum ``m_k ← βm_k + (1−β)g_k``
    (``momentum = 0``: ``m_k = g_k``), packs ``sign(m_k)`` into bits (what a
    worker sends: ``ceil(d/8)`` bytes), the packed rows are voted,
    ``s = sign(Σ_k sign(m_k))`` (ties per ``ties``), and every parameter takes
    ``w ← w − η s`` (``multiplicative=False``, float weights) or, with
    ``multiplicative=True``, the one-code-step update of
    :func:`~neurolns.learning.code_step_update` on integer codes of the update
    grid ``fmt`` (``|c|`` moves by ``−k·s·sign(c)``, ``k = η γ_u``).

    A rate that is not a whole number of grid steps (a cosine schedule's tail,
    say) moves each code by ``floor(k)`` or ``floor(k) + 1`` steps, the extra
    step taken when the element's draw ``r < frac(k)·2^24``: the counter-based
    draws of :func:`~neurolns.learning.rounding_draws` ``(seed, i, t, n)`` that
    :class:`LNSMadam` uses, so the expected move is ``k`` steps and a resumed
    run draws what the uninterrupted one drew. Without this a sign update on a
    fixed grid cannot anneal: every weight moves at least one step each step.

    ``last_bytes_sent`` holds the bytes the K workers sent in the last step.

    Examples
    --------
    >>> w = np.zeros(3); opt = MajorityVote([w], lr=0.1, workers=3)
    >>> opt.step([[np.array([1.0, -1.0, 2.0])], [np.array([1.0, 1.0, -2.0])], [np.array([-1.0, -1.0, -2.0])]])
    >>> w
    array([-0.1,  0.1,  0.1])
    """

    rule = "majority-vote"
    _hyper = {
        "lr": (1e-3, _positive("lr")),
        "workers": (5, lambda k: _check_workers(k)),
        "momentum": (0.0, _unit("momentum")),
        "ties": (TieRule.PLUS.value, lambda x: TieRule(x).value),
        "multiplicative": (False, lambda x: _check_bool("multiplicative", x)),
        "fmt": (DEFAULT_UPDATE_FORMAT, _check_fmt),
        "seed": (0, lambda x: _check_seed(x)),
    }

    def __init__(self, params, **hyperparameters):
        mult = hyperparameters.get("multiplicative", False)
        self._param_kind = "i" if mult else "f"
        if mult and "lr" not in hyperparameters:
            hyperparameters["lr"] = 1.0 / _check_fmt(hyperparameters.get("fmt", DEFAULT_UPDATE_FORMAT)).gamma
        super().__init__(params, **hyperparameters)
        self.last_bytes_sent = 0

    @property
    def needs_worker_grads(self) -> bool:
        return True

    def _validate(self, hp):
        hp = super()._validate(hp)
        if hp["multiplicative"] != (self._param_kind == "i"):
            raise ValueError(
                f"multiplicative={hp['multiplicative']} does not match the parameters "
                f"({'integer codes' if self._param_kind == 'i' else 'float weights'})"
            )
        if hp["multiplicative"]:
            code_steps(hp["fmt"], hp["lr"])
            _check_code_dtypes(self.params, hp["fmt"])
        return hp

    def _init_state(self, p):
        k = self.defaults["workers"] if hasattr(self, "defaults") else 0
        return {"m": np.zeros((k,) + p.shape, np.float32)}

    def _check_step_grads(self, grads):
        k = self.defaults["workers"]
        if not isinstance(grads, (list, tuple)) or len(grads) != k:
            n = len(grads) if isinstance(grads, (list, tuple)) else type(grads).__name__
            raise ValueError(f"grads must be a list over the {k} workers of lists of arrays, got {n} entries")
        return [self._check_grads(gk, where=f"grads[{j}]") for j, gk in enumerate(grads)]

    def _named_grads(self, per_worker):
        # every worker's gradient: one NaN would otherwise vote +1
        return ((f"params[{i}] from worker {j}", per_worker[j][i])
                for i in range(len(self.params)) for j in range(len(per_worker)))

    def _step(self, per_worker) -> None:
        d = self.defaults
        k = d["workers"]
        sent = 0
        for i, p in enumerate(self.params):
            m = self.state[i]["m"]
            if d["momentum"] > 0.0:
                for j in range(k):
                    m[j] *= d["momentum"]
                    m[j] += (1.0 - d["momentum"]) * per_worker[j][i]
                msgs = m.reshape(k, -1)
            else:
                msgs = np.stack([per_worker[j][i].reshape(-1) for j in range(k)])
            packed = pack_signs(msgs, check_finite=False)  # (K, ceil(d/8)) uint8: what travels
            sent += packed.nbytes
            vote = majority_vote(packed, p.size, ties=d["ties"]).reshape(p.shape)
            if d["multiplicative"]:
                self._code_step(i, p, vote)
            else:
                apply_signs(p, vote, lr=d["lr"], check_finite=False)
        self.last_bytes_sent = sent


    def _code_step(self, i: int, p: np.ndarray, vote: np.ndarray) -> None:
        """``|c| ← clamp(|c| − n·s·sign c, 1, c_max)`` with ``n`` the rate's whole
        steps, plus one where the element's draw falls below the fraction."""
        d = self.defaults
        k = code_steps(d["fmt"], d["lr"])
        if k == int(k):
            code_step_update(p, vote, fmt=d["fmt"], lr=int(k) / d["fmt"].gamma)
            return
        from neurolns.learning.madam import rounding_draws

        whole = math.floor(k)
        up = rounding_draws(d["seed"], i, self.t, p.size).reshape(p.shape) < (k - whole) * 16777216.0
        n = (whole + up).astype(np.int64)
        c = p.astype(np.int64)
        sg = np.where(c > 0, 1, -1)
        m = np.clip(np.abs(c) - n * vote.astype(np.int64) * sg, 1, d["fmt"].max_code)
        p[...] = np.where(c == 0, 0, sg * m).astype(p.dtype)


def _check_code_dtypes(params, fmt: LNSFormat) -> None:
    for i, p in enumerate(params):
        if np.iinfo(p.dtype).max < fmt.max_code:
            raise TypeError(f"params[{i}] dtype {p.dtype} cannot hold codes up to ±{fmt.max_code} of {fmt}")


def _check_seed(x):
    """The seed of LNS-Madam's rounding draws: an int in [0, 2**32 - 1]."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(x).__name__} {x!r}")
    if not 0 <= x <= 0xFFFFFFFF:
        raise ValueError(f"seed={x!r} is out of range; allowed: an int in [0, 2**32 - 1]")
    return int(x)


def _check_workers(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"workers={k!r} is out of range; allowed: an int >= 1")
    return int(k)


def _check_bool(name, x):
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__} {x!r}")
    return bool(x)
