"""Multiplicative and sign optimizers as ``torch.optim.Optimizer`` subclasses.

The same rules as :mod:`neurolns.learning`, on tensors of any device, with
every hyperparameter in ``defaults`` (so in ``state_dict``) and multi-tensor
arithmetic over each parameter group (the group's tensors are concatenated
and updated with one set of operations, ``torch._foreach_*`` where they stay
apart):

* :class:`Madam` (Bernstein et al., NeurIPS 2020) and :class:`LNSMadam`
  (Zhao et al., IEEE Trans. Computers 2022), with the normalised gradient

  .. math::  v \\leftarrow \\beta v + (1-\\beta) g^2, \\qquad
             \\hat g = \\operatorname{clamp}\\big(g / \\sqrt{v/(1-\\beta^t)},\\ \\pm g_{\\rm bound}\\big)
             \\quad (0/0 := 0)

  Madam: ``w ← clamp(w·exp(−η ĝ sign w), ±p_max)``, ``p_max = p_scale·RMS(w)``
  taken at the first step. LNS-Madam: on the signed code ``c`` of the update
  grid, ``|c| ← clamp(|c| − k·rint(ĝ)·sign c, 1, c_max)``, ``k = η γ_u``, i.e.
  ``w ← w·2^(−η rint(ĝ) sign w)``. Signs never flip, zero stays zero. Any
  rate ``η ≥ 0`` works, so every ``torch.optim.lr_scheduler`` does: a move
  ``d = k·rint(ĝ)`` that is not a whole number of code steps is rounded
  stochastically (``floor d`` plus one with probability ``d − floor d``), with
  the counter-based draws of :func:`neurolns.learning.rounding_draws`.
  Both compute in float64 per element, with the second moment ``v`` kept in
  float64, in the order of the Numba kernels of :mod:`neurolns.learning`, so
  LNS-Madam's codes equal the simulator's bit for bit on both backends (for
  every finite gradient, 1e-45 and 3e38 included: ``ĝ`` is scale-invariant)
  and Madam's float32 weights agree to the last ulp.
* :class:`SignSGD` ``w ← w − η sign(g)``, :class:`Signum`
  ``m ← βm + (1−β)g, w ← w − η sign(m)`` (Bernstein et al., ICML 2018) and
  :class:`EFSignSGD` ``p = ηg + e, Δ = (‖p‖₁/d) sign(p), w ← w − Δ, e ← p − Δ``
  per tensor (Karimireddy et al., ICML 2019), computed in the parameter's dtype.

Sign convention (as :mod:`neurolns.learning`): ``sign(0) = +1`` in the sign
rules — a sign is one bit; in Madam ``sign(0) = 0``, which keeps zero at zero.

Non-finite gradients (as :mod:`neurolns.learning`): ``step`` checks every
gradient of every group first (one device sync for all of them). If any holds
NaN or ±inf the whole step is skipped — no parameter, no state, no step count
changes, as ``torch.amp.GradScaler`` skips — with a :class:`RuntimeWarning`
naming the group and parameter index, the count and the first index, and
``skipped_steps`` (saved in ``state_dict``) grows by one; ``nonfinite="raise"``
(per group, in ``defaults``) raises :class:`ValueError` instead. Hyperparameters
are validated at construction and in ``add_param_group`` (a bad group raises and
leaves the optimizer unchanged).

Under ``torch.compile``: the optimizers' ``step`` runs eager. The per-parameter math
of LNS-Madam and Signum is also given as pure functions, :func:`lns_madam_step` and
:func:`signum_step`, that compile with ``fullgraph=True`` and equal the optimizers bit
for bit. There a non-finite gradient keeps the old state through a device flag
(:func:`all_finite`) instead of a host decision: no warning, and the caller counts the
skipped steps in a device tensor.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from neurolns.formats import LNS8, LNSFormat, Underflow
from neurolns.learning._checks import NonFinite, nonfinite_message

__all__ = ["Madam", "LNSMadam", "SignSGD", "Signum", "EFSignSGD", "lns_madam_step", "madam_step", "ef_sign_sgd_step", "signum_step", "all_finite"]


def _real(name, x, lo, hi, *, lo_open=False, hi_open=False, allow_inf=False):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    x = float(x)
    bad = math.isnan(x) or x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi)
    if bad or (math.isinf(x) and not allow_inf):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name}={x!r} is out of range; allowed: {left}{lo}, {hi}{right}")
    return x


def _fmt_dict(fmt) -> dict:
    """An LNSFormat as ints and a bool: what torch's state_dict keeps intact (it rebuilds
    iterables element by element, which would turn a str into garbage) and
    ``torch.load(weights_only=True)`` accepts."""
    if isinstance(fmt, dict):
        fmt = _fmt(fmt)
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"format must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    return {"bits": fmt.bits, "gamma": fmt.gamma, "bias": fmt.bias,
            "saturate": fmt.underflow == Underflow.SATURATE}


def _fmt(d: dict) -> LNSFormat:
    return LNSFormat(bits=int(d["bits"]), gamma=int(d["gamma"]), bias=int(d["bias"]),
                     underflow=Underflow.SATURATE if d.get("saturate") else Underflow.ZERO)


class _Base(torch.optim.Optimizer):
    """Validation of hyperparameters (at construction and per added group), the
    non-finite-gradient policy of :meth:`step`, and grouping helpers.

    Subclasses implement ``_check_group`` (validate and normalise a group's
    hyperparameters) and ``_update`` (one group's update); ``nonfinite`` is
    added to every optimizer's defaults here, and ``skipped_steps`` counts the
    skipped steps.
    """

    #: state entries kept in float64 whatever the parameter's dtype (torch's
    #: load_state_dict would cast them to it; they are restored exactly)
    _float64_state: tuple = ()
    #: integer state entries restored as saved (torch's load_state_dict would cast them to a
    #: floating parameter's dtype, where bfloat16 cannot hold an 11-bit code)
    _integer_state: tuple = ()

    def __init__(self, params, defaults):
        defaults = dict(defaults)
        defaults.setdefault("nonfinite", NonFinite.SKIP.value)
        self.skipped_steps = 0
        super().__init__(params, self._check_all(defaults))

    def _check_all(self, g: dict) -> dict:
        g = self._check_group(g)
        g["nonfinite"] = NonFinite(g.get("nonfinite", NonFinite.SKIP.value)).value
        return g

    def add_param_group(self, param_group):
        """Validate the group's hyperparameters (merged with ``defaults``) and its parameters
        first: a bad group raises and leaves the optimizer unchanged."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        merged = self._check_all({**self.defaults, **{k: v for k, v in group.items() if k != "params"}})
        for k in group:
            if k != "params":
                group[k] = merged[k]  # the normalised value (e.g. a format as a dict)
        ps = group.get("params")
        if ps is not None and not isinstance(ps, (torch.Tensor, set)):
            group["params"] = list(ps)
        if isinstance(group.get("params"), (list, torch.Tensor)):
            self._check_params(group["params"] if isinstance(group["params"], list) else [group["params"]], merged)
        super().add_param_group(group)

    def _check_group(self, g: dict) -> dict:  # pragma: no cover - overridden
        return g

    def _check_params(self, params, group: dict) -> None:
        """Checks that need the parameters as well as the hyperparameters (none by default)."""

    def _check_step(self) -> None:
        """Checks of the hyperparameters at each step, before anything changes (none by default)."""

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss.

        A NaN or ±inf in any gradient skips the whole step (warning, ``skipped_steps``)
        or raises (``nonfinite="raise"``); nothing changes either way.
        """
        self._check_step()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [(group, *self._with_grads(group)) for group in self.param_groups]
        if not self._finite_or_skip(work):
            return loss
        for group, ps, gs in work:
            if ps:
                self._update(group, ps, gs)
        return loss

    def _finite_or_skip(self, work) -> bool:
        """True when every gradient is finite (one sync); else apply the group's ``nonfinite`` policy."""
        flags = [torch.isfinite(g).all() for _, _, gs in work for g in gs]
        if not flags or bool(torch.stack([f.to(flags[0].device) for f in flags]).all()):
            return True
        for gi, (group, ps, gs) in enumerate(work):
            for p, g in zip(ps, gs):
                if bool(torch.isfinite(g).all()):
                    continue
                j = next(k for k, q in enumerate(group["params"]) if q is p)
                label = f"param_groups[{gi}]['params'][{j}]"
                msg = f"{type(self).__name__}.step: the gradient of " + nonfinite_message(
                    label, g.detach().to(torch.float64).cpu().numpy())
                if group["nonfinite"] == NonFinite.RAISE.value:
                    raise ValueError(msg + "; nothing was changed (nonfinite='raise'); allowed: finite gradients")
                self.skipped_steps += 1
                warnings.warn(msg + "; the whole step was skipped, nothing changed "
                              f"(skipped_steps={self.skipped_steps}; nonfinite='raise' raises instead)",
                              RuntimeWarning, stacklevel=4)
                return False
        return True  # pragma: no cover - the flags said otherwise

    def state_dict(self):
        """torch's state dict plus ``"skipped_steps"``."""
        sd = super().state_dict()
        sd["skipped_steps"] = int(self.skipped_steps)
        return sd

    def load_state_dict(self, state_dict):
        """torch's ``load_state_dict``, then: ``skipped_steps`` restored (0 if absent),
        hyperparameters missing from an older state dict (``nonfinite``) taken from
        ``defaults``, and float64 state entries restored in float64."""
        skipped = int(state_dict.get("skipped_steps", 0))
        if skipped < 0:
            raise ValueError(f"skipped_steps={skipped} is out of range; allowed: skipped_steps >= 0")
        expected = {k for g in self.param_groups for k in g if k != "params"}
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for k in expected - set(group):
                group[k] = self.defaults[k]
        self.skipped_steps = skipped
        if self._float64_state or self._integer_state:
            ids = [i for g in state_dict["param_groups"] for i in g["params"]]
            params = [p for g in self.param_groups for p in g["params"]]
            for pid, p in zip(ids, params):
                saved = state_dict["state"].get(pid, {})
                for key in self._float64_state:
                    if key in saved and p in self.state:
                        self.state[p][key] = saved[key].to(device=p.device, dtype=torch.float64, copy=True)
                for key in self._integer_state:
                    x = saved.get(key)
                    if isinstance(x, torch.Tensor) and not x.is_floating_point() and p in self.state:
                        self.state[p][key] = x.to(device=p.device, copy=True)

    def _update(self, group, ps, gs) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def _with_grads(group):
        ps = [p for p in group["params"] if p.grad is not None]
        for p in ps:
            if p.grad.is_sparse:
                raise RuntimeError("sparse gradients are not supported")
        return ps, [p.grad for p in ps]


class _MadamBase(_Base):
    """The normalised gradient ĝ shared by Madam and LNS-Madam (float64, float64 ``v``)."""

    _float64_state = ("v",)

    def _normalised(self, group, ps, gs):
        """Flat float64 ``ĝ`` of the concatenated gradients; updates every ``v`` (in its dtype)."""
        beta, gb = group["beta"], group["g_bound"]
        steps = []
        for p in ps:
            st = self.state[p]
            st["step"] += 1
            steps.append(st["step"])
        inv = [1.0 / (1.0 - beta**t) if beta > 0.0 else 1.0 for t in steps]
        sizes = [p.numel() for p in ps]
        g = torch.cat([x.detach().reshape(-1) for x in gs]).to(torch.float64)
        vs = [self.state[p]["v"] for p in ps]
        v = torch.cat([x.reshape(-1) for x in vs]).to(torch.float64)
        v_new = v.mul_(beta).add_((g * g).mul_(1.0 - beta))  # β v + (1−β)(g g), in that order
        if len(set(inv)) == 1:
            den = torch.sqrt(v_new * inv[0])
        else:
            per = torch.tensor(inv, dtype=torch.float64, device=g.device)
            den = torch.sqrt(v_new * per.repeat_interleave(torch.tensor(sizes, device=g.device)))
        gh = torch.div(g, den)
        # not finite: 0/0 (every g so far was 0): no move, as the Numba kernel and the numpy reference
        gh = torch.where(gh.abs() < math.inf, gh, torch.zeros_like(gh)).clamp_(-gb, gb)
        torch._foreach_copy_(vs, [x.view(t.shape) for x, t in zip(v_new.split(sizes), vs)])
        return gh, sizes


def _check_madam(g):
    g["lr"] = _real("lr", g["lr"], 0.0, math.inf, lo_open=True)
    g["beta"] = _real("beta", g["beta"], 0.0, 1.0, hi_open=True)
    g["g_bound"] = _real("g_bound", g["g_bound"], 0.0, math.inf, lo_open=True)
    g["p_scale"] = _real("p_scale", g["p_scale"], 0.0, math.inf, lo_open=True, allow_inf=True)
    return g


class Madam(_MadamBase):
    """Madam: multiplicative updates on float weights (Bernstein et al., NeurIPS 2020).

    Parameters
    ----------
    params : iterable of tensors or dicts (parameter groups)
    lr : float
        ``η``, step of ``ln|w|`` per unit ``ĝ`` (natural-log units); paper: 0.01.
    beta : float
        Second-moment decay in ``[0, 1)``; 0.999.
    g_bound : float
        Clamp of ``ĝ``; 10.
    p_scale : float
        ``|w| ≤ p_scale·RMS(w)`` with the RMS taken at the parameter's first
        step (``inf``: no cap); the paper's code uses 3, small networks
        prefer ~10 (see ``docs/learning.md``).
    nonfinite : {"skip", "raise"}
        A step whose gradients hold NaN or ±inf is skipped with a warning
        (counted in ``skipped_steps``) or raises :class:`ValueError`.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([0.5, -0.25]))
    >>> opt = Madam([w], lr=0.01)
    >>> w.grad = torch.tensor([1.0, 1.0]); opt.step()
    >>> w.data                         # |w| shrinks by e^-0.01 where sign w = sign g
    tensor([ 0.4950, -0.2525])
    """

    def __init__(self, params, lr: float = 0.01, beta: float = 0.999, g_bound: float = 10.0, p_scale: float = 3.0,
                 nonfinite: NonFinite | str = NonFinite.SKIP):
        super().__init__(params, dict(lr=lr, beta=beta, g_bound=g_bound, p_scale=p_scale, nonfinite=nonfinite))

    _check_group = staticmethod(_check_madam)

    def _update(self, group, ps, gs) -> None:
        """One group's update (``ps`` have gradients ``gs``)."""
        for p in ps:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["v"] = torch.zeros(p.shape, dtype=torch.float64, device=p.device)  # float64: scale-invariant ĝ
                w = p.detach().to(torch.float64)
                rms = math.sqrt(float((w * w).mean())) if w.numel() else 0.0
                st["p_max"] = math.inf if math.isinf(group["p_scale"]) else group["p_scale"] * rms
        gh, sizes = self._normalised(group, ps, gs)
        w = torch.cat([p.detach().reshape(-1) for p in ps]).to(torch.float64)
        f = torch.exp(gh.mul_(-group["lr"]).mul_(torch.sign(w)))  # (−η ĝ) sign w; sign 0 = 0
        w.mul_(f)
        for p, x in zip(ps, w.split(sizes)):
            pm = self.state[p]["p_max"]
            p.copy_(x.clamp_(-pm, pm).view(p.shape))


def _find_grid(p):
    """``(master_format, scale)`` of ``p`` if an LNS layer stores it on a grid, else None."""
    from neurolns.torch.modules import lns_modules

    for m in lns_modules():
        for name in ("weight", "bias"):
            if getattr(m, name, None) is p:
                return m.param_grid(name)
    return None


class LNSMadam(_MadamBase):
    """LNS-Madam: integer steps of the exponent code on an update grid (Zhao et al. 2022).

    Each parameter lives on an update grid: for the weights of an LNS layer
    with ``storage="lns"`` the layer's ``master_format`` and scale; for any
    other parameter ``update_format(forward_format, update_gamma)`` at the
    scale ``choose_scale(w, forward_format)·2^headroom``, fixed at its first
    step (the parameter is snapped to the grid then). Every step re-reads the
    codes from the values (exactly: the values are on the grid), moves
    ``|c|`` by ``−k·rint(ĝ)·sign c`` and writes the decoded values back.

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float
        ``η`` in octaves, finite and ``>= 0``; default ``1/128`` (one step of
        the default update grid, the paper's rate). ``None`` (the former
        default) is taken as ``1/update_gamma``. A learning-rate scheduler may
        change it between steps.
    beta, g_bound : float
        As :class:`Madam`.
    p_scale : float
        ``|w| ≤ p_scale·RMS(w at step 1)`` as a code cap
        (:func:`neurolns.learning.lns_code_cap`); ``inf`` (default): the
        format's own range only.
    forward_format : LNSFormat or dict
        Forward format whose grid is refined for parameters outside LNS layers.
    update_gamma : int
        ``γ_u`` for those parameters (128).
    headroom : int
        Octaves of growth room for those parameters (3).
    backend : {"auto", "torch"}
        ``"auto"``: the Numba kernel for CPU parameters, torch operations on
        other devices; ``"torch"``: torch operations everywhere (what a GPU
        runs, selectable on CPU to compare the two). Both give the same codes
        bit for bit: ``ĝ`` is computed in float64 from a float64 ``v`` in the
        same order of IEEE operations (see
        :func:`neurolns.learning.lns_madam_update`).
    seed : int
        Seed of the rounding draws, in ``[0, 2**32 − 1]`` (0).
    nonfinite : {"skip", "raise"}
        As :class:`Madam`.

    Notes
    -----
    Fractional steps. With ``k = η γ`` code steps per unit of ``rint(ĝ)`` on a
    parameter's grid (``γ`` its ``γ_u``), each element moves by
    ``d = k·rint(ĝ)`` rounded stochastically:

    .. math::  |c| \\leftarrow \\operatorname{clamp}\\big(|c| - (\\lfloor d \\rfloor
               + [r < (d - \\lfloor d \\rfloor)\\,2^{24}])\\operatorname{sign} c,\\ 1,\\ c_{\\max}\\big),
               \\qquad \\mathbb E[\\Delta |c|] = -d \\operatorname{sign} c

    (away from the clamps; the expectation holds to ``2^-24``), ``r`` the
    element's 24-bit draw, :func:`neurolns.learning.rounding_draws` ``(seed,
    i, t, n)`` with ``i`` the parameter's index over all groups and ``t`` its
    step. Stochastic rounding rather than an accumulator of fractional steps:
    it is unbiased at every step with no state per weight (an accumulator
    would add a float per weight next to int16 codes, and a checkpoint entry),
    and the draws are a hash of ``(seed, i, t, element)``, so the Numba kernel,
    the torch operations on any device and the simulator's
    :class:`neurolns.learning.LNSMadam` give the same codes, and a resumed run
    draws what the uninterrupted one drew. The price is noise: a variance of
    ``f(1 − f) ≤ 1/4`` code step² per step, ``f = d − floor d``. A whole
    ``k`` (to ``1e-9``, see :func:`neurolns.learning.code_steps`) takes no
    draws and gives the integer rule's codes bit for bit.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0, 0.0]))
    >>> opt = LNSMadam([w])
    >>> w.grad = torch.tensor([1.0, 1.0, 1.0]); opt.step()
    >>> opt.codes(w)            # 1536 = 1.0 on LNS12/γ128 at scale 2**-4; one step each way; 0 stays 0
    tensor([ 1535, -1537,     0], dtype=torch.int16)
    """

    _integer_state = ("codes",)

    def __init__(self, params, lr: float | None = 1 / 128, beta: float = 0.999, g_bound: float = 10.0,
                 p_scale: float = math.inf, forward_format=LNS8, update_gamma: int = 128, headroom: int = 3,
                 backend: str = "auto", nonfinite: NonFinite | str = NonFinite.SKIP, seed: int = 0):
        super().__init__(params, dict(lr=lr, beta=beta, g_bound=g_bound, p_scale=p_scale,
                                      forward_format=_fmt_dict(forward_format), update_gamma=update_gamma,
                                      headroom=headroom, backend=backend, nonfinite=nonfinite, seed=seed))

    @staticmethod
    def _check_group(g):
        g.setdefault("seed", 0)
        if isinstance(g["seed"], bool) or not isinstance(g["seed"], int):
            raise TypeError(f"seed must be an int, got {type(g['seed']).__name__} {g['seed']!r}")
        if not 0 <= g["seed"] <= 0xFFFFFFFF:
            raise ValueError(f"seed={g['seed']!r} is out of range; allowed: an int in [0, 2**32 - 1]")
        g["beta"] = _real("beta", g["beta"], 0.0, 1.0, hi_open=True)
        g["g_bound"] = _real("g_bound", g["g_bound"], 0.0, math.inf, lo_open=True)
        g["p_scale"] = _real("p_scale", g["p_scale"], 0.0, math.inf, lo_open=True, allow_inf=True)
        g["forward_format"] = _fmt_dict(g["forward_format"])
        ug = g["update_gamma"]
        if isinstance(ug, bool) or not isinstance(ug, int) or ug < 1 or ug & (ug - 1):
            raise ValueError(f"update_gamma={ug!r} is out of range; allowed: a power of two >= forward gamma")
        h = g["headroom"]
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= 32:
            raise ValueError(f"headroom={h!r} is out of range; allowed: an int in [0, 32]")
        if g["backend"] not in ("auto", "torch"):
            raise ValueError(f"backend={g['backend']!r} is not known; allowed: 'auto', 'torch'")
        from neurolns.learning import update_format

        update_format(_fmt(g["forward_format"]), ug)  # γ_u must refine the forward grid
        # None (the former default): one step of that grid; any rate >= 0 works (fractional steps)
        g["lr"] = _real("lr", 1.0 / ug if g["lr"] is None else g["lr"], 0.0, math.inf)
        return g

    def _init_param(self, p, group):
        from neurolns.learning import lns_code_cap, update_format
        from neurolns.torch.quantize import choose_scale, decode_codes_t, encode_codes_t

        grid = _find_grid(p)
        if grid is None:
            fwd = _fmt(group["forward_format"])
            fmt = update_format(fwd, group["update_gamma"])
            scale = float(choose_scale(p.detach(), fwd)) * 2.0 ** group["headroom"]
            codes, _ = encode_codes_t(p.detach(), fmt, scale=scale)
            p.copy_(decode_codes_t(codes, fmt, scale, dtype=p.dtype))  # snap onto the grid
        else:
            fmt, s = grid
            scale = float(s)
            codes, _ = encode_codes_t(p.detach(), fmt, scale=scale)
        self.state[p].update(step=0, v=torch.zeros(p.shape, dtype=torch.float64, device=p.device),
                             fmt=_fmt_dict(fmt), scale=scale, codes=codes.to(p.device), version=p._version,
                             max_code=lns_code_cap(codes.cpu().numpy(), fmt, group["p_scale"]))

    def _sync_codes(self, p) -> torch.Tensor:
        """The state's codes of ``p``, re-read from its values if someone wrote other values to
        it since our last step (values on the grid re-encode exactly). Codes that still decode
        to the values are kept: a bfloat16 parameter holds its grid values rounded, which need
        not re-encode to the same codes."""
        from neurolns.torch.modules import grid_magnitudes
        from neurolns.torch.quantize import decode_codes_t

        st = self.state[p]
        # load_state_dict casts every state tensor to the parameter's dtype: re-read then too
        if st["version"] != p._version or st["codes"].is_floating_point():
            fmt = _fmt(st["fmt"])
            c = st["codes"]
            if not c.is_floating_point() and c.shape == p.shape and torch.equal(
                    decode_codes_t(c, fmt, st["scale"], dtype=p.dtype), p.detach()):
                st["v"] = st["v"].to(torch.float64)
                st["version"] = p._version
                return c
            s = torch.tensor(st["scale"], dtype=torch.float32, device=p.device)
            m = grid_magnitudes(p.detach(), fmt, s)
            st["codes"] = torch.where(p.detach() < 0, -m, m).to(getattr(torch, str(fmt.code_dtype)))
            st["v"] = st["v"].to(torch.float64)
            st["version"] = p._version
        return st["codes"]

    @staticmethod
    def _group_lr(group) -> float:
        """The group's rate now (a scheduler may have set it, possibly as a tensor): finite, >= 0."""
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            if lr.numel() != 1:
                raise ValueError(f"lr must be a number or a one-element tensor, got a tensor of shape {tuple(lr.shape)}")
            lr = float(lr)
        return _real("lr", lr, 0.0, math.inf)

    def _check_step(self) -> None:
        """Every group's ``lr`` (a scheduler may have changed it), before anything changes."""
        for group in self.param_groups:
            self._group_lr(group)

    def _streams(self) -> dict:
        """``id(p)`` → index of ``p`` over all groups' parameters: the ``stream`` of its rounding draws."""
        return {id(p): i for i, p in enumerate(p for group in self.param_groups for p in group["params"])}

    def _update(self, group, ps, gs) -> None:
        """One group's update (``ps`` have gradients ``gs``)."""
        lr = self._group_lr(group)
        for p in ps:
            if not self.state[p]:
                self._init_param(p, group)
            self._sync_codes(p)
        if group["backend"] == "auto" and all(p.device.type == "cpu" for p in ps):
            self._numba_step(group, ps, gs, lr)
            return
        self._torch_step(group, ps, gs, lr)

    def _torch_step(self, group, ps, gs, lr) -> None:
        """The update in torch operations, one grid (bucket) at a time."""
        gh, sizes = self._normalised(group, ps, gs)
        buckets: dict = {}
        for p, g in zip(ps, gh.split(sizes)):
            key = tuple(sorted(self.state[p]["fmt"].items()))
            buckets.setdefault(key, ([], []))
            buckets[key][0].append(p)
            buckets[key][1].append(g)
        for bps, bgh in buckets.values():
            self._code_step(group, bps, bgh, lr)

    def _numba_step(self, group, ps, gs, lr):
        """CPU: :func:`neurolns.learning.lns_madam_update` in place on zero-copy views of the
        state's codes and ``v``, then the decoded values written back."""
        from neurolns.learning import lns_madam_update
        from neurolns.torch.quantize import decode_codes_t

        streams = self._streams()
        for p, g in zip(ps, gs):
            st = self.state[p]
            st["step"] += 1
            fmt = _fmt(st["fmt"])
            codes = st["codes"].numpy()
            g = g.detach()
            if g.dtype == torch.bfloat16:  # numpy has no bfloat16; the widening is exact
                g = g.to(torch.float32)
            lns_madam_update(codes, g.contiguous().numpy(), st["v"].numpy(), st["step"], fmt=fmt,
                             beta=group["beta"], g_bound=group["g_bound"], lr=lr,
                             max_code=st["max_code"], seed=group["seed"], stream=streams[id(p)],
                             check_finite=False)  # checked once in step()
            p.copy_(decode_codes_t(st["codes"], fmt, st["scale"], dtype=p.dtype))
            st["version"] = p._version

    def _flat_constants(self, ps):
        """Per-element scale and code cap of a list of parameters, cached while the list is unchanged."""
        key = tuple((id(p), self.state[p]["scale"], self.state[p]["max_code"], p.numel()) for p in ps)
        cache = getattr(self, "_flat_cache", None)
        if cache is None or cache[0] != key:
            dev = ps[0].device
            sizes = torch.tensor([p.numel() for p in ps], device=dev)
            scale = torch.tensor([self.state[p]["scale"] for p in ps], dtype=torch.float32, device=dev)
            cap = torch.tensor([self.state[p]["max_code"] for p in ps], dtype=torch.int64, device=dev)
            cache = (key, scale.repeat_interleave(sizes), cap.repeat_interleave(sizes))
            self._flat_cache = cache
        return cache[1], cache[2]

    def _draws(self, ps, seed: int) -> torch.Tensor:
        """The 24-bit rounding draws of the concatenation of ``ps`` at their current steps
        (:func:`neurolns.learning.rounding_draws`, in torch int64 operations)."""
        from neurolns.learning import draw_key
        from neurolns.learning._reference import hash32  # its operators (&, >>, ^, *) act on int64 tensors too

        dev = ps[0].device
        streams = self._streams()
        idx = torch.cat([torch.arange(p.numel(), dtype=torch.int64, device=dev) for p in ps])
        keys = torch.tensor([draw_key(seed, streams[id(p)], self.state[p]["step"]) for p in ps],
                            dtype=torch.int64, device=dev)
        sizes = torch.tensor([p.numel() for p in ps], device=dev)
        key2 = hash32(keys ^ 0x85EBCA6B).repeat_interleave(sizes)
        return hash32(hash32(idx ^ keys.repeat_interleave(sizes)) ^ key2) >> 8

    def _code_step(self, group, ps, gh, lr):
        """``|c| ← clamp(|c| − k·rint(ĝ)·sign c, 1, cap)`` on the concatenation of ``ps`` (one grid);
        a fractional ``k·rint(ĝ)`` rounded stochastically."""
        from neurolns.learning import code_steps
        from neurolns.lns.codec import decode_table
        from neurolns.torch.quantize import _on

        fmt = _fmt(self.state[ps[0]]["fmt"])
        k = code_steps(fmt, lr)
        scale, cap = self._flat_constants(ps)
        c = torch.cat([self.state[p]["codes"].reshape(-1) for p in ps]).to(torch.int64)
        ghat = torch.round(torch.cat([g.reshape(-1) for g in gh]))  # rint: half to even
        if k == int(k):
            step = int(k) * ghat.to(torch.int64)
        else:  # d = k·rint(ĝ): floor(d) + [r < frac(d)·2^24], in float64 as the Numba kernel
            d = ghat.mul_(k)
            fl = torch.floor(d)
            up = self._draws(ps, group["seed"]).to(torch.float64) < (d - fl).mul_(16777216.0)
            step = (fl + up.to(torch.float64)).to(torch.int64)
        sg = torch.where(c > 0, 1, -1)
        m = torch.minimum(torch.clamp_min(c.abs() - step * sg, 1), cap)
        c_new = torch.where(c == 0, torch.zeros_like(m), sg * m)  # zero stays zero
        v = _on(decode_table(fmt, np.float32), c.device)[m] * scale  # correctly rounded float32
        new = torch.where(c_new == 0, torch.zeros_like(v), torch.where(sg < 0, -v, v))
        sizes = [p.numel() for p in ps]
        torch._foreach_copy_(ps, [x.view(p.shape) for x, p in zip(new.split(sizes), ps)])
        for p, x in zip(ps, c_new.split(sizes)):
            self.state[p]["codes"].copy_(x.view(p.shape))
            self.state[p]["version"] = p._version

    def codes(self, p) -> torch.Tensor:
        """The update-grid codes of parameter ``p`` (after its first step)."""
        if not self.state.get(p):
            raise KeyError("this parameter has not taken a step yet")
        return self._sync_codes(p).clone()


def _sign1(x):
    """One-bit sign: −1 where x < 0, else +1."""
    return torch.where(x < 0, -1.0, 1.0).to(x.dtype)


def _check_lr(g):
    g["lr"] = _real("lr", g["lr"], 0.0, math.inf, lo_open=True)
    return g


class SignSGD(_Base):
    """signSGD: ``w ← w − η sign(g)``, sign(0) = +1 (Bernstein et al., ICML 2018).

    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2)); opt = SignSGD([w], lr=0.01)
    >>> w.grad = torch.tensor([3.0, -1e-9]); opt.step(); w.data
    tensor([-0.0100,  0.0100])
    """

    def __init__(self, params, lr: float = 1e-3, nonfinite: NonFinite | str = NonFinite.SKIP):
        super().__init__(params, dict(lr=lr, nonfinite=nonfinite))

    _check_group = staticmethod(_check_lr)

    def _update(self, group, ps, gs) -> None:
        """One group's update (``ps`` have gradients ``gs``)."""
        torch._foreach_add_(ps, [_sign1(g) for g in gs], alpha=-group["lr"])


class Signum(_Base):
    """Signum: ``m ← βm + (1−β)g``, ``w ← w − η sign(m)`` (Bernstein et al., ICML 2018).

    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(1)); opt = Signum([w], lr=0.1, beta=0.9)
    >>> w.grad = torch.tensor([1.0]); opt.step(); w.grad = torch.tensor([-0.5]); opt.step()
    >>> w.data                                 # m = 0.1, then 0.04: two steps down
    tensor([-0.2000])
    """

    def __init__(self, params, lr: float = 1e-3, beta: float = 0.9, nonfinite: NonFinite | str = NonFinite.SKIP):
        super().__init__(params, dict(lr=lr, beta=beta, nonfinite=nonfinite))

    @staticmethod
    def _check_group(g):
        _check_lr(g)
        g["beta"] = _real("beta", g["beta"], 0.0, 1.0, hi_open=True)
        return g

    def _update(self, group, ps, gs) -> None:
        """One group's update (``ps`` have gradients ``gs``)."""
        ms = []
        for p in ps:
            st = self.state[p]
            if not st:
                st["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            ms.append(st["momentum"])
        torch._foreach_mul_(ms, group["beta"])
        torch._foreach_add_(ms, gs, alpha=1.0 - group["beta"])
        torch._foreach_add_(ps, [_sign1(m) for m in ms], alpha=-group["lr"])


class EFSignSGD(_Base):
    """Scaled sign with error feedback (Karimireddy et al., ICML 2019), per tensor.

    ``p = ηg + e``, ``Δ = (‖p‖₁/d)·sign(p)``, ``w ← w − Δ``, ``e ← p − Δ``.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2)); opt = EFSignSGD([w], lr=1.0)
    >>> w.grad = torch.tensor([3.0, -1.0]); opt.step(); w.data
    tensor([-2.,  2.])
    """

    def __init__(self, params, lr: float = 1e-2, nonfinite: NonFinite | str = NonFinite.SKIP):
        super().__init__(params, dict(lr=lr, nonfinite=nonfinite))

    _check_group = staticmethod(_check_lr)

    def _update(self, group, ps, gs) -> None:
        """One group's update (``ps`` have gradients ``gs``)."""
        ps = [p for p in ps if p.numel()]
        gs = [p.grad for p in ps]
        if not ps:
            return
        es = []
        for p in ps:
            st = self.state[p]
            if not st:
                st["error"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            es.append(st["error"])
        pe = torch._foreach_mul(gs, group["lr"])
        torch._foreach_add_(pe, es)  # p = ηg + e
        l1 = torch._foreach_norm(pe, 1)
        deltas = [_sign1(x) * (n / x.numel()).to(x.dtype) for x, n in zip(pe, l1)]
        torch._foreach_sub_(ps, deltas)
        for e, x, d in zip(es, pe, deltas):
            e.copy_(x - d)


# --- the per-parameter math as pure torch functions (what torch.compile traces) -------------

def _decode_table_values(gamma: int, bias: int, max_code: int) -> tuple:
    """The correctly rounded float32 decode table of a grid as Python floats (exact). Under
    ``torch.compile`` it runs outside the trace (its exact decimal arithmetic is never traced)
    and the result enters the graph as a constant."""
    from neurolns.lns._exact import exp2_table

    return tuple(exp2_table(gamma, bias, max_code, "float32", 0).tolist())


_decode_table_values._dynamo_marked_constant = True  # torch.compiler.assume_constant_result


def _decode_table_t(fmt: LNSFormat, device) -> torch.Tensor:
    """:func:`neurolns.lns.codec.decode_table` (float32) on ``device``: the cached copy in eager
    mode, a graph constant with the same entries under ``torch.compile``."""
    if torch.compiler.is_compiling():
        return torch.tensor(_decode_table_values(fmt.gamma, fmt.bias, fmt.max_code),
                            dtype=torch.float32, device=device)
    from neurolns.lns.codec import decode_table
    from neurolns.torch.quantize import _on

    return _on(decode_table(fmt, np.float32), device)


def _code_steps_const(bits: int, gamma: int, bias: int, lr: float) -> float:
    """:func:`neurolns.learning.code_steps` of the grid ``(bits, gamma, bias)`` (a constant under
    ``torch.compile``: its checks run outside the trace). The format goes in as its fields:
    an :class:`LNSFormat` built inside the traced function would not reach it intact."""
    from neurolns.learning import code_steps

    return code_steps(LNSFormat(bits=bits, gamma=gamma, bias=bias), lr)


_code_steps_const._dynamo_marked_constant = True


def all_finite(grads) -> torch.Tensor:
    """A 0-d bool tensor on the first gradient's device: every element of every gradient is
    finite. Nothing is read back to the host, so it traces under ``torch.compile``.

    Parameters
    ----------
    grads : sequence of tensors

    Returns
    -------
    torch.Tensor
        ``True`` when no gradient holds NaN or ±inf (also for an empty sequence).

    Examples
    --------
    >>> import torch
    >>> all_finite([torch.ones(2), torch.tensor([1.0, float("nan")])])
    tensor(False)
    """
    grads = list(grads)
    if not grads:
        return torch.tensor(True)
    dev = grads[0].device
    return torch.stack([torch.isfinite(g).all().to(dev) for g in grads]).all()


def _hash32_t(x: torch.Tensor) -> torch.Tensor:
    """The ``lowbias32`` hash on int64 tensors (:func:`neurolns.learning._reference.hash32`)."""
    from neurolns.learning._reference import hash32

    return hash32(x)


def lns_madam_step(codes: torch.Tensor, grad: torch.Tensor, v: torch.Tensor, step: torch.Tensor, *,
                   fmt: LNSFormat, scale: float, lr: float | torch.Tensor, beta: float = 0.999, g_bound: float = 10.0,
                   max_code: int | None = None, seed: int = 0, stream: int = 0,
                   finite: torch.Tensor | None = None, dtype: torch.dtype = torch.float32):
    """One LNS-Madam update of one parameter in pure torch operations, without side effects.

    The math of :class:`LNSMadam` (``backend="torch"`` or the Numba kernel: the same codes),
    written so that ``torch.compile(..., fullgraph=True)`` traces it: no value is read back
    to the host, the step count is a tensor, the rounding draws of a fractional step are the
    counter-based hash of :func:`neurolns.learning.rounding_draws` in int64 tensor
    operations and the decode table is a graph constant. For finite gradients the returned
    codes, ``v`` and values equal the optimizer's bit for bit, for whole-step and fractional
    rates.

    A non-finite gradient cannot skip the step by a host decision here. Instead ``finite``
    (a 0-d bool tensor; default: this gradient is finite, but pass :func:`all_finite` of
    every gradient of the step to skip the whole step as the optimizer does) selects with
    ``torch.where`` between the new state and the old one: when it is ``False`` the codes,
    ``v`` and ``step`` come back unchanged and the values are the old codes decoded. No
    warning is issued; count the skipped steps on the device, ``skipped += ~finite``, and
    read the count when needed.

    Parameters
    ----------
    codes : torch.Tensor
        Signed integer codes of the parameter on its update grid (``LNSMadam.codes(p)``).
    grad : torch.Tensor
        The gradient, same shape (any floating dtype; computed in float64).
    v : torch.Tensor
        float64 second moment, same shape.
    step : torch.Tensor
        0-d int64 tensor: the parameter's step count before this step (0 at first).
    fmt : LNSFormat
        The update grid: ``update_format(forward_format, update_gamma)`` for a plain
        parameter, an LNS layer's ``master_format`` for its grid-stored weights
        (``LNSMadam`` keeps it as a dict in ``state[p]["fmt"]``).
    scale : float
        The grid's scale (``state[p]["scale"]``), a power of two.
    lr : float or torch.Tensor
        ``η`` in octaves, finite and ``>= 0``; ``k = η γ`` as
        :func:`neurolns.learning.code_steps` takes it. A Python number enters the graph as
        a constant (compile with ``dynamic=False``; each new rate compiles once). A 0-d
        tensor (what a scheduler can write without recompiling) is not checked, since that
        would read it back; every step then takes the rounding draws, which leave a whole
        ``k`` with the same codes.
    beta, g_bound : float
        As :class:`LNSMadam`.
    max_code : int or None
        Code cap (``state[p]["max_code"]``); ``None``: ``fmt.max_code``.
    seed, stream : int
        The draws' seed and the parameter's index over all groups of the optimizer.
    finite : torch.Tensor or None
        0-d bool: apply the step (``True``) or keep the old state (``False``).
    dtype : torch.dtype
        dtype of the returned values (the parameter's).

    Returns
    -------
    codes, v, step, values : torch.Tensor
        The new codes (``codes``' dtype), float64 ``v``, the step count and the decoded
        values (``dtype``) to copy into the parameter.

    Examples
    --------
    >>> import torch
    >>> from neurolns.learning import update_format
    >>> from neurolns import LNS8
    >>> fmt = update_format(LNS8, 128)
    >>> c, v, t, w = lns_madam_step(torch.tensor([1536, -1536, 0], dtype=torch.int16), torch.ones(3),
    ...                             torch.zeros(3, dtype=torch.float64), torch.tensor(0),
    ...                             fmt=fmt, scale=2.0**-4, lr=1 / 128)
    >>> c, int(t)
    (tensor([ 1535, -1537,     0], dtype=torch.int16), 1)
    """
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    if isinstance(lr, torch.Tensor):  # k = η γ as code_steps takes it, in float64 tensor operations
        k = lr.to(device=codes.device, dtype=torch.float64).reshape(()) * fmt.gamma
        kr = torch.round(k)
        k = torch.where((k - kr).abs() <= 1e-9 * torch.clamp_min(k, 1.0), kr, k)
        whole = False  # a whole k takes the rounding below with frac(d) = 0: no move up, the same codes
    else:
        k = _code_steps_const(fmt.bits, fmt.gamma, fmt.bias, lr)
        whole = k == int(k)
    cap = fmt.max_code if max_code is None else int(max_code)
    if finite is None:
        finite = torch.isfinite(grad).all()
    t = step.to(torch.int64) + 1
    # the normalised gradient, in float64 in the order of _MadamBase._normalised
    g = grad.detach().reshape(-1).to(torch.float64)
    v_new = v.reshape(-1).to(torch.float64) * beta + (g * g) * (1.0 - beta)
    inv = 1.0 / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64, device=g.device), t.to(torch.float64)))
    gh = torch.div(g, torch.sqrt(v_new * inv))
    gh = torch.where(gh.abs() < math.inf, gh, torch.zeros_like(gh)).clamp(-g_bound, g_bound)
    ghat = torch.round(gh)  # rint: half to even
    c = codes.reshape(-1).to(torch.int64)
    if whole:
        mv = int(k) * ghat.to(torch.int64)
    else:  # floor(d) + [r < frac(d)·2^24], r the 24-bit counter-based draw
        h = _hash32_t
        pre = int(h(h((int(seed) & 0xFFFFFFFF) ^ 0x9E3779B9) ^ (int(stream) & 0xFFFFFFFF)))
        key = h(torch.tensor(pre, dtype=torch.int64, device=c.device) ^ (t & 0xFFFFFFFF))
        idx = torch.arange(c.numel(), dtype=torch.int64, device=c.device)
        r = h(h(idx ^ key) ^ h(key ^ 0x85EBCA6B)) >> 8
        d = ghat * k
        fl = torch.floor(d)
        up = r.to(torch.float64) < (d - fl) * 16777216.0
        mv = (fl + up.to(torch.float64)).to(torch.int64)
    sg = torch.where(c > 0, 1, -1)
    m = torch.clamp(c.abs() - mv * sg, 1, cap)
    c_new = torch.where(c == 0, torch.zeros_like(m), sg * m)  # zero stays zero
    c_out = torch.where(finite, c_new, c)
    v_out = torch.where(finite, v_new, v.reshape(-1).to(torch.float64))
    t_out = torch.where(finite, t, step.to(torch.int64))
    mag = c_out.abs()
    val = _decode_table_t(fmt, c.device)[mag] * scale
    val = torch.where(c_out == 0, torch.zeros_like(val), torch.where(c_out < 0, -val, val))
    shape = codes.shape
    return (c_out.to(codes.dtype).view(shape), v_out.view(shape), t_out,
            val.to(dtype).view(shape))


