"""A small 2-D CNN for scikit-learn's 8×8 digits: two 3×3 convolutions, each pooled.

``Conv2d(1→C, 3, pad 1)``, ReLU, ``MaxPool2d(2)`` (8×8 → 4×4),
``Conv2d(C→C, 3, pad 1)``, ReLU, ``MaxPool2d(2)`` (→ 2×2), then
``Linear(C·2·2 → 10)``, with ``C = 32``. The input arrives flat ``(N, S²)``
and is reshaped to ``(N, 1, S, S)`` by the first layer, so the layer indices
of ``build_sim`` and ``build_torch`` agree
(``"1.weight", "1.bias", "4.weight", "4.bias", "8.weight", "8.bias"``).

``build_torch`` is the simulator network handed to torch by
:func:`neurolns.torch.from_sim`, so a seed gives the same initial weights on
both sides (torch's default bounds ``±1/sqrt(fan_in)``, drawn from the
simulator's per-layer generators) and LNS storage gives LNS torch layers with
the simulator's codes.
"""

from __future__ import annotations

import math

import numpy as np

from neurolns.sim import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Reshape, Sequential, storage_kwargs

__all__ = ["build_sim", "build_torch", "conv_specs", "output_sizes", "image_size"]


def conv_specs(channels: int = 32) -> list[tuple[int, int, int, int, int]]:
    """``(in_ch, out_ch, kernel, stride, padding)`` of the two convolutions."""
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ValueError(f"channels={channels!r} is out of range; allowed: an int >= 1")
    c = int(channels)
    return [(1, c, 3, 1, 1), (c, c, 3, 1, 1)]


def output_sizes(size: int = 8) -> list[int]:
    """Image side after each convolution + ``MaxPool2d(2)`` block, ``floor(S/2)`` (padding 1 keeps ``S``)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 4:
        raise ValueError(f"size={size!r} is out of range; allowed: an int >= 4 (two 2×2 poolings)")
    out, s = [], int(size)
    for _ in range(2):
        s //= 2
        out.append(s)
    return out


def image_size(n_features: int) -> int:
    """The side ``S`` of a flat square image of ``n_features = S²`` pixels.

    >>> image_size(64)
    8
    """
    s = math.isqrt(n_features) if isinstance(n_features, (int, np.integer)) and n_features > 0 else 0
    if isinstance(n_features, bool) or s * s != n_features or s < 4:
        raise ValueError(f"n_features={n_features!r} is out of range; allowed: a square S² with S >= 4")
    return s


def build_sim(size: int = 8, channels: int = 32, n_classes: int = 10, *, weights="fp32",
              forward_format=None, update_gamma: int = 128, headroom: int = 3, act_format=None,
              grad_format=None, grad_rounding="nearest", products="fast", seed: int = 0) -> Sequential:
    """The CNN as a :class:`neurolns.sim.Sequential` (arguments as :func:`models.mlp.build_sim`).

    Parameters
    ----------
    size : int
        Side of the square input image (flat ``(N, size²)`` input), ``>= 4``.
    channels : int
        Channels ``C`` of both convolutions.
    n_classes, weights, forward_format, update_gamma, headroom, act_format, grad_format, grad_rounding,
    products, seed
        As :func:`models.mlp.build_sim`.

    Examples
    --------
    >>> net = build_sim(weights="lns")
    >>> [(k, p.shape) for k, p in net.named_params()][-2:]
    [('8.weight', (10, 128)), ('8.bias', (10,))]
    """
    kw = storage_kwargs(weights, forward_format=forward_format, update_gamma=update_gamma, headroom=headroom)
    s_last = output_sizes(size)[-1]
    seeds = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    layers = [Reshape(1, int(size), int(size))]
    for i, (ci, co, k, s, p) in enumerate(conv_specs(channels)):
        layers += [Conv2d(ci, co, k, stride=s, padding=p, products=products, seed=seeds[i], **kw), ReLU(),
                   MaxPool2d(2)]
    layers += [Flatten(), Dense(int(channels) * s_last * s_last, n_classes, products=products, seed=seeds[2], **kw)]
    return Sequential(layers, act_format=act_format, grad_format=grad_format, grad_rounding=grad_rounding,
                      seed=np.random.SeedSequence([seed, 1]))  # the draws of stochastic rounding


def build_torch(size: int = 8, channels: int = 32, n_classes: int = 10, *, weights="fp32", forward_format=None,
                update_gamma: int = 128, headroom: int = 3, seed: int = 0):
    """The same CNN as a ``torch.nn.Sequential`` with the initial weights of :func:`build_sim`.

    ``weights="fp32"`` gives plain ``nn.Conv2d`` / ``nn.Linear`` layers (LNS
    layers with float storage when ``forward_format`` is given);
    ``weights="lns"`` gives ``LNSConv2d`` / ``LNSLinear`` with ``storage="lns"``
    holding the simulator's codes and scales.

    Examples
    --------
    >>> m = build_torch()
    >>> [k for k in m.state_dict()][-2:], type(m[1]).__name__
    (['8.weight', '8.bias'], 'Conv2d')
    """
    from neurolns.torch import from_sim

    return from_sim(build_sim(size, channels, n_classes, weights=weights, forward_format=forward_format,
                              update_gamma=update_gamma, headroom=headroom, seed=seed))
