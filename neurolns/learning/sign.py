"""1-bit learning signals: sign rules, packed signs and the majority vote.

Conventions (the same in every function here, kernels and reference paths):

* **sign(0) = +1.** A sign is one bit (1 = negative, as the IEEE sign bit of
  ``+0.0`` is 0), so no third value exists to carry "no information": the local
  rules (signSGD, Signum), what is packed and sent, and a one-worker vote are
  then the same thing.
* **NaN has no sign.** Every function here takes ``check_finite=True`` (scipy's
  convention): a NaN or ±inf in a float input raises :class:`ValueError`
  naming the argument, the count and the first index, before anything is
  modified. The optimizers check once per step and skip (or refuse) a step
  with a non-finite gradient. With ``check_finite=False`` a NaN would read as
  +1 (it compares false with 0): that switch is for callers that have checked.
  Consequence worth knowing: a parameter whose gradient is *exactly* zero at
  every step (a weight from an always-zero input pixel, a dead ReLU unit)
  moves by ``−η`` per step additively, or shrinks by one code step
  multiplicatively, instead of standing still.
* **Ties of the vote** (even ``K`` only): ``ties="plus"`` (default) gives +1,
  i.e. the vote is ``sign(Σ_k sign_k)`` with the same one-bit sign, so the
  result is itself one bit and travels back packed; ``ties="abstain"`` gives 0
  (no update), which keeps the vote odd-symmetric (``vote(−s) = −vote(s)``)
  at the cost of a ternary result. With odd ``K`` (e.g. 5) there are no ties.
* **Packing:** signs travel as ``uint8``, 8 per byte, little bit order: element
  ``i`` is bit ``i % 8`` of byte ``i // 8`` (``np.packbits(..., bitorder="little")``);
  the unused high bits of the last byte are 0. A vector of ``d`` signs costs
  ``ceil(d/8)`` bytes, 32× less than float32.

References: Bernstein, Wang, Azizzadenesheli & Anandkumar, "signSGD: compressed
optimisation for non-convex problems", ICML 2018 (signSGD, Signum); Bernstein,
Zhao, Azizzadenesheli & Anandkumar, "signSGD with majority vote is
communication efficient and fault tolerant", ICLR 2019; Karimireddy, Rebjock,
Stich & Jaggi, "Error feedback fixes SignSGD and other gradient compression
schemes", ICML 2019.
"""

from __future__ import annotations

import math

import numpy as np

from neurolns.formats import LNSFormat
from neurolns.learning import _kernels as _k
from neurolns.learning import _reference as _ref
from neurolns.learning._checks import check_array, check_flag, check_real, check_writeable
from neurolns.learning._checks import check_finite as _check_finite  # the name is also a keyword below
from neurolns.learning.madam import check_codes, code_cap, code_step_size
from neurolns.recipes import TieRule  # defined with the recipes, the bottom layer, that name it too

__all__ = [
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
]




def _finite_input(name, x, check_finite) -> None:
    if check_flag("check_finite", check_finite):
        _check_finite(name, x)


def onebit_sign(x, *, check_finite: bool = True) -> np.ndarray:
    """``int8`` sign with sign(0) = +1: ``-1`` where ``x < 0``, else ``+1``.

    ``check_finite``: raise :class:`ValueError` if a float ``x`` holds NaN or
    ±inf (a NaN has no sign).

    >>> onebit_sign(np.array([-2.0, 0.0, 3.0, -0.0]))
    array([-1,  1,  1,  1], dtype=int8)
    """
    _finite_input("x", np.asarray(x), check_finite)
    return np.where(np.asarray(x) < 0, np.int8(-1), np.int8(1)).astype(np.int8)


def packed_size(n: int) -> int:
    """Bytes that ``n`` packed signs take: ``ceil(n/8)``."""
    return (int(n) + 7) // 8


def _rows(x: np.ndarray, lead: tuple, n: int) -> np.ndarray:
    """``x`` as a C-contiguous 2-D array of ``prod(lead)`` rows (works for empty rows)."""
    return np.ascontiguousarray(x).reshape(math.prod(lead), n)