def madam_step(param: torch.Tensor, grad: torch.Tensor, v: torch.Tensor, step: torch.Tensor, *,
               lr: float, beta: float = 0.999, g_bound: float = 10.0, p_max: float = math.inf,
               finite: torch.Tensor | None = None):
    r"""One :class:`Madam` update of one parameter in pure torch operations, without side effects.

    .. math::  v ← βv + (1−β)g²,\quad ĝ = \operatorname{clamp}\big(g/\sqrt{v/(1−β^t)}, ±g_b\big),
               \quad w ← \operatorname{clamp}\big(w·e^{−η ĝ \operatorname{sign} w}, ±p_{max}\big)

    in float64, in the operations and order of :class:`Madam` (Bernstein et al., NeurIPS
    2020), so the result equals the optimizer's bit for bit for a parameter alone in its
    group, eager or under ``torch.compile(..., fullgraph=True)``. ``ĝ`` is 0 where every
    gradient so far was 0.

    Parameters
    ----------
    param, grad : torch.Tensor
        The parameter's values and its gradient.
    v : torch.Tensor
        float64 second moment (zeros at first; ``state[p]["v"]``).
    step : torch.Tensor
        0-d integer tensor: updates taken so far (``state[p]["step"]``).
    lr, beta, g_bound : float
        As :class:`Madam`.
    p_max : float
        The bound on ``|w|``: ``p_scale`` times the parameter's RMS at its first step
        (``state[p]["p_max"]``); ``inf`` for none.
    finite : torch.Tensor or None
        0-d bool: apply the step, or return the old state (the device-side skip of
        :func:`lns_madam_step`); default: this gradient is finite.

    Returns
    -------
    param, v, step : torch.Tensor
        The new values (``param`` in its dtype, ``v`` float64).

    Examples
    --------
    >>> import torch
    >>> w, v, t = madam_step(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.5]),
    ...                      torch.zeros(2, dtype=torch.float64), torch.tensor(0), lr=0.01)
    >>> w, int(t)
    (tensor([ 0.9900, -2.0201]), 1)
    """
    if finite is None:
        finite = torch.isfinite(grad).all()
    t = step.to(torch.int64) + 1
    g = grad.detach().reshape(-1).to(torch.float64)
    v_old = v.reshape(-1).to(torch.float64)
    v_new = v_old * beta + (g * g) * (1.0 - beta)
    inv = 1.0 / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64, device=g.device), t.to(torch.float64)))
    gh = torch.div(g, torch.sqrt(v_new * inv))
    gh = torch.where(gh.abs() < math.inf, gh, torch.zeros_like(gh)).clamp(-g_bound, g_bound)
    w = param.detach().reshape(-1).to(torch.float64)
    w_new = (w * torch.exp(gh * -lr * torch.sign(w))).clamp(-p_max, p_max).to(param.dtype)
    w_out = torch.where(finite, w_new, param.detach().reshape(-1))
    return (w_out.view(param.shape), torch.where(finite, v_new, v_old).view(v.shape),
            torch.where(finite, t, step.to(torch.int64)))


