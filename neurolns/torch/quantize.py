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
from neurolns.lns._reference import wider_than_float64
from neurolns.lns.codec import decode_table

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

    For ``m`` in ``[0.5, 1)``: ``rint(γ log2 2m) = #{j : m ≥ T_j}``. Each
    threshold starts at the float32 nearest ``2^((j+½)/γ − 1)`` and is moved
    by single ulps until the core codec (:func:`neurolns.lns.encode_codes` at
    scale 1) agrees that ``T_j`` rounds up and its predecessor does not.

    >>> mantissa_thresholds(1)        # rint(log2 2m) = 1 from the float32 above 2**-0.5 on
    array([0.7071068], dtype=float32)
    """
    fmt = LNSFormat(bits=32, gamma=int(gamma))

    def rounds_up(m, j):
        # code of 2m at scale 1 is e + bias with e = rint(γ log2 2m)
        e = encode_codes((2.0 * m).astype(np.float32), fmt).astype(np.int64) - fmt.bias
        return e >= j + 1

    j = np.arange(gamma, dtype=np.int64)
    t = np.exp2((j + 0.5) / gamma - 1.0).astype(np.float32)
    for _ in range(64):  # converges in one or two moves; bounded for safety
        up = rounds_up(t, j)
        prev = np.nextafter(t, np.float32(0.0))
        prev_up = rounds_up(prev, j)
        if np.all(up & ~prev_up):
            break
        t = np.where(~up, np.nextafter(t, np.float32(1.0)), np.where(prev_up, prev, t)).astype(np.float32)
    else:  # pragma: no cover - the codec is monotone, so this cannot happen
        raise RuntimeError(f"mantissa thresholds for gamma={gamma} did not converge")
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
    """``2^ceil(log2 amax − e_max/γ)`` in float64 (1 where ``amax`` is 0), ``k`` clipped to
    [−1022, 1023] as the core's ``choose_scale``: the scale stays a normal float64 even for
    formats spanning more octaves than float64 (e.g. 16 bits at γ = 8)."""
    amax = amax.to(torch.float64)
    k = torch.ceil(torch.log2(amax) - fmt.e_max / fmt.gamma)
    k = torch.where(amax > 0, k, torch.zeros_like(k)).clamp(-1022.0, 1023.0)
    return torch.exp2(k)


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
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
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


def _exponents_pow2(a32: torch.Tensor, fmt: LNSFormat, log2s: torch.Tensor) -> torch.Tensor:
    """Nearest exponent codes of float32 magnitudes at a power-of-two scale (int64).

    ``r(m)`` is first estimated from a float32 ``log2`` (off by at most one
    step: its error is below ``γ·2^-23 ≤ 1/8``), then set exactly by comparing
    the mantissa with the two thresholds around the estimate.
    """
    mant, ex = torch.frexp(a32)
    mant = torch.nan_to_num(mant, nan=0.5, posinf=0.5, neginf=0.5)  # NaN/inf are fixed up by the caller
    g = fmt.gamma
    ext = _on(_extended_thresholds(g), a32.device)
    k = torch.floor(torch.log2(mant * 2.0) * g + 0.5).clamp_(0, g).to(torch.int64)
    r = k - (mant < ext[k]).to(torch.int64) + (mant >= ext[k + 1]).to(torch.int64)
    return (ex.to(torch.int64) - 1 - log2s) * g + r


@lru_cache(maxsize=16)
def _extended_thresholds(gamma: int) -> np.ndarray:
    """``[-1, T_0, ..., T_{γ-1}, 2]``: the bounds of ``r = k`` are entries ``k`` and ``k+1``."""
    t = np.concatenate([[-1.0], mantissa_thresholds(gamma), [2.0]]).astype(np.float32)
    t.setflags(write=False)
    return t


def _exponents_f64(a: torch.Tensor, fmt: LNSFormat, s: torch.Tensor, rounding: Rounding, generator) -> torch.Tensor:
    """``t = γ (log2|x| − log2 σ)`` in float64, rounded nearest or stochastically (int64)."""
    t = fmt.gamma * (torch.log2(a.to(torch.float64)) - torch.log2(s))
    if rounding == Rounding.NEAREST:
        e = torch.round(t)  # half to even, as np.rint
    else:
        fl = torch.floor(t)
        u = torch.rand(t.shape, generator=generator, dtype=torch.float64, device=t.device)
        e = fl + (u < (t - fl)).to(torch.float64)
    # ±inf and 0 give non-finite t: park them inside the int64 range (fixed up by the caller)
    e = torch.nan_to_num(e, nan=0.0, posinf=float(fmt.e_max) + 1, neginf=float(fmt.e_min) - 1)
    return e.to(torch.int64)


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
        return _codes_numba(t, fmt, s, rounding, generator), s
    a = t.abs()
    neg = t < 0
    if rounding == Rounding.NEAREST and pow2 and t.dtype != torch.float64:
        log2s = torch.round(torch.log2(s)).to(torch.int64)
        a32 = a.to(torch.float32)
        e = _exponents_pow2(a32, fmt, log2s)
        e = torch.where(torch.isinf(a32), torch.full((), fmt.e_max, dtype=e.dtype, device=e.device), e)
    else:
        e = _exponents_f64(a, fmt, s, rounding, generator)
    e = torch.where(torch.isnan(a), torch.zeros((), dtype=e.dtype, device=e.device), e)
    code_dtype = getattr(torch, str(fmt.code_dtype))
    return _finish(e, a.nan_to_num(0.0), neg, fmt, code_dtype), s


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

    A gather from the format's table of magnitudes times the scale (formats
    wider than 20 bits use ``exp2``); float32 results equal the core's
    ``decode_codes(..., dtype=float32)`` bit for bit.

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
    work = torch.float64 if dtype == torch.float64 else torch.float32
    if _use_numba(codes, backend):
        npdt = np.float64 if work == torch.float64 else np.float32
        out = torch.from_numpy(decode_codes(codes.contiguous().numpy(), fmt, s.numpy(), dtype=npdt))
        return out if work == dtype else out.to(dtype)
    c = codes.to(torch.int64)
    mag = c.abs()
    if wider_than_float64(fmt):  # as the core: ldexp(σ·2**(r/γ), q), so 2**(e/γ) cannot overflow alone
        q = torch.div(mag - fmt.bias, fmt.gamma, rounding_mode="floor")
        r = (mag - fmt.bias - q * fmt.gamma).to(torch.float64)
        ms, es = torch.frexp(s.expand_as(r) if s.ndim else s.expand(r.shape))
        e = q + es.to(torch.int64)  # value = ms·2**(r/γ)·2**e; two half steps keep each factor finite
        half = torch.div(e, 2, rounding_mode="floor")
        v = ms * torch.exp2(r / fmt.gamma) * torch.exp2(half.to(torch.float64)) * torch.exp2((e - half).to(torch.float64))
        v = torch.where(mag == 0, torch.zeros((), dtype=torch.float64, device=c.device), v)
        return torch.where(c < 0, -v, v).to(dtype)
    if fmt.bits <= 20:
        v = _on(decode_table(fmt), codes.device)[mag]
    else:
        v = torch.where(mag == 0, torch.zeros((), dtype=torch.float64, device=c.device),
                        torch.exp2((mag - fmt.bias).to(torch.float64) / fmt.gamma))
    if work == torch.float32:  # float32(table·σ) = float32(table)·σ for a power-of-two σ
        v, s = v.to(torch.float32), s.to(torch.float32)
    v = torch.where(c < 0, -v, v) * s
    return v.to(dtype)


class _FakeQuant(torch.autograd.Function):
    """Forward: the LNS value nearest (or stochastically near) ``x``; backward: identity (STE)."""

    @staticmethod
    def forward(ctx, x, fmt, scale, channel_axis, rounding, generator, check_nan, backend):
        codes, s = _codes(x, fmt, scale, channel_axis, rounding, generator, check_nan, backend)
        return decode_codes_t(codes, fmt, s, dtype=x.dtype, backend=backend)

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
        count back from the device). ``False`` maps NaN silently to the zero
        code; the modules use it in their hot path.

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
        return decode_codes_t(codes, ctx.fmt, s, dtype=g.dtype, backend=ctx.backend), None, None, None, None


def quantize_grad(t: torch.Tensor, fmt: LNSFormat, *, rounding: Rounding | str = "nearest",
                  generator: torch.Generator | None = None, backend: Backend | str = "auto") -> torch.Tensor:
    """Identity in the forward pass; quantizes the gradient flowing back through ``t``.

    The gradient is encoded with a per-tensor power-of-two scale (as
    :func:`quantize`) and decoded: the error signal of an LNS training
    pipeline (Zhao et al. 2022 quantize weights, activations and gradients).

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
