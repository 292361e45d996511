"""``LNSArray``: codes, their format and their scale, with numpy-like operators.

The codes live in the narrowest signed integer dtype of the format (int8 for
LNS8); the scale is a float64 array broadcastable to the codes (0-d for one
scale per tensor, e.g. shape ``(out, 1)`` for one per output row).

Operators follow numpy broadcasting. ``*`` and ``/`` are exact (:mod:`.multiply`);
``+`` and ``-`` use :func:`neurolns.lns.add` in its exact, correctly rounded
mode; ``@`` uses :func:`neurolns.lns.matmul` and re-encodes the result in the
left operand's format; comparisons compare values. A plain number or numpy
array on the other side is first encoded in this array's format.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from neurolns.lns.checks import check_codes, check_scale
from neurolns.formats import LNSFormat, Rounding, Underflow

__all__ = ["LNSArray", "save", "load"]


class LNSArray:
    """An array of LNS values: ``sign(c) · scale · 2**((|c| - β)/γ)``.

    Parameters
    ----------
    codes : array_like of int
        Signed codes, ``|c| <= fmt.max_code`` (0 is exact zero).
    fmt : LNSFormat
    scale : float or array_like, default 1.0
        Positive, broadcastable to ``codes``.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns import LNS8
    >>> from neurolns.lns import encode
    >>> a = encode(np.array([1.0, -2.0, 0.0]), LNS8, scale=1.0)
    >>> a
    LNSArray([ 1., -2.,  0.], format=LNS8(γ=8, bias=64, underflow=zero), scale=1.0)
    >>> (a * a).decode()
    array([1., 4., 0.])
    """

    __array_priority__ = 1000  # numpy defers binary operators to us
    __hash__ = None  # comparisons return arrays

    def __init__(self, codes, fmt: LNSFormat, scale=1.0, *, _trusted: bool = False):
        if not isinstance(fmt, LNSFormat):
            raise TypeError(f"fmt must be an LNSFormat, got {type(fmt).__name__}")
        codes = np.asarray(codes)
        scale = np.asarray(scale, dtype=np.float64)
        if not _trusted:
            codes = check_codes(codes, fmt)
            scale = check_scale(scale)
            if np.broadcast_shapes(scale.shape, codes.shape) != codes.shape:
                raise ValueError(f"scale of shape {scale.shape} does not broadcast to codes of shape {codes.shape}")
            codes = codes.astype(fmt.code_dtype, copy=False)
        self.codes: np.ndarray = codes
        self.format: LNSFormat = fmt
        self.scale: np.ndarray = scale

    # -- array protocol -------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.codes.shape

    @property
    def ndim(self) -> int:
        return self.codes.ndim

    @property
    def size(self) -> int:
        return self.codes.size

    @property
    def nbytes(self) -> int:
        """Bytes of the codes (the scale is metadata)."""
        return self.codes.nbytes

    @property
    def exponents(self) -> np.ndarray:
        """Exponent codes ``e = |c| - β`` (int64; meaningless where the code is 0)."""
        return np.abs(self.codes.astype(np.int64)) - self.format.bias

    @property
    def signs(self) -> np.ndarray:
        """-1, 0 or +1 per element."""
        return np.sign(self.codes).astype(np.int8)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d LNSArray")
        return len(self.codes)

    def __array__(self, dtype=None, copy=None):
        out = self.decode()
        return out if dtype is None else out.astype(dtype)

    def decode(self, dtype=np.float64) -> np.ndarray:
        """The values as a numpy array (float64 by default)."""
        from neurolns.lns.codec import decode_codes

        return decode_codes(self.codes, self.format, self.scale, dtype=dtype)

    def _full_scale(self) -> np.ndarray:
        return self.scale if self.scale.ndim == 0 else np.broadcast_to(self.scale, self.shape)

    def __getitem__(self, index) -> LNSArray:
        s = self.scale if self.scale.ndim == 0 else np.asarray(self._full_scale()[index])
        return LNSArray(np.asarray(self.codes[index]), self.format, s, _trusted=True)

    def reshape(self, *shape) -> LNSArray:
        codes = self.codes.reshape(*shape)
        s = self.scale if self.scale.ndim == 0 else self._full_scale().reshape(codes.shape)
        return LNSArray(codes, self.format, s, _trusted=True)

    @property
    def T(self) -> LNSArray:
        s = self.scale
        if s.ndim:
            s = s.reshape((1,) * (self.ndim - s.ndim) + s.shape).T
        return LNSArray(self.codes.T, self.format, s, _trusted=True)

    def copy(self) -> LNSArray:
        return LNSArray(self.codes.copy(), self.format, self.scale.copy(), _trusted=True)

    def astype(self, fmt: LNSFormat, *, rounding: Rounding | str = Rounding.NEAREST, seed=None) -> LNSArray:
        """The same values in another LNS format, at the same scale.

        Refining (``γ_new >= γ_old``) is exact up to range; coarsening rounds the
        exponent in the log domain (nearest with ties to even, or stochastic),
        then saturates/underflows per ``fmt``. This is how an LNS-Madam master
        copy on a fine update grid (e.g. γ=128) becomes its forward format (γ=8).
        """
        from neurolns.lns._reference import regrid_reference
        from neurolns.lns.codec import as_rng

        if not isinstance(fmt, LNSFormat):
            raise TypeError(f"astype expects an LNSFormat, got {type(fmt).__name__}")
        if fmt == self.format:
            return self.copy()
        rounding = Rounding(rounding)
        u = as_rng(seed).random(self.size) if rounding == Rounding.STOCHASTIC else None
        codes = regrid_reference(self.codes, self.format, fmt, rounding, u)
        return LNSArray(codes, fmt, self.scale.copy(), _trusted=True)

    # -- operators ----------------------------------------------------------------
    def _coerce(self, other) -> LNSArray:
        if isinstance(other, LNSArray):
            return other
        from neurolns.lns.codec import encode

        return encode(other, self.format)

    def __neg__(self) -> LNSArray:
        return LNSArray(-self.codes, self.format, self.scale, _trusted=True)

    def __pos__(self) -> LNSArray:
        return self

    def __abs__(self) -> LNSArray:
        return LNSArray(np.abs(self.codes), self.format, self.scale, _trusted=True)

    def __mul__(self, other):
        from neurolns.lns.multiply import mul

        return mul(self, self._coerce(other))

    def __rmul__(self, other):
        from neurolns.lns.multiply import mul

        return mul(self._coerce(other), self)

    def __truediv__(self, other):
        from neurolns.lns.multiply import div

        return div(self, self._coerce(other))

    def __rtruediv__(self, other):
        from neurolns.lns.multiply import div

        return div(self._coerce(other), self)

    def __add__(self, other):
        from neurolns.lns.add import add

        return add(self, self._coerce(other))

    def __radd__(self, other):
        from neurolns.lns.add import add

        return add(self._coerce(other), self)

    def __sub__(self, other):
        from neurolns.lns.add import sub

        return sub(self, self._coerce(other))

    def __rsub__(self, other):
        from neurolns.lns.add import sub

        return sub(self._coerce(other), self)

    def __matmul__(self, other):
        from neurolns.lns.dot import matmul

        return matmul(self, self._coerce(other), out_format=self.format)

    def __rmatmul__(self, other):
        from neurolns.lns.dot import matmul

        return matmul(self._coerce(other), self, out_format=self.format)

    def sum(self, axis=None):
        """Sum with the hardware accumulator (:func:`neurolns.lns.sum`), re-encoded in this format."""
        from neurolns.lns.dot import sum as lns_sum

        return lns_sum(self, axis=axis, out_format=self.format)

    def _compare(self, other, op):
        if isinstance(other, LNSArray) and other.format == self.format and np.array_equal(other.scale, self.scale):
            # equal scales: value order is the order of the signed codes
            return op(self.codes, other.codes)
        rhs = other.decode() if isinstance(other, LNSArray) else np.asarray(other)
        return op(self.decode(), rhs)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __repr__(self) -> str:
        vals = np.array2string(self.decode(), precision=4, separator=", ", threshold=20)
        s = float(self.scale) if self.scale.ndim == 0 else f"array of shape {self.scale.shape}"
        return f"LNSArray({vals}, format={self.format}, scale={s})"

    # -- persistence -----------------------------------------------------------------
    def save(self, path) -> None:
        """Write codes, scale and format to an ``.npz`` file (see :func:`load`)."""
        save(path, self)


def save(path, a: LNSArray) -> None:
    """Save an LNSArray to ``path`` (npz: codes, scale and the format's fields).

    The file is written to a temporary name first and renamed, so a crash never
    leaves a half-written file under ``path``.
    """
    if not isinstance(a, LNSArray):
        raise TypeError(f"save expects an LNSArray, got {type(a).__name__}")
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    tmp = path + ".tmp.npz"
    f = a.format
    np.savez(
        tmp, codes=a.codes, scale=a.scale, bits=f.bits, gamma=f.gamma, bias=f.bias,
        underflow=np.array(f.underflow.value), kind=np.array("neurolns.LNSArray"),
    )
    os.replace(tmp, path)


def load(path) -> LNSArray:
    """Load an LNSArray written by :func:`save`; a foreign or corrupt file raises ValueError."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            fields = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read LNSArray from {path}: {exc}") from exc
    if str(fields.get("kind", "")) != "neurolns.LNSArray":
        raise ValueError(f"{path} is not an LNSArray file (no 'kind' marker)")
    try:
        fmt = LNSFormat(bits=int(fields["bits"]), gamma=int(fields["gamma"]), bias=int(fields["bias"]),
                        underflow=Underflow(str(fields["underflow"])))
        return LNSArray(fields["codes"], fmt, fields["scale"])
    except KeyError as exc:
        raise ValueError(f"{path} is missing the field {exc}") from exc