def ef_sign_sgd_step(param: torch.Tensor, grad: torch.Tensor, error: torch.Tensor, *, lr: float,
                     finite: torch.Tensor | None = None):
    r"""One :class:`EFSignSGD` update of one parameter in pure torch operations, without side effects.

    .. math::  p = ηg + e,\quad Δ = \frac{\lVert p \rVert_1}{d}\operatorname{sign}(p),
               \quad w ← w − Δ,\quad e ← p − Δ

    (Karimireddy et al., ICML 2019), with ``sign(0) = +1``, in the parameter's dtype and the
    operations of :class:`EFSignSGD`. The ℓ1 norm is a reduction: eager and ``aot_eager``
    give the optimizer's result bit for bit (tested); inductor may sum in another order
    (tested to 2 ulp of the norm).

    Parameters
    ----------
    param, grad : torch.Tensor
        The parameter's values and its gradient.
    error : torch.Tensor
        The error-feedback memory (zeros at first; ``state[p]["error"]``).
    lr : float
        As :class:`EFSignSGD`.
    finite : torch.Tensor or None
        0-d bool: apply the step, or return the old state (the device-side skip of
        :func:`lns_madam_step`); default: this gradient is finite.

    Returns
    -------
    param, error : torch.Tensor
        The new values.

    Examples
    --------
    >>> import torch
    >>> w, e = ef_sign_sgd_step(torch.zeros(2), torch.tensor([3.0, -1.0]), torch.zeros(2), lr=0.5)
    >>> w, e
    (tensor([-1.,  1.]), tensor([0.5000, 0.5000]))
    """
    if finite is None:
        finite = torch.isfinite(grad).all()
    pe = torch.add(torch.mul(grad, lr), error)
    n = torch.linalg.vector_norm(pe, 1)
    delta = _sign1(pe) * (n / pe.numel()).to(pe.dtype)
    return torch.where(finite, param - delta, param), torch.where(finite, pe - delta, error)


