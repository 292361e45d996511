"""Architecture-aware optimisers: Fromage, Nero, AGD and dualised (spectral) updates.

Pure update functions (numpy arrays updated in place, arithmetic in float64)
and optimizer classes with the interface of :class:`neurolns.learning.Optimizer`.
Each rule turns a gradient into a step whose *size* is set by the layer's
shape and weights rather than by the gradient's scale:

* :func:`fromage_update` — Fromage (Bernstein, Vahdat, Yue & Liu, NeurIPS 2020,
  "On the distance between two neural networks and the stability of learning"):
  per tensor ``w ← (w − η (‖w‖/‖g‖) g) / √(1+η²)``.
* :func:`nero_update` — Nero (Liu, Bernstein, Meister & Yue, ICML 2021,
  "Learning by turning"): per neuron (row) an Adam-like normalised step of
  relative size η, then the row is re-centred and put back on the unit sphere
  (:func:`nero_project`).
* :func:`agd_update` — automatic gradient descent (Bernstein, Mingard, Huang,
  Azizan & Yue 2023): no learning rate; ``η = log((1+√(1+4G))/2)`` from the
  gradient summary ``G`` (:func:`agd_gain`), orthogonal initialisation
  (:func:`agd_init`).
* :func:`newton_schulz`, :func:`dualised_update`, :func:`muon_update` — the
  steepest-descent step under the spectral norm (Bernstein & Newhouse 2024,
  "Old optimizer, new norm"): the gradient's orthogonal factor ``U Vᵀ`` scaled
  by ``√(d_out/d_in)``; with momentum, Muon.
* :func:`steepest_direction`, :func:`dual_norm`, :func:`dualise` — the
  duality map for the ℓ∞, ℓ2 and spectral norms. Under ℓ∞ the steepest
  direction is ``sign(g)``: sign descent is the same construction, which ties
  this family to :mod:`neurolns.learning.sign`.

Formulas, sources and measurements: ``docs/architecture_aware.md``.

Examples
--------
>>> import numpy as np
>>> w = np.array([3.0, 4.0]); fromage_update(w, np.array([0.0, 1.0]), lr=0.75)
>>> w                       # (w − 0.75·5·ĝ)/1.25 with ĝ = (0, 1)
array([2.4, 0.2])
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from neurolns.formats import LNSFormat, _StrEnum
from neurolns.learning._checks import check_array, check_real, check_step, check_writeable, inv_bias_correction
from neurolns.learning.madam import code_step_size
from neurolns.learning.optim import DEFAULT_UPDATE_FORMAT, Optimizer, _check_code_dtypes, _check_fmt

__all__ = [
    "Norm",
    "NSCoefficients",
    "fromage_update",
    "nero_project",
    "nero_update",
    "lns_nero_update",
    "agd_scale",
    "agd_init",
    "agd_gain",
    "agd_update",
    "newton_schulz",
    "steepest_direction",
    "dual_norm",
    "dualise",
    "dualised_update",
    "muon_update",
    "Fromage",
    "Nero",
    "LNSNero",
    "AGD",
    "Dualised",
    "Muon",
]


class Norm(_StrEnum):
    """Norms whose steepest-descent direction :func:`steepest_direction` knows."""

    LINF = "linf"
    L2 = "l2"
    SPECTRAL = "spectral"


class NSCoefficients(_StrEnum):
    """Odd polynomials ``p(σ) = aσ + bσ³ + cσ⁵`` iterated by :func:`newton_schulz`.

    ``cubic``: ``(3/2, −1/2, 0)``, the classical Newton–Schulz iteration; it
    converges to 1 for every ``σ ∈ (0, √3)`` (quadratically near 1).
    ``muon``: ``(3.4445, −4.7750, 2.0315)``, Keller Jordan's quintic for Muon:
    faster growth of small ``σ`` (slope 3.44 at 0) but no convergence: after 5
    steps every ``σ/‖G‖_F ∈ [0.01, 1]`` lands in ``[0.68, 1.14]``.
    """

    CUBIC = "cubic"
    MUON = "muon"


_NS = {NSCoefficients.CUBIC: (1.5, -0.5, 0.0), NSCoefficients.MUON: (3.4445, -4.7750, 2.0315)}


def _f64(name, a):
    return np.asarray(a, dtype=np.float64)


def _check_param(name, w):
    check_array(name, w, "f")
    check_writeable(name, w)
    return w


def _check_grad(g, w):
    g = np.asarray(g)
    if g.shape != w.shape:
        raise ValueError(f"g has shape {g.shape}; it must match the parameter's shape {w.shape}")
    if g.dtype.kind != "f":
        raise TypeError(f"g has dtype {g.dtype}; allowed: a float dtype")
    return g.astype(np.float64)


# ---------------------------------------------------------------------------
# Fromage


def fromage_update(w, g, *, lr: float = 0.01, p_max: float = math.inf) -> None:
    """One Fromage step on one tensor, in place (Bernstein et al., NeurIPS 2020).

    .. math::  w \\leftarrow \\frac{w - \\eta\\,(\\lVert w\\rVert_F/\\lVert g\\rVert_F)\\,g}{\\sqrt{1+\\eta^2}}

    or ``(w − η g)/√(1+η²)`` when either norm is 0 (the published code divides
    by ``√(1+η²)`` in both cases; so does this). The division undoes the norm
    growth of a step orthogonal to ``w``. Then, if ``‖w‖ > p_max``, ``w`` is
    scaled back onto ``‖w‖ = p_max`` (the paper's ``p_bound·‖w₀‖``).

    Parameters
    ----------
    w : ndarray, float
        Weights (any shape), updated in place.
    g : ndarray, float
        Gradient, same shape.
    lr : float
        ``η > 0``, the relative step: ``‖Δw‖/‖w‖ ≈ η``; paper: 0.01.
    p_max : float
        Norm cap (``inf``: none).

    Examples
    --------
    >>> w = np.array([1.0, 0.0]); fromage_update(w, np.array([0.0, 2.0]), lr=1.0)
    >>> w                      # a 45° turn, norm kept
    array([ 0.70710678, -0.70710678])
    """
    _check_param("w", w)
    lr = check_real("lr", lr, 0.0, math.inf, lo_open=True)
    p_max = check_real("p_max", p_max, 0.0, math.inf, lo_open=True)
    g = _check_grad(g, w)
    x = w.astype(np.float64)
    wn, gn = float(np.linalg.norm(x)), float(np.linalg.norm(g))
    step = (lr * (wn / gn)) * g if (wn > 0.0 and gn > 0.0) else lr * g
    x = (x - step) / math.sqrt(1.0 + lr * lr)
    if math.isfinite(p_max):
        n = float(np.linalg.norm(x))
        if n > p_max:
            x *= p_max / n
    w[...] = x


# ---------------------------------------------------------------------------
# Nero


def _rows(a: np.ndarray) -> np.ndarray:
    """``a`` as (neurons, fan-in): a row per output unit; a 1-D tensor has one element per neuron."""
    return a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)


def nero_project(w) -> None:
    """Nero's constraint, in place: every row of ``w`` (ndim ≥ 2) to zero mean and unit norm.

    ``w_r ← (w_r − mean(w_r)) / ‖w_r − mean(w_r)‖``; a row that is constant
    (norm 0 after centring) becomes 0. 1-D tensors are left alone (the paper
    does not constrain biases and gains).

    Examples
    --------
    >>> w = np.array([[1.0, 3.0], [2.0, 2.0]]); nero_project(w); w
    array([[-0.70710678,  0.70710678],
           [ 0.        ,  0.        ]])
    """
    _check_param("w", w)
    if w.ndim < 2:
        return
    x = _rows(w).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    w[...] = x.reshape(w.shape)


def nero_update(w, g, v, t: int, *, lr: float = 0.01, beta: float = 0.999, scale: float = 1.0,
                constraints: bool = True, reference: bool = False) -> None:
    """One Nero step on one tensor, in place (Liu et al., ICML 2021).

    Per neuron ``r`` (a row of a ≥2-D tensor; each element of a 1-D tensor):

    .. math::  v_r \\leftarrow \\beta v_r + (1-\\beta)\\lVert g_r\\rVert^2, \\qquad
               w_r \\leftarrow w_r - \\eta\\, s\\, g_r / \\sqrt{v_r/(1-\\beta^t)}

    (``0/0 := 0``), then, with ``constraints``, :func:`nero_project` (rows of
    ≥2-D tensors re-centred and re-normalised). ``s`` is the mean row norm at
    initialisation (1 for a constrained matrix; ``mean|b|`` for a bias,
    0.01 if that is 0), so ``η`` is the step relative to the neuron's norm.

    Parameters
    ----------
    w, g : ndarray, float
        Weights (updated in place) and gradient, same shape.
    v : ndarray, float
        Per-neuron second moment, shape ``(rows,)`` for ≥2-D ``w``, ``w.shape``
        for 1-D; updated in place.
    t : int
        1-based step count.
    lr, beta, scale : float
        ``η`` (0.01), ``β`` (0.999), ``s``.
    constraints : bool
        Re-centre and re-normalise rows after the step (default True).
    reference : bool
        True: the numpy float64 path; False: the Numba kernel (same arithmetic
        order, equal to the last float64 ulp up to ``sqrt``/summation order).

    Examples
    --------
    >>> w = np.array([[0.6, 0.8]]); v = np.zeros(1)
    >>> nero_update(w, np.array([[1.0, -1.0]]), v, 1, lr=0.1, constraints=False); w
    array([[0.52928932, 0.87071068]])
    """
    _check_param("w", w)
    if w.ndim == 0:
        raise ValueError("w must have at least one dimension (a neuron per row or per element)")
    t = check_step(t)
    lr = check_real("lr", lr, 0.0, math.inf, lo_open=True)
    beta = check_real("beta", beta, 0.0, 1.0, hi_open=True)
    scale = check_real("scale", scale, 0.0, math.inf)
    g = _check_grad(g, w)
    vshape = (w.shape[0],) if w.ndim > 1 else w.shape
    check_array("v", v, "f", vshape)
    check_writeable("v", v)
    inv_bc = inv_bias_correction(beta, t)
    project = bool(constraints) and w.ndim > 1
    if reference:
        x, gr = _rows(w).astype(np.float64), _rows(g)
        vn = beta * v.astype(np.float64) + (1.0 - beta) * (gr * gr).sum(axis=1)
        den = np.sqrt(vn * inv_bc)[:, None]
        gh = np.divide(gr, den, out=np.zeros_like(gr), where=den > 0)
        x = x - (lr * scale) * gh
        v[...] = vn
        w[...] = x.reshape(w.shape)
        if project:
            nero_project(w)
        return
    from neurolns.learning._arch_kernels import nero_rows

    x = np.ascontiguousarray(_rows(w).astype(np.float64))
    vv = v.astype(np.float64)
    nero_rows(x, np.ascontiguousarray(_rows(g)), vv, lr * scale, beta, inv_bc, project)
    v[...] = vv
    w[...] = x.reshape(w.shape)


def lns_nero_update(codes, g, v, t: int, *, fmt: LNSFormat = DEFAULT_UPDATE_FORMAT, lr: float | None = None,
                    beta: float = 0.999, g_bound: float = 10.0, constraints: bool = False) -> None:
    """One step of Nero on LNS codes, in place (``codes`` and ``v``): the relative step is an
    integer add on each exponent code, the norm constraint a per-row shift of the codes.

    Codes are signed, ``w = sign(c)·2^((|c| − β)/γ)`` (scale 1: a unit-norm
    row needs no other scale). Per neuron ``r`` with ``n`` inputs:

    1. ``v_r ← βv_r + (1−β)‖g_r‖²`` and ``q = rint(clamp(√n·g_r/√(v_r/(1−βᵗ)), ±g_bound))``:
       Nero's per-neuron normalised gradient, times ``√n`` so that its entries
       have RMS 1 and round to whole code steps;
    2. ``|c| ← clamp(|c| − k·q·sign(c), 1, c_max)`` with ``k = lr·γ`` (LNS-Madam's
       step: ``|w| ← |w|·2^(−lr·q·sign w)``; signs never flip, 0 stays 0);
    3. with ``constraints`` (≥2-D only): ``d_r = rint(γ·log2‖w_r‖)`` and every
       nonzero ``|c|`` of the row moves by ``−d_r``, which multiplies the row by
       ``2^(−d_r/γ)`` exactly, so ``|log2‖w_r‖| ≤ 1/(2γ)`` afterwards
       (unless a code saturates).

    Nero's re-centring (subtracting the row mean) has no counterpart: it is
    an addition, and a multiplicative rule cannot move a weight through 0.
    Without it the norm constraint hurt: on the digits MLP, LNS-Nero with it
    reached 92.3% and without it 97.2% (FP32 Nero 96.9%, 3 seeds; see
    ``docs/architecture_aware.md``), so ``constraints`` is off by default.

    Parameters
    ----------
    codes : ndarray, signed int
        Codes on the update grid ``fmt`` (updated in place).
    g : ndarray, float
        Gradient with respect to the decoded weights.
    v : ndarray, float64
        ``(rows,)`` for ≥2-D codes, ``codes.shape`` for 1-D.
    t : int
    fmt : LNSFormat
        Update grid (default LNS16, γ = 128).
    lr : float, optional
        Step in octaves per unit ``q``, a whole number of grid steps (None: ``1/γ``).
    beta, g_bound : float
    constraints : bool
        Apply step 3 (default False: measured to hurt without re-centring).

    Examples
    --------
    >>> from neurolns.formats import LNSFormat
    >>> f = LNSFormat(bits=16, gamma=128); c = np.array([[f.bias, -f.bias]], np.int32)   # row (1, −1), norm √2
    >>> lns_nero_update(c, np.array([[1.0, 1.0]]), np.zeros(1), 1, fmt=f, constraints=True)
    >>> c - f.bias * np.array([[1, -1]])
    array([[-65,  63]])

    (``q = ±1`` moves the codes to ``bias − 1`` and ``−(bias + 1)``; the row
    norm ``√2`` is then shifted away by ``d = rint(128·log2 √2) = 64``.)
    """
    check_array("codes", codes, "i")
    check_writeable("codes", codes)
    if codes.ndim == 0:
        raise ValueError("codes must have at least one dimension (a neuron per row or per element)")
    fmt = _check_fmt(fmt)
    t = check_step(t)
    beta = check_real("beta", beta, 0.0, 1.0, hi_open=True)
    g_bound = check_real("g_bound", g_bound, 0.0, math.inf, lo_open=True)
    k = code_step_size(fmt, 1.0 / fmt.gamma if lr is None else lr)
    g = _check_grad(g, codes)
    vshape = (codes.shape[0],) if codes.ndim > 1 else codes.shape
    check_array("v", v, "f", vshape)
    check_writeable("v", v)
    c, gr = _rows(codes).astype(np.int64), _rows(g)
    n = c.shape[1]
    vn = beta * v.astype(np.float64) + (1.0 - beta) * (gr * gr).sum(axis=1)
    den = np.sqrt(vn * inv_bias_correction(beta, t))[:, None]
    gh = np.divide(math.sqrt(n) * gr, den, out=np.zeros_like(gr), where=den > 0)
    q = np.rint(np.clip(gh, -g_bound, g_bound)).astype(np.int64)
    sg = np.where(c > 0, 1, -1)
    live = c != 0
    m = np.clip(np.abs(c) - k * q * sg, 1, fmt.max_code)
    if constraints and codes.ndim > 1:
        mag = np.where(live, np.exp2((m - fmt.bias) / fmt.gamma), 0.0)
        norm = np.sqrt((mag * mag).sum(axis=1, keepdims=True))
        d = np.where(norm > 0, np.rint(fmt.gamma * np.log2(np.where(norm > 0, norm, 1.0))), 0).astype(np.int64)
        m = np.clip(m - d, 1, fmt.max_code)
    v[...] = vn
    codes[...] = np.where(live, sg * m, 0).reshape(codes.shape)


def _nero_scale(w: np.ndarray) -> float:
    s = float(np.linalg.norm(_rows(w).astype(np.float64), axis=1).mean()) if w.size else 0.0
    return s if s > 0.0 else 0.01


# ---------------------------------------------------------------------------
# AGD


def agd_scale(shape) -> float:
    """AGD's per-layer scale ``s = √(d_out/d_in)``, divided by ``√(kernel size)`` for convolutions.

    ``shape = (d_out, d_in, *kernel)``; the kernel division follows the
    published code (``jxbz/agd``), where a convolution is a sum of
    ``kernel size`` matrices.

    Examples
    --------
    >>> agd_scale((256, 64)), agd_scale((8, 2, 2, 2))
    (2.0, 1.0)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape={shape} is out of range; AGD needs matrices or convolution kernels "
                         "(ndim >= 2, sizes >= 1; it has no biases)")
    k = math.prod(shape[2:])
    return math.sqrt(shape[0] / shape[1]) / math.sqrt(k)


