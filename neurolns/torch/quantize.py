"""LNS codes and fake quantization of torch tensors, on any device.

The codes are those of :func:`neurolns.lns.encode_codes`, bit for bit:

.. math::  e = \\operatorname{rint}\\big(\\gamma \\log_2 |x/\\sigma|\\big), \\qquad
           c = \\operatorname{sign}(x)\\,(e + \\beta)

saturated at ``e_max``, flushed to zero (or held at ``e_min``) below ``e_min``
per :class:`~neurolns.formats.Underflow`, exact zero at code 0, NaN an error and
±inf saturated with a :class:`RuntimeWarning`. ``σ`` is a power of two:
:func:`choose_scale` maps ``max|x|`` onto the top code (per tensor or per
channel) exactly as :func:`neurolns.lns.choose_scale` does.

How the codes stay bit-identical without float64 logarithms on the device:
for a float32 input write ``|x| = m·2^k`` (``torch.frexp``, ``m`` in
``[0.5, 1)``) and ``σ = 2^s``. Then ``γ log2|x/σ| = γ(k − 1 − s) + γ log2(2m)``
and the first term is an integer, so ``e = γ(k − 1 − s) + r(m)`` with
``r(m) = rint(γ log2 2m)`` in ``[0, γ]``, a step function of the mantissa
alone. Its ``γ`` steps sit at float32 thresholds found once per ``γ`` with the
core codec itself (:func:`mantissa_thresholds`), so ``r`` is a
``torch.bucketize`` and every decision matches the numpy codec. float16 and
bfloat16 inputs are widened to float32 first (exactly); float64 inputs take
the float64 formula. Stochastic rounding, ``e = floor(t) + [u < t − floor(t)]``,
uses ``t`` in float64 and uniforms from a ``torch.Generator``: the same law as
the core codec, another random stream.

Reference: Zhao et al., "LNS-Madam", IEEE Trans. Computers 71(12), 2022
(8-bit LNS, γ = 8).
"""

from __future__ import annotations

import math

import warnings
from functools import lru_cache

import numpy as np
import torch

from neurolns.formats import LNSFormat, Rounding, Underflow, _StrEnum
from neurolns.lns import decode_codes, encode_codes
from neurolns.lns._exact import exact_exponent, exp2_direction, exp2_table, threshold_ceilings
from neurolns.lns._reference import wider_than_float64
from neurolns.lns.checks import check_codes, check_scale
from neurolns.lns.codec import scale_threshold

__all__ = [
    "Backend",
    "quantize",
    "quantize_grad",
    "encode_codes_t",
    "decode_codes_t",
    "choose_scale",
    "mantissa_thresholds",
]

class Backend(_StrEnum):
    """Where the codec runs.

    ``AUTO``: the core's Numba kernels for CPU tensors of at least
    :data:`neurolns._jit.PARALLEL_THRESHOLD` elements (zero copy, parallel),
    torch operations for smaller CPU tensors (no thread start-up per call)
    and on other devices. ``TORCH``: torch operations
    everywhere (what a GPU runs; selectable on CPU to test it). ``NUMBA``: the
    Numba kernels (CPU tensors only).
    """

    AUTO = "auto"
    TORCH = "torch"
    NUMBA = "numba"


_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _check_format(fmt) -> LNSFormat:
    if not isinstance(fmt, LNSFormat):
        raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__} {fmt!r}")
    return fmt


