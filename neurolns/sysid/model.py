"""The circuit model: bipolar features, pathway weights, the forward pass and its
gradient (by hand, float64 weights on float32 features).

Structure (Bagherian et al., KDD 2021)::

    b[t, i, j] = ReLU(k_t · x_patch(i, j) + bias_t)                 bipolar layer (fixed bank)
    a[u]       = φ_a(gain · Σ_{t, (i,j) ∈ block(u)} w_ba[t, i', j'] · b[t, i, j] − threshold)
    y          = φ_out(Σ w_bg · b + Σ_u w_ag[u] · a[u] + c)         ganglion cell

with ``w_ba`` shared by all amacrines (convolutional over the ``pool × pool``
blocks), ``φ_a ∈ {ReLU, softplus}``, ``φ_out ∈ {linear, ReLU, softplus}``, ``c``
the output offset. Each pathway (``bg``, ``ba``, ``ag``) has a fixed sign in
the model: synapses are ``sign · |w|``; a model without a skip path has no
``bg`` synapses. Since the bank is fixed, the bipolar responses are features
computed once per stimulus set (one matrix product per chunk of images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurolns._finite import check_finite
from neurolns.formats import _StrEnum
from neurolns.sysid.bank import Geometry, bank_kernels

__all__ = [
    "Nonlinearity",
    "CircuitModel",
    "CircuitWeights",
    "bipolar_drive",
    "bipolar_features",
    "block_features",
    "circuit_forward",
    "circuit_grad",
]

PATHWAYS = ("bg", "ba", "ag")


class Nonlinearity(_StrEnum):
    """Pointwise nonlinearity of the amacrine and ganglion layers."""

    LINEAR = "linear"
    RELU = "relu"
    SOFTPLUS = "softplus"


def _phi(kind: Nonlinearity, z: np.ndarray) -> np.ndarray:
    if kind is Nonlinearity.RELU:
        return np.maximum(z, 0.0)
    if kind is Nonlinearity.SOFTPLUS:
        return np.logaddexp(0.0, z)
    return z


def _dphi(kind: Nonlinearity, z: np.ndarray) -> np.ndarray:
    if kind is Nonlinearity.RELU:
        return (z > 0.0).astype(z.dtype)
    if kind is Nonlinearity.SOFTPLUS:
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, overflow-free
    return np.ones_like(z)


def _sign(name, s):
    if s not in (1, -1):
        raise ValueError(f"{name}={s!r} is out of range; allowed: +1 (excitatory) or -1 (inhibitory)")
    return int(s)


@dataclass(frozen=True)
class CircuitModel:
    """Architecture of a ganglion-cell circuit model (no weights).

    Parameters
    ----------
    n_types : int
        Bipolar types in the bank (spatial × temporal for the temporal variant).
    geometry : Geometry
        Grid and pooling.
    skip : bool
        Whether a bipolar→ganglion (skip) pathway exists.
    sign_bg, sign_ba, sign_ag : {+1, −1}
        Sign of each pathway (ganglion excitation, amacrine excitation,
        amacrine → ganglion inhibition by default).
    amacrine_gain, amacrine_threshold : float
        ``a = φ_a(gain · Σ w_ba b − threshold)``; 3 and 5 in the reference circuits.
    amacrine, output : Nonlinearity
        ``φ_a`` (ReLU or softplus) and ``φ_out`` (linear, ReLU or softplus).
    output_offset : float
        ``c`` in ``y = φ_out(… + c)`` (0 for Circuit 2, 8 for Circuit 3A).

    Examples
    --------
    >>> m = CircuitModel(n_types=28)
    >>> m.shapes
    {'bg': (28, 10, 10), 'ba': (28, 2, 2), 'ag': (5, 5)}
    """

    n_types: int
    geometry: Geometry = field(default_factory=Geometry)
    skip: bool = True
    sign_bg: int = 1
    sign_ba: int = 1
    sign_ag: int = -1
    amacrine_gain: float = 3.0
    amacrine_threshold: float = 5.0
    amacrine: Nonlinearity = Nonlinearity.RELU
    output: Nonlinearity = Nonlinearity.LINEAR
    output_offset: float = 0.0

    def __post_init__(self):
        if isinstance(self.n_types, bool) or not isinstance(self.n_types, (int, np.integer)) or self.n_types < 1:
            raise ValueError(f"n_types={self.n_types!r} is out of range; allowed: an int >= 1")
        if not isinstance(self.geometry, Geometry):
            raise TypeError(f"geometry must be a Geometry, got {type(self.geometry).__name__}")
        for f in ("sign_bg", "sign_ba", "sign_ag"):
            _sign(f, getattr(self, f))
        object.__setattr__(self, "amacrine", Nonlinearity(self.amacrine))
        object.__setattr__(self, "output", Nonlinearity(self.output))
        if self.amacrine is Nonlinearity.LINEAR:
            raise ValueError("amacrine='linear' is not allowed; allowed: 'relu', 'softplus'")
        for f in ("amacrine_gain", "amacrine_threshold", "output_offset"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise ValueError(f"{f}={v!r} must be a finite real number")
            object.__setattr__(self, f, float(v))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each pathway's weights."""
        g, p = self.geometry, self.geometry.pool
        return {"bg": (self.n_types, *g.grid), "ba": (self.n_types, p, p), "ag": g.amacrine_grid}

    @property
    def signs(self) -> dict[str, int]:
        return {"bg": self.sign_bg, "ba": self.sign_ba, "ag": self.sign_ag}

    # -- layout: pathway arrays <-> the block layout the kernels use --------------
    def _block_dims(self):
        (ah, aw), p = self.geometry.amacrine_grid, self.geometry.pool
        return ah, aw, p

    def to_blocks(self, w_bg: np.ndarray) -> np.ndarray:
        """``w_bg (T, Gh, Gw)`` → ``(A, T·p·p)``, the layout of :func:`block_features`."""
        ah, aw, p = self._block_dims()
        T = self.n_types
        return np.ascontiguousarray(w_bg.reshape(T, ah, p, aw, p).transpose(1, 3, 0, 2, 4).reshape(ah * aw, T * p * p))

    def from_blocks(self, blk: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_blocks`."""
        ah, aw, p = self._block_dims()
        T = self.n_types
        return np.ascontiguousarray(blk.reshape(ah, aw, T, p, p).transpose(2, 0, 3, 1, 4).reshape(T, ah * p, aw * p))


@dataclass(frozen=True)
class CircuitWeights:
    """Synaptic weights per pathway (signed: inhibition is negative).

    ``bg`` ``(T, Gh, Gw)``, ``ba`` ``(T, p, p)``, ``ag`` ``(Ah, Aw)``; ``flat()``
    concatenates them in that order (the vector R_sys is computed on).
    """

    bg: np.ndarray
    ba: np.ndarray
    ag: np.ndarray

    def flat(self) -> np.ndarray:
        return np.concatenate([np.ravel(self.bg), np.ravel(self.ba), np.ravel(self.ag)]).astype(np.float64)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"bg": self.bg, "ba": self.ba, "ag": self.ag}

    def check(self, model: CircuitModel) -> "CircuitWeights":
        """Validate shapes (and finiteness) against ``model``; returns float64 copies."""
        out = {}
        for k, shape in model.shapes.items():
            a = np.asarray(getattr(self, k), dtype=np.float64)
            if a.shape != shape:
                raise ValueError(f"weights {k!r} have shape {a.shape}; the model needs {shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"weights {k!r} contain NaN or inf")
            out[k] = a.copy()
        return CircuitWeights(**out)

    @classmethod
    def zeros(cls, model: CircuitModel) -> "CircuitWeights":
        return cls(**{k: np.zeros(s) for k, s in model.shapes.items()})


def _images(images, geometry: Geometry) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != geometry.image_shape:
        raise ValueError(f"images have shape {np.shape(images)}; allowed: (N, {geometry.image_shape[0]}, {geometry.image_shape[1]})")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"images have dtype {x.dtype}; allowed: a real dtype")
    return x


def bipolar_drive(images, bank, geometry: Geometry | None = None, *, chunk: int = 512) -> np.ndarray:
    """Linear bipolar drive ``k_t · x_patch(i, j)`` (no bias, no ReLU), float32 ``(N, T, Gh, Gw)``.

    Each chunk of images is cut into its ``Gh·Gw`` patches and multiplied by
    the ``(k², T)`` kernel matrix: one BLAS product per chunk.

    Examples
    --------
    >>> from neurolns.sysid import kernel_bank
    >>> x = np.zeros((2, 100, 100)); x[:, 5, 5] = 1.0   # a dot at the first kernel's centre
    >>> d = bipolar_drive(x, kernel_bank(3))
    >>> d.shape, float(d[0, 0, 0, 0])
    ((2, 3, 10, 10), 1.0)
    """
    geometry = geometry or Geometry()
    x = _images(images, geometry)
    K, _ = bank_kernels(bank, geometry.kernel_size)
    (gh, gw), k, s = geometry.grid, geometry.kernel_size, geometry.stride
    pad = geometry.padding
    # first window's row and column in the padded image (an offset past 0 skips pixels)
    r0, c0 = (o + p[0] for o, p in zip(geometry.origin, pad))
    out = np.empty((x.shape[0], K.shape[1], gh, gw), dtype=np.float32)
    for lo in range(0, x.shape[0], chunk):
        xc = np.pad(x[lo : lo + chunk].astype(np.float32, copy=False), ((0, 0), *pad))
        win = np.lib.stride_tricks.sliding_window_view(xc, (k, k), axis=(1, 2))[:, r0::s, c0::s][:, :gh, :gw]
        prod = win.reshape(-1, k * k) @ K  # (n·gh·gw, T)
        out[lo : lo + chunk] = prod.reshape(-1, gh, gw, K.shape[1]).transpose(0, 3, 1, 2)
    return out


def bipolar_features(images, bank, geometry: Geometry | None = None, *, chunk: int = 512) -> np.ndarray:
    """Bipolar responses ``ReLU(drive + bias_t)``, float32 ``(N, T, Gh, Gw)``."""
    d = bipolar_drive(images, bank, geometry, chunk=chunk)
    _, b = bank_kernels(bank)
    d += b[None, :, None, None]
    return np.maximum(d, 0.0, out=d)


def block_features(B: np.ndarray, model: CircuitModel) -> np.ndarray:
    """Bipolar responses ``(N, T, Gh, Gw)`` → ``(N, A, T·p·p)``: the rows each amacrine pools.

    Both the skip path (all blocks) and the amacrine path (one block per
    amacrine, shared weights) are then matrix products on this one array.
    """
    B = np.asarray(B)
    T = model.n_types
    gh, gw = model.geometry.grid
    if B.ndim != 4 or B.shape[1:] != (T, gh, gw):
        raise ValueError(f"bipolar responses have shape {B.shape}; the model needs (N, {T}, {gh}, {gw})")
    ah, aw, p = model._block_dims()
    N = B.shape[0]
    X = B.reshape(N, T, ah, p, aw, p).transpose(0, 2, 4, 1, 3, 5).reshape(N, ah * aw, T * p * p)
    return np.ascontiguousarray(X, dtype=np.float64 if B.dtype == np.float64 else np.float32)


def _internal(weights: CircuitWeights, model: CircuitModel):
    """Pathway weights → (W_bg in block layout (A, F), w_ba (F,), w_ag (A,))."""
    return (model.to_blocks(np.asarray(weights.bg, np.float64)), np.asarray(weights.ba, np.float64).ravel().copy(),
            np.asarray(weights.ag, np.float64).ravel().copy())


def _external(params, model: CircuitModel) -> CircuitWeights:
    W_bg, w_ba, w_ag = params
    s = model.shapes
    return CircuitWeights(bg=model.from_blocks(W_bg), ba=w_ba.reshape(s["ba"]).copy(), ag=w_ag.reshape(s["ag"]).copy())


def _forward(X, params, model: CircuitModel, offset: float):
    """Forward on block features; returns (y, cache). float64 outputs."""
    W_bg, w_ba, w_ag = params
    N = X.shape[0]
    dt = X.dtype  # products in the features' precision (float32 for speed, float64 for checks)
    pre = model.amacrine_gain * (X @ w_ba.astype(dt)).astype(np.float64) - model.amacrine_threshold
    a = _phi(model.amacrine, pre)
    z = a @ w_ag + offset
    if model.skip:
        z += (X.reshape(N, -1) @ W_bg.ravel().astype(dt)).astype(np.float64)
    return _phi(model.output, z), (pre, a, z)


def _backward(X, params, model: CircuitModel, cache, dy):
    """Gradients of Σ dy·y w.r.t. (W_bg, w_ba, w_ag) and the offset."""
    W_bg, w_ba, w_ag = params
    pre, a, z = cache
    N, A, F = X.shape
    dz = dy * _dphi(model.output, z)
    g_ag = a.T @ dz
    dpre = (dz[:, None] * w_ag[None, :]) * _dphi(model.amacrine, pre)
    g_ba = model.amacrine_gain * (dpre.reshape(-1).astype(X.dtype) @ X.reshape(N * A, F)).astype(np.float64)
    if model.skip:
        g_bg = (dz.astype(X.dtype) @ X.reshape(N, A * F)).astype(np.float64).reshape(A, F)
    else:
        g_bg = np.zeros_like(W_bg)
    return [g_bg, g_ba, g_ag], float(dz.sum())


def circuit_forward(X: np.ndarray, weights: CircuitWeights, model: CircuitModel, *, offset: float | None = None) -> np.ndarray:
    """Ganglion response ``y`` (float64 ``(N,)``) from block features ``X`` (:func:`block_features`).

    Examples
    --------
    >>> from neurolns.sysid import circuit2, white_noise_images
    >>> c = circuit2()
    >>> X = c.features(white_noise_images(4, seed=0))
    >>> np.allclose(circuit_forward(X, c.weights, c.model), c.respond(white_noise_images(4, seed=0)))
    True
    """
    offset = model.output_offset if offset is None else float(offset)
    return _forward(X, _internal(weights.check(model), model), model, offset)[0]


def circuit_grad(X: np.ndarray, y_true: np.ndarray, weights: CircuitWeights, model: CircuitModel,
                 *, offset: float | None = None) -> tuple[float, CircuitWeights, float]:
    """Loss ``½·mean((y − ŷ)²)`` and its gradient per pathway and w.r.t. the offset.

    The gradient is derived by hand (chain rule through φ_out, the amacrine
    sum and φ_a); the tests hold it to a float64 finite-difference oracle.
    ``X`` and ``y_true`` must be finite (``ValueError`` naming the first bad
    index otherwise), as in :func:`~neurolns.sysid.fit_circuit`.

    Returns
    -------
    loss : float
    grads : CircuitWeights
        ``∂loss/∂w`` per pathway (zeros for ``bg`` without a skip path).
    d_offset : float
    """
    offset = model.output_offset if offset is None else float(offset)
    params = _internal(weights.check(model), model)
    X = check_finite("features X", X)
    y_true = check_finite("responses y_true", np.asarray(y_true, np.float64))
    y, cache = _forward(X, params, model, offset)
    r = y - y_true
    grads, d_off = _backward(X, params, model, cache, r / len(r))
    return 0.5 * float(np.mean(r * r)), _external(grads, model), d_off