def signum_step(param: torch.Tensor, grad: torch.Tensor, momentum: torch.Tensor, *, lr: float,
                beta: float = 0.9, finite: torch.Tensor | None = None):
    """One :class:`Signum` update of one parameter in pure torch operations, without side effects.

    ``m ← βm + (1−β)g``, ``w ← w − η sign(m)`` with ``sign(0) = +1``, in the parameter's
    dtype and the operations of :class:`Signum` (bit for bit the optimizer's result, eager
    or under ``torch.compile(..., fullgraph=True)`` with the ``aot_eager`` backend; inductor
    may fuse the momentum update differently). With ``beta=0`` and ``momentum`` zero it is
    :class:`SignSGD`'s update (``m = g`` exactly).

    Parameters
    ----------
    param, grad, momentum : torch.Tensor
        The parameter's values, its gradient and its momentum (zeros at first).
    lr, beta : float
        As :class:`Signum`.
    finite : torch.Tensor or None
        0-d bool: apply the step, or return ``param`` and ``momentum`` unchanged (the
        device-side skip of :func:`lns_madam_step`); default: this gradient is finite.

    Returns
    -------
    param, momentum : torch.Tensor
        The new values.

    Examples
    --------
    >>> import torch
    >>> w, m = signum_step(torch.zeros(1), torch.tensor([1.0]), torch.zeros(1), lr=0.1, beta=0.9)
    >>> w, m
    (tensor([-0.1000]), tensor([0.1000]))
    """
    if finite is None:
        finite = torch.isfinite(grad).all()
    m = torch.add(torch.mul(momentum, beta), grad, alpha=1.0 - beta)
    w = torch.add(param, _sign1(m), alpha=-lr)
    return torch.where(finite, w, param), torch.where(finite, m, momentum)
