"""Multiplicative weight updates: Madam on floats and LNS-Madam on exponent codes.

Both rules normalise the gradient by its running RMS, exactly as Adam's second
moment (Kingma & Ba 2015), and apply it to ``log|w|`` instead of ``w``:

.. math::

    v_t &= \\beta v_{t-1} + (1-\\beta) g_t^2, \\qquad
    \\hat g_t = \\operatorname{clamp}\\!\\left(\\frac{g_t}{\\sqrt{v_t/(1-\\beta^t)}},
                \\pm g_{\\text{bound}}\\right)\\ (0/0 := 0)

    \\text{Madam:}\\quad & w \\leftarrow \\operatorname{clamp}\\big(w\\,
        e^{-\\eta\\,\\hat g\\,\\operatorname{sign}(w)}, \\pm p_{\\max}\\big)

    \\text{LNS-Madam:}\\quad & |c| \\leftarrow \\operatorname{clamp}\\big(|c| - k\\,
        \\operatorname{round}(\\hat g)\\,\\operatorname{sign}(c),\\ 1,\\ c_{\\max}\\big),
        \\quad k = \\eta\\gamma_u

The factor ``e^{…}`` never changes a sign and leaves zero at zero; on codes the
sign is kept apart from ``|c|``, ``c = 0`` is never touched, and ``|c|`` saturates
at ``c_max`` above and at 1 (the smallest magnitude) below, so a synapse neither
flips nor dies.

References: Bernstein, Zhao, Meister, Liu, Anandkumar & Yue, "Learning
compositional functions via multiplicative weight updates", NeurIPS 2020
(Madam; η = 0.01, β = 0.999, g_bound = 10, p_scale = 3). Zhao et al.,
"LNS-Madam: low-precision training in logarithmic number system using
multiplicative weight update", IEEE Trans. Computers 71(12), 2022 (η = 1/128).
"""

from __future__ import annotations

import math

import numpy as np

from neurolns._jit import use_parallel
from neurolns.formats import LNSFormat
from neurolns.learning import _kernels as _k
from neurolns.learning import _reference as _ref
from neurolns.learning._checks import (
    check_array,
    check_flag,
    check_real,
    check_step,
    check_writeable,
    inv_bias_correction,
)
from neurolns.learning._checks import check_finite as _check_finite  # the name is also a keyword below

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
]


def _check_common(beta, g_bound):
    beta = check_real("beta", beta, 0.0, 1.0, hi_open=True)
    g_bound = check_real("g_bound", g_bound, 0.0, math.inf, lo_open=True)
    return beta, g_bound


def madam_p_max(w: np.ndarray, p_scale: float) -> float:
    """Magnitude cap of Madam: ``p_max = p_scale · RMS(w)`` (taken at the first step).

    ``p_scale = inf`` disables the cap. An all-zero tensor gets ``p_max = 0``,
    which changes nothing since its weights never move.

    Examples
    --------
    >>> import numpy as np
    >>> madam_p_max(np.array([3.0, -4.0]), 3.0)  # RMS = sqrt(12.5)
    10.606601717798213
    """
    p_scale = check_real("p_scale", p_scale, 0.0, math.inf, lo_open=True)
    if math.isinf(p_scale):
        return math.inf
    w = np.asarray(w, dtype=np.float64)
    rms = math.sqrt(float(np.mean(w * w))) if w.size else 0.0
    return p_scale * rms