def _check_tensor(t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOATS:
        raise TypeError(f"tensor of dtype {t.dtype} cannot be quantized; allowed: float32, float16, bfloat16, float64")
    return t


@lru_cache(maxsize=16)
def mantissa_thresholds(gamma: int) -> np.ndarray:
    """float32 mantissas ``T_j`` (``j = 0..γ−1``) at which ``rint(γ log2 2m)`` reaches ``j+1``.

    For ``m`` in ``[0.5, 1)``: ``rint(γ log2 2m) = #{j : m ≥ T_j}``, with
    ``T_j = (2^23 + ⌈(2^((j+½)/γ) − 1)·2^23⌉)/2^24`` — the first float32 at or
    above the irrational boundary ``2^((j+½)/γ − 1)``, from the exact integer
    ceilings of :func:`neurolns.lns._exact.threshold_ceilings`.

    >>> mantissa_thresholds(1)        # rint(log2 2m) = 1 from the float32 above 2**-0.5 on
    array([0.7071068], dtype=float32)
    """
    c = threshold_ceilings(int(gamma), 23)
    t = np.ldexp((np.int64(1) << 23) + c, -24).astype(np.float32)  # exact: 24 significant bits
    t.setflags(write=False)
    return t


_DEVICE_CACHE: dict = {}


def _on(arr: np.ndarray, device, dtype=None) -> torch.Tensor:
    """A cached device copy of a read-only numpy table."""
    key = (id(arr), str(device), dtype)
    hit = _DEVICE_CACHE.get(key)
    if hit is None or hit[0] is not arr:
        t = torch.from_numpy(np.array(arr)).to(device=device)
        if dtype is not None:
            t = t.to(dtype)
        hit = (arr, t)
        _DEVICE_CACHE[key] = hit
    return hit[1]


def _compiling() -> bool:
    """Whether the call is being traced by ``torch.compile`` (then only pure torch
    operations that read nothing back from the device may run)."""
    return torch.compiler.is_compiling()


def _constant_under_compile(fn):
    """Mark ``fn`` as :func:`torch.compiler.assume_constant_result` does (the attribute it
    sets), without importing ``torch._dynamo`` when ``neurolns.torch`` is imported: while
    tracing, ``fn`` runs on its constant arguments and its result enters the graph as a
    constant."""
    fn._dynamo_marked_constant = True
    return fn


#: builders of the constant tables the traced path gathers from, by name (numpy arrays)
_TABLE_BUILDERS: dict = {
    "thresholds": threshold_ceilings,
    "exp2": lambda gamma, bias, max_code: exp2_table(gamma, bias, max_code, "float64"),
    "direction": exp2_direction,
}


@_constant_under_compile
def _table_values(kind: str, *args) -> tuple:
    """The entries of a constant table as Python numbers (exact: int64, or float32/float64
    values held exactly by Python floats). Under ``torch.compile`` it runs outside the trace,
    so the exact decimal arithmetic that builds the tables is never traced."""
    return tuple(_TABLE_BUILDERS[kind](*args).tolist())


def _const_table(kind: str, args: tuple, device, dtype: torch.dtype) -> torch.Tensor:
    """Table ``kind`` on ``device``: a cached copy in eager mode, a constant of the graph
    (the same entries) under ``torch.compile``."""
    if _compiling():
        return torch.tensor(_table_values(kind, *args), dtype=dtype, device=device)
    return _on(_TABLE_BUILDERS[kind](*args), device)


@_constant_under_compile
def _scale_threshold(fmt: LNSFormat) -> tuple[int, float]:
    """:func:`neurolns.lns.codec.scale_threshold` for float64 mantissas (a constant under
    ``torch.compile``: its exact decimal arithmetic runs outside the trace)."""
    return scale_threshold(fmt, 53)


def choose_scale(t: torch.Tensor, fmt: LNSFormat, *, channel_axis: int | None = None) -> torch.Tensor:
    """Power-of-two scale ``σ = 2^k``, ``k = ceil(log2 max|t| − e_max/γ)``, on ``t``'s device.

    The torch twin of :func:`neurolns.lns.choose_scale` (same rule, same
    result; non-finite entries are ignored and an all-zero tensor gets 1).
    Returns float64: a 0-d tensor, or with ``channel_axis`` a tensor of
    ``t.ndim`` dimensions that broadcasts against ``t``. Nothing is copied to
    the host, so it does not synchronise a GPU.

    Examples
    --------
    >>> import torch
    >>> from neurolns import LNS8
    >>> float(choose_scale(torch.tensor([0.5, -3.0]), LNS8))   # 3 <= 2**-6 * 2**(63/8)
    0.015625
    """
    _check_format(fmt)
    a = _check_tensor(t).detach().abs()
    a = torch.where(torch.isfinite(a), a, torch.zeros((), dtype=a.dtype, device=a.device))
    if channel_axis is None:
        amax = a.amax() if a.numel() else torch.zeros((), dtype=a.dtype, device=a.device)
    else:
        if a.ndim == 0:
            raise ValueError("channel_axis needs a tensor with at least one dimension")
        if not -a.ndim <= channel_axis < a.ndim:
            raise ValueError(f"channel_axis={channel_axis} is out of range for a tensor of ndim {a.ndim}")
        ax = channel_axis % a.ndim
        dims = tuple(i for i in range(a.ndim) if i != ax)
        amax = a.amax(dim=dims, keepdim=True) if dims else a
    return _pow2_scale(amax, fmt)


def _pow2_scale(amax: torch.Tensor, fmt: LNSFormat) -> torch.Tensor:
    """``2^k``, ``k = ⌈log2 amax − e_max/γ⌉`` decided exactly as the core's
    :func:`neurolns.lns.codec.scale_exponent` (1 where ``amax`` is 0), ``k`` clipped to
    [−1022, 1023]; float64, built from its bits (no ``log2``/``exp2`` on the device)."""
    amax = amax.to(torch.float64)
    mant, ex = torch.frexp(amax)
    q, thr = _scale_threshold(fmt)
    k = (ex.to(torch.int64) - 1) - q + (2.0 * mant > thr).to(torch.int64)
    k = torch.where(amax > 0, k, torch.zeros_like(k)).clamp(-1022, 1023)
    return _pow2(k)


def _pow2(k: torch.Tensor) -> torch.Tensor:
    """``2.0**k`` in float64 for integer ``k`` in the normal range, from the bits."""
    return ((k + 1023) << 52).view(torch.float64)


def _cpu_max_abs_if_finite(t: torch.Tensor) -> float | None:
    """On CPU, one ``aminmax`` pass: ``max|t|`` when every entry is finite, else ``None``
    (then the caller takes the masked path and counts NaN/inf). It saves the separate
    abs, isfinite, max, isnan and isinf passes of the general path; on other devices it
    returns ``None`` without looking, since reading a result back would synchronise."""
    if t.device.type != "cpu" or t.numel() == 0:
        return None
    lo, hi = (float(v) for v in torch.aminmax(t))
    return max(-lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _scale_tensor(t: torch.Tensor, fmt: LNSFormat, scale, channel_axis) -> tuple[torch.Tensor, bool]:
    """(scale as a float64 tensor on t's device, whether it is known to be a power of two)."""
    if scale is None:
        return choose_scale(t, fmt, channel_axis=channel_axis), True
    if channel_axis is not None:
        raise ValueError("give either scale or channel_axis, not both (channel_axis picks scales)")
    if isinstance(scale, torch.Tensor):
        s = scale.detach().to(device=t.device, dtype=torch.float64)
    else:
        s = torch.as_tensor(np.asarray(scale, dtype=np.float64), device=t.device)
    try:
        shape = torch.broadcast_shapes(s.shape, t.shape)
    except RuntimeError:
        raise ValueError(f"scale of shape {tuple(s.shape)} does not broadcast to the data's shape {tuple(t.shape)}") from None
    if shape != t.shape:
        raise ValueError(f"scale of shape {tuple(s.shape)} would broadcast the data's shape {tuple(t.shape)} to {tuple(shape)}")
    if not bool(torch.all(torch.isfinite(s) & (s > 0))):
        check_scale(s.cpu().numpy())  # raises, naming the first bad entry
    pow2 = bool(torch.all(torch.frexp(s).mantissa == 0.5))
    return s, pow2


def _finish(e: torch.Tensor, a: torch.Tensor, neg: torch.Tensor, fmt: LNSFormat, code_dtype) -> torch.Tensor:
    """Saturate/underflow the exponent codes ``e`` and attach sign and bias."""
    e = torch.clamp_max(e, fmt.e_max)
    small = e < fmt.e_min
    if fmt.underflow == Underflow.SATURATE:
        e = torch.clamp_min(e, fmt.e_min)
        zero = a == 0
    else:
        zero = small | (a == 0)
    m = torch.where(zero, torch.zeros((), dtype=e.dtype, device=e.device), e + fmt.bias)
    return torch.where(neg, -m, m).to(code_dtype)


def _exponents_pow2(a: torch.Tensor, fmt: LNSFormat, log2s: torch.Tensor) -> torch.Tensor:
    """Nearest exponent codes of finite magnitudes at a power-of-two scale (int64), exactly.

    ``a = μ·2^E`` (``torch.frexp``: ``μ`` in ``[0.5, 1)``, subnormals too); the
    mantissa field of ``2μ`` is counted against the exact integer ceilings of
    the rounding thresholds (:func:`neurolns.lns._exact.threshold_ceilings`):
    ``e = γ(E − 1 − s) + #{k : m ≥ ⌈T_k⌉}``. float32 magnitudes use the 23-bit
    table, float64 the 52-bit one. NaN/inf are fixed up by the caller.
    """
    bits = 52 if a.dtype == torch.float64 else 23
    work = torch.float64 if bits == 52 else torch.float32
    thr = _const_table("thresholds", (fmt.gamma, bits), a.device, torch.int64)
    if _compiling() and bits == 23:
        field, ex = _split_float32(a.to(work))
        r = _count_traced(1.0 + field.to(torch.float32) * 2.0**-23, field, thr, fmt.gamma)
        return (ex - 1 - log2s) * fmt.gamma + r
    mant, ex = torch.frexp(a.to(work))
    mant = torch.nan_to_num(mant, nan=0.5, posinf=0.5, neginf=0.5)
    field = (mant.to(torch.float64) * float(1 << (bits + 1))).to(torch.int64) - (1 << bits)
    field = field.clamp_(0, (1 << bits) - 1)  # zeros give mantissa 0: fixed up by the caller
    if _compiling():
        r = _count_traced(2.0 * mant.clamp_min(0.5), field, thr, fmt.gamma)
    else:
        r = torch.searchsorted(thr, field, right=True)
    return (ex.to(torch.int64) - 1 - log2s) * fmt.gamma + r


def _split_float32(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.frexp`` of non-negative float32 from the bits, in operations that vectorize:
    (mantissa field of ``2μ``, exponent ``E``) with ``a = μ·2^E``, ``μ`` in ``[0.5, 1)``;
    subnormals are first scaled by ``2^24`` (exactly). Zero, NaN and inf give values the
    caller replaces."""
    sub = a < 2.0**-126
    bits = torch.where(sub, a * 2.0**24, a).view(torch.int32)
    field = (bits & 0x7FFFFF).to(torch.int64)
    ex = ((bits >> 23) & 0xFF).to(torch.int64) - 126 - torch.where(sub, 24, 0)
    return field, ex


def _count_traced(m2: torch.Tensor, field: torch.Tensor, thr: torch.Tensor, gamma: int) -> torch.Tensor:
    """``#{k : field ≥ thr[k]}`` without a search (which inductor leaves as a library call):
    the estimate ``rint(γ log2 2μ)`` (``m2 = 2μ`` in ``[1, 2)``) is off by at most one (its
    float error is far below ½), and two gathers from the exact table correct it, so the
    count is exact and the whole encoder fuses into one elementwise loop."""
    est = torch.round(torch.log2(m2) * gamma).to(torch.int64).clamp(0, gamma)
    up = (est < gamma) & (field >= thr[est.clamp_max(gamma - 1)])
    down = (est > 0) & (field < thr[(est - 1).clamp_min(0)])
    return est + up.to(torch.int64) - down.to(torch.int64)


#: as the core's guard (:data:`neurolns.lns._codec_kernels._GUARD`)
_GUARD = 2.0 ** -42


def _exponents_f64(a: torch.Tensor, fmt: LNSFormat, s: torch.Tensor, rounding: Rounding, generator) -> torch.Tensor:
    """``t = γ (log2|x| − log2 σ)`` in float64, rounded nearest or stochastically (int64).

    Values whose ``t`` lies within a guard of a rounding boundary are decided
    again exactly on the host (:func:`neurolns.lns._exact.exact_exponent`), as
    the core codec does; checking for them reads one flag back from the device.
    """
    a64 = a.to(torch.float64)
    lg = torch.log2(a64)
    ls = torch.log2(s)
    t = fmt.gamma * (lg - ls)
    g = (fmt.gamma * (lg.abs() + ls.abs()) + 1.0) * _GUARD
    if rounding == Rounding.NEAREST:
        e = torch.round(t)  # half to even, as np.rint
        undecided = ((t - e).abs() - 0.5).abs() < g
        u = None
    else:
        u = torch.rand(t.shape, generator=generator, dtype=torch.float64, device=t.device)
        k = torch.round(t)
        near = (t - k).abs() < g
        fl = torch.floor(t)
        f = t - fl
        e = torch.where(near, k, fl + (u < f).to(torch.float64))
        undecided = torch.where(near, (u < 2 * g) | (u >= 1 - 2 * g), (f - u).abs() < g)
    undecided &= torch.isfinite(a64) & (a64 > 0)
    if bool(undecided.any()):
        e = _decide_exactly(e, undecided, a64, s, fmt, u)
    # ±inf and 0 give non-finite t: park them inside the int64 range (fixed up by the caller)
    e = torch.nan_to_num(e, nan=0.0, posinf=float(fmt.e_max) + 1, neginf=float(fmt.e_min) - 1)
    e = e.clamp(float(fmt.e_min) - 1, float(fmt.e_max) + 1)
    return e.to(torch.int64)


def _decide_exactly(e, undecided, a64, s, fmt, u):
    """Replace the flagged entries of ``e`` by their exact exponents (host decimal arithmetic)."""
    idx = torch.nonzero(undecided.reshape(-1)).reshape(-1)
    av = a64.reshape(-1)[idx].cpu().tolist()
    sv = s.expand(a64.shape).reshape(-1)[idx].cpu().tolist()
    uv = u.reshape(-1)[idx].cpu().tolist() if u is not None else [0.0] * len(av)
    exact = [exact_exponent(x, sig, fmt.gamma, u is not None, ui) for x, sig, ui in zip(av, sv, uv)]
    flat = e.reshape(-1).clone()
    flat[idx] = torch.tensor(exact, dtype=torch.float64).clamp(float(fmt.e_min) - 1, float(fmt.e_max) + 1).to(flat.device)
    return flat.reshape(e.shape)


def _use_numba(t: torch.Tensor, backend) -> bool:
    backend = Backend(backend)
    if backend == Backend.NUMBA and t.device.type != "cpu":
        raise ValueError(f"backend='numba' runs on CPU tensors only; this tensor is on {t.device}")
    if backend == Backend.AUTO:
        from neurolns._jit import PARALLEL_THRESHOLD

        return t.device.type == "cpu" and t.numel() >= PARALLEL_THRESHOLD
    return backend == Backend.NUMBA


def _codes_numba(t, fmt, s, rounding, generator):
    """The core codec on a zero-copy numpy view (CPU)."""
    x = t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float32)
    seed = None
    if rounding == Rounding.STOCHASTIC:  # a numpy stream seeded from the torch generator
        seed = int(torch.randint(0, 2**62, (), generator=generator))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # counted and raised by the caller
        codes = encode_codes(x.contiguous().numpy(), fmt, s.cpu().numpy(), rounding=rounding, seed=seed)
    return torch.from_numpy(codes)


def _codes(t, fmt, scale, channel_axis, rounding, generator, check_nan: bool, backend="auto", trusted=False):
    """(codes in the torch twin of fmt.code_dtype, scale as a float64 tensor).

    ``trusted``: ``scale`` is already a power-of-two float64 tensor on ``t``'s
    device (internal callers), so it is not validated (no device sync)."""
    fmt = _check_format(fmt)
    t = _check_tensor(t).detach()
    rounding = Rounding(rounding)
    if _compiling():
        return _codes_traced(t, fmt, scale, channel_axis, rounding, check_nan, trusted)
    numba_path = _use_numba(t, backend)
    amax = _cpu_max_abs_if_finite(t) if (check_nan or scale is None) and not trusted else None
    if trusted:
        s, pow2 = scale, True
    elif scale is None and channel_axis is None and amax is not None:
        s, pow2 = _pow2_scale(torch.tensor(amax, dtype=torch.float64), fmt), True
    else:
        s, pow2 = _scale_tensor(t, fmt, scale, channel_axis)
    if check_nan and amax is None:
        n_nan = int(torch.isnan(t).sum())
        if n_nan:
            first = torch.nonzero(torch.isnan(t))[0].tolist() if t.ndim else []
            where = f" at index {tuple(first)}" if t.ndim else ""
            raise ValueError(f"cannot encode NaN: the input holds {n_nan} NaN value(s), the first{where}")
        n_inf = int(torch.isinf(t).sum())
        if n_inf:
            warnings.warn(f"{n_inf} infinite value(s) saturated to the largest magnitude of {fmt}",
                          RuntimeWarning, stacklevel=3)
    if numba_path:
        if amax is None and not check_nan:  # NaN may be present: code 0, as on the torch path
            t = torch.where(torch.isnan(t), torch.zeros((), dtype=t.dtype), t)
        return _codes_numba(t, fmt, s, rounding, generator), s
    if rounding == Rounding.NEAREST and pow2:
        return _codes_pow2(t, fmt, s), s
    a = t.abs()
    e = _exponents_f64(a, fmt, s, rounding, generator)
    e = torch.where(torch.isnan(a), torch.zeros((), dtype=e.dtype, device=e.device), e)
    return _finish(e, a.nan_to_num(0.0), t < 0, fmt, _code_dtype(fmt)), s


def _code_dtype(fmt: LNSFormat) -> torch.dtype:
    return getattr(torch, str(fmt.code_dtype))


def _codes_pow2(t: torch.Tensor, fmt: LNSFormat, s: torch.Tensor) -> torch.Tensor:
    """Nearest codes at a power-of-two scale tensor ``s``: torch operations only, nothing
    read back from the device (the path of GPUs and of ``torch.compile``)."""
    a = t.abs()
    log2s = torch.frexp(s).exponent.to(torch.int64) - 1  # exact for powers of two
    e = _exponents_pow2(a, fmt, log2s)
    # a == inf and a != a: isinf/isnan, in comparisons that inductor vectorizes on CPU
    e = torch.where(a == math.inf, torch.full((), fmt.e_max, dtype=e.dtype, device=e.device), e)
    e = torch.where(a != a, torch.zeros((), dtype=e.dtype, device=e.device), e)
    return _finish(e, a.nan_to_num(0.0), t < 0, fmt, _code_dtype(fmt))


def _codes_traced(t, fmt, scale, channel_axis, rounding, check_nan, trusted):
    """:func:`_codes` under ``torch.compile``: the same codes from torch operations alone.

    What would read data back from the device is refused while tracing, with a
    message: the NaN check (``check_nan=True``), stochastic rounding (its exact
    re-decision near boundaries runs on the host) and scales not known to be
    powers of two (tensor scales, which cannot be checked without a read-back;
    Python numbers are checked here, on the host).
    """
    if check_nan:
        raise ValueError("check_nan=True reads a NaN count back from the device, which torch.compile cannot "
                         "trace; pass check_nan=False (NaN then propagates) to compile quantize")
    if rounding != Rounding.NEAREST:
        raise ValueError(f"rounding={str(rounding)!r} is not supported under torch.compile (its exact "
                         "re-decision near rounding boundaries runs on the host); use rounding='nearest'")
    if trusted:
        s = scale
    elif scale is None:
        s = choose_scale(t, fmt, channel_axis=channel_axis)
    elif channel_axis is not None:
        raise ValueError("give either scale or channel_axis, not both (channel_axis picks scales)")
    elif isinstance(scale, (int, float)) and not isinstance(scale, bool):
        sf = float(scale)
        if not (math.isfinite(sf) and sf > 0 and math.frexp(sf)[0] == 0.5):
            raise ValueError(f"scale={scale!r} is not supported under torch.compile; allowed: None or a "
                             "positive power of two")
        s = torch.full((), sf, dtype=torch.float64, device=t.device)
    else:
        raise ValueError(f"scale of type {type(scale).__name__} is not supported under torch.compile "
                         "(it cannot be checked without reading it back); allowed: None or a positive "
                         "power of two given as a Python number")
    return _codes_pow2(t, fmt, s), s


def encode_codes_t(t: torch.Tensor, fmt: LNSFormat, *, scale=None, channel_axis: int | None = None,
                   rounding: Rounding | str = "nearest", generator: torch.Generator | None = None,
                   backend: Backend | str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Signed LNS codes of a tensor and their scale, computed on its device.

    Parameters
    ----------
    t : torch.Tensor
        float32, float16, bfloat16 or float64, any shape and device.
    fmt : LNSFormat
    scale : None, float or tensor
        ``None``: a power-of-two scale from :func:`choose_scale` (per tensor,
        or per channel with ``channel_axis``); else positive and broadcastable.
    channel_axis : int, optional
    rounding : {"nearest", "stochastic"}
    generator : torch.Generator, optional
        Source of the randomness of stochastic rounding (on ``t``'s device).
    backend : {"auto", "torch", "numba"}
        See :class:`Backend`.

    Returns
    -------
    codes : torch.Tensor
        Of the torch twin of ``fmt.code_dtype`` (int8/int16/int32), on ``t``'s
        device; with nearest rounding identical to
        ``neurolns.lns.encode_codes(t.numpy(), fmt, scale)``.
    scale : torch.Tensor
        float64, broadcastable to ``codes``.

    Raises
    ------
    ValueError
        If ``t`` holds NaN, or the scale is not positive, finite and broadcastable.

    Examples
    --------
    >>> import torch
    >>> from neurolns import LNS8
    >>> codes, s = encode_codes_t(torch.tensor([3.0, 0.1, -1.0, 0.0]), LNS8, scale=1.0)
    >>> codes                                    # ±(rint(8 log2|x|) + 64)
    tensor([ 77,  37, -64,   0], dtype=torch.int8)
    """
    return _codes(t, fmt, scale, channel_axis, rounding, generator, True, backend)


def decode_codes_t(codes: torch.Tensor, fmt: LNSFormat, scale=1.0, *, dtype=torch.float32,
                   backend: Backend | str = "auto") -> torch.Tensor:
    """Values ``sign(c)·σ·2^((|c|−β)/γ)`` of integer codes, as :func:`neurolns.lns.decode_codes`.

    A gather from the format's table of correctly rounded magnitudes
    (:func:`neurolns.lns._exact.exp2_table`, in float32 for float32 output)
    times the scale — never ``exp2`` — so the values equal the core's bit for
    bit on every device: with a power-of-two ``σ`` the correctly rounded value
    in float32/float64; with another ``σ`` the float64 table value times ``σ``,
    then rounded to ``dtype``. Formats wider than 20 bits, and scales that push
    values out of the normal range, are decoded by the core on the host.

    Raises ``ValueError`` for codes outside ``±fmt.max_code`` or a scale that is
    not finite and positive (reading one flag back from the device).

    >>> import torch
    >>> from neurolns import LNS8
    >>> decode_codes_t(torch.tensor([77, 37, -64, 0]), LNS8, dtype=torch.float64)
    tensor([ 3.0844,  0.0964, -1.0000,  0.0000], dtype=torch.float64)
    """
    fmt = _check_format(fmt)
    if not isinstance(codes, torch.Tensor) or codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor, got {getattr(codes, 'dtype', type(codes).__name__)}")
    s = scale.detach() if isinstance(scale, torch.Tensor) else torch.as_tensor(np.asarray(scale, dtype=np.float64))
    s = s.to(device=codes.device, dtype=torch.float64)
    return _decode(codes, fmt, s, dtype, backend, trusted=False)


def _decode(codes, fmt, s, dtype, backend, trusted):
    """Body of :func:`decode_codes_t`; ``trusted`` skips the checks (codes from the encoder,
    a power-of-two scale from :func:`choose_scale`), so the hot path reads nothing back."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    if _compiling():
        if not trusted:
            raise ValueError("decode_codes_t checks its codes and scale on the host, which torch.compile "
                             "cannot trace; inside a compiled function decode through quantize")
        if fmt.bits > 20 or wider_than_float64(fmt):
            raise ValueError(f"{fmt} is decoded on the host (wider than 20 bits), which torch.compile "
                             "cannot trace")
        return _decode_table(codes, fmt, s, dtype, work, True)
    if not trusted:
        if codes.numel() and bool(((codes > fmt.max_code) | (codes < -fmt.max_code)).any()):
            check_codes(codes.cpu().numpy(), fmt)  # raises, naming the first bad code
        if s.numel() and not bool(torch.all(torch.isfinite(s) & (s > 0))):
            check_scale(s.cpu().numpy())
    pow2 = trusted or bool(torch.all(torch.frexp(s).mantissa == 0.5))
    host = (_use_numba(codes, backend) or fmt.bits > 20 or wider_than_float64(fmt)
            or (work == torch.float64 and pow2 and not trusted and not _float64_normal(fmt, s)))
    if host:
        npdt = np.float64 if work == torch.float64 else np.float32
        out = decode_codes(codes.cpu().contiguous().numpy(), fmt, s.cpu().numpy(), dtype=npdt)
        return torch.from_numpy(out).to(device=codes.device, dtype=dtype)
    return _decode_table(codes, fmt, s, dtype, work, pow2)


def _decode_table(codes, fmt, s, dtype, work, pow2: bool) -> torch.Tensor:
    """Table gather times the scale, rounded once to float32 when ``σ`` is a power of two."""
    c = codes.to(torch.int64)
    mag = c.abs()
    key = (fmt.gamma, fmt.bias, fmt.max_code)
    v = _const_table("exp2", key, codes.device, torch.float64)[mag] * s
    if work == torch.float32:
        if pow2:  # v is exact: round it to float32 once, correctly
            v = _to_float32_exactly(v, _const_table("direction", key, codes.device, torch.int8)[mag])
        else:
            v = v.to(torch.float32)
    v = torch.where(c < 0, -v, v)
    return v.to(dtype)


def _to_float32_exactly(v64: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """float32 of non-negative float64 values ``v64 = round64(y)`` that equals the
    correctly rounded float32 of ``y``: the cast (ties to even) is right unless
    ``v64`` lies exactly halfway between two float32; then ``y`` lies on the side
    ``direction = sign(y − v64)`` gives (0: ``v64`` is ``y``, the tie stands)."""
    v32 = v64.to(torch.float32)
    back = v32.to(torch.float64)
    inf = torch.full_like(v32, math.inf)
    up = torch.nextafter(v32, inf)
    down = torch.nextafter(v32, -inf)
    up64, down64 = up.to(torch.float64), down.to(torch.float64)
    tie_up = (v64 > back) & (v64 - back == (up64 - back) * 0.5)
    tie_down = (v64 < back) & (back - v64 == (back - down64) * 0.5)
    v32 = torch.where(tie_up & (direction > 0), up, v32)
    return torch.where(tie_down & (direction < 0), down, v32)


def _float64_normal(fmt: LNSFormat, s: torch.Tensor) -> bool:
    """Whether ``table[m]·σ`` stays in float64's normal range for every code (reads σ's
    range back from the device)."""
    if s.numel() == 0:
        return True
    ls = torch.frexp(s).exponent - 1
    lo, hi = int(ls.min()), int(ls.max())
    return (1 - fmt.bias) / fmt.gamma + lo >= -1021 and fmt.e_max / fmt.gamma + hi < 1023


class _FakeQuant(torch.autograd.Function):
    """Forward: the LNS value nearest (or stochastically near) ``x``; backward: identity (STE)."""

    @staticmethod
    def forward(ctx, x, fmt, scale, channel_axis, rounding, generator, check_nan, backend):
        codes, s = _codes(x, fmt, scale, channel_axis, rounding, generator, check_nan, backend)
        # traced: the scale is a power of two (checked by _codes_traced), nothing is read back
        out = _decode(codes, fmt, s, x.dtype, backend, trusted=_compiling())
        if not check_nan:  # NaN propagates, as through any torch op (no code holds it)
            out = torch.where(x != x, x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None, None, None, None, None


def quantize(t: torch.Tensor, fmt: LNSFormat, *, scale=None, channel_axis: int | None = None,
             rounding: Rounding | str = "nearest", generator: torch.Generator | None = None,
             check_nan: bool = True, backend: Backend | str = "auto") -> torch.Tensor:
    """LNS fake quantization with a straight-through gradient.

    Forward: ``decode(encode(t))`` — the format's value nearest ``t`` in the log
    domain (or stochastically rounded), in ``t``'s dtype and on its device.
    Backward: the gradient passes unchanged (straight-through estimator,
    Bengio et al. 2013), saturated values included.

    Parameters
    ----------
    t : torch.Tensor
        float32, float16, bfloat16 or float64.
    fmt : LNSFormat
    scale, channel_axis, rounding, generator, backend
        As :func:`encode_codes_t`.
    check_nan : bool
        Raise on NaN and warn on ±inf as the core codec does (this reads a
        count back from the device). ``False``: NaN passes through unchanged
        (as through any torch operation) and ±inf saturates, without reading
        anything back; the modules use it in their hot path. Under
        ``torch.compile`` it must be ``False`` (see ``docs/torch.md``).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device. For float32 input the values equal
        ``neurolns.lns.quantize`` on the same array bit for bit; for float16
        and bfloat16 they are those values rounded to the input's dtype.

    Examples
    --------
    >>> import torch
    >>> from neurolns import LNS8
    >>> x = torch.tensor([3.0, -0.1], requires_grad=True)
    >>> y = quantize(x, LNS8, scale=1.0); y.detach()
    tensor([ 3.0844, -0.0964])
    >>> y.sum().backward(); x.grad                 # straight-through
    tensor([1., 1.])
    """
    return _FakeQuant.apply(t, fmt, scale, channel_axis, Rounding(rounding), generator, check_nan, Backend(backend))


class _GradQuant(torch.autograd.Function):
    """Forward: identity; backward: the gradient quantized to an LNS format."""

    @staticmethod
    def forward(ctx, x, fmt, rounding, generator, backend):
        ctx.fmt, ctx.rounding, ctx.generator, ctx.backend = fmt, rounding, generator, backend
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        codes, s = _codes(g, ctx.fmt, None, None, ctx.rounding, ctx.generator, False, ctx.backend)
        out = _decode(codes, ctx.fmt, s, g.dtype, ctx.backend, trusted=True)
        # a non-finite error signal stays non-finite, so the optimizer sees it and skips the step
        return torch.where(torch.isfinite(g), out, g), None, None, None, None


def quantize_grad(t: torch.Tensor, fmt: LNSFormat, *, rounding: Rounding | str = "nearest",
                  generator: torch.Generator | None = None, backend: Backend | str = "auto") -> torch.Tensor:
    """Identity in the forward pass; quantizes the gradient flowing back through ``t``.

    The gradient is encoded with a per-tensor power-of-two scale (as
    :func:`quantize`) and decoded: the error signal of an LNS training
    pipeline (Zhao et al. 2022 quantize weights, activations and gradients).
    NaN and ±inf entries pass through unchanged, so an optimizer downstream
    sees them and skips the step (``docs/input_policy.md``). It compiles with
    ``torch.compile(fullgraph=True)`` for nearest rounding (the same codes).

    >>> import torch
    >>> from neurolns import LNS8
    >>> x = torch.ones(2, requires_grad=True)
    >>> (quantize_grad(x, LNS8) * torch.tensor([3.0, 0.1])).sum().backward()
    >>> x.grad                                  # on the γ=8 grid, relative to max|g|
    tensor([3.0844, 0.0964])
    """
    _check_format(fmt)
    _check_tensor(t)
    return _GradQuant.apply(t, fmt, Rounding(rounding), generator, Backend(backend))
