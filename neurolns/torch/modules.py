"""LNS layers for PyTorch and :func:`convert`, which swaps them into an existing model.

Each layer quantizes three things, each with its own format (``None`` keeps
float):

* the **weights** (and bias) — ``weight_format``, straight-through gradient;
* the **input activations** — ``act_format``, a per-tensor power-of-two scale
  per call;
* the **error signal** at the layer's output in the backward pass —
  ``grad_format`` (:func:`~neurolns.torch.quantize_grad`).

Weight storage mirrors :class:`neurolns.sim.Param`:

``storage="fp32"``
    The parameter is a float master copy that any optimizer may update; the
    forward copy is ``quantize(w, weight_format)`` with a per-tensor scale
    chosen at every call (the simulator's float storage).
``storage="lns"``
    The parameter's values lie on the *update grid*
    ``master_format = update_format(weight_format, update_gamma)`` (LNS12,
    γ = 128 for LNS8) at a fixed power-of-two scale (buffers ``weight_scale``,
    ``bias_scale``: ``choose_scale(w) · 2^headroom``, so weights can grow
    ``2^headroom`` times before saturating). The forward copy is the master
    code re-gridded to ``weight_format`` with ties to even (the simulator's
    :func:`~neurolns.sim.forward_table`), so it equals the simulator's forward
    weights bit for bit. :class:`~neurolns.torch.LNSMadam` keeps such
    parameters on their grid.

Reference: Zhao et al., "LNS-Madam", IEEE Trans. Computers 71(12), 2022 (LNS8
weights, activations and gradients; updates on a γ = 128 grid).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from neurolns.formats import LNS8, LNSFormat, _StrEnum
from neurolns.torch.quantize import (
    _TABLE_BUILDERS,
    _compiling,
    _const_table,
    _exponents_pow2,
    choose_scale,
    decode_codes_t,
    encode_codes_t,
    quantize,
    quantize_grad,
)

__all__ = ["Storage", "LNSLinear", "LNSConv1d", "LNSConv2d", "convert", "ConvertReport", "lns_modules", "grid_magnitudes",
           "set_grad_rounding"]

#: every live LNS layer, so that an optimizer can find the grid and scale of a parameter
_LIVE: "weakref.WeakSet[_LNSMixin]" = weakref.WeakSet()


class Storage(_StrEnum):
    """How an LNS layer stores its parameters: ``"fp32"`` master values or ``"lns"`` grid values."""

    FP32 = "fp32"
    LNS = "lns"


def _check_fmt(name, fmt):
    if fmt is None or isinstance(fmt, LNSFormat):
        return fmt
    raise TypeError(f"{name} must be an LNSFormat or None (float), got {type(fmt).__name__} {fmt!r}")


def _check_headroom(h):
    if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= 32:
        raise ValueError(f"headroom={h!r} is out of range; allowed: an int in [0, 32] (octaves)")
    return h


def grid_magnitudes(w: torch.Tensor, master: LNSFormat, scale: torch.Tensor) -> torch.Tensor:
    """Field values ``|c|`` (int64) of values that lie on ``master``'s grid at a power-of-two ``scale``.

    ``|c| = rint(γ (log2|w| − log2 σ)) + β``, 0 for ``w = 0``. Exact for grid
    values in float32, whose ``γ log2|w|`` is within ``10^-3`` of an integer
    (float32 holds ``2^(e/γ)`` to ``6·10^-8``); off-grid values get the
    nearest code (ties to even in float32 arithmetic).
    """
    ls = torch.log2(scale.to(torch.float32))
    t = torch.round((torch.log2(w.abs().to(torch.float32)) - ls) * master.gamma)
    m = torch.clamp(t, master.e_min, master.e_max).nan_to_num_(0.0).to(torch.int64) + master.bias
    return torch.where(w == 0, torch.zeros((), dtype=torch.int64, device=w.device), m)


class _MasterForward(torch.autograd.Function):
    """Forward weights of grid-stored parameters: ``sign(w)·σ·table[|c|]``; STE backward."""

    @staticmethod
    def forward(ctx, w, master, forward, scale):
        if _compiling():
            return _grid_forward_traced(w, master, forward, scale)
        if w.device.type == "cpu" and w.dtype == torch.float32:
            return _grid_forward_numba(w, master, forward, float(scale))
        s = scale.to(device=w.device, dtype=torch.float32)
        mag = _forward_table(master, forward, w.device)[grid_magnitudes(w, master, s)]
        return (torch.where(w < 0, -mag, mag) * s).to(w.dtype)

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None


def _grid_forward_traced(w: torch.Tensor, master: LNSFormat, forward, scale: torch.Tensor) -> torch.Tensor:
    """The same map in torch operations that read nothing back (the ``torch.compile`` path).

    The master code is the exact nearest code of ``|w|`` on ``master``'s grid
    (the correctly rounded encoder, saturated at ``e_min``/``e_max``), so for
    grid values, which LNS-Madam keeps its parameters on, it is the code the
    CPU kernel and :func:`grid_magnitudes` find; 0 and NaN give 0, as there.
    """
    a = w.detach().abs()
    log2s = torch.frexp(scale.to(device=w.device, dtype=torch.float64)).exponent.to(torch.int64) - 1
    e = _exponents_pow2(a, master, log2s)
    e = torch.where(torch.isinf(a), torch.full((), master.e_max, dtype=e.dtype, device=e.device), e)
    m = e.clamp(master.e_min, master.e_max) + master.bias
    m = torch.where((a == 0) | torch.isnan(a), torch.zeros((), dtype=m.dtype, device=m.device), m)
    s = scale.to(device=w.device, dtype=torch.float32)
    mag = _forward_table(master, forward, w.device)[m]
    return (torch.where(w < 0, -mag, mag) * s).to(w.dtype)


def _grid_forward_numba(w: torch.Tensor, master: LNSFormat, forward, scale: float) -> torch.Tensor:
    """One-pass CPU kernel of the same map (the torch operations above are its reference)."""
    import math

    from neurolns._jit import use_parallel
    from neurolns.torch import _kernels as _k

    table = _f32_table(master, forward)
    x = w.detach().contiguous().view(-1).numpy()
    out = torch.empty(w.shape, dtype=torch.float32)
    kernel = _k.grid_forward_parallel if use_parallel(x.size) else _k.grid_forward_serial
    kernel(x, float(master.gamma), master.bias, master.e_min, master.e_max, math.log2(scale), table,
           np.float32(scale), out.view(-1).numpy())
    return out


@lru_cache(maxsize=32)
def _f32_table(master: LNSFormat, forward) -> np.ndarray:
    from neurolns.sim import forward_table

    return forward_table(master, forward, np.float32)


_TABLE_BUILDERS["forward"] = _f32_table


def _forward_table(master: LNSFormat, forward: LNSFormat | None, device) -> torch.Tensor:
    # the simulator's own re-gridding table (a graph constant under torch.compile)
    return _const_table("forward", (master, forward), device, torch.float32)


class _LNSMixin:
    """Shared state and forward helpers of LNSLinear / LNSConv1d / LNSConv2d."""

    def _setup_lns(self, weight_format, act_format, grad_format, storage, update_gamma, headroom):
        self.weight_format = _check_fmt("weight_format", weight_format)
        self.act_format = _check_fmt("act_format", act_format)
        self.grad_format = _check_fmt("grad_format", grad_format)
        self.headroom = _check_headroom(headroom)
        self.update_gamma = int(update_gamma)
        self.master_format = None
        self.set_storage(storage, update_gamma=update_gamma, headroom=headroom)
        _LIVE.add(self)

    def __setstate__(self, state):  # deepcopy / unpickling: register the copy too
        super().__setstate__(state)
        _LIVE.add(self)

    # -- storage ----------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        return Storage.FP32 if self.master_format is None else Storage.LNS

    def set_storage(self, storage="lns", *, update_gamma: int = 128, headroom: int = 3) -> None:
        """Switch the parameters to float (``"fp32"``) or update-grid (``"lns"``) storage.

        ``"lns"`` snaps the current values onto ``update_format(weight_format,
        update_gamma)`` at the scale ``choose_scale(w, weight_format)·2^headroom``
        (nearest, in the log domain) — what :class:`neurolns.sim.Param` does
        with its initial values.
        """
        from neurolns.learning import update_format

        storage = Storage(storage)
        self.headroom = _check_headroom(headroom)
        if storage == Storage.FP32:
            self.master_format = None
            for name in ("weight", "bias"):
                self._buffers.pop(f"{name}_scale", None)
            return
        if self.weight_format is None:
            raise ValueError("storage='lns' needs a weight_format (the forward format the grid refines)")
        self.master_format = update_format(self.weight_format, int(update_gamma))
        self.update_gamma = int(update_gamma)
        for name in ("weight", "bias"):
            p = getattr(self, name, None)
            if p is None:
                continue
            with torch.no_grad():
                s = choose_scale(p, self.weight_format) * 2.0**self.headroom
                self.register_buffer(f"{name}_scale", s.to(torch.float64))
                codes, _ = encode_codes_t(p, self.master_format, scale=s)
                p.copy_(decode_codes_t(codes, self.master_format, s, dtype=p.dtype))

    def _load_grid(self, name: str, codes: torch.Tensor, scale: float, master_format: LNSFormat) -> None:
        """Set parameter ``name`` from master codes at ``scale`` (grid storage on ``master_format``)."""
        p = getattr(self, name)
        self.master_format = master_format
        s = torch.tensor(float(scale), dtype=torch.float64, device=p.device)
        self.register_buffer(f"{name}_scale", s)
        with torch.no_grad():
            p.copy_(decode_codes_t(codes.to(p.device), master_format, s, dtype=p.dtype))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """A float model's state (no ``*_scale`` entries) loads into grid storage as
        :meth:`set_storage` would convert it: scale ``choose_scale(w)·2^headroom`` of the loaded
        values, which are then snapped onto the update grid. States with scales load as saved."""
        filled = []
        if self.master_format is not None:
            for name in ("weight", "bias"):
                key = f"{prefix}{name}_scale"
                if getattr(self, name, None) is not None and key not in state_dict and f"{prefix}{name}" in state_dict:
                    value = state_dict[f"{prefix}{name}"]
                    if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
                        with torch.no_grad():
                            p = getattr(self, name)
                            s = choose_scale(value.to(device=p.device, dtype=p.dtype), self.weight_format)
                        state_dict[key] = (s * 2.0**self.headroom).to(torch.float64)
                        filled.append(name)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        for name in filled:  # snap the loaded float values onto the grid, as set_storage does
            p, s = getattr(self, name), self._buffers[f"{name}_scale"]
            with torch.no_grad():
                codes, _ = encode_codes_t(p, self.master_format, scale=s)
                p.copy_(decode_codes_t(codes, self.master_format, s, dtype=p.dtype))

    def forward_weight(self, name: str = "weight") -> torch.Tensor | None:
        """The quantized values the layer computes with for parameter ``name`` (detached).

        The torch twin of :meth:`neurolns.sim.Param.forward_value`: with
        ``storage="fp32"`` ``quantize(w, weight_format)`` at a per-tensor scale;
        with ``storage="lns"`` the master codes re-gridded to ``weight_format``
        (the simulator's ``forward_table``) times the scale; the parameter itself
        when ``weight_format`` is ``None``. ``None`` for an absent bias.

        Parameters
        ----------
        name : {"weight", "bias"}

        Raises
        ------
        ValueError
            If ``name`` is not ``"weight"`` or ``"bias"``.

        Examples
        --------
        >>> import torch
        >>> from neurolns import LNS8
        >>> layer = LNSLinear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[3.0, 1.0]]))
        >>> layer.forward_weight()          # 3 -> 3.0844 = 2**(13/8): the nearest LNS8 value
        tensor([[3.0844, 1.0000]])
        """
        if name not in ("weight", "bias"):
            raise ValueError(f"name={name!r} is not a parameter of an LNS layer; allowed: 'weight', 'bias'")
        with torch.no_grad():
            w = self._fwd_param(name)
        return None if w is None else w.detach()

    def param_grid(self, name: str):
        """``(master_format, scale)`` of parameter ``name`` with grid storage, else ``None``."""
        if self.master_format is None or getattr(self, name, None) is None:
            return None
        return self.master_format, self._buffers[f"{name}_scale"]

    def param_codes(self, name: str = "weight") -> tuple[torch.Tensor, torch.Tensor]:
        """Master codes and scale of a grid-stored parameter (``storage="lns"``)."""
        grid = self.param_grid(name)
        if grid is None:
            raise TypeError(f"{name} is not stored on an LNS grid; call set_storage('lns') first")
        fmt, s = grid
        return encode_codes_t(getattr(self, name).detach(), fmt, scale=s)[0], s

    # -- forward helpers ----------------------------------------------------------
    def _fwd_param(self, name: str):
        p = getattr(self, name)
        if p is None or self.weight_format is None:
            return p
        if self.master_format is not None:
            return _MasterForward.apply(p, self.master_format, self.weight_format, self._buffers[f"{name}_scale"])
        return quantize(p, self.weight_format, check_nan=False)

    def _fwd_input(self, x):
        if self.act_format is not None:
            x = quantize(x, self.act_format, check_nan=False)
        return x

    #: rounding of the error signal to ``grad_format`` and the generator of its draws
    #: (:func:`set_grad_rounding`); class defaults, so layers built before keep working
    grad_rounding = "nearest"
    grad_generator = None

    def _bwd_output(self, y):
        if self.grad_format is not None and y.requires_grad:
            if self.grad_rounding == "nearest":
                y = quantize_grad(y, self.grad_format)
            else:
                y = quantize_grad(y, self.grad_format, rounding=self.grad_rounding, generator=self.grad_generator)
        return y

    def extra_repr(self) -> str:
        # the torch layer's own repr (next in the MRO), then the formats
        return f"{super().extra_repr()}, {self._lns_repr()}"

    def _lns_repr(self) -> str:
        f = lambda x: "float" if x is None else f"LNS{x.bits}/γ{x.gamma}"  # noqa: E731
        return f"w={f(self.weight_format)}, act={f(self.act_format)}, grad={f(self.grad_format)}, storage={self.storage}"

    def _copy_from(self, src: nn.Module) -> None:
        with torch.no_grad():
            self.weight.copy_(src.weight)
            if self.bias is not None:
                self.bias.copy_(src.bias)


_DOC_FORMATS = """
    weight_format : LNSFormat or None
        Format of the forward weights and bias (default LNS8, γ = 8).
    act_format : LNSFormat or None
        Format of the input activations (``None``: float).
    grad_format : LNSFormat or None
        Format of the error signal at the output in the backward pass.
    storage : {"fp32", "lns"}
        Parameter storage; see the module docstring and :meth:`set_storage`.
    update_gamma : int
        Steps per octave of the update grid for ``storage="lns"`` (128: η = 1/128).
    headroom : int
        Octaves of growth room above the initial ``max|w|`` for ``storage="lns"``.