def madam_update(w, g, v, t, *, lr=0.01, beta=0.999, g_bound=10.0, p_max=math.inf, reference=False,
                 check_finite=True) -> None:
    """One Madam step on float weights, in place (``w`` and ``v``).

    ``v ← βv + (1−β)g²``; ``ĝ = clamp(g/sqrt(v/(1−β^t)), ±g_bound)`` with 0/0
    taken as 0; ``w ← clamp(w·exp(−η ĝ sign(w)), ±p_max)``. Arithmetic is
    float64 per element; ``w`` and ``v`` keep their dtypes. Keep ``v`` in
    float64 (the optimizers do): then for float32 gradients ``g²`` and ``v``
    never underflow or overflow, and ``ĝ`` is the same for a gradient history
    scaled by any power of two, from the smallest subnormal to the float32
    maximum (``ĝ = ±1`` at the first step). A float32 ``v`` rounds the state
    to float32 at every step and loses that range.

    Parameters
    ----------
    w : ndarray of float, C-contiguous
        Weights, updated in place.
    g : ndarray of float, same shape
        Gradient ``∂L/∂w``.
    v : ndarray of float, same shape
        Second-moment state (zeros before the first step), updated in place.
    t : int
        1-based step count (for the bias correction ``1 − β^t``).
    lr : float
        ``η``, the step of ``ln|w|`` per unit ``ĝ`` (natural-log units), > 0.
    beta : float
        Second-moment decay in ``[0, 1)``.
    g_bound : float
        Clamp of the normalised gradient, > 0.
    p_max : float
        Magnitude cap, usually :func:`madam_p_max` of the weights at step 1.
    reference : bool
        Run the float64 numpy path instead of the Numba kernel.
    check_finite : bool
        Raise :class:`ValueError` (naming the argument, the count and the
        first index) before anything changes if ``w``, ``g`` or ``v`` holds NaN
        or ±inf. ``False`` skips the check (one pass over each array); with
        non-finite input the result is then unspecified.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([0.5, -0.5, 0.0], dtype=np.float32)
    >>> v = np.zeros_like(w)
    >>> madam_update(w, np.array([1.0, 1.0, 1.0], np.float32), v, 1, lr=0.01)
    >>> w  # |w| shrinks by e^-0.01 where sign(w) = sign(g), grows otherwise; 0 stays 0
    array([ 0.49502492, -0.5050251 ,  0.        ], dtype=float32)
    """
    w = check_array("w", w, "f")
    check_writeable("w", w)
    g = check_array("g", g, "f", w.shape)
    v = check_array("v", v, "f", w.shape)
    check_writeable("v", v)
    t = check_step(t)
    lr = check_real("lr", lr, 0.0, math.inf, lo_open=True)
    beta, g_bound = _check_common(beta, g_bound)
    p_max = check_real("p_max", p_max, 0.0, math.inf)
    if check_flag("check_finite", check_finite):
        for name, a in (("g", g), ("w", w), ("v", v)):
            _check_finite(name, a)
    inv_bc = inv_bias_correction(beta, t)
    if reference:
        _ref.madam(w, g, v, lr, beta, inv_bc, g_bound, p_max)
        return
    kernel = _k.madam_parallel if use_parallel(w.size) else _k.madam_serial
    kernel(w.reshape(-1), g.reshape(-1), v.reshape(-1), lr, beta, inv_bc, g_bound, p_max)


def code_step_size(fmt: LNSFormat, lr: float | None) -> int:
    """Code steps per unit of ``round(ĝ)``: ``k = η·γ_u``, a positive integer.

    ``lr=None`` means ``η = 1/γ_u`` (one code step, the LNS-Madam default).

    >>> code_step_size(LNSFormat(bits=16, gamma=128), 1 / 64)
    2
    """
    if lr is not None:
        lr = check_real("lr", lr, 0.0, math.inf, lo_open=True)
    k = code_steps(fmt, lr)  # whole when within 1e-9·max(1, k) of an integer
    if k != int(k) or k < 1:
        raise ValueError(
            f"lr={lr!r} is not a whole number of code steps of the update grid (γ={fmt.gamma}); "
            f"allowed: lr = k/{fmt.gamma} for an integer k >= 1, e.g. {1 / fmt.gamma!r}"
        )
    return int(k)


