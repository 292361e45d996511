"""Optimizer updates and gradient exchanges, priced per recipe.

The recipes (:class:`~neurolns.recipes.Recipe`, :data:`~neurolns.recipes.RECIPES`)
live in :mod:`neurolns.recipes`, shared with the trainers, and are re-exported
here. With a 1-bit exchange (``exchange="sign"``) the update priced is the
voted one that the trainers run (:func:`rule_ops_per_param`, ``voted``).

Per-parameter operation counts of each update rule (one step), in the formats
the rule keeps its numbers in:

========== ============================================================ ==========================
rule       operations per parameter                                     state per parameter
========== ============================================================ ==========================
sgd        1 mul, 1 add                                                 —
adam       m: 2 mul 1 add; v: 3 mul 1 add; m̂, v̂: 2 mul;                 m, v
           u = m̂/(√v̂+ε): 1 sqrt 1 add 1 div; w -= ηu: 1 mul 1 add
           (Kingma & Ba 2015)                                           
madam      v: 3 mul 1 add; ĝ = g/√v̂: 1 mul 1 sqrt 1 div; clamp ĝ: 2 cmp;  v
           w·exp(-η ĝ sign w): 2 mul 1 exp; |w| ≤ p·RMS(w₀): 2 cmp
           (Bernstein et al. 2020)
lns_madam  in LNS: g²: 1 mul; v: 2 mul 1 LNS add; ĝ = g/√v̂: 1 sqrt       v
           (halving), 1 mul, 1 div; round ĝ to an integer: 1 table read;
           clamp: 2 int cmp; code += -ĝ·sign(w): 1 int add; bound: 2
           int cmp (Zhao et al. 2022)
signum     m: 2 mul 1 add; sign: 1 cmp; w -= η sign: 1 add                m
           (Bernstein et al. 2018)
fromage    ‖w‖², ‖g‖²: 2 mul 2 add; w − (η‖w‖/‖g‖)g: 1 mul 1 add;         —
           ÷√(1+η²): 1 mul (Bernstein et al. 2020)
nero       ‖g_r‖²: 1 mul 1 add; step g·ηs/√v̂_r: 1 mul 1 add; re-centre:   — (v per row)
           2 add; ‖w_r‖²: 1 mul 1 add; ÷‖w_r‖: 1 mul (Liu et al. 2021)
agd        ‖∇W‖²: 1 mul 1 add; W −= (η s/L)∇W/‖∇W‖: 1 mul 1 add           —
           (Bernstein et al. 2023)
dualised   b = μb + g, g + μb: 2 mul 2 add; ‖·‖_F²: 1 mul 1 add; ÷‖·‖:     b
           1 mul; W −= η√(d_out/d_in)·O: 1 mul 1 add; plus Newton–Schulz
           (Muon; Bernstein & Newhouse 2024), see below
========== ============================================================ ==========================

Each reads the weight, its gradient and its state and writes the weight and
the state once. The dualised update also orthogonalises each tensor with
:data:`NS_STEPS` quintic Newton–Schulz steps, ``X ← aX + (bA + cA²)X`` with
``A = XXᵀ``: per step ``2m²n + m³`` multiply-adds for an ``m × n`` matrix
(``m ≤ n``), priced in the state format. The counts know only each tensor's
size ``N``, so it is priced as a square matrix, ``3N^{3/2}`` per step: exact
for square matrices and an upper bound for any other shape
(``2mN + m³ ≤ 3N^{3/2}`` when ``m ≤ √N``).

Gradient exchange among ``W`` workers of ``d`` gradients (per worker):

* ``allreduce``: ring all-reduce in the gradient format, ``2(W-1)/W · d`` words
  sent, ``(W-1)/W · d`` adds, ``d`` multiplies by ``1/W``;
* ``sign``: 1-bit majority vote in two phases (all-to-all of packed signs, a
  vote on a ``1/W`` slice, all-gather of the packed result, as DeepSpeed's
  compressed all-reduce): ``d`` compares to take signs, ``2(W-1)/W · d`` bits
  sent, ``(W-1)·d/W`` small-integer adds and ``d/W`` compares for the vote,
  ``d`` elements unpacked — 32× less traffic than an FP32 all-reduce
  (Bernstein et al., ICLR 2019).
"""
from __future__ import annotations

