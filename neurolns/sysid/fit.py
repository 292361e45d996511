"""Fitting circuit models: sign-constrained by Madam or by ``w = s·|v|`` with Adam,
or unconstrained Adam (the ablation).

Objective on a mini-batch ``B`` (Bagherian et al., KDD 2021, with the data
term averaged over the batch)::

    L(w) = ½·mean_B (y − ŷ(w))² + λ Σ |w|

* ``madam`` — Madam (Bernstein et al., NeurIPS 2020) on the signed synapses:
  ``w ← w·exp(−η ĝ sign(w))`` never flips a sign and never revives a zero, so
  the pathway signs and the connectivity mask are just the initialisation.
* ``lns-madam`` — LNS-Madam (Zhao et al. 2022): synapses are 16-bit LNS
  codes on the γ = 128 grid; each step moves ``|c|`` by a whole number of
  codes (η = 1/32 octave = 4 codes per unit of the rounded normalised gradient). Same
  guarantees as Madam; the forward pass uses the decoded codes exactly.
* ``abs-adam`` — the paper's method: ``w = s·|v|`` with ``s`` the pathway sign,
  Adam on ``v``.
* ``adam`` — Adam on free weights, the ablation: signs may flip, and by
  default it starts from random signs (it is not told the pathway signs).

Mini-batches are drawn without replacement each epoch; every ``eval_every``
steps the objective on a validation split is recorded and the best weights
are kept; training stops after ``patience`` evaluations without improvement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from neurolns._finite import check_finite
from neurolns.formats import LNSFormat, _StrEnum
from neurolns.sysid.metrics import correlation, explained_variance, r_supp, r_sys
from neurolns.sysid.model import CircuitModel, CircuitWeights, _backward, _external, _forward, _internal

__all__ = ["FitMethod", "InitSigns", "FitConfig", "FitResult", "fit_circuit", "init_weights"]


class FitMethod(_StrEnum):
    """How the synapses are fitted (see the module docstring)."""

    MADAM = "madam"
    LNS_MADAM = "lns-madam"
    ABS_ADAM = "abs-adam"
    ADAM = "adam"

    @property
    def sign_constrained(self) -> bool:
        return self is not FitMethod.ADAM


class InitSigns(_StrEnum):
    """Signs of the initial synapses.

    ``pathway``: every synapse starts with its pathway's sign. ``random``: ±1
    with probability ½ each (a fit that knows nothing of the signs). ``auto``:
    ``pathway`` for the sign-constrained methods, ``random`` for unconstrained
    Adam — starting Adam from the true signs would hand it the very knowledge
    the ablation is meant to withhold.
    """

    AUTO = "auto"
    PATHWAY = "pathway"
    RANDOM = "random"


#: learning rates that work without tuning on the reference circuits
DEFAULT_LR = {FitMethod.MADAM: 0.05, FitMethod.LNS_MADAM: 1 / 32, FitMethod.ABS_ADAM: 1e-3, FitMethod.ADAM: 1e-3}

#: where LNS-Madam keeps the synapses: 16-bit LNS codes on the γ = 128 update grid
#: (Zhao et al. 2022), scale 1 — 2^±128 covers any synapse of these circuits
LNS_UPDATE_FORMAT = LNSFormat(bits=16, gamma=128)


def _num(name, x, lo, hi=math.inf, *, lo_open=False, integer=False):
    ok = isinstance(x, (int, np.integer)) if integer else isinstance(x, (int, float, np.integer, np.floating))
    if isinstance(x, bool) or not ok:
        raise TypeError(f"{name} must be {'an int' if integer else 'a real number'}, got {type(x).__name__} {x!r}")
    if math.isnan(x) or x < lo or x > hi or (lo_open and x == lo):
        raise ValueError(f"{name}={x!r} is out of range; allowed: {'(' if lo_open else '['}{lo}, {hi}]")
    return int(x) if integer else float(x)


@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of :func:`fit_circuit` (validated; defaults need no tuning).

    Parameters
    ----------
    method : FitMethod or str
        'madam', 'abs-adam' or 'adam'.
    lr : float, optional
        Learning rate; None takes :data:`DEFAULT_LR` of the method
        (Madam: the step of ``ln|w|`` per unit normalised gradient).
    l1 : float
        λ of the L1 penalty ``λ Σ|w|`` (per synapse, added to the batch-mean loss).
    batch_size : int
        Mini-batch size (the paper: 20).
    max_steps : int
        Upper bound on optimizer steps.
    eval_every, patience : int
        Validation period in steps and the number of periods without
        improvement before stopping.
    val_fraction : float
        Share of the training samples held out for early stopping (at least one).
    init : float
        Initial magnitude of every synapse in the mask.
    init_jitter : float
        Log-normal spread of the initial magnitudes (σ of ln|w|).
    init_signs : InitSigns or str
        'auto' (default), 'pathway' or 'random' (see :class:`InitSigns`).
    learn_offset : bool
        Also fit the output offset ``c`` (Adam, learning rate ``lr_offset``).
    lr_offset : float
    p_scale : float
        Madam's magnitude cap ``p_scale·RMS(w₀)``; inf (default) switches it off,
        since a uniform small initialisation would cap synapses near ``init``.
    seed : int
        Initialisation and batch order.
    progress : bool
        Show a tqdm progress bar.
    """

    method: FitMethod | str = FitMethod.MADAM
    lr: float | None = None
    l1: float = 1e-2
    batch_size: int = 20
    max_steps: int = 15000
    eval_every: int = 250
    patience: int = 12
    val_fraction: float = 0.1
    init: float = 0.05
    init_jitter: float = 0.1
    init_signs: InitSigns | str = InitSigns.AUTO
    learn_offset: bool = False
    lr_offset: float = 1e-2
    p_scale: float = math.inf
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "method", FitMethod(self.method))
        object.__setattr__(self, "init_signs", InitSigns(self.init_signs))
        if self.lr is not None:
            object.__setattr__(self, "lr", _num("lr", self.lr, 0.0, lo_open=True))
        object.__setattr__(self, "l1", _num("l1", self.l1, 0.0))
        for f in ("batch_size", "max_steps", "eval_every", "patience"):
            object.__setattr__(self, f, _num(f, getattr(self, f), 1, integer=True))
        object.__setattr__(self, "val_fraction", _num("val_fraction", self.val_fraction, 0.0, 0.9))
        object.__setattr__(self, "init", _num("init", self.init, 0.0, lo_open=True))
        object.__setattr__(self, "init_jitter", _num("init_jitter", self.init_jitter, 0.0, 5.0))
        object.__setattr__(self, "lr_offset", _num("lr_offset", self.lr_offset, 0.0, lo_open=True))
        object.__setattr__(self, "p_scale", _num("p_scale", self.p_scale, 0.0, lo_open=True))
        _num("seed", self.seed, 0, integer=True)

    @property
    def random_signs(self) -> bool:
        """Whether :func:`init_weights` draws random signs (resolves 'auto')."""
        if self.init_signs is InitSigns.AUTO:
            return not self.method.sign_constrained
        return self.init_signs is InitSigns.RANDOM and self.method is not FitMethod.ABS_ADAM

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    def to_dict(self) -> dict:
        d = asdict(self)
        d["method"] = self.method.value
        d["init_signs"] = self.init_signs.value
        d["lr"] = self.learning_rate
        return d


