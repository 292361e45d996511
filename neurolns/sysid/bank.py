"""Bipolar subunit kernels: difference-of-Gaussians types, banks of them, and the
layer geometry (kernel size, stride, padding, amacrine pooling).

A bipolar type is a fixed spatial kernel and a bias; its response at grid
position ``(i, j)`` is ``ReLU(Σ k·x_patch(i, j) + bias)``. The kernel is the
difference of Gaussians of Bagherian et al. (KDD 2021, arXiv 2106.05400):

.. math::

    k(r) = s_c \\frac{0.4}{\\sigma_c} e^{-r^2/2\\sigma_c^2}
         - s_s \\frac{0.4}{\\sigma_s} e^{-r^2/2\\sigma_s^2},
    \\qquad k \\leftarrow \\mathrm{sign}\\cdot k / \\max|k|,

with ``r`` on ``linspace(−5, 5, 11)`` per axis (pixel units). A "sign flip" of
a type is its OFF twin, ``−k`` with the same bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["DoGType", "Geometry", "TRUE_TYPES", "CANDIDATE_TYPES", "dog_kernel", "kernel_bank", "bank_kernels"]


def _real(name, x, lo=-math.inf, hi=math.inf, *, lo_open=False):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    x = float(x)
    if math.isnan(x) or x < lo or x > hi or (lo_open and x == lo):
        raise ValueError(f"{name}={x!r} is out of range; allowed: {'(' if lo_open else '['}{lo}, {hi}]")
    return x


def _int(name, x, lo, hi=None):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__} {x!r}")
    if x < lo or (hi is not None and x > hi):
        raise ValueError(f"{name}={x} is out of range; allowed: {lo} <= {name}" + (f" <= {hi}" if hi else ""))
    return int(x)


def dog_kernel(sigma_c: float, sigma_s: float, s_c: float, s_s: float, size: int = 11, extent: float = 5.0) -> np.ndarray:
    """Difference-of-Gaussians kernel, normalised to ``max|k| = 1`` (float64, ``size × size``).

    Formula as in the module docstring (Bagherian et al. 2021), ``r`` on
    ``linspace(−extent, extent, size)`` per axis.

    Examples
    --------
    >>> k = dog_kernel(3, 6, 13, 12.9)
    >>> k.shape, float(abs(k).max()), float(k[5, 5])
    ((11, 11), 1.0, 1.0)
    """
    sigma_c = _real("sigma_c", sigma_c, 0.0, lo_open=True)
    sigma_s = _real("sigma_s", sigma_s, 0.0, lo_open=True)
    size = _int("size", size, 1)
    r = np.linspace(-extent, extent, size)
    r2 = r[:, None] ** 2 + r[None, :] ** 2
    k = s_c * (0.4 / sigma_c) * np.exp(-r2 / (2 * sigma_c**2)) - s_s * (0.4 / sigma_s) * np.exp(-r2 / (2 * sigma_s**2))
    m = np.abs(k).max()
    if m == 0.0:
        raise ValueError(f"DoG({sigma_c}, {sigma_s}, {s_c}, {s_s}) is identically zero; allowed: a non-zero kernel")
    return k / m


@dataclass(frozen=True)
class DoGType:
    """One bipolar type: a DoG kernel, its sign (+1 ON, −1 OFF twin) and its bias.

    Examples
    --------
    >>> t = DoGType(3, 6, 13, 12.9, bias=-2.0)
    >>> t.flipped().sign, float(t.flipped().kernel()[5, 5])
    (-1, -1.0)
    """

    sigma_c: float
    sigma_s: float
    s_c: float
    s_s: float
    bias: float = -2.0
    sign: int = 1

    def __post_init__(self):
        for f in ("sigma_c", "sigma_s"):
            object.__setattr__(self, f, _real(f, getattr(self, f), 0.0, lo_open=True))
        for f in ("s_c", "s_s", "bias"):
            object.__setattr__(self, f, _real(f, getattr(self, f)))
        if self.sign not in (1, -1):
            raise ValueError(f"sign={self.sign!r} is out of range; allowed: +1 or -1")

    def kernel(self, size: int = 11) -> np.ndarray:
        """The signed, normalised kernel (``size × size``, float64)."""
        return self.sign * dog_kernel(self.sigma_c, self.sigma_s, self.s_c, self.s_s, size)

    def flipped(self) -> "DoGType":
        """The OFF twin: the same kernel negated, the same bias."""
        return replace(self, sign=-self.sign)

    @property
    def name(self) -> str:
        return f"{'+' if self.sign > 0 else '-'}DoG({self.sigma_c:g},{self.sigma_s:g},{self.s_c:g},{self.s_s:g}){self.bias:+g}"


#: the three bipolar types of the ground-truth circuits (Bagherian et al. 2021):
#: (σ_c, σ_s, s_c, s_s) and biases −2, −3, −1
TRUE_TYPES = (
    DoGType(3, 6, 13, 12.9, bias=-2.0),
    DoGType(5, 6, 18, 18, bias=-3.0),
    DoGType(2, 4, 20, 14, bias=-1.0),
)

#: fourteen candidate DoGs: the three true types first, then eleven decoys of
#: similar sizes (our choice; the paper's bank is not published in numbers)
CANDIDATE_TYPES = TRUE_TYPES + (
    DoGType(1, 3, 20, 10, bias=-2.0),
    DoGType(2, 5, 16, 14, bias=-2.0),
    DoGType(4, 7, 18, 15, bias=-2.0),
    DoGType(3, 4, 14, 12, bias=-2.0),
    DoGType(6, 8, 18, 16, bias=-2.0),
    DoGType(1, 2, 10, 8, bias=-1.0),
    DoGType(2, 3, 12, 10, bias=-1.0),
    DoGType(4, 5, 16, 15, bias=-3.0),
    DoGType(5, 8, 20, 17, bias=-2.0),
    DoGType(2, 6, 20, 16, bias=-1.0),
    DoGType(3, 5, 15, 12, bias=-3.0),
)


def kernel_bank(n_types: int = 28) -> tuple[DoGType, ...]:
    """A bank of candidate bipolar types, the true ones first.

    The paper's sizes: 3 (the true types), 8 or 14 (that many DoGs), 16 or 28
    (8 or 14 DoGs followed by their sign flips). Any ``n ≤ 14`` gives the
    first ``n`` DoGs; an even ``n ≤ 28`` above 14 gives ``n/2`` DoGs and flips.

    Examples
    --------
    >>> [t.sign for t in kernel_bank(16)].count(-1)
    8
    >>> kernel_bank(28)[14] == TRUE_TYPES[0].flipped()
    True
    """
    n = _int("n_types", n_types, 1, 2 * len(CANDIDATE_TYPES))
    if n <= len(CANDIDATE_TYPES):
        return CANDIDATE_TYPES[:n]
    if n % 2:
        raise ValueError(f"n_types={n} is out of range; allowed: 1..14, or an even number 16..28 (DoGs + flips)")
    dogs = CANDIDATE_TYPES[: n // 2]
    return dogs + tuple(t.flipped() for t in dogs)


def bank_kernels(bank, size: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Kernels as a ``(size², n_types)`` float32 matrix and biases ``(n_types,)``."""
    bank = tuple(bank)
    if not bank or not all(isinstance(t, DoGType) for t in bank):
        raise TypeError("bank must be a non-empty sequence of DoGType")
    K = np.stack([t.kernel(size).ravel() for t in bank], axis=1).astype(np.float32)
    b = np.array([t.bias for t in bank], dtype=np.float32)
    return K, b