import math

from neurolns.accounting._checks import check_size, check_sizes
from neurolns.accounting.counts import LayerCounts, Phase
from neurolns.accounting.energy import format_bits
from neurolns.recipes import RECIPES, Exchange, Recipe, Rule, TieRule

__all__ = ["Rule", "Exchange", "Recipe", "RECIPES", "update_counts", "exchange_counts", "rule_ops_per_param"]


#: state tensors per parameter
STATE_TENSORS = {Rule.NONE: 0, Rule.SGD: 0, Rule.ADAM: 2, Rule.MADAM: 1, Rule.LNS_MADAM: 1, Rule.SIGNUM: 1,
                 Rule.FROMAGE: 0, Rule.NERO: 0, Rule.AGD: 0, Rule.DUALISED: 1}

#: Newton–Schulz steps of the dualised update (Muon's 5)
NS_STEPS = 5


def rule_ops_per_param(rule, state_fmt: str, master_fmt: str, grad_fmt: str, *, voted: bool = False) -> dict:
    """``{(op, format): count}`` of one parameter's update (table in the module docstring).

    ``voted``: the update follows a 1-bit majority vote (``exchange="sign"``),
    so each worker keeps a momentum ``m = βm + (1−β)g`` (2 mul, 1 add in the
    state format) whose sign it sends, and the voted sign is applied: for
    Signum ``w −= η·vote`` (1 add), for LNS-Madam an integer add of ``η`` code
    steps with the bound checks (1 int add, 2 int cmp). Taking the signs and
    voting are priced with the exchange.
    """
    rule = Rule(rule)
    s = state_fmt
    if rule is Rule.NONE:
        return {}
    if voted and rule in (Rule.SIGNUM, Rule.LNS_MADAM):
        ops = {("mul", s): 2, ("add", s): 1}
        if rule is Rule.SIGNUM:
            ops[("add", master_fmt)] = 1
        else:
            code = f"int{format_bits(master_fmt)}"
            ops.update({("add", code): 1, ("cmp", code): 2})
        return ops
    if rule is Rule.SGD:
        return {("mul", master_fmt): 1, ("add", master_fmt): 1}
    if rule is Rule.ADAM:
        return {("mul", s): 8, ("add", s): 4, ("sqrt", s): 1, ("div", s): 1}
    if rule is Rule.MADAM:
        return {("mul", s): 6, ("add", s): 1, ("sqrt", s): 1, ("div", s): 1, ("exp", s): 1, ("cmp", s): 4}
    if rule is Rule.SIGNUM:
        return {("mul", s): 2, ("add", s): 1, ("cmp", s): 1, ("add", master_fmt): 1}
    if rule in _ARCH_OPS:
        return {(op, s): c for op, c in _ARCH_OPS[rule].items()}
    # LNS-Madam: the weight is an exponent code; the step is an integer add on it
    code = f"int{format_bits(master_fmt)}"
    return {("mul", grad_fmt): 1, ("mul", s): 3, ("add", s): 1, ("sqrt", s): 1, ("div", s): 1, ("lut", s): 1,
            ("cmp", "int8"): 2, ("add", code): 1, ("cmp", code): 2}


#: per-parameter operations of the architecture-aware rules (module docstring)
_ARCH_OPS = {
    Rule.FROMAGE: {"mul": 4, "add": 3},
    Rule.NERO: {"mul": 4, "add": 5},
    Rule.AGD: {"mul": 2, "add": 2},
    Rule.DUALISED: {"mul": 5, "add": 4},
}