"""


class LNSLinear(_LNSMixin, nn.Linear):
    __doc__ = f"""``nn.Linear`` with LNS weights, activations and gradients.

    Parameters
    ----------
    in_features, out_features, bias, device, dtype
        As ``torch.nn.Linear``.{_DOC_FORMATS}
    Examples
    --------
    >>> import torch
    >>> from neurolns import LNS8
    >>> layer = LNSLinear(4, 3, weight_format=LNS8)
    >>> layer(torch.ones(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None, *, weight_format=LNS8,
                 act_format=None, grad_format=None, storage="fp32", update_gamma=128, headroom=3):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._setup_lns(weight_format, act_format, grad_format, storage, update_gamma, headroom)

    def forward(self, x):
        y = F.linear(self._fwd_input(x), self._fwd_param("weight"), self._fwd_param("bias"))
        return self._bwd_output(y)


class LNSConv1d(_LNSMixin, nn.Conv1d):
    __doc__ = f"""``nn.Conv1d`` with LNS weights, activations and gradients.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        As ``torch.nn.Conv1d``.{_DOC_FORMATS}
    Examples
    --------
    >>> import torch
    >>> LNSConv1d(1, 4, 3, padding=1)(torch.ones(2, 1, 8)).shape
    torch.Size([2, 4, 8])
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, *, weight_format=LNS8, act_format=None,
                 grad_format=None, storage="fp32", update_gamma=128, headroom=3):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self._setup_lns(weight_format, act_format, grad_format, storage, update_gamma, headroom)

    def forward(self, x):
        y = self._conv_forward(self._fwd_input(x), self._fwd_param("weight"), self._fwd_param("bias"))
        return self._bwd_output(y)


class LNSConv2d(_LNSMixin, nn.Conv2d):
    __doc__ = f"""``nn.Conv2d`` with LNS weights, activations and gradients.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        As ``torch.nn.Conv2d``.{_DOC_FORMATS}
    Examples
    --------
    >>> import torch
    >>> LNSConv2d(3, 4, 3)(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 4, 6, 6])
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, *, weight_format=LNS8, act_format=None,
                 grad_format=None, storage="fp32", update_gamma=128, headroom=3):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self._setup_lns(weight_format, act_format, grad_format, storage, update_gamma, headroom)

    def forward(self, x):
        y = self._conv_forward(self._fwd_input(x), self._fwd_param("weight"), self._fwd_param("bias"))
        return self._bwd_output(y)


