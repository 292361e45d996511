"""Learning rules: multiplicative plasticity and 1-bit learning signals.

Pure update functions (numpy arrays in, updated in place; a Numba kernel and a
float64 numpy reference path chosen by ``reference=``):

* :func:`madam_update` (Madam on floats), :func:`lns_madam_update` (LNS-Madam on
  exponent codes, any rate: fractional steps rounded stochastically with the
  counter-based draws of :func:`rounding_draws`), with :func:`madam_p_max`,
  :func:`lns_code_cap`, :func:`update_format`, :func:`code_steps`;
* :func:`sign_sgd_update`, :func:`signum_update`, :func:`ef_sign_update`,
  :func:`majority_vote`, :func:`pack_signs`, :func:`unpack_signs`,
  :func:`apply_signs`, :func:`code_step_update` (the 1-bit → one-code-step path).

Stateful optimizers with one interface (``step``, ``state_dict``,
``load_state_dict``, ``defaults``): :class:`SGD`, :class:`Adam`, :class:`Madam`,
:class:`LNSMadam`, :class:`SignSGD`, :class:`Signum`, :class:`EFSignSGD`,
:class:`MajorityVote`, built by name with :func:`make_optimizer` and :class:`Rule`; the
architecture-aware rules :class:`Fromage`, :class:`Nero`, :class:`AGD`,
:class:`Dualised`, :class:`Muon` and :class:`LNSNero` on codes
(:mod:`neurolns.learning.architecture`). Learning-rate
schedules (:class:`Schedule`, :func:`scheduled_lr`) keep code rules on whole
grid steps.

Conventions: sign(0) = +1 (a sign is one bit); a tied vote gives +1 by default
or 0 with ``ties="abstain"``; packed signs are little-endian bits, 1 = negative.
Non-finite input: the pure functions take ``check_finite=True`` and raise
:class:`ValueError` (argument, count, first index) before modifying anything;
the optimizers skip a step whose gradients hold NaN or ±inf, with a warning and
a ``skipped_steps`` counter, or raise with ``nonfinite="raise"``
(:class:`NonFinite`).

See ``docs/learning.md``.
"""

from neurolns.learning.architecture import (
    AGD,
    Dualised,
    Fromage,
    LNSNero,
    Muon,
    Nero,
    agd_gain,
    agd_init,
    agd_update,
    dualise,
    dualised_update,
    fromage_update,
    lns_nero_update,
    muon_update,
    nero_update,
    newton_schulz,
)
from neurolns.learning.factory import TRAINER_DEFAULTS, Rule, make_optimizer
from neurolns.learning.madam import (
    code_step_size,
    code_steps,
    draw_key,
    lns_code_cap,
    lns_madam_update,
    madam_p_max,
    madam_update,
    rounding_draws,
    update_format,
)
from neurolns.learning.optim import (
    SGD,
    Adam,
    EFSignSGD,
    LNSMadam,
    Madam,
    MajorityVote,
    NonFinite,
    Optimizer,
    SignSGD,
    Signum,
    format_from_dict,
    format_to_dict,
)
from neurolns.learning.schedule import Schedule, schedule_factor, scheduled_lr
from neurolns.learning.sign import (
    TieRule,
    apply_signs,
    code_step_update,
    ef_sign_update,
    majority_vote,
    onebit_sign,
    pack_signs,
    packed_size,
    sign_sgd_update,
    signum_update,
    unpack_signs,
)

__all__ = [
    "madam_update",
    "lns_madam_update",
    "madam_p_max",
    "lns_code_cap",
    "update_format",
    "code_step_size",
    "code_steps",
    "draw_key",
    "rounding_draws",
    "TieRule",
    "onebit_sign",
    "pack_signs",
    "unpack_signs",
    "packed_size",
    "majority_vote",
    "sign_sgd_update",
    "signum_update",
    "ef_sign_update",
    "apply_signs",
    "code_step_update",
    "NonFinite",
    "Optimizer",
    "SGD",
    "Adam",
    "Madam",
    "LNSMadam",
    "SignSGD",
    "Signum",
    "EFSignSGD",
    "MajorityVote",
    "format_to_dict",
    "format_from_dict",
    "Rule",
    "make_optimizer",
    "TRAINER_DEFAULTS",
    "Schedule",
    "schedule_factor",
    "scheduled_lr",
    "fromage_update",
    "nero_update",
    "agd_init",
    "agd_gain",
    "agd_update",
    "newton_schulz",
    "dualise",
    "dualised_update",
    "muon_update",
    "Fromage",
    "Nero",
    "LNSNero",
    "lns_nero_update",
    "AGD",
    "Dualised",
    "Muon",
]