@dataclass
class FitResult:
    """What a fit returns.

    Attributes
    ----------
    weights : CircuitWeights
        Fitted synapses per pathway (best validation objective).
    offset : float
        Output offset (fitted when ``learn_offset``).
    model : CircuitModel
    config : FitConfig
    history : dict
        ``step``, ``train_loss`` (running batch objective), ``val_loss``
        (validation objective) at every evaluation.
    steps : int
        Optimizer steps taken; ``best_step`` the one the weights come from.
    metrics : dict
        Filled by :meth:`evaluate`: ``r_sys``, ``r_supp``, ``test_corr``,
        ``test_fev``, ``wrong_signs`` (synapses whose sign disagrees with
        their pathway's).
    """

    weights: CircuitWeights
    offset: float
    model: CircuitModel
    config: FitConfig
    history: dict = field(default_factory=dict)
    steps: int = 0
    best_step: int = 0
    metrics: dict = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Ganglion response of the fitted model on block features ``X``."""
        return _forward(X, _internal(self.weights, self.model), self.model, self.offset)[0]

    def evaluate(self, X_test=None, y_test=None, w_true: CircuitWeights | None = None) -> dict:
        """Held-out correlation / explained variance and, given the truth, R_sys and R_supp."""
        m = {}
        if X_test is not None:
            X_test, y_test = _check_xy(X_test, y_test, self.model, "test set")
            y_hat = self.predict(X_test)
            m["test_corr"] = correlation(y_test, y_hat)
            m["test_fev"] = explained_variance(y_test, y_hat)
        if w_true is not None:
            m["r_sys"] = r_sys(w_true, self.weights)
            m["r_supp"] = r_supp(w_true, self.weights)
        signs = self.model.signs
        m["wrong_signs"] = int(sum(np.count_nonzero(getattr(self.weights, k) * s < 0) for k, s in signs.items()))
        self.metrics.update(m)
        return m


def init_weights(model: CircuitModel, config: FitConfig, mask: CircuitWeights | None = None) -> CircuitWeights:
    """Initial synapses: ``sign · init · exp(jitter·N(0,1))`` inside the mask, 0 outside.

    ``sign`` is the pathway's, or ±1 at random when ``config.random_signs``.
    ``mask`` holds booleans (or 0/1) per pathway; by default every synapse of
    the model exists (none on ``bg`` without a skip path).
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    out = {}
    for k, shape in model.shapes.items():
        mag = config.init * np.exp(config.init_jitter * rng.standard_normal(shape))
        m = np.ones(shape, bool) if mask is None else np.asarray(getattr(mask, k)).astype(bool)
        if m.shape != shape:
            raise ValueError(f"mask {k!r} has shape {m.shape}; the model needs {shape}")
        if k == "bg" and not model.skip:
            m = np.zeros(shape, bool)
        sign = rng.choice([-1.0, 1.0], size=shape) if config.random_signs else model.signs[k]
        out[k] = np.where(m, sign * mag, 0.0)
    return CircuitWeights(**out)


