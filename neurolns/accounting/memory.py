"""Memory footprint of a network per format and training rule, and its peak during a step.

Bytes are counted at the formats' bit widths (a 12-bit code takes 1.5 bytes:
packed storage). During a training step the peak is reached at the end of the
forward pass, when every activation saved for the backward pass is alive:

.. math::

    \\text{peak} = P\\,(b_w + b_m + b_g + n_s b_s)/8 + A_\\text{saved}\\, b_a/8 + A_\\text{max}\\, b_a/8

with ``P`` parameters, ``b_w`` the forward copy of the weights (0 when the
forward reads the master), ``b_m`` the master copy, ``b_g`` the gradient, ``n_s``
state tensors of ``b_s`` bits (Adam 2, Madam/LNS-Madam 1), ``A_saved`` the saved
activation elements (at the recipe's activation width ``b_a``) and ``A_max`` the largest intermediate tensor (the workspace
beside them). FP32 Adam takes 4 + 4 + 8 = 16 bytes per parameter, as does BF16
mixed precision (2 + 4 + 2 + 8; Rajbhandari et al., ZeRO, SC 2020).
Inference keeps the weights and two activations (a layer's input and output).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from neurolns.accounting.counts import Counts
from neurolns.accounting.energy import format_bits
from neurolns.accounting.rules import STATE_TENSORS, Recipe

__all__ = ["MemoryFootprint", "memory_footprint"]


@dataclass(frozen=True)
class MemoryFootprint:
    """Bytes held per category; :attr:`peak` is their sum."""

    recipe: str
    params: int
    weights: float
    master: float
    grads: float
    state: float
    activations: float
    workspace: float

    @property
    def peak(self) -> float:
        return self.weights + self.master + self.grads + self.state + self.activations + self.workspace

    @property
    def bytes_per_param(self) -> float:
        """Parameter-related bytes (weights, master, gradient, state) per parameter."""
        return (self.weights + self.master + self.grads + self.state) / max(self.params, 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(peak=self.peak, bytes_per_param=self.bytes_per_param)
        return d


def memory_footprint(counts: Counts, recipe: Recipe, *, training: bool | None = None) -> MemoryFootprint:
    """Footprint of the counted network under ``recipe``.

    Parameters
    ----------
    counts : Counts
        From :func:`neurolns.torch.counting.count_torch` or the plain-description
        helpers; ``saved_elems`` and ``transient_elems`` size the activations.
    recipe : Recipe
    training : bool, optional
        Default: ``recipe.trains``.
    """
    if not isinstance(counts, Counts):
        raise TypeError(f"counts must be a Counts, got {type(counts).__name__}")
    counts.check()
    training = recipe.trains if training is None else training
    p = counts.params
    b = format_bits(recipe.weights_fmt) / 8
    b_act = format_bits(recipe.activations_fmt) / 8
    if not training:
        return MemoryFootprint(recipe.name, p, p * b, 0.0, 0.0, 0.0, 0.0, 2 * counts.transient_elems * b_act)
    has_master = recipe.master is not None
    weights = p * b if (not has_master or recipe.weight_copy) else 0.0
    master = p * format_bits(recipe.master) / 8 if has_master else 0.0
    grads = p * format_bits(recipe.grad_fmt) / 8
    state = p * STATE_TENSORS[recipe.rule] * format_bits(recipe.state_fmt) / 8
    return MemoryFootprint(recipe.name, p, weights, master, grads, state, counts.saved_elems * b_act,
                           counts.transient_elems * b_act)