def lns_modules():
    """The live LNS layers (a snapshot list), e.g. for an optimizer to find a parameter's grid."""
    return list(_LIVE)


def _build(src: nn.Module, kw: dict) -> nn.Module:
    factory = {"device": src.weight.device, "dtype": src.weight.dtype}
    bias = src.bias is not None
    if type(src) is nn.Linear:
        new = LNSLinear(src.in_features, src.out_features, bias, **factory, **kw)
    else:
        cls = LNSConv1d if type(src) is nn.Conv1d else LNSConv2d
        new = cls(src.in_channels, src.out_channels, src.kernel_size, src.stride, src.padding, src.dilation,
                  src.groups, bias, src.padding_mode, **factory, **kw)
    new.train(src.training)
    storage = kw.get("storage", "fp32")
    new.set_storage("fp32")
    new._copy_from(src)
    new.set_storage(storage, update_gamma=kw.get("update_gamma", 128), headroom=kw.get("headroom", 3))
    return new


@dataclass
class ConvertReport:
    """What :func:`convert` swapped: one ``(name, from, to, weight shape)`` row per layer."""

    swapped: list = field(default_factory=list)
    kept: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.swapped)

    def __str__(self) -> str:
        rows = [f"{'layer':<24} {'from':<8} {'to':<10} weight"]
        rows += [f"{n:<24} {a:<8} {b:<10} {tuple(s)}" for n, a, b, s in self.swapped]
        rows.append(f"{len(self.swapped)} layer(s) swapped, {len(self.kept)} skipped")
        return "\n".join(rows)


_SWAPPABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def set_grad_rounding(model: nn.Module, rounding="nearest", *, seed: int | None = None) -> int:
    """Round the error signals of every LNS layer of ``model`` with ``rounding``.

    ``"stochastic"`` rounds each error signal up or down in the log domain
    with the probability that makes it unbiased (:class:`neurolns.formats.Rounding`),
    drawing from one ``torch.Generator`` shared by the layers, seeded with
    ``seed`` (on the device of the model's first parameter). Returns the number
    of layers set. The simulator's counterpart is ``Sequential(grad_rounding=...)``.

    Examples
    --------
    >>> from torch import nn
    >>> from neurolns import LNS8
    >>> m = nn.Sequential(nn.Linear(4, 3))
    >>> _ = convert(m, LNS8, grad_format=LNS8)
    >>> set_grad_rounding(m, "stochastic", seed=0)
    1
    """
    from neurolns.formats import Rounding

    rounding = Rounding(rounding)
    layers = [m for m in model.modules() if isinstance(m, _LNSMixin)]
    gen = None
    if rounding is Rounding.STOCHASTIC:
        first = next(model.parameters(), None)
        gen = torch.Generator(device=first.device if first is not None else "cpu")
        if seed is not None:
            gen.manual_seed(int(seed))
    for m in layers:
        m.grad_rounding = rounding.value
        m.grad_generator = gen
    return len(layers)


