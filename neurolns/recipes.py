"""Training recipes: one object that says how a network is trained, for the trainers and the accounting.

A :class:`Recipe` names the format of every number a training step touches
and what is done with them:

================  ==============================================================
role              field
================  ==============================================================
weights           ``weights`` (the copy the forward and backward passes read),
                  ``master`` (the copy the rule updates: an FP32 master, or the
                  fine LNS update grid ``lns12g128``), ``weight_copy``
activations       ``activations`` (every layer's input and output)
error signals     ``errors`` (the gradient each layer passes backward), rounded
                  by ``error_rounding``
weight gradients  ``grad`` (what a worker computes and exchanges)
arithmetic        ``compute`` (the forward products and sums; LNS products are
                  exact, summed in a linear accumulator)
update            ``rule`` (:class:`Rule`) with its state in ``state``
exchange          ``exchange`` among ``workers`` data-parallel workers
================  ==============================================================

The simulator's :class:`~neurolns.sim.Trainer`, the torch backend
(:func:`neurolns.torch.scenario.run_recipe`) and :mod:`neurolns.accounting`
all read the same object, so what is trained is what is priced:

* forward work is priced in ``compute``, backward work in ``errors``;
* the update is priced as the rule that runs: with a 1-bit exchange the
  workers send the signs of their momenta and every weight takes the voted
  sign (for LNS-Madam: an integer add of ±η on the exponent code);
* the trainers quantise each role to its format and run :attr:`Recipe.trainer_rule`.

The presets (:data:`RECIPES`) are the comparisons of the LNS-Madam paper
(Zhao et al., IEEE Trans. Computers 71(12), 2022): FP32 Adam, BF16 mixed
precision, INT8 quantisation-aware training, LNS8 weights only, and the full
recipe — LNS8 weights, activations and error signals, LNS-Madam's code update,
a 1-bit majority vote among 4 workers (Bernstein et al., ICLR 2019).

This module sits at the bottom of the package (it imports only
:mod:`neurolns.formats`): the trainers and the accounting import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from neurolns.formats import FloatFormat, LNSFormat, Rounding, _StrEnum, resolve_format

__all__ = ["Rule", "Exchange", "TieRule", "Recipe", "RECIPES", "TRAINING_RECIPES", "get_recipe"]


class Rule(_StrEnum):
    """Optimizer update rules (as the accounting names them)."""

    NONE = "none"
    SGD = "sgd"
    ADAM = "adam"
    MADAM = "madam"
    LNS_MADAM = "lns_madam"
    SIGNUM = "signum"
    FROMAGE = "fromage"
    NERO = "nero"
    AGD = "agd"
    DUALISED = "dualised"


class Exchange(_StrEnum):
    """Gradient exchange among data-parallel workers."""

    NONE = "none"
    ALLREDUCE = "allreduce"
    SIGN = "sign"


class TieRule(_StrEnum):
    """What a tied majority vote (``Σ_k sign_k = 0``, even ``K``) gives.

    ``PLUS``: +1, the vote is ``sign(Σ)`` with sign(0) = +1 (one bit, packable).
    ``ABSTAIN``: 0, no update for that parameter (odd-symmetric, ternary).
    """

    PLUS = "plus"
    ABSTAIN = "abstain"


#: the trainers' rule (``neurolns.learning.Rule`` value) of each (rule, exchange)
_TRAINER_RULES = {
    (Rule.SGD, False): "sgd",
    (Rule.ADAM, False): "adam",
    (Rule.MADAM, False): "madam",
    (Rule.LNS_MADAM, False): "lns-madam",
    (Rule.SIGNUM, False): "signum",
    (Rule.SIGNUM, True): "majority-vote",
    (Rule.LNS_MADAM, True): "lns-majority-vote",
}


def _check_format_name(field: str, value) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Recipe.{field} must be a format name such as 'fp32', 'bf16', 'int8', 'lns8' or "
                        f"'lns12g128', got {type(value).__name__} {value!r}")
    try:
        resolve_format(value)
    except ValueError as exc:
        raise ValueError(f"Recipe.{field}: {exc}") from None


@dataclass(frozen=True)
class Recipe:
    """How a network is trained (or run): per-role formats, update rule, gradient exchange.

    Parameters
    ----------
    name : str
        Label in tables and result files.
    compute : str
        Format of the forward arithmetic (``"fp32"``, ``"bf16"``, ``"int8"``,
        ``"lns8"``, ...); the default of ``weights`` and ``activations``.
    rule : Rule or str
        Update rule; ``"none"`` for inference only.
    exchange : Exchange or str
        Gradient exchange between workers.
    master : str, optional
        Format of the copy the rule updates (FP32 master weights in mixed
        precision; a fine exponent code such as ``"lns12g128"`` for LNS-Madam).
        None: the forward copy itself.
    weight_copy : bool
        True when a separate forward-format copy of the weights is stored beside
        the master (mixed precision); False when the forward reads the master
        directly or a truncation of it (LNS: the top bits of the fine code).
    grad : str, optional
        Weight-gradient format (default: ``errors``, else ``compute``).
    state : str, optional
        Optimizer-state format (default: ``master`` or ``compute``).
    weights, activations : str, optional
        Forward formats of the weights and of the activations (default:
        ``compute``). With an LNS ``compute`` both must be LNS: an LNS product
        needs two LNS operands.
    errors : str, optional
        Format of the error signals passed backward, in which backward work is
        priced (default: ``grad``, else ``compute``).
    error_rounding : {"nearest", "stochastic"}
        Rounding of the error signals to ``errors`` (LNS: in the log domain).
    ties : {"plus", "abstain"}
        With ``exchange="sign"``: what a tied vote (even ``workers``) gives, +1
        or 0 (:class:`TieRule`). Each worker still sends one bit per weight;
        an abstaining vote is ternary, so it is not sent back as one bit:
        every worker gathers all the signs and votes itself (the all-gather
        exchange of :mod:`neurolns.torch.distributed`), which the accounting
        prices. ``"abstain"`` with another exchange is refused.
    workers : int
        Data-parallel workers the global batch is split over (≥ 1). With
        ``exchange="sign"`` every worker keeps its own momentum and sends its
        signs; with ``"allreduce"`` the mean gradient is exchanged, which trains
        exactly as one worker on the whole batch.
    key : str
        The preset's name in :data:`RECIPES` (empty for a custom recipe).

    Examples
    --------
    >>> r = RECIPES["lns8-full"]
    >>> r.activations_fmt, r.errors_fmt, r.trainer_rule, r.workers
    ('lns8', 'lns8', 'lns-majority-vote', 4)
    >>> Recipe("mine", compute="lns8", activations="fp32")
    Traceback (most recent call last):
    ...
    ValueError: Recipe.activations='fp32' is out of range with compute='lns8'; allowed: an LNS format (an LNS product needs two LNS operands)
    """

    name: str
    compute: str = "fp32"
    rule: Rule = Rule.ADAM
    exchange: Exchange = Exchange.ALLREDUCE
    master: str | None = None
    weight_copy: bool = False
    grad: str | None = None
    state: str | None = None
    weights: str | None = None
    activations: str | None = None
    errors: str | None = None
    error_rounding: Rounding = Rounding.NEAREST
    ties: TieRule = TieRule.PLUS
    workers: int = 1
    key: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Recipe.name={self.name!r} is out of range; allowed: a non-empty str")
        object.__setattr__(self, "rule", Rule(self.rule))
        object.__setattr__(self, "exchange", Exchange(self.exchange))
        object.__setattr__(self, "error_rounding", Rounding(self.error_rounding))
        object.__setattr__(self, "ties", TieRule(self.ties))
        for f in ("compute", "master", "grad", "state", "weights", "activations", "errors"):
            v = getattr(self, f)
            if v is not None or f == "compute":
                _check_format_name(f, v)
        if not isinstance(self.weight_copy, bool):
            raise TypeError(f"Recipe.weight_copy must be a bool, got {self.weight_copy!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"Recipe.workers={self.workers!r} is out of range; allowed: an int >= 1")
        if self.rule is Rule.NONE and self.exchange is not Exchange.NONE:
            raise ValueError(f"exchange={self.exchange.value!r} needs an update rule; allowed with rule='none': 'none'")
        if isinstance(resolve_format(self.compute), LNSFormat):
            for f in ("weights", "activations"):
                v = getattr(self, f)
                if v is not None and not isinstance(resolve_format(v), LNSFormat):
                    raise ValueError(f"Recipe.{f}={v!r} is out of range with compute={self.compute!r}; allowed: an "
                                     "LNS format (an LNS product needs two LNS operands)")
        if self.ties is TieRule.ABSTAIN and self.exchange is not Exchange.SIGN:
            raise ValueError(f"Recipe.ties='abstain' is out of range with exchange={self.exchange.value!r}; "
                             "allowed: 'plus' (ties happen only in a vote, exchange='sign')")
        if self.exchange is Exchange.SIGN and self.rule not in (Rule.SIGNUM, Rule.LNS_MADAM):
            raise ValueError(f"exchange='sign' with rule={self.rule.value!r} is not a rule this package trains or "
                             "prices; allowed with a 1-bit exchange: 'signum', 'lns_madam'")

    # -- the format of each role ---------------------------------------------
    @property
    def master_fmt(self) -> str:
        return self.master or self.compute

    @property
    def weights_fmt(self) -> str:
        return self.weights or self.compute

    @property
    def activations_fmt(self) -> str:
        return self.activations or self.compute

    @property
    def grad_fmt(self) -> str:
        return self.grad or self.errors or self.compute

    @property
    def errors_fmt(self) -> str:
        return self.errors or self.grad or self.compute

    @property
    def state_fmt(self) -> str:
        return self.state or self.master or self.compute

    @property
    def trains(self) -> bool:
        return self.rule is not Rule.NONE

    @property
    def voted(self) -> bool:
        """True when the workers exchange 1-bit signs and vote."""
        return self.exchange is Exchange.SIGN and self.workers > 1

    # -- what the trainers run -------------------------------------------------
    @property
    def trainer_rule(self) -> str:
        """The trainers' rule name (:class:`neurolns.learning.Rule`) that runs this recipe.

        Raises
        ------
        ValueError
            For a rule the trainers do not run from a recipe (the
            architecture-aware rules have their own optimizers).
        """
        key = (self.rule, self.exchange is Exchange.SIGN)
        if key not in _TRAINER_RULES:
            allowed = sorted({r.value for r, _ in _TRAINER_RULES})
            raise ValueError(f"recipe {self.name!r}: rule {self.rule.value!r} with exchange "
                             f"{self.exchange.value!r} is not trained from a recipe; allowed rules: {allowed}")
        return _TRAINER_RULES[key]

    def role_format(self, role: str):
        """The format object of a role (``"weights"``, ``"activations"``, ``"errors"``,
        ``"master"``, ``"grad"``, ``"state"``, ``"compute"``), or ``None`` where it is FP32
        (nothing to quantise)."""
        names = {"weights": self.weights_fmt, "activations": self.activations_fmt, "errors": self.errors_fmt,
                 "master": self.master_fmt, "grad": self.grad_fmt, "state": self.state_fmt, "compute": self.compute}
        if role not in names:
            raise ValueError(f"role={role!r} is not known; allowed: {', '.join(names)}")
        fmt = resolve_format(names[role])
        if isinstance(fmt, FloatFormat) and fmt.name == "FP32":
            return None
        return fmt

    def vote_hyperparameters(self, hyperparameters: dict) -> dict:
        """``hyperparameters`` of the trainers' rule with the recipe's tie rule set.

        The tie rule is priced with the recipe, so it has one source: a ``ties``
        that contradicts the recipe is refused rather than silently training
        another system.

        >>> RECIPES["lns8-full"].replace(ties="abstain").vote_hyperparameters({"lr": 0.1})
        {'lr': 0.1, 'ties': 'abstain'}
        """
        if not self.voted:
            return dict(hyperparameters)
        ties = hyperparameters.get("ties", self.ties.value)
        if ties != self.ties.value:
            raise ValueError(f"ties={ties!r} differs from recipe {self.name!r}'s {self.ties.value!r}; "
                             "set it on the recipe (Recipe.replace(ties=...))")
        return {**hyperparameters, "ties": self.ties.value}

    def to_dict(self) -> dict:
        """JSON-able fields (result files record the recipe with this)."""
        d = asdict(self)
        d.update(rule=self.rule.value, exchange=self.exchange.value, error_rounding=self.error_rounding.value,
                 ties=self.ties.value)
        return d

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (validated again), e.g. one role switched back to FP32."""
        d = {**asdict(self), **changes}
        return Recipe(**d)


