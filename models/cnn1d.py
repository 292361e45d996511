"""A small 1-D CNN for MNIST-1D: three strided convolutions and a linear read-out.

The architecture of the MNIST-1D paper's CNN (Greydanus 2020, 94% test
accuracy): ``Conv1d(1→C, k=5, stride 2, pad 1)``, ``Conv1d(C→C, 3, 2, 1)``,
``Conv1d(C→C, 3, 2, 1)``, each followed by ReLU, then ``Linear(C·L3 → 10)``
with ``C = 25``; a 40-sample input gives lengths 19, 10, 5. The input arrives
flat ``(N, L)`` and is reshaped to ``(N, 1, L)`` by the first layer, so the
layer indices of ``build_sim`` and ``build_torch`` agree
(``"1.weight", "1.bias", "3.weight", ..., "8.weight", "8.bias"``).
"""

from __future__ import annotations

import numpy as np

from neurolns.sim import Conv1d, Dense, Flatten, ReLU, Reshape, Sequential, storage_kwargs

__all__ = ["build_sim", "build_torch", "conv_specs", "output_lengths"]


def conv_specs(channels: int = 25) -> list[tuple[int, int, int, int, int]]:
    """``(in_ch, out_ch, kernel, stride, padding)`` of the three convolutions."""
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ValueError(f"channels={channels!r} is out of range; allowed: an int >= 1")
    c = int(channels)
    return [(1, c, 5, 2, 1), (c, c, 3, 2, 1), (c, c, 3, 2, 1)]


def output_lengths(length: int, channels: int = 25) -> list[int]:
    """Signal length after each convolution, ``floor((L + 2p − k)/s) + 1``."""
    out = []
    for _, _, k, s, p in conv_specs(channels):
        length = (length + 2 * p - k) // s + 1
        if length < 1:
            raise ValueError("the input is too short for three strided convolutions; allowed: length >= 8")
        out.append(length)
    return out


def build_sim(length: int = 40, channels: int = 25, n_classes: int = 10, *, weights="fp32",
              forward_format=None, update_gamma: int = 128, headroom: int = 3, act_format=None,
              grad_format=None, grad_rounding="nearest", products="fast", seed: int = 0) -> Sequential:
    """The CNN as a :class:`neurolns.sim.Sequential` (arguments as :func:`models.mlp.build_sim`).

    Examples
    --------
    >>> net = build_sim(weights="lns")
    >>> [(k, p.shape) for k, p in net.named_params()][-2:]
    [('8.weight', (10, 125)), ('8.bias', (10,))]
    """
    kw = storage_kwargs(weights, forward_format=forward_format, update_gamma=update_gamma, headroom=headroom)
    l_last = output_lengths(length, channels)[-1]
    seeds = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    layers = [Reshape(1, int(length))]
    for i, (ci, co, k, s, p) in enumerate(conv_specs(channels)):
        layers += [Conv1d(ci, co, k, stride=s, padding=p, products=products, seed=seeds[i], **kw), ReLU()]
    layers += [Flatten(), Dense(int(channels) * l_last, n_classes, products=products, seed=seeds[3], **kw)]
    return Sequential(layers, act_format=act_format, grad_format=grad_format, grad_rounding=grad_rounding,
                      seed=np.random.SeedSequence([seed, 1]))  # the draws of stochastic rounding


def build_torch(length: int = 40, channels: int = 25, n_classes: int = 10, *, seed: int = 0):
    """The same CNN as a plain ``torch.nn.Sequential`` (``nn.Unflatten`` first).

    Examples
    --------
    >>> m = build_torch()
    >>> [k for k in m.state_dict()][-2:]
    ['8.weight', '8.bias']
    """
    import torch
    from torch import nn

    l_last = output_lengths(length, channels)[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [nn.Unflatten(1, (1, int(length)))]
        for ci, co, k, s, p in conv_specs(channels):
            layers += [nn.Conv1d(ci, co, k, stride=s, padding=p), nn.ReLU()]
        layers += [nn.Flatten(), nn.Linear(int(channels) * l_last, n_classes)]
        return nn.Sequential(*layers)
