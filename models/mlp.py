"""A multilayer perceptron: Dense → ReLU → ... → Dense (logits).

``build_sim`` and ``build_torch`` give the same architecture with the same
parameter order, names and shapes (``"0.weight", "0.bias", "2.weight", ...``
in torch's ``(out, in)`` layout), so weights move one-to-one between them.
The default 64-256-10 fits scikit-learn's digits.
"""

from __future__ import annotations

import numpy as np

from neurolns.sim import Dense, ReLU, Sequential, storage_kwargs

__all__ = ["build_sim", "build_torch", "layer_sizes"]


def layer_sizes(in_features: int, hidden, n_classes: int) -> list[int]:
    """``[in, hidden..., classes]``, checked."""
    hidden = [hidden] if isinstance(hidden, (int, np.integer)) else list(hidden)
    sizes = [in_features, *hidden, n_classes]
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"layer size {s!r} is out of range; allowed: ints >= 1 (got {sizes})")
    return [int(s) for s in sizes]


def build_sim(in_features: int = 64, hidden=(256,), n_classes: int = 10, *, weights="fp32",
              forward_format=None, update_gamma: int = 128, headroom: int = 3, act_format=None,
              grad_format=None, grad_rounding="nearest", products="fast", seed: int = 0) -> Sequential:
    """The MLP as a :class:`neurolns.sim.Sequential`.

    Parameters
    ----------
    in_features, hidden, n_classes
        Input size, hidden sizes (an int or a sequence), number of classes.
    weights : {"fp32", "lns"}
        Storage (see :func:`neurolns.sim.storage_kwargs`): float32 values or
        LNS codes on the update grid with an LNS forward copy (default LNS8 γ=8).
    forward_format, update_gamma, headroom
        See :func:`neurolns.sim.storage_kwargs`.
    act_format, grad_format : LNSFormat, FloatFormat, IntFormat, optional
        Activation and error-signal formats (float32 when None).
    grad_rounding : {"nearest", "stochastic"}
        Rounding of the error signals (see :class:`neurolns.sim.Sequential`).
    products : {"fast", "exact"}
    seed : int
        Initialisation seed (one independent stream per layer).

    Examples
    --------
    >>> net = build_sim(weights="lns")
    >>> [name for name, _ in net.named_params()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """
    sizes = layer_sizes(in_features, hidden, n_classes)
    kw = storage_kwargs(weights, forward_format=forward_format, update_gamma=update_gamma, headroom=headroom)
    seeds = np.random.SeedSequence(seed).spawn(len(sizes) - 1)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(ReLU())
        layers.append(Dense(a, b, products=products, seed=np.random.default_rng(seeds[i]), **kw))
    return Sequential(layers, act_format=act_format, grad_format=grad_format, grad_rounding=grad_rounding,
                      seed=np.random.SeedSequence([seed, 1]))  # the draws of stochastic rounding


def build_torch(in_features: int = 64, hidden=(256,), n_classes: int = 10, *, seed: int = 0):
    """The same MLP as a plain ``torch.nn.Sequential`` (torch's default initialisation,
    seeded without touching the global RNG).

    Examples
    --------
    >>> m = build_torch()
    >>> [(k, tuple(v.shape)) for k, v in m.state_dict().items()][:2]
    [('0.weight', (256, 64)), ('0.bias', (256,))]
    """
    import torch
    from torch import nn

    sizes = layer_sizes(in_features, hidden, n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(a, b))
        return nn.Sequential(*layers)