def code_steps(fmt: LNSFormat, lr: float | None) -> float:
    """Code steps per unit of ``round(ĝ)`` of a rate that need not be whole: ``k = η·γ_u``.

    ``k`` is returned as a float; when it is within ``1e-9·max(1, k)`` of an
    integer (a rate a scheduler computed as ``2/128·0.5``, say) it is returned as
    that integer exactly, and :func:`lns_madam_update` then moves the codes as
    for :func:`code_step_size`, without draws. ``lr=None`` means ``η = 1/γ_u``
    (``k = 1``); ``lr = 0`` (the end of some schedules) gives ``k = 0``: no move.

    Parameters
    ----------
    fmt : LNSFormat
        The update grid (``fmt.gamma`` is ``γ_u``).
    lr : float or None
        ``η`` in octaves, finite and ``>= 0``.

    Returns
    -------
    float
        ``k = η γ_u``.

    Raises
    ------
    TypeError
        ``fmt`` is not an :class:`LNSFormat` or ``lr`` not a real number.
    ValueError
        ``lr`` is negative, NaN or infinite.

    Examples
    --------
    >>> f = LNSFormat(bits=16, gamma=128)
    >>> code_steps(f, 1 / 256), code_steps(f, 3 / 128), code_steps(f, 0.0)
    (0.5, 3.0, 0.0)
    """
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    if lr is None:
        return 1.0
    lr = check_real("lr", lr, 0.0, math.inf, hi_open=True)
    k = lr * fmt.gamma
    return float(round(k)) if abs(k - round(k)) <= 1e-9 * max(1.0, k) else k


def _check_counters(**counters) -> None:
    """Each value an int >= 0 (TypeError / ValueError naming it)."""
    for name, x in counters.items():
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(x).__name__} {x!r}")
        if x < 0:
            raise ValueError(f"{name}={x!r} is out of range; allowed: an int >= 0")


def draw_key(seed: int, stream: int, t: int) -> int:
    """The 32-bit key of the rounding draws of one parameter at one step.

    ``key = h(h(h(seed ^ 0x9e3779b9) ^ stream) ^ t)`` with ``h`` the
    ``lowbias32`` hash on 32-bit values (every argument is taken mod ``2^32``;
    the constant keeps seed 0 off ``h``'s fixed point ``h(0) = 0``); see
    :func:`rounding_draws`.

    Examples
    --------
    >>> draw_key(0, 0, 1) == draw_key(0, 0, 1) != draw_key(0, 0, 2)
    True
    """
    _check_counters(seed=seed, stream=stream, t=t)
    h = _ref.hash32
    return int(h(h(h((int(seed) & 0xFFFFFFFF) ^ 0x9E3779B9) ^ (int(stream) & 0xFFFFFFFF)) ^ (int(t) & 0xFFFFFFFF)))


def rounding_draws(seed: int, stream: int, t: int, n: int) -> np.ndarray:
    """The 24-bit draws ``r_i`` that round a fractional LNS-Madam step, ``i = 0 … n−1``.

    .. math::  r_i = h\\big(h(i \\oplus \\kappa) \\oplus h(\\kappa \\oplus \\mathtt{0x85ebca6b})\\big) \\gg 8,
               \\qquad \\kappa = \\mathrm{key}(\\mathrm{seed}, \\mathrm{stream}, t),
               \\qquad u_i = r_i / 2^{24} \\in [0, 1)

    with ``h`` the ``lowbias32`` integer hash (``x ^= x>>16; x *= 0x7feb352d;
    x ^= x>>15; x *= 0x846ca68b; x ^= x>>16``, mod ``2^32``) and ``key`` from
    :func:`draw_key`. The key enters twice, before and after the first hash, so
    that no two (element, step) pairs of a parameter share a draw by
    construction. A counter-based generator: the draw of element ``i`` of
    parameter ``stream`` at step ``t`` depends on nothing else, so the Numba
    kernel, the numpy reference, the torch operations (CPU or GPU) and the
    simulator draw the same numbers, a run resumed from a ``state_dict``
    (which holds ``seed`` and ``t``) draws what the uninterrupted run drew, and
    no generator state needs saving. Element ``i`` moves up by one extra code
    step when ``r_i < frac(d)·2^24``.

    Parameters
    ----------
    seed, stream, t : int
        ``>= 0``; the optimizers pass their ``seed``, the parameter's index and
        its 1-based step.
    n : int
        Number of elements.

    Returns
    -------
    ndarray of int64
        ``r_i`` in ``[0, 2^24)``.

    Examples
    --------
    >>> r = rounding_draws(0, 0, 1, 100_000)
    >>> bool(abs(r.mean() / 2**24 - 0.5) < 0.005)   # uniform: mean 1/2, sd 0.0009
    True
    """
    key = draw_key(seed, stream, t)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n={n!r} is out of range; allowed: an int >= 0")
    h = _ref.hash32
    return h(h(np.arange(int(n), dtype=np.int64) ^ key) ^ h(key ^ 0x85EBCA6B)) >> 8