def newton_schulz_macs(size: int, steps: int = NS_STEPS) -> int:
    """Multiply-adds of ``steps`` quintic Newton–Schulz steps on a tensor of ``size`` elements,
    priced as a square ``d × d`` matrix (``3d³`` per step; an upper bound for other shapes).

    >>> newton_schulz_macs(256 * 256)     # 5 · 3 · 256³
    251658240
    """
    size, steps = check_size("size", size), check_size("steps", steps)
    d = math.isqrt(size)
    d += d * d < size  # ceil(√size)
    return steps * 3 * d**3


def update_counts(recipe: Recipe, param_tensors, *, replicas: int = 1) -> list:
    """Counts of one optimizer step over parameter tensors of the given sizes,
    on ``replicas`` workers that each update their copy (sizes whole numbers
    ``>= 0``, ``replicas >= 1``)."""
    param_tensors = check_sizes("param_tensors", param_tensors)
    replicas = check_size("replicas", replicas, minimum=1)
    out = []
    if not recipe.trains:
        return out
    ops = rule_ops_per_param(recipe.rule, recipe.state_fmt, recipe.master_fmt, recipe.grad_fmt,
                             voted=recipe.exchange is Exchange.SIGN)
    n_state = STATE_TENSORS[recipe.rule]
    lc = LayerCounts("(optimizer)", "Optimizer", Phase.UPDATE)
    for n in param_tensors:
        k = n * replicas
        for (op, f), c in ops.items():
            lc.op(op, c * k, f)
        if recipe.rule is Rule.DUALISED:  # Newton–Schulz, priced as a square matrix (an upper bound)
            lc.op("mul", newton_schulz_macs(n) * replicas, recipe.state_fmt)
            lc.op("add", newton_schulz_macs(n) * replicas, recipe.state_fmt)
        lc.read(n, k, recipe.master_fmt).read(n, k, recipe.grad_fmt).write(n, k, recipe.master_fmt)
        for _ in range(n_state):
            lc.read(n, k, recipe.state_fmt).write(n, k, recipe.state_fmt)
        if recipe.weight_copy:  # refresh the compute copy from the master
            lc.write(n, k, recipe.compute)
    out.append(lc)
    return out


def exchange_counts(recipe: Recipe, param_tensors, workers: int) -> list:
    """Counts of one gradient exchange among ``workers`` (all workers together)."""
    param_tensors = check_sizes("param_tensors", param_tensors)
    workers = check_size("workers", workers, minimum=1)
    if workers == 1 or recipe.exchange is Exchange.NONE:
        return []
    d = sum(param_tensors)
    w = workers
    g = recipe.grad_fmt
    lc = LayerCounts("(exchange)", "GradientExchange", Phase.EXCHANGE)
    if recipe.exchange is Exchange.ALLREDUCE:
        words = 2 * (w - 1) * d  # per worker 2(W-1)/W·d, times W workers
        lc.link_bits += words * format_bits(g)
        lc.op("add", (w - 1) * d, g).op("mul", w * d, g)
        for n in param_tensors:
            lc.read(n, 2 * (w - 1) * n, g).write(n, 2 * (w - 1) * n, g)
    elif recipe.ties is TieRule.PLUS:
        lc.link_bits += 2 * (w - 1) * d  # two-phase: 1 bit per element in each phase
        small = "int8"
        lc.op("cmp", w * d, g)  # take signs
        lc.op("add", (w - 1) * d, small).op("cmp", d, small)  # vote on slices
        for n in param_tensors:
            lc.read(n, w * n, g).write(n, w * n, g)  # read gradients, write voted signs back unpacked
            lc.read(n, 2 * (w - 1) * n, "bit").write(n, 2 * (w - 1) * n, "bit")  # packed buffers
    else:
        # an abstaining vote is ternary, so it is not sent back as 1 bit: all-gather of
        # every worker's signs (each receives W-1 rows of d bits), every worker votes all d
        lc.link_bits += w * (w - 1) * d
        small = "int8"
        lc.op("cmp", w * d, g)
        lc.op("add", w * (w - 1) * d, small).op("cmp", w * d, small)
        for n in param_tensors:
            lc.read(n, w * n, g).write(n, w * n, g)
            lc.read(n, w * (w - 1) * n, "bit").write(n, w * n, "bit")
    return [lc]