def convert(model: nn.Module, fmt: LNSFormat | None = LNS8, *, act_format=None, grad_format=None, storage="fp32",
            update_gamma: int = 128, headroom: int = 3, skip=()) -> ConvertReport:
    """Swap every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` of ``model`` for its LNS layer, in place.

    Weights and biases are copied (same device and dtype); other modules are
    left alone. Subclasses of those layers are not swapped (their forward may
    differ) and are listed in ``report.kept``, as are the names in ``skip``.

    Parameters
    ----------
    model : torch.nn.Module
    fmt : LNSFormat or None
        Weight format of the new layers.
    act_format, grad_format, storage, update_gamma, headroom
        As :class:`LNSLinear`.
    skip : iterable of str
        Qualified module names to leave in float (e.g. the first or last layer).

    Returns
    -------
    ConvertReport
        ``swapped``: ``(name, "Linear", "LNSLinear", weight shape)`` rows.

    Examples
    --------
    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> report = convert(m)
    >>> [row[:3] for row in report.swapped]
    [('0', 'Linear', 'LNSLinear'), ('2', 'Linear', 'LNSLinear')]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kw = dict(weight_format=_check_fmt("fmt", fmt), act_format=_check_fmt("act_format", act_format),
              grad_format=_check_fmt("grad_format", grad_format), storage=Storage(storage),
              update_gamma=update_gamma, headroom=_check_headroom(headroom))
    skip = set(skip)
    report = ConvertReport()
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, _SWAPPABLE) or isinstance(mod, _LNSMixin):
            continue
        if name in skip or type(mod) not in _SWAPPABLE:
            report.kept.append(name)
            continue
        new = _build(mod, kw)
        if name == "":
            raise ValueError("model itself is a single layer; wrap it (e.g. nn.Sequential(layer)) to convert it in place")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
        report.swapped.append((name, type(mod).__name__, type(new).__name__, tuple(mod.weight.shape)))
    return report