def check_codes(codes, fmt: LNSFormat) -> np.ndarray:
    """A writeable, C-contiguous signed-integer code array wide enough for ``fmt``."""
    codes = check_array("codes", codes, "i")
    check_writeable("codes", codes)
    if np.iinfo(codes.dtype).max < fmt.max_code:
        raise TypeError(f"codes dtype {codes.dtype} cannot hold ±{fmt.max_code}; allowed: {fmt.code_dtype} or wider")
    return codes


def code_cap(fmt: LNSFormat, max_code) -> int:
    """Validated cap on ``|c|``: ``fmt.max_code`` when ``max_code`` is None."""
    if max_code is None:
        return fmt.max_code
    if isinstance(max_code, bool) or not isinstance(max_code, (int, np.integer)):
        raise TypeError(f"max_code must be an int, got {type(max_code).__name__} {max_code!r}")
    if not 1 <= max_code <= fmt.max_code:
        raise ValueError(f"max_code={max_code} is out of range; allowed: 1 <= max_code <= {fmt.max_code}")
    return int(max_code)


def lns_code_cap(codes: np.ndarray, fmt: LNSFormat, p_scale: float) -> int:
    """Largest ``|c|`` allowed by a Madam-style cap ``|w| ≤ p_scale·RMS(w)``.

    The scale cancels: with magnitudes ``2^((|c|−β)/γ)`` the cap is
    ``c_max = β + floor(γ log2(p_scale · RMS))``, clipped to ``[1, fmt.max_code]``.
    ``p_scale = inf`` (or an all-zero tensor) gives ``fmt.max_code``.

    >>> f = LNSFormat(bits=16, gamma=128)
    >>> lns_code_cap(np.array([f.bias, -f.bias]), f, 2.0) - f.bias  # RMS 1, cap one octave up
    128
    """
    p_scale = check_real("p_scale", p_scale, 0.0, math.inf, lo_open=True)
    mag = np.abs(np.asarray(codes, dtype=np.int64))
    if math.isinf(p_scale) or not mag.any():
        return fmt.max_code
    # log2 RMS over all entries (zeros count as 0 in the mean), computed with a
    # max shift so that wide formats (e up to 2^31/γ octaves) cannot overflow
    e = (mag[mag > 0] - fmt.bias) / fmt.gamma
    top = e.max()
    log2_ms = 2 * top + math.log2(np.sum(np.exp2(2 * (e - top))) / mag.size)
    cap = fmt.bias + math.floor(fmt.gamma * (0.5 * log2_ms + math.log2(p_scale)) + 1e-9)
    return int(min(max(cap, 1), fmt.max_code))