@dataclass(frozen=True)
class Geometry:
    """Layer geometry: image size, bipolar kernel size, stride and offset, amacrine pooling.

    The bipolar grid is ``ceil(H/stride) × ceil(W/stride)``. Bipolar cell
    ``(i, j)`` sees the ``kernel_size × kernel_size`` window whose top-left
    pixel is ``(offset_row + stride·i, offset_col + stride·j)``; pixels outside
    the image count as zeros. By default (``offset=None``) the offset is that
    of TensorFlow's 'SAME' padding, as in the reference circuits: for 100×100,
    kernel 11, stride 10 the offset is 0 (cell ``i`` sees pixels
    ``10i … 10i+10``, with one pixel of zeros after the image), a 10×10 grid
    per type. Each amacrine pools a ``pool × pool`` block of the bipolar grid
    (a 5×5 grid).

    Parameters
    ----------
    image_shape : (int, int)
        Stimulus height and width in pixels, ≥ 1.
    kernel_size : int
        Side of a bipolar kernel in pixels, ≥ 1.
    stride : int
        Pixels between neighbouring bipolar cells, ≥ 1.
    pool : int
        Side of the bipolar block each amacrine pools, ≥ 1; must divide the grid.
    offset : int or (int, int), optional
        Where the bipolar grid sits on the image: the row and column of the
        first cell's top-left window pixel (one int for both axes). Negative
        values start the grid in the zero padding before the image. A recording
        whose cells see pixels ``10i − 3 … 10i + 7`` (kernel 11, stride 10)
        has ``offset=-3``. ``None``: 'SAME' padding.

    Examples
    --------
    >>> g = Geometry()
    >>> g.grid, g.amacrine_grid, g.padding, g.origin
    ((10, 10), (5, 5), ((0, 1), (0, 1)), (0, 0))
    >>> g = Geometry(offset=-3)        # cells see pixels 10i-3 ... 10i+7
    >>> g.grid, g.padding, g.origin
    ((10, 10), ((3, 0), (3, 0)), (-3, -3))
    """

    image_shape: tuple[int, int] = (100, 100)
    kernel_size: int = 11
    stride: int = 10
    pool: int = 2
    offset: int | tuple[int, int] | None = None

    def __post_init__(self):
        shape = tuple(self.image_shape) if isinstance(self.image_shape, (tuple, list)) else None
        if shape is None or len(shape) != 2:
            raise ValueError(f"image_shape={self.image_shape!r} must be a pair (H, W)")
        object.__setattr__(self, "image_shape", tuple(_int("image_shape", s, 1) for s in shape))
        _int("kernel_size", self.kernel_size, 1)
        _int("stride", self.stride, 1)
        _int("pool", self.pool, 1)
        if self.offset is not None:
            off = tuple(self.offset) if isinstance(self.offset, (tuple, list)) else (self.offset, self.offset)
            if len(off) != 2:
                raise ValueError(f"offset={self.offset!r} must be an int or a pair (row, col) of ints")
            lim = [(self.kernel_size - 1, s - 1) for s in self.image_shape]
            off = tuple(_int("offset", o, -k) for o, (k, _) in zip(off, lim))
            for o, (_, hi) in zip(off, lim):
                if o > hi:
                    raise ValueError(f"offset={o} is out of range; allowed: {-self.kernel_size + 1} <= offset <= {hi} "
                                     "(the first window must overlap the image)")
            object.__setattr__(self, "offset", off)
        for g in self.grid:
            if g % self.pool:
                raise ValueError(
                    f"bipolar grid {self.grid} (image {self.image_shape}, stride {self.stride}) is not divisible by "
                    f"pool={self.pool}; allowed: a pool that divides the grid"
                )

    @property
    def grid(self) -> tuple[int, int]:
        """Bipolar grid per type."""
        return tuple(-(-s // self.stride) for s in self.image_shape)

    @property
    def amacrine_grid(self) -> tuple[int, int]:
        return tuple(g // self.pool for g in self.grid)

    @property
    def n_amacrine(self) -> int:
        return self.amacrine_grid[0] * self.amacrine_grid[1]

    @property
    def origin(self) -> tuple[int, int]:
        """Row and column of the first bipolar cell's top-left window pixel: ``offset``, or 'SAME''s."""
        if self.offset is not None:
            return self.offset
        out = []
        for s, g in zip(self.image_shape, self.grid):
            total = max((g - 1) * self.stride + self.kernel_size - s, 0)
            out.append(-(total // 2))
        return tuple(out)

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Zeros ``((top, bottom), (left, right))`` the windows reach beyond the image."""
        out = []
        for s, g, o in zip(self.image_shape, self.grid, self.origin):
            out.append((max(-o, 0), max(o + (g - 1) * self.stride + self.kernel_size - s, 0)))
        return tuple(out)
