"""Learning-rate schedules shared by the simulator's trainer and the torch bridge.

A schedule maps the step index ``s`` (0-based, counted over the whole run) and
the run's length ``S`` in steps to a factor ``f(s) ∈ (0, 1]`` of the base rate:

* ``"constant"``: ``f = 1``;
* ``"cosine"``: ``f = ½ (1 + cos(π s / S))`` (Loshchilov & Hutter, SGDR,
  ICLR 2017, without restarts), from 1 at the first step towards 0 at the last.

Multiplicative rules on exponent codes (LNS-Madam, the multiplicative vote)
can only move a code by a whole number of grid steps, so for them the scheduled
rate is rounded to the grid: ``η_s = max(1, round(η₀ γ f(s))) / γ`` — the
step count ``k = η γ`` decays through the integers and never reaches zero (one
grid step, ``1/γ`` octave, is the smallest move the hardware can make).
LNS-Madam also takes the unrounded rate ``η₀ f(s)``: it rounds a fractional
move stochastically, so its codes follow the schedule in expectation (see
:func:`neurolns.learning.lns_madam_update`); the multiplicative vote needs the
whole steps.

Why a schedule at all: Madam and LNS-Madam take steps of a fixed *relative*
size, so at a constant rate the weights keep jittering by ``±η`` octaves around
a minimum; annealing the rate lets them settle. On the MNIST-1D CNN this is
worth several points of test accuracy for every rule (``docs/simulator.md``).
"""

from __future__ import annotations

import math

from neurolns.formats import _check_int_at_least, _StrEnum
from neurolns.learning._checks import check_real

__all__ = ["Schedule", "schedule_factor", "scheduled_lr"]


class Schedule(_StrEnum):
    """Names of the learning-rate schedules."""

    CONSTANT = "constant"
    COSINE = "cosine"


def schedule_factor(schedule: Schedule | str, step: int, total_steps: int) -> float:
    """The factor ``f(s)`` of the base learning rate at step ``s`` of ``S``.

    Parameters
    ----------
    schedule : {"constant", "cosine"}
    step : int
        0-based index of the step over the whole run. Steps past the end
        (``s ≥ S``, e.g. a run continued beyond its planned length) keep the
        last factor, ``f(S − 1)``.
    total_steps : int
        ``S``, the planned number of steps (≥ 1).

    Returns
    -------
    float
        ``1`` for ``"constant"``; ``½ (1 + cos(π s/S))`` for ``"cosine"``.

    Examples
    --------
    >>> [round(schedule_factor("cosine", s, 4), 4) for s in range(5)]
    [1.0, 0.8536, 0.5, 0.1464, 0.1464]
    >>> schedule_factor("constant", 3, 4)
    1.0
    """
    schedule = Schedule(schedule)
    step = _check_int_at_least("step", step, 0)
    total_steps = _check_int_at_least("total_steps", total_steps, 1)
    if schedule is Schedule.CONSTANT:
        return 1.0
    s = min(step, total_steps - 1)
    return 0.5 * (1.0 + math.cos(math.pi * s / total_steps))


def scheduled_lr(lr: float, schedule: Schedule | str, step: int, total_steps: int, *,
                 grid_gamma: int | None = None) -> float:
    """The learning rate at step ``s``: ``lr · f(s)``, on the code grid if given.

    Parameters
    ----------
    lr : float
        The base rate ``η₀`` (> 0); for code rules in octaves, a whole number
        of grid steps ``k₀/γ``.
    schedule, step, total_steps
        As :func:`schedule_factor`.
    grid_gamma : int, optional
        ``γ`` of the update grid of a code rule: the result is
        ``max(1, round(η₀ γ f(s))) / γ``, a whole number ≥ 1 of grid steps.

    Examples
    --------
    >>> [scheduled_lr(16 / 128, "cosine", s, 8, grid_gamma=128) * 128 for s in range(8)]
    [16.0, 15.0, 14.0, 11.0, 8.0, 5.0, 2.0, 1.0]
    >>> scheduled_lr(0.1, "cosine", 2, 4)
    0.05
    """
    lr = check_real("lr", lr, 0.0, math.inf, lo_open=True, hi_open=True)
    f = schedule_factor(schedule, step, total_steps)
    if grid_gamma is None:
        return lr * f
    grid_gamma = _check_int_at_least("grid_gamma", grid_gamma, 1)
    return max(1, round(lr * grid_gamma * f)) / grid_gamma