def update_format(forward: LNSFormat, gamma: int = 128) -> LNSFormat:
    """The update grid that refines a forward format by ``r = γ_u/γ_f`` steps.

    Returns ``LNSFormat(bits=B_f + log2 r, gamma=γ_u, bias=r·β_f)``: then
    ``|c_u| = r·|c_f|`` holds for every forward code, i.e. the update code is the
    forward code with ``log2 r`` extra fractional bits, the forward code is
    ``round(|c_u|/r)`` (same sign, same scale), and ``r·forward.max_code`` is the
    cap that keeps every update code representable in the forward format.

    >>> from neurolns import LNS8
    >>> u = update_format(LNS8)  # LNS8 γ=8 refined 16 times
    >>> (u.bits, u.gamma, u.bias)
    (12, 128, 1024)
    """
    if not isinstance(forward, LNSFormat):
        raise TypeError(f"forward must be an LNSFormat, got {type(forward).__name__} {forward!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, np.integer)) or gamma < forward.gamma:
        raise ValueError(f"gamma={gamma!r} is out of range; allowed: a power of two >= forward.gamma={forward.gamma}")
    r = int(gamma) // forward.gamma
    if r * forward.gamma != gamma:
        raise ValueError(f"gamma={gamma} is not a power-of-two multiple of forward.gamma={forward.gamma}")
    extra = r.bit_length() - 1
    return LNSFormat(bits=forward.bits + extra, gamma=int(gamma), bias=forward.bias * r, underflow=forward.underflow)


def lns_madam_update(
    codes,
    g,
    v,
    t,
    *,
    fmt: LNSFormat,
    beta=0.999,
    g_bound=10.0,
    lr=None,
    max_code=None,
    seed=0,
    stream=0,
    reference=False,
    check_finite=True,
) -> None:
    """One LNS-Madam step on signed exponent codes, in place (``codes`` and ``v``).

    ``ĝ`` as in Madam, then ``|c| ← clamp(|c| − k·round(ĝ)·sign(c), 1, c_max)``
    with ``k = η γ_u`` (``η = 1/γ_u`` by default: one step of the update grid,
    ``2^{1/γ_u}``), the sign of ``c`` kept and ``c = 0`` left at 0. In value
    terms ``w ← w · 2^{−η round(ĝ) sign(w)}``. ``round`` is ``rint`` (ties to even).

    A rate that is not a whole number of grid steps (``k`` fractional, as a
    learning-rate scheduler produces) is realised without bias by stochastic
    rounding of each element's move ``d = k·round(ĝ)``:

    .. math::  |c| \\leftarrow \\operatorname{clamp}\\big(|c| - (\\lfloor d\\rfloor + [r < (d - \\lfloor d\\rfloor)\\,2^{24}])
               \\operatorname{sign}(c),\\ 1,\\ c_{\\max}\\big), \\qquad
               \\mathbb E[\\text{move}] = d \\ (\\pm 2^{-24})

    away from the clamps, with ``r`` the element's 24-bit draw of
    :func:`rounding_draws` ``(seed, stream, t)``. A whole ``k`` (see
    :func:`code_steps`) takes no draws and gives the codes of the integer rule.

    The normalisation (``v``, ``ĝ``) runs in float64, in this order of
    correctly rounded IEEE operations: ``v ← β·v + (1−β)·(g·g)``,
    ``ĝ = g / sqrt(v·(1/(1−β^t)))``, ``ĝ := 0`` where that is not finite (0/0:
    every ``g`` so far was 0), clamp to ``±g_bound``, ``rint``. The torch
    optimizer (:class:`neurolns.torch.LNSMadam`, both backends) runs the same
    operations, so the codes agree bit for bit. Keep ``v`` in float64: then, for
    float32 gradients, ``g²`` and ``v`` can neither underflow nor overflow and
    ``ĝ`` is scale-invariant for every finite gradient, from the smallest
    float32 subnormal (1.4e-45) to the float32 maximum (3.4e38): at ``t = 1``
    every nonzero gradient moves the code by exactly one step ``k``. (The
    authors' reference code squares in float32, where ``|g| < 1e-22``
    underflows: a first gradient of 1e-30 there gives ``g/0`` and the clamp,
    10 steps.) Float64 gradients keep this only while ``g²`` stays in the
    float64 range (``2^-511 < |g| < 2^511``); outside it ``ĝ = 0``.

    Parameters
    ----------
    codes : ndarray of signed int, C-contiguous
        Codes on the update grid ``fmt`` (see :func:`update_format`), in place.
    g : ndarray of float, same shape
        Gradient with respect to the decoded weights (only its ratio to its
        RMS matters, so the scale of the weights drops out).
    v : ndarray of float, same shape
        Second-moment state (float64, zeros before the first step), in place.
    t : int
        1-based step count.
    fmt : LNSFormat
        The update grid: ``fmt.gamma`` sets the step ``2^{1/γ_u}``.
    beta, g_bound : float
        As in :func:`madam_update`.
    lr : float, optional
        ``η`` in log2 units, finite and ``>= 0`` (``None``: ``1/γ_u``); a
        fractional number of grid steps ``η γ_u`` is rounded stochastically.
    max_code : int, optional
        Cap ``c_max`` on ``|c|`` (default ``fmt.max_code``); see
        :func:`lns_code_cap` for a Madam-style ``p_scale`` cap.
    seed, stream : int
        Key of the rounding draws (``>= 0``): the generator's seed and the
        parameter's index. Used only when ``η γ_u`` is fractional.
    reference : bool
        Run the numpy path instead of the Numba kernel.
    check_finite : bool
        Raise :class:`ValueError` (naming the argument, the count and the
        first index) before anything changes if ``g`` or ``v`` holds NaN or
        ±inf. ``False`` skips the check; with non-finite input the result is
        then unspecified.

    Examples
    --------
    >>> import numpy as np
    >>> f = LNSFormat(bits=16, gamma=128)
    >>> c = np.array([1000, -1000, 0], dtype=np.int16)
    >>> v = np.zeros(3)
    >>> lns_madam_update(c, np.array([1.0, 1.0, 1.0], np.float32), v, 1, fmt=f)
    >>> c  # ĝ = 1 at the first step: |w| shrinks where sign(w) = sign(g)
    array([  999, -1001,     0], dtype=int16)
    """
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    codes = check_codes(codes, fmt)
    g = check_array("g", g, "f", codes.shape)
    v = check_array("v", v, "f", codes.shape)
    check_writeable("v", v)
    t = check_step(t)
    beta, g_bound = _check_common(beta, g_bound)
    k = code_steps(fmt, lr)
    cap = code_cap(fmt, max_code)
    _check_counters(seed=seed, stream=stream)
    if check_flag("check_finite", check_finite):
        _check_finite("g", g)
        _check_finite("v", v)
    inv_bc = inv_bias_correction(beta, t)
    f64 = np.float64
    if k != int(k):  # a fractional step: stochastic rounding
        key = draw_key(seed, stream, t)
        if reference:
            _ref.lns_madam_frac(codes, g, v, beta, inv_bc, g_bound, k, cap, key)
            return
        args = (codes.reshape(-1), g.reshape(-1), v.reshape(-1), f64(beta), f64(1.0 - beta), f64(inv_bc),
                f64(g_bound), f64(k), f64(cap), np.int64(key))
        if use_parallel(codes.size):
            _k.lns_madam_frac_parallel(*args, 16)
        else:
            _k.lns_madam_frac_serial(*args, np.int64(0))
        return
    k = int(k)
    if reference:
        _ref.lns_madam(codes, g, v, beta, inv_bc, g_bound, k, cap)
        return
    ft = np.float32 if fmt.max_code < (1 << 24) else np.float64  # exact integer arithmetic
    args = (codes.reshape(-1), g.reshape(-1), v.reshape(-1), f64(beta), f64(1.0 - beta), f64(inv_bc), f64(g_bound),
            ft, ft(k), ft(cap))
    if use_parallel(codes.size):
        _k.lns_madam_parallel(*args, 16)
    else:
        _k.lns_madam_serial(*args)
