"""Synapse storage: a parameter tensor held as float32 values or as LNS codes.

A :class:`Param` owns the *master copy* the optimizer updates in place
(:attr:`Param.data`) and produces the *forward copy* the layer multiplies with
(:meth:`Param.forward_value`):

========================  ===========================  ===============================
storage                   ``data``                     forward copy
========================  ===========================  ===============================
float (``master_format``  float32 values               ``data`` itself, or its LNS
``None``)                                              quantisation if ``forward_format``
LNS (``master_format``    integer codes of the update  ``sign(c)·scale·2**(e_f/γ_f)``,
an :class:`LNSFormat`)    grid, one power-of-two       ``e_f`` = the master exponent
                          ``scale`` per tensor         re-gridded to ``forward_format``
========================  ===========================  ===============================

Update grid and forward format (LNS-Madam, Zhao et al. 2022): the optimizer
moves the exponent by integer steps of ``1/γ_u`` octave (``γ_u = 128``:
``η = 1/128``) while the forward pass sees the same value rounded to the coarse
forward grid (``γ_f = 8``). :func:`update_format` builds the update format
(from :mod:`neurolns.learning`) whose range equals the forward format's: ``bits_u = bits_f + log2(γ_u/γ_f)``
and the default bias, so LNS8/γ=8 pairs with LNS12/γ=128 and both span
``±(2**(bits_f-1)-1-β_f)/γ_f = ±7.875`` octaves around the scale.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neurolns.formats import LNS8, FloatFormat, IntFormat, LNSFormat, _StrEnum
from neurolns.learning import update_format
from neurolns.lns import LNSArray, check_codes, choose_scale, encode_codes, quantize
from neurolns.sim import _kernels as _k
from neurolns.sim import _reference as _ref

__all__ = ["Param", "WeightStorage", "storage_kwargs", "update_format", "forward_table"]


def _check_lns(name: str, fmt) -> LNSFormat | None:
    if fmt is None or isinstance(fmt, LNSFormat):
        return fmt
    raise TypeError(f"{name} must be an LNSFormat or None (float32), got {type(fmt).__name__} {fmt!r}")


class WeightStorage(_StrEnum):
    """How a model stores its synapses: ``"fp32"`` values or ``"lns"`` codes."""

    FP32 = "fp32"
    LNS = "lns"


def storage_kwargs(weights="fp32", *, forward_format=None, update_gamma: int = 128, headroom: int = 3) -> dict:
    """Layer keyword arguments (``master_format, forward_format, headroom``) for a storage choice.

    Parameters
    ----------
    weights : {"fp32", "lns"}
        ``"fp32"``: float32 master copy (forward copy quantised to
        ``forward_format`` if one is given). ``"lns"``: codes on the update grid
        ``update_format(forward_format, update_gamma)``, forward copy in
        ``forward_format`` (default LNS8, γ=8).
    forward_format : LNSFormat, optional
    update_gamma : int
        Steps per octave of the update grid (128: LNS-Madam's η = 1/128).
    headroom : int
        See :class:`Param`.

    Examples
    --------
    >>> kw = storage_kwargs("lns")
    >>> kw["master_format"].bits, kw["master_format"].gamma, kw["forward_format"].gamma
    (12, 128, 8)
    """
    weights = WeightStorage(weights)
    if weights == WeightStorage.FP32:
        from neurolns.sim.quantizers import check_quant_format

        forward_format = check_quant_format("forward_format", forward_format)
        return {"master_format": None, "forward_format": forward_format, "headroom": headroom}
    fwd = _check_lns("forward_format", forward_format) or LNS8
    return {"master_format": update_format(fwd, update_gamma), "forward_format": fwd, "headroom": headroom}


@lru_cache(maxsize=64)
def forward_table(master: LNSFormat, forward: LNSFormat | None, dtype=np.float64) -> np.ndarray:
    """``table[m]``: the forward-format magnitude (scale 1) of master field value ``m``.

    Built with the core's own re-gridding (:meth:`LNSArray.astype`, nearest,
    ties to even) and decoding (correctly rounded in ``dtype``), so the table
    path is bit-identical to ``decode(LNSArray(codes, master, scale).astype(forward), dtype)``
    for power-of-two scales: a float32 table times a power of two is exact,
    where a float64 value rounded again to float32 could be off in a tie.
    """
    m = np.arange(master.max_code + 1, dtype=np.int64)
    a = LNSArray(m.astype(master.code_dtype), master, 1.0)
    if forward is not None and forward != master:
        a = a.astype(forward)
    t = a.decode(dtype)
    t.setflags(write=False)
    return t


class Param:
    """One parameter tensor (a layer's weight or bias) and its gradient.

    Parameters
    ----------
    name : str
        ``"weight"`` or ``"bias"``.
    value : array_like of float
        Initial values (any float dtype; torch layout, e.g. Dense ``(out, in)``).
    master_format : LNSFormat or None
        ``None``: float32 master copy. An LNS format: integer codes on that grid
        (the optimizer's update grid; see :func:`update_format`).
    forward_format : LNSFormat, FloatFormat, IntFormat or None
        Format of the copy the forward/backward passes use. ``None``: the master
        values as they are (float32, or the master grid's values). A float
        master may be read through any format
        (:func:`neurolns.sim.quantizers.fake_quantize`: BF16, INT8, LNS, ...);
        LNS codes only through an LNS format.
    headroom : int
        LNS storage only: octaves between the initial ``max|w|`` and the format's
        largest magnitude, so multiplicative updates can grow weights ``2**headroom``
        times before saturating. The scale is ``choose_scale(w, forward) · 2**headroom``.

    Attributes
    ----------
    data : numpy.ndarray
        The master copy the optimizer updates in place: float32 values, or codes
        of ``master_format.code_dtype``.
    scale : float
        Power-of-two scale of the codes (1.0 for float storage).
    grad : numpy.ndarray
        float32 gradient of the loss with respect to the forward values.
    """

    def __init__(self, name: str, value, *, master_format=None, forward_format=None, headroom: int = 3):
        self.name = str(name)
        self.master_format = _check_lns("master_format", master_format)
        if self.master_format is None:  # a float master may be read through any format's fake quantisation
            from neurolns.sim.quantizers import check_quant_format

            self.forward_format = check_quant_format("forward_format", forward_format)
        else:
            self.forward_format = _check_lns("forward_format", forward_format)
        if isinstance(headroom, bool) or not isinstance(headroom, (int, np.integer)) or not 0 <= headroom <= 32:
            raise ValueError(f"headroom={headroom!r} is out of range; allowed: an int in [0, 32] (octaves)")
        self.headroom = int(headroom)
        value = np.asarray(value, dtype=np.float64)
        self.shape = value.shape
        self.grad = np.zeros(self.shape, dtype=np.float32)
        self.scale = 1.0
        self.set_value(value)

    @property
    def on_codes(self) -> bool:
        """True when the master copy is LNS codes."""
        return self.master_format is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def set_value(self, value, *, scale=None) -> None:
        """Overwrite the master copy from real values (re-encoding for LNS storage).

        For LNS storage the scale is re-chosen from ``value`` (with the headroom)
        unless ``scale`` is given.
        """
        value = np.asarray(value, dtype=np.float64)
        if value.shape != self.shape:
            raise ValueError(f"{self.name}: value of shape {value.shape} does not match {self.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{self.name}: values must be finite")
        if self.master_format is None:
            self.data = value.astype(np.float32)
            self.scale = 1.0
            return
        if scale is None:
            ref = self.forward_format or self.master_format
            scale = float(choose_scale(value, ref)) * 2.0**self.headroom
        codes = encode_codes(value, self.master_format, scale)
        # a zero code never moves under a multiplicative rule: a non-zero initial
        # weight too small for the format keeps the smallest magnitude and its sign
        dead = (codes == 0) & (value != 0)
        codes[dead] = np.sign(value[dead]).astype(codes.dtype)
        self.set_codes(codes, scale)

    def set_codes(self, codes, scale: float) -> None:
        """Overwrite the master codes and their scale (LNS storage only)."""
        if self.master_format is None:
            raise TypeError(f"{self.name} holds float32 values, not codes; use set_value")
        codes = np.asarray(codes)
        if codes.shape != self.shape or codes.dtype.kind != "i":
            raise ValueError(f"{self.name}: codes must be signed integers of shape {self.shape}, "
                             f"got {codes.dtype} {codes.shape}")
        if codes.size and int(np.abs(codes.astype(np.int64)).max()) > self.master_format.max_code:
            raise ValueError(f"{self.name}: codes out of range for {self.master_format}")
        scale = float(scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"{self.name}: scale must be finite and > 0, got {scale!r}")
        self.data = np.ascontiguousarray(codes, dtype=self.master_format.code_dtype)
        self.scale = scale

    def _check_codes(self) -> None:
        """Raise ValueError naming the first code out of the master format's range
        (``data`` is public and mutable; a bad code must not index past the table)."""
        check_codes(self.data, self.master_format, name=f"{self.name} codes")

    def value(self) -> np.ndarray:
        """The master copy as float64 values."""
        if self.master_format is None:
            return self.data.astype(np.float64)
        self._check_codes()
        return _ref.codes_to_values(self.data, forward_table(self.master_format, None), self.scale)

    def forward_value(self, *, reference: bool = False) -> np.ndarray:
        """The float32 copy the layer computes with (see the module table)."""
        if self.master_format is None:
            if self.forward_format is None:
                return self.data
            if not isinstance(self.forward_format, LNSFormat):
                from neurolns.sim.quantizers import fake_quantize

                return fake_quantize(self.data, self.forward_format)
            return quantize(self.data, self.forward_format).astype(np.float32)
        table = forward_table(self.master_format, self.forward_format, np.float32)
        if reference:
            self._check_codes()
            return _ref.codes_to_values(self.data, table, self.scale).astype(np.float32)
        out = np.empty(self.shape, dtype=np.float32)
        if _k.codes_to_values(self.data.reshape(-1), table, self.scale, out.reshape(-1)) >= 0:
            self._check_codes()  # names the first bad code
        return out

    def forward_array(self) -> LNSArray:
        """The forward copy as an :class:`LNSArray` (LNS storage only)."""
        if self.master_format is None:
            raise TypeError(f"{self.name} holds float32 values; it has no LNS forward codes")
        a = LNSArray(self.data, self.master_format, self.scale)
        return a.astype(self.forward_format) if self.forward_format is not None else a

    def spec(self) -> dict:
        """JSON-able description (name, shape, formats) used to match checkpoints."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "master_format": _fmt_spec(self.master_format),
            "forward_format": _fmt_spec(self.forward_format),
            "headroom": self.headroom,
        }

    def __repr__(self) -> str:
        store = "float32" if self.master_format is None else str(self.master_format)
        return f"Param({self.name!r}, shape={self.shape}, master={store}, forward={self.forward_format})"


def _fmt_spec(fmt):
    if fmt is None:
        return None
    if isinstance(fmt, FloatFormat):
        return {"float": fmt.name, "exponent_bits": fmt.exponent_bits, "mantissa_bits": fmt.mantissa_bits,
                "finite_only": fmt.finite_only}
    if isinstance(fmt, IntFormat):
        return {"int": fmt.name, "bits": fmt.bits}
    return {"bits": fmt.bits, "gamma": fmt.gamma, "bias": fmt.bias, "underflow": fmt.underflow.value}


def fmt_from_spec(spec):
    """Inverse of the format part of :meth:`Param.spec`."""
    if spec is None:
        return None
    if "float" in spec:
        return FloatFormat(spec["float"], spec["exponent_bits"], spec["mantissa_bits"], spec["finite_only"])
    if "int" in spec:
        return IntFormat(spec["int"], spec["bits"])
    return LNSFormat(**spec)
