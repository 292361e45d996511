"""The PyTorch bridge: LNS fake quantization, LNS layers, multiplicative and
sign optimizers, and exact transfer to and from the Numba simulator.

The only part of neurolns that imports torch (import it explicitly:
``import neurolns.torch``). Everything runs on the device of the tensors it is
given, CPU or CUDA.

* :func:`quantize`, :func:`quantize_grad`, :func:`encode_codes_t`,
  :func:`decode_codes_t`, :func:`choose_scale` — codes bit-identical to
  :func:`neurolns.lns.encode_codes`;
* :class:`LNSLinear`, :class:`LNSConv1d`, :class:`LNSConv2d`, :func:`convert`;
* :class:`Madam`, :class:`LNSMadam`, :class:`SignSGD`, :class:`Signum`,
  :class:`EFSignSGD`, and the architecture-aware :class:`Fromage`, :class:`Nero`,
  :class:`AGD`, :class:`Dualised`, :class:`Muon` (``torch.optim.Optimizer`` subclasses);
* :func:`lns_madam_step`, :func:`madam_step`, :func:`signum_step`,
  :func:`ef_sign_sgd_step`, :func:`all_finite` — the update
  math as pure functions that compile with ``torch.compile(fullgraph=True)``;
* :func:`to_sim`, :func:`from_sim`.

Training-dynamics instruments (sharpness, preconditioned sharpness, normalised
margins, a tracker) are in :mod:`neurolns.torch.dynamics` (``docs/dynamics.md``).

See ``docs/torch.md``.
"""

from neurolns.torch.arch_optim import (AGD, Dualised, Fromage, Muon, Nero, ScaledReLU, agd_init_, agd_prepare_,
                                      agd_square_loss, newton_schulz_t)
from neurolns.torch.modules import (
    ConvertReport,
    LNSConv1d,
    LNSConv2d,
    LNSLinear,
    Storage,
    convert,
    lns_modules,
    set_grad_rounding,
)
from neurolns.torch.optim import (
    EFSignSGD,
    LNSMadam,
    Madam,
    SignSGD,
    Signum,
    all_finite,
    ef_sign_sgd_step,
    lns_madam_step,
    madam_step,
    signum_step,
)
from neurolns.torch.quantize import (
    Backend,
    choose_scale,
    decode_codes_t,
    encode_codes_t,
    mantissa_thresholds,
    quantize,
    quantize_grad,
)
from neurolns.torch.transfer import from_sim, to_sim

__all__ = [
    "Backend",
    "quantize",
    "quantize_grad",
    "encode_codes_t",
    "decode_codes_t",
    "choose_scale",
    "mantissa_thresholds",
    "Storage",
    "LNSLinear",
    "LNSConv1d",
    "LNSConv2d",
    "convert", "set_grad_rounding",
    "ConvertReport",
    "lns_modules",
    "Madam",
    "LNSMadam",
    "SignSGD",
    "Signum",
    "EFSignSGD",
    "lns_madam_step",
    "madam_step",
    "ef_sign_sgd_step",
    "signum_step",
    "all_finite",
    "to_sim",
    "from_sim",
    "Fromage",
    "Nero",
    "AGD",
    "Dualised",
    "Muon",
    "agd_init_",
    "agd_prepare_",
    "agd_square_loss",
    "ScaledReLU",
    "newton_schulz_t",
]