def pack_signs(x, *, reference: bool = False, check_finite: bool = True) -> np.ndarray:
    """Pack the one-bit signs of ``x`` along its last axis, 8 per byte.

    Parameters
    ----------
    x : array_like of real
        Values whose signs are packed (a gradient, a momentum, ±1 signs); a
        0-d input is treated as one element.
    reference : bool
        Use ``np.packbits`` instead of the Numba kernel.
    check_finite : bool
        Raise :class:`ValueError` naming the count and the first index if a
        float ``x`` holds NaN or ±inf (checked before anything is packed).

    Returns
    -------
    ndarray of uint8, shape ``x.shape[:-1] + (ceil(n/8),)``
        Bit ``i % 8`` of byte ``i // 8`` is 1 where ``x[..., i] < 0``.

    Examples
    --------
    >>> pack_signs(np.array([-1.0, 2.0, 0.0, -3.0, 5.0, 6.0, 7.0, 8.0, -9.0]))
    array([9, 1], dtype=uint8)
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"cannot take signs of dtype {x.dtype}; allowed: real numbers")
    _finite_input("x", x, check_finite)
    lead = x.shape[:-1] if x.ndim else ()
    n = x.shape[-1] if x.ndim else 1
    if reference:
        return _ref.pack_signs(x.reshape(lead + (n,)))
    rows = _rows(x, lead, n)
    out = np.zeros((rows.shape[0], packed_size(n)), dtype=np.uint8)
    for r in range(rows.shape[0]):
        _k.pack_signs_kernel(rows[r], out[r])
    return out.reshape(lead + (packed_size(n),))


def unpack_signs(packed, n: int, *, reference: bool = False) -> np.ndarray:
    """Inverse of :func:`pack_signs`: ``int8`` ±1 signs, shape ``packed.shape[:-1] + (n,)``.

    Examples
    --------
    >>> unpack_signs(np.array([9, 1], dtype=np.uint8), 9)
    array([-1,  1,  1, -1,  1,  1,  1,  1, -1], dtype=int8)
    """
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim == 0:
        raise TypeError(f"packed must be a uint8 array with at least 1 dimension, got {packed.dtype} {packed.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__} {n!r}")
    nbytes = packed.shape[-1]
    if not 0 <= n <= 8 * nbytes or packed_size(n) != nbytes:
        raise ValueError(f"n={n} does not fit {nbytes} packed bytes; allowed: {8 * nbytes - 7} <= n <= {8 * nbytes}")
    lead = packed.shape[:-1]
    rows = _rows(packed, lead, nbytes)
    out = np.empty((rows.shape[0], n), dtype=np.int8)
    for r in range(rows.shape[0]):
        if reference:
            out[r] = _ref.unpack_signs(rows[r], n)
        else:
            _k.unpack_signs_kernel(rows[r], n, out[r])
    return out.reshape(lead + (n,))


def majority_vote(signs, n: int | None = None, *, ties: TieRule | str = TieRule.PLUS, reference: bool = False,
                  check_finite: bool = True) -> np.ndarray:
    """Majority vote ``sign(Σ_k sign(x_k))`` over the rows of ``signs``.

    Parameters
    ----------
    signs : array_like, shape ``(K, n)`` or packed ``uint8 (K, ceil(n/8))``
        One row per worker: either real values (their one-bit signs are voted;
        ±1 signs, gradients or momenta all work) or rows packed by
        :func:`pack_signs` (a ``uint8`` array is always read as packed).
    n : int, optional
        Number of signs in packed rows (default ``8 · bytes per row``).
    ties : {"plus", "abstain"}
        See :class:`TieRule`.
    reference : bool
        Vote with numpy on unpacked signs instead of the Numba kernel that
        counts bits in the packed rows.
    check_finite : bool
        Raise :class:`ValueError` if float rows hold NaN or ±inf (a NaN would
        otherwise vote +1). Packed rows are bits and always valid.

    Returns
    -------
    ndarray of int8, shape ``(n,)``
        The vote in {-1, +1} (``ties="plus"``) or {-1, 0, +1} (``"abstain"``).

    Examples
    --------
    >>> g = np.array([[0.3, -1.0, 2.0], [-0.1, -2.0, 0.5], [0.2, 4.0, 1.0]])
    >>> majority_vote(g)
    array([ 1, -1,  1], dtype=int8)
    >>> majority_vote(pack_signs(g[:2]), 3, ties="abstain")  # two workers tie on element 0
    array([ 0, -1,  1], dtype=int8)
    """
    ties = TieRule(ties)
    arr = np.asarray(signs)
    if arr.ndim != 2:
        raise ValueError(f"signs must be 2-D (workers, elements), got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError("signs has no worker rows; allowed: K >= 1")
    if arr.dtype == np.uint8:
        packed = np.ascontiguousarray(arr)
        n = 8 * arr.shape[1] if n is None else n
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or packed_size(n) != arr.shape[1] or n < 0:
            raise ValueError(f"n={n!r} does not fit {arr.shape[1]} packed bytes per row")
    else:
        if n is not None and n != arr.shape[1]:
            raise ValueError(f"n={n} but the unpacked rows hold {arr.shape[1]} signs")
        n = arr.shape[1]
        _finite_input("signs", arr, check_finite)
        packed = pack_signs(arr, check_finite=False) if not reference else None
    abstain = ties is TieRule.ABSTAIN
    if reference:
        unpacked = (unpack_signs(packed, n, reference=True) if arr.dtype == np.uint8
                    else onebit_sign(arr, check_finite=False))
        return _ref.vote(unpacked, abstain)
    out = np.empty(n, dtype=np.int8)
    _k.vote_kernel(packed, n, abstain, out)
    return out


def _check_pair(w, g, wname="w", gname="g"):
    w = check_array(wname, w, "f")
    check_writeable(wname, w)
    g = check_array(gname, g, "f", w.shape)
    return w, g


def _lr(lr):
    return check_real("lr", lr, 0.0, math.inf, lo_open=True, hi_open=True)


def _finite_args(check_finite, **arrays) -> None:
    """Check every named float array (gradient first) before anything is modified."""
    if check_flag("check_finite", check_finite):
        for name, a in arrays.items():
            _check_finite(name, a)


def sign_sgd_update(w, g, *, lr, reference: bool = False, check_finite: bool = True) -> None:
    """signSGD, in place: ``w ← w − η·sign(g)`` with sign(0) = +1 (Bernstein et al. 2018).

    ``check_finite``: raise :class:`ValueError` before anything changes if
    ``g`` or ``w`` holds NaN or ±inf.

    >>> w = np.array([1.0, 1.0, 1.0]); sign_sgd_update(w, np.array([2.0, -3.0, 0.0]), lr=0.5); w
    array([0.5, 1.5, 0.5])
    """
    w, g = _check_pair(w, g)
    lr = _lr(lr)
    _finite_args(check_finite, g=g, w=w)
    if reference:
        w[...] = w.astype(np.float64) - lr * _ref.sign1(g)
        return
    _k.sign_step_serial(w.reshape(-1), g.reshape(-1), lr)


def signum_update(w, g, m, *, lr, beta: float = 0.9, reference: bool = False, check_finite: bool = True) -> None:
    """Signum, in place: ``m ← βm + (1−β)g``, ``w ← w − η·sign(m)`` (momentum before the sign).

    ``β = 0`` is signSGD. Bernstein et al. 2018 use η = 1e-4, β = 0.9 on ImageNet.
    ``check_finite``: raise :class:`ValueError` before anything changes if
    ``g``, ``w`` or ``m`` holds NaN or ±inf.

    >>> w = np.zeros(2); m = np.array([1.0, 1.0])
    >>> signum_update(w, np.array([-5.0, -20.0]), m, lr=0.1, beta=0.9); w  # m = [0.4, -1.1]
    array([-0.1,  0.1])
    """
    w, g = _check_pair(w, g)
    m = check_array("m", m, "f", w.shape)
    check_writeable("m", m)
    lr = _lr(lr)
    beta = check_real("beta", beta, 0.0, 1.0, hi_open=True)
    _finite_args(check_finite, g=g, w=w, m=m)
    if reference:
        _ref.signum(w, g, m, lr, beta)
        return
    _k.signum_serial(w.reshape(-1), g.reshape(-1), m.reshape(-1), lr, beta)


def ef_sign_update(w, g, e, *, lr, reference: bool = False, check_finite: bool = True) -> None:
    """Scaled sign with error feedback (EF-SignSGD, Karimireddy et al. 2019), in place.

    ``p = ηg + e``; ``Δ = (‖p‖₁/d)·sign(p)``; ``w ← w − Δ``; ``e ← p − Δ``, with
    ``d = w.size`` (one scale per tensor) and sign(0) = +1. The residual ``e``
    (zeros before the first step) carries what the compression dropped into
    the next step, which is what makes the scaled sign converge.
    ``check_finite``: raise :class:`ValueError` before anything changes if
    ``g``, ``w`` or ``e`` holds NaN or ±inf (one NaN would make ``‖p‖₁``, and
    so the whole tensor, NaN).

    >>> w = np.zeros(2); e = np.zeros(2)
    >>> ef_sign_update(w, np.array([3.0, -1.0]), e, lr=1.0); w, e  # scale = 2
    (array([-2.,  2.]), array([1., 1.]))
    """
    w, g = _check_pair(w, g)
    e = check_array("e", e, "f", w.shape)
    check_writeable("e", e)
    lr = _lr(lr)
    _finite_args(check_finite, g=g, w=w, e=e)
    if reference:
        _ref.ef_sign(w, g, e, lr)
        return
    _k.ef_sign_serial(w.reshape(-1), g.reshape(-1), e.reshape(-1), lr)


def _check_direction(s, shape) -> np.ndarray:
    s = np.asarray(s)
    if s.dtype == np.uint8:  # packed bits
        n = int(np.prod(shape))
        return unpack_signs(s.reshape(-1), n).reshape(shape)
    if s.dtype.kind not in "i":
        raise TypeError(f"s has dtype {s.dtype}; allowed: int8 signs in {{-1, 0, +1}} or packed uint8 bits")
    if s.shape != shape:
        raise ValueError(f"s has shape {s.shape}; it must match the parameter's shape {shape}")
    if s.size and (s.min() < -1 or s.max() > 1):
        raise ValueError(f"s holds values in [{s.min()}, {s.max()}]; allowed: -1, 0, +1")
    return np.ascontiguousarray(s)


def apply_signs(w, s, *, lr, reference: bool = False, check_finite: bool = True) -> None:
    """Additive step from a received direction, in place: ``w ← w − η·s``.

    ``s`` is a vote or a sign vector in {-1, 0, +1} (``int8``) or packed bits
    (``uint8``, unpacked to ±1). ``check_finite``: raise :class:`ValueError`
    if ``w`` holds NaN or ±inf (``s`` is integer and always valid).

    >>> w = np.ones(3); apply_signs(w, np.array([1, 0, -1], np.int8), lr=0.25); w
    array([0.75, 1.  , 1.25])
    """
    w = check_array("w", w, "f")
    check_writeable("w", w)
    s = _check_direction(s, w.shape)
    lr = _lr(lr)
    _finite_args(check_finite, w=w)
    if reference:
        w[...] = w.astype(np.float64) - lr * s.astype(np.float64)
        return
    _k.ternary_step_serial(w.reshape(-1), s.reshape(-1), lr)


def code_step_update(codes, s, *, fmt: LNSFormat, lr: float | None = None, max_code: int | None = None,
                     reference: bool = False, check_finite: bool = True) -> None:
    """The 1-bit signal → multiplicative update on codes, in place.

    ``|c| ← clamp(|c| − k·s·sign(c), 1, c_max)`` with ``k = η γ_u`` code steps
    (one step, a factor ``2^{±1/γ_u}``, by default): where the received sign
    ``s`` agrees with the weight's sign the synapse shrinks, otherwise it grows;
    ``s = 0`` (an abstaining vote) leaves it; the sign of ``c`` never changes and
    ``c = 0`` stays 0. This is LNS-Madam with ``round(ĝ)`` replaced by the sign.

    Parameters
    ----------
    codes : ndarray of signed int
        Codes on the update grid ``fmt``.
    s : ndarray
        ``int8`` signs in {-1, 0, +1} of the gradient (or a vote), same shape,
        or ``uint8`` packed bits (see :func:`pack_signs`).
    fmt : LNSFormat
        The update grid.
    lr : float, optional
        Step in log2 units, a whole number of grid steps (default ``1/γ_u``).
    max_code : int, optional
        Cap on ``|c|`` (default ``fmt.max_code``).
    check_finite : bool
        Accepted for the same signature as the other update functions; codes
        and signs are integers, so there is nothing to check (a float ``s`` is
        refused with :class:`TypeError`).

    Examples
    --------
    >>> f = LNSFormat(bits=8, gamma=8)
    >>> c = np.array([70, -70, 70, 0, 127], dtype=np.int8)
    >>> code_step_update(c, np.array([1, 1, -1, 1, -1], np.int8), fmt=f); c
    array([ 69, -71,  71,   0, 127], dtype=int8)
    """
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    codes = check_codes(codes, fmt)
    check_flag("check_finite", check_finite)
    s = _check_direction(s, codes.shape)
    k = code_step_size(fmt, lr)
    cap = code_cap(fmt, max_code)
    if reference:
        _ref.code_step(codes, s, k, cap)
        return
    _k.code_step_serial(codes.reshape(-1), s.reshape(-1), np.int64(k), np.int64(cap))