#: Training recipes, by key. Every one trains on 4 data-parallel workers; with
#: an FP32 all-reduce that is the same training as one worker on the whole batch.
TRAINING_RECIPES = {
    "fp32-adam": Recipe("FP32 Adam", compute="fp32", rule="adam", exchange="allreduce", workers=4, key="fp32-adam"),
    "bf16": Recipe("BF16 mixed precision", compute="bf16", rule="adam", exchange="allreduce", master="fp32",
                   weight_copy=True, grad="bf16", state="fp32", workers=4, key="bf16"),
    "int8": Recipe("INT8 QAT", compute="int8", rule="adam", exchange="allreduce",
                   master="fp32", weight_copy=True, errors="fp32", grad="fp32", state="fp32", workers=4, key="int8"),
    "lns8-weights": Recipe("LNS8 weights", compute="fp32", weights="lns8", rule="lns_madam",
                           exchange="allreduce", master="lns12g128", grad="fp32", state="fp32", workers=4,
                           key="lns8-weights"),
    "lns8-full": Recipe("LNS8 full", compute="lns8", rule="lns_madam",
                        exchange="sign", master="lns12g128", grad="lns8", errors="lns8", state="lns16",
                        workers=4, key="lns8-full"),
}

#: Every preset: the training recipes and INT8 inference.
RECIPES = {
    **TRAINING_RECIPES,
    "int8-inference": Recipe("INT8 inference", compute="int8", rule="none", exchange="none", key="int8-inference"),
}

#: Names earlier releases used.
_ALIASES = {"fp32_adam": "fp32-adam", "bf16_mixed": "bf16", "int8_inference": "int8-inference",
            "lns8_madam_1bit": "lns8-full"}


def get_recipe(recipe) -> Recipe:
    """A :class:`Recipe` from itself or a key of :data:`RECIPES` (underscored
    names of earlier releases are accepted).

    >>> get_recipe("lns8-full").exchange.value
    'sign'
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        key = _ALIASES.get(recipe, recipe)
        if key in RECIPES:
            return RECIPES[key]
        raise ValueError(f"recipe {recipe!r} is not known; allowed: {', '.join(RECIPES)}")
    raise TypeError(f"recipe must be a Recipe or a name, got {type(recipe).__name__}")
