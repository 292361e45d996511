"""Exact transfer of networks between PyTorch and the Numba simulator.

:func:`to_sim` turns an ``nn.Sequential`` into a :class:`neurolns.sim.Sequential`
and :func:`from_sim` does the reverse. Layer indices, parameter names and
layouts are kept (``"0.weight"`` is ``"0.weight"`` on both sides), and so is
the storage of every parameter:

=====================================  ==========================================
torch                                  simulator
=====================================  ==========================================
``nn.Linear`` / ``nn.Conv1d/2d``      ``Dense`` / ``Conv1d/2d``, float32, no format
LNS layer, ``storage="fp32"``          float32 master, ``forward_format`` = the
                                       layer's ``weight_format``
LNS layer, ``storage="lns"``           codes on ``master_format`` at the same
                                       scale (identical codes), same forward format
=====================================  ==========================================

Activations map one-to-one (``ReLU, LeakyReLU, Tanh, Sigmoid, Flatten,
Unflatten(1, shape) ↔ Reshape, MaxPool1d, MaxPool2d``). The forward passes
then agree to float32 rounding (the BLAS libraries differ), and one LNS-Madam
step on the same gradients gives identical codes on both sides.

Activation and gradient quantizers are placed differently (the simulator
quantizes every layer's output and every error signal it passes back; an LNS
layer quantizes its own input and the error at its output), so they are not
carried over implicitly: give ``act_format``/``grad_format`` to
:func:`to_sim`, or set them on the layers after :func:`from_sim`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from neurolns.torch.modules import LNSConv1d, LNSConv2d, LNSLinear, _LNSMixin

__all__ = ["to_sim", "from_sim"]


def _param_to_sim(sim_param, module, name):
    """Write torch parameter ``name`` of ``module`` into a simulator Param (same storage)."""
    t = getattr(module, name).detach()
    if isinstance(module, _LNSMixin) and module.master_format is not None:
        codes, scale = module.param_codes(name)
        sim_param.set_codes(codes.cpu().numpy(), float(scale))
    else:
        sim_param.set_value(t.cpu().to(torch.float64).numpy())


def _storage_kwargs(module) -> dict:
    if isinstance(module, _LNSMixin):
        return dict(master_format=module.master_format, forward_format=module.weight_format,
                    headroom=module.headroom)
    return dict(master_format=None, forward_format=None)


def _check_conv(m: nn.Conv1d | nn.Conv2d, name: str) -> None:
    bad = []
    if any(d != 1 for d in m.dilation):
        bad.append(f"dilation={m.dilation}")
    if m.groups != 1:
        bad.append(f"groups={m.groups}")
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        bad.append(f"padding={m.padding!r}, padding_mode={m.padding_mode!r}")
    if bad:
        kind = "Conv2d" if isinstance(m, nn.Conv2d) else "Conv1d"
        raise ValueError(f"layer {name}: the simulator's {kind} has no {', '.join(bad)}; "
                         "allowed: dilation 1, groups 1, integer zero padding")


def _pool_kernel(m: nn.MaxPool1d | nn.MaxPool2d, name: str, dims: int) -> tuple:
    """The window of a non-overlapping ``MaxPool{dims}d(k)`` (stride ``k``); ``ValueError`` for another pool."""
    def spread(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * dims

    k = spread(m.kernel_size)
    if spread(m.stride) != k or any(spread(m.padding)) or any(d != 1 for d in spread(m.dilation)) or m.ceil_mode:
        raise ValueError(f"layer {name}: only non-overlapping MaxPool{dims}d(k) has a simulator twin, got {m}")
    return k


def _flat_children(model: nn.Sequential, prefix: str = ""):
    """``(qualified name, module)`` of the leaves, nested ``nn.Sequential`` blocks expanded in order."""
    for name, m in model.named_children():
        if isinstance(m, nn.Sequential):
            yield from _flat_children(m, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", m


def to_sim(model: nn.Module, *, act_format=None, grad_format=None, products: str = "fast"):
    """The simulator network of a torch ``nn.Sequential``, with identical parameters.

    Parameters
    ----------
    model : torch.nn.Sequential
        Nested ``nn.Sequential`` blocks (torchvision's ``features`` /
        ``classifier`` style) are flattened in order; the simulator's layer
        ``i`` is the ``i``-th leaf. Leaves: ``nn.Linear``, ``nn.Conv1d``,
        ``nn.Conv2d`` (dilation 1, groups 1, zero padding), :class:`LNSLinear`,
        :class:`LNSConv1d`, :class:`LNSConv2d`, ``ReLU, LeakyReLU, Tanh,
        Sigmoid, Flatten, Unflatten(1, shape), MaxPool1d(k), MaxPool2d(k)``
        (stride ``k``).
    act_format, grad_format : LNSFormat, optional
        The simulator network's activation and error-signal formats.
    products : {"fast", "exact"}
        The simulator's product mode for the weighted layers.

    Returns
    -------
    neurolns.sim.Sequential

    Raises
    ------
    ValueError
        For a layer the simulator does not have (its name and type are given).

    Examples
    --------
    >>> from torch import nn
    >>> net = to_sim(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> [name for name, _ in net.named_params()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """
    from neurolns import sim

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"to_sim needs a torch.nn.Sequential, got {type(model).__name__}")
    layers = []
    carried = set()
    for name, m in _flat_children(model):
        if isinstance(m, _LNSMixin) and (m.act_format is not None or m.grad_format is not None):
            carried.add(name)
        if isinstance(m, nn.Linear):
            layer = sim.Dense(m.in_features, m.out_features, bias=m.bias is not None, products=products,
                              **_storage_kwargs(m))
        elif isinstance(m, nn.Conv1d):
            _check_conv(m, name)
            layer = sim.Conv1d(m.in_channels, m.out_channels, m.kernel_size[0], stride=m.stride[0],
                               padding=m.padding[0], bias=m.bias is not None, products=products,
                               **_storage_kwargs(m))
        elif isinstance(m, nn.Conv2d):
            _check_conv(m, name)
            layer = sim.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                               bias=m.bias is not None, products=products, **_storage_kwargs(m))
        elif isinstance(m, nn.ReLU):
            layer = sim.ReLU()
        elif isinstance(m, nn.LeakyReLU):
            layer = sim.LeakyReLU(float(m.negative_slope))
        elif isinstance(m, nn.Tanh):
            layer = sim.Tanh()
        elif isinstance(m, nn.Sigmoid):
            layer = sim.Sigmoid()
        elif isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(f"layer {name}: only Flatten(1, -1) has a simulator twin, got {m}")
            layer = sim.Flatten()
        elif isinstance(m, nn.Unflatten):
            if m.dim != 1:
                raise ValueError(f"layer {name}: only Unflatten(1, shape) has a simulator twin, got {m}")
            layer = sim.Reshape(*[int(s) for s in m.unflattened_size])
        elif isinstance(m, nn.MaxPool1d):
            layer = sim.MaxPool1d(_pool_kernel(m, name, 1)[0])
        elif isinstance(m, nn.MaxPool2d):
            layer = sim.MaxPool2d(_pool_kernel(m, name, 2))
        else:
            raise ValueError(f"layer {name} ({type(m).__name__}) has no simulator twin; allowed: Linear, Conv1d, "
                             "Conv2d, their LNS layers, ReLU, LeakyReLU, Tanh, Sigmoid, Flatten, Unflatten, "
                             "MaxPool1d, MaxPool2d")
        for p in layer.params():
            _param_to_sim(p, m, p.name)
        layers.append(layer)
    if carried and act_format is None and grad_format is None:
        warnings.warn(f"layers {sorted(carried)} quantize activations or gradients; the simulator places those "
                      "quantizers differently, so they are not carried over (give act_format/grad_format)",
                      UserWarning, stacklevel=2)
    return sim.Sequential(layers, act_format=act_format, grad_format=grad_format)


def _module_for(layer, device, dtype):
    """The torch twin of a weighted simulator layer (before its parameters are written)."""
    from neurolns import sim

    w = layer.weight
    lns = w.master_format is not None or w.forward_format is not None
    fwd = w.forward_format if w.forward_format is not None else w.master_format
    factory = dict(device=device, dtype=dtype)
    lns_kw = dict(weight_format=fwd, headroom=w.headroom) if lns else {}
    bias = layer.bias is not None
    if isinstance(layer, sim.Dense):
        if lns:
            return LNSLinear(layer.in_features, layer.out_features, bias, **factory, **lns_kw)
        return nn.Linear(layer.in_features, layer.out_features, bias, **factory)
    args = (layer.in_channels, layer.out_channels, layer.kernel_size)
    kw = dict(stride=layer.stride, padding=layer.padding, bias=bias, **factory)
    if isinstance(layer, sim.Conv2d):
        return LNSConv2d(*args, **kw, **lns_kw) if lns else nn.Conv2d(*args, **kw)
    return LNSConv1d(*args, **kw, **lns_kw) if lns else nn.Conv1d(*args, **kw)


def from_sim(net, *, device=None, dtype=torch.float32) -> nn.Sequential:
    """The torch ``nn.Sequential`` of a simulator network, with identical parameters.

    Weighted layers with an LNS format become :class:`LNSLinear` /
    :class:`LNSConv1d` / :class:`LNSConv2d`; those whose parameters are codes get
    ``storage="lns"`` with the simulator's update grid and scale, so their
    values, forward weights and codes are the simulator's exactly.

    Parameters
    ----------
    net : neurolns.sim.Sequential
    device : torch.device or str, optional
    dtype : torch.dtype
        Parameter dtype (float32 holds every LNS8/LNS12 value the simulator
        decodes to float32).

    Examples
    --------
    >>> from neurolns.sim import Dense, ReLU, Sequential, storage_kwargs
    >>> net = Sequential([Dense(4, 8, seed=0, **storage_kwargs("lns")), ReLU(), Dense(8, 2, seed=1)])
    >>> model = from_sim(net)
    >>> type(model[0]).__name__, model[0].storage.value, type(model[2]).__name__
    ('LNSLinear', 'lns', 'Linear')
    """
    from neurolns import sim

    if not isinstance(net, sim.Sequential):
        raise TypeError(f"from_sim needs a neurolns.sim.Sequential, got {type(net).__name__}")
    if net.act_format is not None or net.grad_format is not None:
        warnings.warn("the simulator network quantizes activations or error signals; the LNS layers place those "
                      "quantizers differently, so they are not carried over", UserWarning, stacklevel=2)
    mods = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, (sim.Dense, sim.Conv1d, sim.Conv2d)):
            m = _module_for(layer, device, dtype)
            for p in layer.params():
                _param_from_sim(m, p)
        elif isinstance(layer, sim.LeakyReLU):
            m = nn.LeakyReLU(layer.alpha)
        elif isinstance(layer, sim.ReLU):
            m = nn.ReLU()
        elif isinstance(layer, sim.Tanh):
            m = nn.Tanh()
        elif isinstance(layer, sim.Sigmoid):
            m = nn.Sigmoid()
        elif isinstance(layer, sim.Flatten):
            m = nn.Flatten()
        elif isinstance(layer, sim.Reshape):
            m = nn.Unflatten(1, tuple(layer.shape))
        elif isinstance(layer, sim.MaxPool1d):
            m = nn.MaxPool1d(layer.kernel_size)
        elif isinstance(layer, sim.MaxPool2d):
            m = nn.MaxPool2d(layer.kernel_size)
        else:
            raise ValueError(f"layer {i} ({type(layer).__name__}) has no torch twin")
        mods.append(m)
    return nn.Sequential(*mods)


def _param_from_sim(module, p) -> None:
    target = getattr(module, p.name)
    with torch.no_grad():
        if p.on_codes:
            module._load_grid(p.name, torch.from_numpy(np.ascontiguousarray(p.data)), p.scale, p.master_format)
        else:
            target.copy_(torch.from_numpy(p.data.astype(np.float32)))