def _check_xy(X, y, model: CircuitModel, what: str):
    X = np.asarray(X)
    A, F = model.geometry.n_amacrine, model.n_types * model.geometry.pool**2
    if X.ndim != 3 or X.shape[1:] != (A, F):
        raise ValueError(f"{what} features have shape {X.shape}; the model needs (N, {A}, {F}) (see block_features)")
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(y) != X.shape[0]:
        raise ValueError(f"{what} has {X.shape[0]} stimuli but {len(y)} responses; they must match")
    check_finite(f"{what} features X", X)
    check_finite(f"{what} responses y", y)
    return np.ascontiguousarray(X, dtype=np.float32), y


def fit_circuit(X, y, model: CircuitModel, config: FitConfig | None = None, *, mask: CircuitWeights | None = None,
                init: CircuitWeights | None = None, X_val=None, y_val=None) -> FitResult:
    """Fit the synapses of ``model`` to responses ``y`` of block features ``X``.

    Parameters
    ----------
    X : ndarray ``(N, A, T·p·p)``
        Block features (:func:`block_features` of :func:`bipolar_features`).
    y : ndarray ``(N,)``
        Responses.
    model : CircuitModel
    config : FitConfig, optional
    mask : CircuitWeights of bool, optional
        Connectivity: synapses outside it are 0 and stay 0.
    init : CircuitWeights, optional
        Start here instead of :func:`init_weights` (its zeros are the mask for Madam).
    X_val, y_val : optional
        Validation set; by default ``val_fraction`` of ``X, y`` is held out.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Shapes that do not fit the model, or NaN/inf in ``X``, ``y``, ``X_val``
        or ``y_val`` (naming the first bad index): one NaN feature would
        otherwise silently wreck the fit.

    Examples
    --------
    >>> from neurolns.sysid import make_dataset
    >>> d = make_dataset("circuit2", n_train=200, n_test=100, seed=0, n_types=3)
    >>> res = fit_circuit(d.X_train, d.y_train, d.model, FitConfig(max_steps=200))
    >>> res.evaluate(d.X_test, d.y_test, d.w_true)["wrong_signs"]
    0
    """
    from neurolns.learning import Adam, LNSMadam, Madam

    config = config or FitConfig()
    X, y = _check_xy(X, y, model, "training set")
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2]))
    if X_val is None:
        n_val = max(1, int(round(config.val_fraction * len(y)))) if len(y) > 1 else 0
        perm = rng.permutation(len(y))
        vi, ti = perm[:n_val], perm[n_val:]
        X_val, y_val, X, y = X[vi], y[vi], X[ti], y[ti]
    else:
        X_val, y_val = _check_xy(X_val, y_val, model, "validation set")
    if len(y) == 0:
        raise ValueError("no training samples left after the validation split; allowed: at least 2 samples")

    w0 = init_weights(model, config, mask) if init is None else init.check(model)
    signs = [model.signs["bg"], model.signs["ba"], model.signs["ag"]]
    params = list(_internal(w0, model))
    live = [p != 0 for p in params]  # the mask: absent synapses stay absent for every method
    method, lam = config.method, config.l1
    if method is FitMethod.MADAM:
        opt = Madam(params, lr=config.learning_rate, p_scale=config.p_scale)
    elif method is FitMethod.LNS_MADAM:
        from neurolns.lns import decode_codes, encode_codes

        fmt = LNS_UPDATE_FORMAT
        params = [np.ascontiguousarray(encode_codes(p, fmt, 1.0)) for p in params]
        # |c| -> value, decoded once by the library (decoding every step would rebuild it)
        magnitude = decode_codes(np.arange(fmt.max_code + 1, dtype=fmt.code_dtype), fmt, 1.0)
        opt = LNSMadam(params, fmt=fmt, lr=config.learning_rate, p_scale=config.p_scale)
    elif method is FitMethod.ABS_ADAM:
        params = [np.abs(p) for p in params]
        opt = Adam(params, lr=config.learning_rate)
    else:
        opt = Adam(params, lr=config.learning_rate)
    offset = np.array([model.output_offset])
    opt_off = Adam([offset], lr=config.lr_offset) if config.learn_offset else None

    def synapses():
        if method is FitMethod.ABS_ADAM:
            return [s * np.abs(p) for s, p in zip(signs, params)]
        if method is FitMethod.LNS_MADAM:
            return [np.sign(c) * magnitude[np.abs(c)] for c in params]
        return params

    def objective(Xs, ys):
        w = synapses()
        r = _forward(Xs, w, model, float(offset[0]))[0] - ys
        return 0.5 * float(np.mean(r * r)) + lam * sum(float(np.abs(p).sum()) for p in w)

    best = (objective(X_val, y_val), [p.copy() for p in synapses()], float(offset[0]), 0)
    hist = {"step": [0], "train_loss": [objective(X, y)], "val_loss": [best[0]]}
    bs = min(config.batch_size, len(y))
    order, pos, since, run_loss = rng.permutation(len(y)), 0, 0, 0.0
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.max_steps, desc=f"fit {method.value}", leave=False)
    step = 0
    for step in range(1, config.max_steps + 1):
        if pos + bs > len(y):
            order, pos = rng.permutation(len(y)), 0
        idx = order[pos : pos + bs]
        pos += bs
        Xb, yb = X[idx], y[idx]
        w = synapses()
        yh, cache = _forward(Xb, w, model, float(offset[0]))
        r = yh - yb
        run_loss += 0.5 * float(np.mean(r * r))
        gw, d_off = _backward(Xb, w, model, cache, r / len(r))
        if method is FitMethod.ABS_ADAM:  # chain rule through w = s·|v|
            grads = [(g * s + lam) * np.sign(p) for g, s, p in zip(gw, signs, params)]
        else:
            grads = [g + lam * np.sign(p) for g, p in zip(gw, params)]
        grads = [np.where(m, g, 0.0) for g, m in zip(grads, live)]  # (sign(c) = sign(w) for codes)
        opt.step(grads)
        if opt_off is not None:
            opt_off.step([np.array([d_off])])
        if bar is not None:
            bar.update(1)
        if step % config.eval_every == 0 or step == config.max_steps:
            val = objective(X_val, y_val)
            hist["step"].append(step)
            hist["train_loss"].append(run_loss / ((step - 1) % config.eval_every + 1))
            hist["val_loss"].append(val)
            run_loss = 0.0
            if val < best[0]:
                best, since = (val, [p.copy() for p in synapses()], float(offset[0]), step), 0
            else:
                since += 1
                if since >= config.patience:
                    break
    if bar is not None:
        bar.close()
    return FitResult(weights=_external(best[1], model), offset=best[2], model=model, config=config, history=hist,
                     steps=step, best_step=best[3])