def _positions(a: np.ndarray) -> np.ndarray:
    """``(d_out, d_in, K)``: one matrix per kernel position."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def agd_init(w, rng=None) -> None:
    """AGD's initialisation, in place: each kernel position an orthogonal matrix times :func:`agd_scale`.

    The orthogonal factor is ``Q`` of the QR decomposition of a standard normal
    matrix with ``diag(R) > 0`` (Haar-distributed), so every singular value of
    each ``(d_out, d_in)`` slice is ``s``.

    Examples
    --------
    >>> w = np.empty((6, 3)); agd_init(w, np.random.default_rng(0))
    >>> np.round(np.linalg.svd(w, compute_uv=False), 12)   # s = √2
    array([1.41421356, 1.41421356, 1.41421356])
    """
    _check_param("w", w)
    s = agd_scale(w.shape)
    rng = np.random.default_rng(rng)
    out = np.empty(w.shape[:2] + (int(np.prod(w.shape[2:], dtype=np.int64)),))
    m, n = w.shape[0], w.shape[1]
    for k in range(out.shape[2]):
        a = rng.standard_normal((max(m, n), min(m, n)))
        q, r = np.linalg.qr(a)
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        out[:, :, k] = q if m >= n else q.T
    w[...] = (s * out).reshape(w.shape)


def agd_gain(grads, shapes=None) -> tuple[float, float]:
    """AGD's gradient summary and step: ``(G, η)``.

    .. math::  G = \\frac1L \\sum_{l=1}^{L} s_l \\sum_k \\lVert \\nabla W_{l,k}\\rVert_F,
               \\qquad \\eta = \\log\\frac{1+\\sqrt{1+4G}}{2}

    over the ``L`` weight tensors, ``k`` running over kernel positions (one
    term for a matrix), ``s_l`` from :func:`agd_scale`.

    Examples
    --------
    >>> agd_gain([np.full((4, 1), 0.5)])      # G = 2·1 = 2, η = log 2
    (2.0, 0.6931471805599453)
    """
    grads = [np.asarray(g, dtype=np.float64) for g in grads]
    if not grads:
        raise ValueError("grads is empty; AGD needs at least one weight tensor")
    total = 0.0
    for g in grads:
        total += agd_scale(g.shape) * float(np.linalg.norm(_positions(g), axis=(0, 1)).sum())
    G = total / len(grads)
    return G, math.log(0.5 * (1.0 + math.sqrt(1.0 + 4.0 * G)))


def agd_update(params, grads, *, gain: float = 1.0) -> tuple[float, float]:
    """One AGD step on all weight tensors of a network, in place; returns ``(G, η)``.

    .. math::  W_l \\leftarrow W_l - \\frac{\\text{gain}\\cdot\\eta}{L}\\, s_l\\,
               \\frac{\\nabla W_l}{\\lVert\\nabla W_l\\rVert_F}

    per kernel position (a zero gradient slice does not move), ``(G, η)``
    from :func:`agd_gain`. ``gain = 1`` is the paper's rule.

    Examples
    --------
    >>> w = np.zeros((4, 1)); agd_update([w], [np.full((4, 1), 0.5)])
    (2.0, 0.6931471805599453)
    >>> w.ravel()                              # −log 2 · 2 · 0.5
    array([-0.69314718, -0.69314718, -0.69314718, -0.69314718])
    """
    if len(params) != len(grads):
        raise ValueError(f"got {len(params)} params and {len(grads)} grads; they must pair up")
    gain = check_real("gain", gain, 0.0, math.inf, lo_open=True)
    gs = [_check_grad(g, _check_param(f"params[{i}]", w)) for i, (w, g) in enumerate(zip(params, grads))]
    G, eta = agd_gain(gs)
    L = len(params)
    for w, g in zip(params, gs):
        gp = _positions(g)
        n = np.linalg.norm(gp, axis=(0, 1), keepdims=True)
        d = np.divide(gp, n, out=np.zeros_like(gp), where=n > 0)
        w[...] = (w.astype(np.float64) - (gain * eta / L * agd_scale(w.shape)) * d.reshape(w.shape))
    return G, eta


# ---------------------------------------------------------------------------
# duality maps and the dualised (spectral) update


def newton_schulz(g, steps: int = 5, coefficients: NSCoefficients | str = "cubic") -> np.ndarray:
    """Approximate orthogonal factor ``U Vᵀ`` of a matrix by Newton–Schulz iteration (float64).

    ``X₀ = G/‖G‖_F`` (singular values in ``(0, 1]``), then ``steps`` times
    ``X ← aX + b(XXᵀ)X + c(XXᵀ)²X`` (on the wide orientation, so ``XXᵀ`` is
    the smaller Gram matrix). The iteration acts on each singular value
    alone: ``σ ← aσ + bσ³ + cσ⁵`` with the same ``U``, ``V``
    (see :class:`NSCoefficients` for where each polynomial takes ``σ``).
    A zero matrix returns zeros.

    Parameters
    ----------
    g : array_like, 2-D
    steps : int
        Iterations (≥ 0).
    coefficients : {"cubic", "muon"}

    Examples
    --------
    >>> np.round(newton_schulz(np.diag([2.0, 1.0]), steps=30), 12)
    array([[1., 0.],
           [0., 1.]])
    """
    x = np.asarray(g, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"g must be a matrix (2-D), got shape {x.shape}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps={steps!r} is out of range; allowed: an int >= 0")
    a, b, c = _NS[NSCoefficients(coefficients)]
    n = float(np.linalg.norm(x))
    if n == 0.0:
        return np.zeros_like(x)
    tall = x.shape[0] > x.shape[1]
    x = (x.T if tall else x) / n
    for _ in range(int(steps)):
        A = x @ x.T
        x = a * x + (b * A + c * (A @ A)) @ x
    return x.T.copy() if tall else x


def _svd_polar(x: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    return u @ vt


def steepest_direction(g, norm: Norm | str) -> np.ndarray:
    """``argmax_{‖t‖ ≤ 1} ⟨g, t⟩``: the unit direction of steepest ascent under ``norm``.

    * ``linf``: ``sign(g)`` (sign(0) = +1, the library's one-bit sign; a zero
      entry contributes nothing to ``⟨g, t⟩`` whatever it is);
    * ``l2``: ``g/‖g‖₂``;
    * ``spectral`` (2-D ``g``): ``U Vᵀ`` from the thin SVD ``g = U Σ Vᵀ``
      (exact; :func:`newton_schulz` is the fast approximation).

    A zero ``g`` gives zeros for ``l2`` and ``spectral``.

    Examples
    --------
    >>> steepest_direction(np.array([3.0, -4.0]), "linf")
    array([ 1., -1.])
    """
    norm = Norm(norm)
    x = np.asarray(g, dtype=np.float64)
    if norm is Norm.LINF:
        return np.where(x < 0, -1.0, 1.0)
    if norm is Norm.L2:
        n = float(np.linalg.norm(x))
        return x / n if n > 0 else np.zeros_like(x)
    if x.ndim != 2:
        raise ValueError(f"the spectral norm needs a matrix (2-D), got shape {x.shape}")
    return _svd_polar(x) if np.any(x) else np.zeros_like(x)


def dual_norm(g, norm: Norm | str) -> float:
    """``‖g‖_* = max_{‖t‖ ≤ 1} ⟨g, t⟩``: ℓ1 for ℓ∞, ℓ2 for ℓ2, nuclear for spectral.

    Examples
    --------
    >>> dual_norm(np.array([3.0, -4.0]), "linf"), dual_norm(np.array([3.0, -4.0]), "l2")
    (7.0, 5.0)
    """
    norm = Norm(norm)
    x = np.asarray(g, dtype=np.float64)
    if norm is Norm.LINF:
        return float(np.abs(x).sum())
    if norm is Norm.L2:
        return float(np.linalg.norm(x))
    if x.ndim != 2:
        raise ValueError(f"the spectral norm needs a matrix (2-D), got shape {x.shape}")
    return float(np.linalg.svd(x, compute_uv=False).sum())


def dualise(g, norm: Norm | str) -> np.ndarray:
    """The dual vector ``g^♯ = ‖g‖_* · argmax_{‖t‖≤1}⟨g, t⟩`` (Bernstein & Newhouse 2024).

    ``Δw = −g^♯/λ`` minimises ``⟨g, Δw⟩ + (λ/2)‖Δw‖²``: steepest descent
    under ``norm``. For ℓ2 it is ``g`` itself (gradient descent); for ℓ∞
    ``‖g‖₁·sign(g)`` (sign descent; error-feedback signSGD's
    ``(‖p‖₁/d)·sign(p)`` is this divided by ``d``); for the spectral norm
    ``‖g‖_nuc·U Vᵀ`` (the dualised update drops the nuclear norm and scales
    by ``√(d_out/d_in)`` instead).

    Examples
    --------
    >>> dualise(np.array([3.0, -4.0]), "linf")
    array([ 7., -7.])
    """
    return dual_norm(g, norm) * steepest_direction(g, norm)


def _as_matrix(g: np.ndarray) -> np.ndarray:
    """A tensor as ``(d_out, d_in)``: a ≥2-D tensor flattened per output, a vector as a column."""
    return g.reshape(g.shape[0], -1) if g.ndim > 1 else g.reshape(-1, 1)


def dualised_update(w, g, *, lr: float = 0.02, ns_steps: int = 5,
                    coefficients: NSCoefficients | str = "muon") -> None:
    """One dualised (spectral steepest-descent) step, in place.

    .. math::  W \\leftarrow W - \\eta \\sqrt{d_{out}/d_{in}}\\;\\mathrm{NS}(G) \\approx
               W - \\eta \\sqrt{d_{out}/d_{in}}\\; U V^\\top

    with ``G`` seen as ``(d_out, d_in)`` (a convolution kernel flattened per
    output channel; a vector as a ``(d, 1)`` column, so it moves by
    ``η √d · g/‖g‖``: entries of RMS ``η``). ``NS`` is :func:`newton_schulz`.
    The step has spectral norm ``η√(d_out/d_in)`` (exactly, once NS has
    converged), i.e. RMS→RMS operator norm ``η``, whatever the width.

    Examples
    --------
    >>> w = np.zeros((2, 2)); dualised_update(w, np.diag([4.0, 1.0]), lr=0.1, ns_steps=30, coefficients="cubic")
    >>> np.round(w, 12)
    array([[-0.1,  0. ],
           [ 0. , -0.1]])
    """
    _check_param("w", w)
    if w.ndim == 0:
        raise ValueError("w must have at least one dimension")
    lr = check_real("lr", lr, 0.0, math.inf, lo_open=True)
    gm = _as_matrix(_check_grad(g, w))
    u = newton_schulz(gm, ns_steps, coefficients)
    s = math.sqrt(gm.shape[0] / gm.shape[1])
    w[...] = (w.astype(np.float64) - (lr * s) * u.reshape(w.shape))


def muon_update(w, g, buf, *, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                ns_steps: int = 5, coefficients: NSCoefficients | str = "muon") -> None:
    """One Muon step: momentum, then :func:`dualised_update` of it (in place, ``buf`` too).

    ``b ← μb + g``; the direction is ``g + μb`` (Nesterov) or ``b``;
    ``W ← W − η√(d_out/d_in)·NS(direction)``. ``μ = 0`` is the plain dualised update.

    Examples
    --------
    >>> w = np.zeros((1, 1)); b = np.zeros((1, 1))
    >>> muon_update(w, np.array([[-3.0]]), b, lr=0.1, coefficients="cubic"); w, b
    (array([[0.1]]), array([[-3.]]))
    """
    _check_param("buf", buf)
    if buf.shape != w.shape:
        raise ValueError(f"buf has shape {buf.shape}; it must match the parameter's shape {w.shape}")
    momentum = check_real("momentum", momentum, 0.0, 1.0, hi_open=True)
    gg = _check_grad(g, w)
    b = momentum * buf.astype(np.float64) + gg
    buf[...] = b
    dualised_update(w, gg + momentum * b if nesterov else b, lr=lr, ns_steps=ns_steps, coefficients=coefficients)


# ---------------------------------------------------------------------------
# optimizer classes


def _positive(name):
    return lambda x: check_real(name, x, 0.0, math.inf, lo_open=True)


def _unit(name):
    return lambda x: check_real(name, x, 0.0, 1.0, hi_open=True)


def _bool(name):
    def f(x):
        if not isinstance(x, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(x).__name__} {x!r}")
        return bool(x)

    return f


def _steps(x):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not 0 <= x <= 100:
        raise ValueError(f"ns_steps={x!r} is out of range; allowed: an int in [0, 100]")
    return int(x)


class _ArchOptimizer(Optimizer):
    """Shared parameter check: ``_min_ndim = (ndim, what the rule needs)``."""

    _min_ndim: ClassVar[tuple[int, str]] = (0, "")

    def _check_params(self, params):
        params = super()._check_params(params)
        k, what = self._min_ndim
        for i, p in enumerate(params):
            if p.ndim < k:
                raise ValueError(f"params[{i}] has shape {p.shape}; {type(self).__name__} takes {what} (ndim >= {k})")
        return params


class Fromage(_ArchOptimizer):
    """Fromage per tensor (:func:`fromage_update`); ``p_bound`` caps ``‖w‖ ≤ p_bound·‖w at step 1‖``.

    Hyperparameters: ``lr`` (0.01), ``p_bound`` (``inf``: no cap; the paper
    suggests 2 to regularise).

    Examples
    --------
    >>> w = np.array([3.0, 4.0]); opt = Fromage([w], lr=0.75)
    >>> opt.step([np.array([0.0, 1.0])]); w
    array([2.4, 0.2])
    """

    rule = "fromage"
    _hyper: ClassVar = {"lr": (0.01, _positive("lr")), "p_bound": (math.inf, _positive("p_bound"))}

    def _init_state(self, p):
        return {"p_max": math.inf}

    def _update(self, i, p, g, st):
        d = self.defaults
        if self.t == 1 and math.isfinite(d["p_bound"]):
            n = float(np.linalg.norm(p.astype(np.float64)))
            st["p_max"] = d["p_bound"] * n if n > 0 else math.inf
        fromage_update(p, g, lr=d["lr"], p_max=st["p_max"])


class Nero(_ArchOptimizer):
    """Nero (:func:`nero_update`). At the first step, with ``constraints``, every
    ≥2-D parameter is first projected (:func:`nero_project`) and each
    parameter's ``s`` (its mean row norm then) is recorded; doing this at step
    1 rather than at construction keeps a resumed optimizer from projecting
    again.

    Hyperparameters: ``lr`` (0.01), ``beta`` (0.999), ``constraints`` (True).

    Examples
    --------
    >>> w = np.array([[1.0, 3.0]]); opt = Nero([w], lr=0.1)
    >>> opt.step([np.array([[1.0, 0.0]])]); round(float(np.linalg.norm(w)), 12), round(float(w.sum()), 12)
    (1.0, 0.0)
    """

    rule = "nero"
    _hyper: ClassVar = {"lr": (0.01, _positive("lr")), "beta": (0.999, _unit("beta")),
                        "constraints": (True, _bool("constraints"))}

    _min_ndim = (1, "tensors with a neuron axis")

    def _init_state(self, p):
        return {"v": np.zeros((p.shape[0],) if p.ndim > 1 else p.shape, np.float64), "scale": 0.0}

    def _update(self, i, p, g, st):
        d = self.defaults
        if self.t == 1:
            if d["constraints"] and p.ndim > 1:
                nero_project(p)
            st["scale"] = _nero_scale(p)
        nero_update(p, g, st["v"], self.t, lr=d["lr"], beta=d["beta"], scale=st["scale"],
                    constraints=d["constraints"])


class LNSNero(_ArchOptimizer):
    """Nero on LNS codes (:func:`lns_nero_update`); parameters are signed integer codes of ``fmt``.

    Hyperparameters: ``fmt`` (LNS16, γ = 128), ``lr`` (octaves, a whole number
    of grid steps; default 2/128 ≈ 0.0108 nat, Nero's 0.01), ``beta`` (0.999),
    ``g_bound`` (10), ``constraints`` (False: the per-row norm shift, measured
    to cost accuracy without Nero's re-centring).

    Examples
    --------
    >>> f = LNSFormat(bits=16, gamma=128); c = np.array([[f.bias + 5, -(f.bias - 3)]], np.int16)
    >>> opt = LNSNero([c], fmt=f, constraints=True); opt.step([np.array([[0.5, 0.0]])]); c - np.array([[f.bias, -f.bias]])
    array([[-61,  67]])


    (``q = (1, 0)``: k = 2 steps off the first code, then the row norm ≈ √2 is
    shifted away by 64 codes.)
    """

    rule = "lns-nero"
    _param_kind = "i"
    _min_ndim = (1, "code tensors with a neuron axis")
    _hyper: ClassVar = {
        "fmt": (DEFAULT_UPDATE_FORMAT, _check_fmt),
        "lr": (2.0 / 128, lambda x: None if x is None else check_real("lr", x, 0.0, math.inf, lo_open=True)),
        "beta": (0.999, _unit("beta")),
        "g_bound": (10.0, _positive("g_bound")),
        "constraints": (False, _bool("constraints")),
    }

    def _validate(self, hp):
        hp = super()._validate(hp)
        if hp["lr"] is None:
            hp["lr"] = 1.0 / hp["fmt"].gamma
        code_step_size(hp["fmt"], hp["lr"])  # a whole number of grid steps
        _check_code_dtypes(self.params, hp["fmt"])
        return hp

    def _init_state(self, p):
        return {"v": np.zeros((p.shape[0],) if p.ndim > 1 else p.shape, np.float64)}

    def _update(self, i, p, g, st):
        d = self.defaults
        lns_nero_update(p, g, st["v"], self.t, fmt=d["fmt"], lr=d["lr"], beta=d["beta"], g_bound=d["g_bound"],
                        constraints=d["constraints"])


class AGD(_ArchOptimizer):
    """Automatic gradient descent (:func:`agd_update`): no learning rate.

    Every parameter must be a weight matrix or convolution kernel (ndim ≥ 2;
    AGD has no biases). Initialise with :func:`agd_init` (``init=True`` does
    it at construction, seeded by ``seed``). ``last_G`` and ``last_eta`` hold
    the last step's ``G`` and ``η``.

    Examples
    --------
    >>> w = np.zeros((4, 1)); opt = AGD([w])
    >>> opt.step([np.full((4, 1), 0.5)]); round(opt.last_eta, 6), float(w[0, 0])
    (0.693147, -0.6931471805599453)
    """

    rule = "agd"
    _hyper: ClassVar = {"gain": (1.0, _positive("gain"))}

    def __init__(self, params, *, init: bool = False, seed: int = 0, **hyperparameters):
        super().__init__(params, **hyperparameters)
        self.last_G = self.last_eta = 0.0
        if init:
            for i, p in enumerate(self.params):
                agd_init(p, np.random.default_rng([seed, i]))

    _min_ndim = (2, "weight matrices or convolution kernels, no biases")

    def _step(self, grads) -> None:
        """One step over all tensors together (``G`` and ``η`` are global); the base class has
        checked the gradients and applied the ``nonfinite`` policy."""
        self.last_G, self.last_eta = agd_update(self.params, grads, gain=self.defaults["gain"])


class Dualised(_ArchOptimizer):
    """The dualised (spectral steepest-descent) update with optional momentum (:func:`muon_update`).

    Hyperparameters: ``lr`` (0.02: RMS→RMS norm of each step), ``momentum``
    (0: plain :func:`dualised_update`), ``nesterov`` (False), ``ns_steps`` (5),
    ``coefficients`` (``"muon"``). :class:`Muon` is this with Muon's defaults.

    Examples
    --------
    >>> w = np.zeros((2, 2)); opt = Dualised([w], lr=0.1, ns_steps=30, coefficients="cubic")
    >>> opt.step([np.diag([4.0, 1.0])]); np.round(w, 12)
    array([[-0.1,  0. ],
           [ 0. , -0.1]])
    """

    rule = "dualised"
    _hyper: ClassVar = {
        "lr": (0.02, _positive("lr")),
        "momentum": (0.0, _unit("momentum")),
        "nesterov": (False, _bool("nesterov")),
        "ns_steps": (5, _steps),
        "coefficients": (NSCoefficients.MUON.value, lambda x: NSCoefficients(x).value),
    }

    _min_ndim = (1, "tensors with an output axis")

    def _init_state(self, p):
        return {"buf": np.zeros(p.shape, np.float64)}

    def _update(self, i, p, g, st):
        d = self.defaults
        muon_update(p, g, st["buf"], lr=d["lr"], momentum=d["momentum"], nesterov=d["nesterov"],
                    ns_steps=d["ns_steps"], coefficients=d["coefficients"])


class Muon(Dualised):
    """Muon: :class:`Dualised` with momentum 0.95, Nesterov, 5 quintic Newton–Schulz steps.

    >>> w = np.zeros((1, 1)); Muon([w], lr=0.1).step([np.array([[-3.0]])]); w
    array([[0.06964364]])

    (five quintic steps take a lone singular value 1 to 0.696, inside the
    ``[0.68, 1.14]`` band of :class:`NSCoefficients`).
    """

    rule = "muon"
    _hyper: ClassVar = {**Dualised._hyper, "momentum": (0.95, _unit("momentum")),
                        "nesterov": (True, _bool("nesterov"))}
