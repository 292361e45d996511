"""Instruments that observe training: sharpness, preconditioned sharpness, normalised margins, a tracker.

Every instrument leaves what it measures as it found it: no parameter,
gradient (``.grad``) or optimizer state is written, the model's train/eval
mode is restored, and torch's global random number generators are untouched
(Lanczos draws its start vector from a private ``torch.Generator``). The
model is measured in eval mode: the loss is then a deterministic function of
the parameters (dropout off), which is what a Hessian needs.

* :func:`hvp` — a Hessian–vector product of the loss on one or several batches;
* :func:`lanczos` — the top-``k`` eigenvalues of a symmetric operator given as a matvec;
* :func:`sharpness` — ``λ_max`` of the training-loss Hessian (Cohen et al. 2021);
* :func:`preconditioned_sharpness` with :func:`adam_preconditioner` and
  :func:`madam_preconditioner` — ``λ_max(P⁻¹H)`` (Cohen et al. 2022);
* :func:`stability_threshold` — the value each of those settles at (2/η, 38/η, ...);
* :func:`normalised_margin`, :func:`weight_norms` — Bernstein's normalised margin;
* :class:`Tracker` — records these every N steps into a history.

Which Hessian, for LNS layers
-----------------------------
A converted model (:func:`neurolns.torch.convert`) computes its forward pass
with quantized weights ``Q(w)`` and optionally quantized activations; the
quantizers pass gradients straight through (``dQ/dw = I``). Differentiating
the straight-through gradient once more gives ``∇²L(Q(w))``: the Hessian of
the float network's loss *at the quantized weights*, with respect to those
weights — equal to the Hessian with respect to the float master weights
through the straight-through quantizer. It is not the Hessian of the
quantized forward as a function of ``w``, which is zero almost everywhere
(``Q`` is piecewise constant). Activation quantizers are straight-through as
well, so their values enter and their derivative counts as one. A layer's
``grad_format`` rounds the backward signal, a function with no derivative; it
is switched off while the Hessian is taken (the forward pass, which
``quantize_grad`` leaves unchanged, is the same) and restored afterwards.

References
----------
Cohen, Kaur, Li, Kolter, Talwalkar, "Gradient descent on neural networks
typically occurs at the edge of stability", ICLR 2021. Cohen et al.,
"Adaptive gradient methods at the edge of stability", arXiv 2207.14484 (2022).
Kaur, Cohen, Lipton, "On the maximum Hessian eigenvalue and generalization",
ICBINB workshop 2022. Bernstein, "max-margin neural nets as Bayes point
machines" (the normalised margin). Lanczos, J. Res. Nat. Bur. Standards 45 (1950).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from neurolns.formats import _check_int_at_least, _StrEnum

__all__ = [
    "Norm",
    "HVPBackend",
    "Quantity",
    "hvp",
    "lanczos",
    "sharpness",
    "adam_preconditioner",
    "madam_preconditioner",
    "preconditioned_sharpness",
    "stability_threshold",
    "weight_norms",
    "normalised_margin",
    "Tracker",
]


class Norm(_StrEnum):
    """Matrix norm of each layer's weight in the normalised margin."""

    FROBENIUS = "frobenius"
    SPECTRAL = "spectral"


class HVPBackend(_StrEnum):
    """How Hessian–vector products are taken.

    ``"func"``: ``torch.func.grad`` of ``∇L·v`` on a ``functional_call``,
    recomputed for every product; ``"autograd"``: reverse-over-reverse (double
    backward) on a graph built once and reused for every product — the path
    for models with custom autograd functions (the LNS quantizers);
    ``"auto"``: ``"autograd"`` (about 3× faster per product on a small MLP,
    since the gradient graph is built once for the whole Lanczos run).
    """

    AUTO = "auto"
    FUNC = "func"
    AUTOGRAD = "autograd"


# -- helpers --------------------------------------------------------------------------------------------------


def _batches(data):
    """``(x, y)`` or a sequence of ``(x, y)`` → list of ``(x, y)``."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return [data]
    out = list(data)
    if not out or not all(isinstance(b, (tuple, list)) and len(b) == 2 for b in out):
        raise TypeError("data must be an (x, y) pair of tensors or a non-empty sequence of (x, y) pairs")
    return [tuple(b) for b in out]


def _params(model: nn.Module, params):
    if params is None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    else:
        ids = {id(p) for p in params}
        named = [(n, p) for n, p in model.named_parameters() if id(p) in ids]
        if len(named) != len(ids):
            raise ValueError("params must be parameters of model")
    if not named:
        raise ValueError("the model has no parameters that require gradients")
    return named


@contextmanager
def _observing(model: nn.Module):
    """Eval mode, grad quantizers off, global RNG forked; everything restored on exit."""
    from neurolns.torch.modules import _LNSMixin

    modes = {m: m.training for m in model.modules()}
    grad_fmts = {m: m.grad_format for m in model.modules() if isinstance(m, _LNSMixin)}
    devices = sorted({p.device.index for p in model.parameters() if p.device.type == "cuda"})
    try:
        model.eval()
        for m in grad_fmts:
            m.grad_format = None
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            yield
    finally:
        for m, f in grad_fmts.items():
            m.grad_format = f
        for m, t in modes.items():
            m.training = t


def _flat(ts) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _split(v: torch.Tensor, like) -> list[torch.Tensor]:
    out, i = [], 0
    for p in like:
        out.append(v[i:i + p.numel()].view(p.shape).to(p.dtype))
        i += p.numel()
    return out


def _hvp_operator(model, loss_fn, data, params, backend):
    """A function ``v (flat) -> H v (flat, float64)`` for the loss averaged over all examples of ``data``.

    Must be called inside :func:`_observing`."""
    batches = _batches(data)
    named = _params(model, params)
    ps = [p for _, p in named]
    total = sum(len(x) for x, _ in batches)
    weights = [len(x) / total for x, _ in batches]
    backend = HVPBackend(backend)
    if backend is HVPBackend.AUTO:
        backend = HVPBackend.AUTOGRAD
    if backend is HVPBackend.AUTOGRAD:
        graphs = []
        for (x, y), w in zip(batches, weights):
            loss = loss_fn(model(x), y) * w
            graphs.append(torch.autograd.grad(loss, ps, create_graph=True))

        def op(v):
            vs = _split(v, ps)
            acc = None
            for i, g in enumerate(graphs):
                # a loss that is linear in some parameter leaves no graph behind its gradient: zero there
                h = torch.autograd.grad(g, ps, grad_outputs=vs, retain_graph=True, allow_unused=True)
                h = _flat([torch.zeros_like(p) if hi is None else hi for hi, p in zip(h, ps)]).double()
                acc = h if acc is None else acc + h
            return acc

        return op, ps
    from torch.func import functional_call, grad

    names = [n for n, _ in named]
    rest = {n: t for n, t in list(model.named_parameters()) + list(model.named_buffers()) if n not in set(names)}
    primals = {n: p.detach() for n, p in named}

    def op(v):
        tangents = dict(zip(names, _split(v, ps)))
        acc = None
        for (x, y), w in zip(batches, weights):
            f = lambda q: loss_fn(functional_call(model, {**rest, **q}, (x,)), y) * w  # noqa: E731
            # reverse over reverse, H v = ∇(∇L·v): torch 2.13's forward mode (jvp of grad) fails on
            # losses such as mse_loss with a constant target ("ZeroTensors are immutable")
            gv = lambda q: sum((gi * tangents[n]).sum() for n, gi in grad(f)(q).items())  # noqa: E731
            h = grad(gv)(primals)
            h = _flat([h[n] for n in names]).double()
            acc = h if acc is None else acc + h
        return acc

    return op, ps


# -- public ---------------------------------------------------------------------------------------------------


def hvp(model: nn.Module, loss_fn, data, vector, *, params=None, backend: HVPBackend | str = "auto") -> list:
    """Hessian–vector product ``H v`` of the mean loss over ``data`` with respect to the parameters.

    ``H = ∇²_θ L(θ)``, ``L = (1/n) Σ_b n_b · loss_fn(model(x_b), y_b)`` (``loss_fn`` a mean over its
    batch), taken in eval mode; see the module docstring for LNS layers.

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable
        ``loss_fn(output, target) -> scalar`` (a batch mean, e.g. ``nn.functional.mse_loss``).
    data : (x, y) or sequence of (x, y)
        The batch, or the batches that make up the full set.
    vector : sequence of tensors
        One tensor per parameter in ``params`` (shapes alike).
    params : sequence of parameters, optional
        A subset of ``model``'s parameters (default: all that require gradients).
    backend : {"auto", "func", "autograd"}
        See :class:`HVPBackend`.

    Returns
    -------
    list of tensors
        ``H v``, one per parameter, in the parameters' dtype.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> m = nn.Linear(2, 1, bias=False); _ = m.weight.data.fill_(0.0)
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]]); y = torch.zeros(2, 1)
    >>> [t.tolist() for t in hvp(m, nn.functional.mse_loss, (x, y), [torch.tensor([[1.0, 1.0]])])]
    [[[1.0, 4.0]]]
    """
    with _observing(model):
        op, ps = _hvp_operator(model, loss_fn, data, params, backend)
        if len(vector) != len(ps):
            raise ValueError(f"vector has {len(vector)} tensors; the parameters are {len(ps)}")
        for v, p in zip(vector, ps):
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(f"vector shape {tuple(v.shape)} differs from parameter shape {tuple(p.shape)}")
        v = _flat([v.to(device=p.device, dtype=torch.float64) for v, p in zip(vector, ps)])
        return [t.detach() for t in _split(op(v), ps)]


def lanczos(matvec, n: int, *, k: int = 1, iters: int = 30, tol: float = 1e-6, seed: int = 0,
            device="cpu", return_vectors: bool = False):
    """The ``k`` largest (algebraic) eigenvalues of a symmetric operator, by Lanczos with full
    re-orthogonalisation.

    Builds the Krylov basis ``q_1 … q_m`` of ``A`` from a random unit start vector,
    the tridiagonal ``T_m = Qᵀ A Q`` and its eigenvalues (Ritz values), and stops
    once the residual bound ``|β_m s_{m,i}|`` of each of the top ``k`` Ritz pairs
    is below ``tol·|θ_i|`` or ``m = min(iters, n)`` (then ``T_n`` is exact). When
    the Krylov space closes (``β_m ≈ 0``: a multiple of the identity, or an
    eigenvalue of multiplicity > 1, which one start vector sees once) it goes on
    from a fresh random direction orthogonal to the basis. The basis is kept in
    float64.

    Parameters
    ----------
    matvec : callable
        ``v -> A v`` on flat float64 tensors of length ``n``.
    n : int
        Dimension.
    k, iters : int
        Eigenvalues wanted (``1 <= k <= n``) and the Krylov dimension limit (``>= k``).
    tol : float
        Relative residual at which to stop (> 0).
    seed : int
        Seed of the start vector (a private generator; global RNG untouched).
    device
        Device of the basis vectors.
    return_vectors : bool
        Also return the Ritz vectors (``n × k``).

    Returns
    -------
    torch.Tensor
        The ``k`` eigenvalues, largest first (float64), and the vectors if asked.

    Examples
    --------
    >>> import torch
    >>> a = torch.diag(torch.tensor([3.0, -5.0, 1.0, 2.0], dtype=torch.float64))
    >>> [round(e, 9) for e in lanczos(lambda v: a @ v, 4, k=2).tolist()]
    [3.0, 2.0]
    """
    n = _check_int_at_least("n", n, 1)
    k = _check_int_at_least("k", k, 1)
    iters = _check_int_at_least("iters", iters, 1)
    if k > n or iters < k:
        raise ValueError(f"k={k} is out of range; allowed: 1 <= k <= min(n={n}, iters={iters})")
    if not (isinstance(tol, (int, float)) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol={tol!r} is out of range; allowed: a finite float > 0")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    q = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
    q /= torch.linalg.vector_norm(q)
    basis = torch.empty((min(iters, n), n), dtype=torch.float64, device=device)
    alphas, betas = [], []
    m = min(iters, n)
    for j in range(m):
        basis[j] = q
        w = matvec(q).to(torch.float64)
        a = float(w @ q)
        alphas.append(a)
        for _ in range(2):  # full re-orthogonalisation, twice is enough (Parlett)
            w -= basis[:j + 1].T @ (basis[:j + 1] @ w)
        b = float(torch.linalg.vector_norm(w))
        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if j:
            off = torch.tensor(betas, dtype=torch.float64)
            t += torch.diag(off, 1) + torch.diag(off, -1)
        theta, s = torch.linalg.eigh(t)
        invariant = b <= 1e-14 * max(1.0, float(theta.abs().max()))
        if j + 1 >= k:
            top = theta[-k:]
            resid = (b * s[-1, -k:]).abs()
            if j + 1 == m or (not invariant and bool((resid <= tol * top.abs().clamp_min(1e-30)).all())):
                break
        if invariant:
            # the Krylov space is invariant (e.g. a multiple of the identity, or a repeated eigenvalue that
            # one start vector sees once): go on from a fresh random direction orthogonal to it (T's
            # off-diagonal entry is then 0), so that multiplicities are found too
            w = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
            for _ in range(2):
                w -= basis[:j + 1].T @ (basis[:j + 1] @ w)
            b_next = 0.0
            w /= torch.linalg.vector_norm(w)
        else:
            b_next = b
            w = w / b
        betas.append(b_next)
        q = w
    vals = theta[-k:].flip(0)
    if return_vectors:
        vecs = basis[:len(alphas)].T @ s[:, -k:].flip(1).to(device)
        return vals, vecs
    return vals


def sharpness(model: nn.Module, loss_fn, data, *, k: int = 1, params=None, iters: int = 30, tol: float = 1e-6,
              seed: int = 0, backend: HVPBackend | str = "auto"):
    """Sharpness: the largest eigenvalue(s) of the Hessian of the training loss.

    ``λ_max(∇²L(θ))`` with ``L`` the mean of ``loss_fn`` over ``data`` (Cohen et
    al. 2021: under full-batch gradient descent with step η it rises until it
    reaches ``2/η`` and hovers there), by :func:`lanczos` on :func:`hvp`. For
    models with LNS layers it is the Hessian at the quantized weights (module
    docstring).

    Parameters
    ----------
    model, loss_fn, data, params, backend
        As :func:`hvp`.
    k : int
        Number of top eigenvalues.
    iters, tol, seed
        As :func:`lanczos`.

    Returns
    -------
    float or torch.Tensor
        ``λ_max`` (a float) when ``k = 1``, else the ``k`` largest eigenvalues, largest first.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> m = nn.Linear(2, 1, bias=False)
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 3.0]]); y = torch.zeros(2, 1)
    >>> round(sharpness(m, nn.functional.mse_loss, (x, y)), 6)   # H = 2·XᵀX/2 = diag(1, 9)
    9.0
    """
    with _observing(model):
        op, ps = _hvp_operator(model, loss_fn, data, params, backend)
        n = sum(p.numel() for p in ps)
        vals = lanczos(op, n, k=k, iters=max(iters, k), tol=tol, seed=seed, device=ps[0].device)
    return float(vals[0]) if k == 1 else vals.cpu()


def _stepped(optimizer, params, key: str):
    """``(group, parameter, state)`` of the optimizer's parameters (those in ``params`` if given), in group
    order; ``ValueError`` if one has no ``key`` in its state yet."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if params is not None and not any(p is q for q in params):
                continue
            st = optimizer.state.get(p)
            if not st or key not in st:
                raise ValueError(f"the optimizer has not taken a step for this parameter (no {key})")
            yield group, p, st


def adam_preconditioner(optimizer: torch.optim.Optimizer, params=None) -> list:
    """Adam's diagonal preconditioner ``P = (1 − β₁ᵗ)·(sqrt(v_t/(1 − β₂ᵗ)) + ε)`` (Cohen et al. 2022, eq. 2).

    With it Adam's step is ``θ ← θ − η P⁻¹ m_t`` (``m_t`` the un-corrected first
    moment), a preconditioned heavy-ball step whose stability threshold is
    ``λ_max(P⁻¹H) < (2 + 2β₁)/((1 − β₁)η)`` (38/η at β₁ = 0.9). Reads
    ``exp_avg_sq`` and ``step`` of ``torch.optim.Adam`` / ``AdamW``; writes nothing.

    Parameters
    ----------
    optimizer : torch.optim.Adam or torch.optim.AdamW
    params : sequence of parameters, optional
        Default: every parameter of the optimizer, in group order.

    Returns
    -------
    list of tensors
        ``P`` per parameter (float64).

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(2)); opt = torch.optim.Adam([w], lr=0.1, eps=0.0)
    >>> w.grad = torch.tensor([2.0, -4.0]); opt.step()
    >>> [round(p, 6) for p in adam_preconditioner(opt)[0].tolist()]   # (1 − 0.9)·|g| after one step
    [0.2, 0.4]
    """
    out = []
    for group, _, st in _stepped(optimizer, params, "exp_avg_sq"):
        b1, b2 = group["betas"]
        t = float(st["step"])
        v = st["exp_avg_sq"].detach().to(torch.float64)
        out.append((1 - b1**t) * (torch.sqrt(v / (1 - b2**t)) + group["eps"]))
    return out


def madam_preconditioner(optimizer: torch.optim.Optimizer, params=None) -> list:
    """The preconditioner of Madam / LNS-Madam linearised: ``P = sqrt(v̂)/(c·|w|)``.

    Madam's step ``w ← w·exp(−η ĝ sign w)``, ``ĝ = g/sqrt(v̂)``, is to first order
    ``w ← w − η·|w|/sqrt(v̂)·g``: gradient descent preconditioned by
    ``P = sqrt(v̂)/|w|`` without momentum. On a quadratic with ``v̂`` and ``|w|``
    frozen (they move slowly: β = 0.999, relative steps of η) the iteration is
    stable while ``λ_max(P⁻¹H) < 2/η``. LNS-Madam steps ``η`` octaves,
    ``w ← w·2^(−η rint(ĝ) sign w)``, so ``c = ln 2`` there (``c = 1`` for Madam)
    and the same threshold ``2/η`` holds for the linearised step; its rounding of
    ``ĝ`` and the grid make it a dead-zone rule that the linearisation only
    approximates. Entries with ``w = 0`` or ``v̂ = 0`` (which never move) get ``P = inf``.
    The ``g_bound`` clamp and the ``p_scale`` cap are ignored.

    Parameters
    ----------
    optimizer : neurolns.torch.Madam or neurolns.torch.LNSMadam
    params : sequence of parameters, optional

    Returns
    -------
    list of tensors
        ``P`` per parameter (float64, ``inf`` where the weight cannot move).

    Examples
    --------
    >>> import torch
    >>> from neurolns.torch import Madam
    >>> w = torch.nn.Parameter(torch.tensor([0.5, 0.0])); opt = Madam([w], lr=0.01, beta=0.0)
    >>> w.grad = torch.tensor([2.0, 1.0]); opt.step()
    >>> [round(p, 5) for p in madam_preconditioner(opt)[0].tolist()]   # 2/(0.5·e^-0.01); inf at w = 0
    [4.0402, inf]
    """
    from neurolns.torch.optim import LNSMadam, Madam

    if not isinstance(optimizer, (Madam, LNSMadam)):
        raise TypeError(f"optimizer must be neurolns.torch.Madam or LNSMadam, got {type(optimizer).__name__}")
    c = math.log(2.0) if isinstance(optimizer, LNSMadam) else 1.0
    out = []
    for group, p, st in _stepped(optimizer, params, "v"):
        beta = group["beta"]
        vhat = st["v"].detach().to(torch.float64) / ((1 - beta ** st["step"]) if beta > 0 else 1.0)
        w = p.detach().to(torch.float64).abs()
        pinv = c * w / torch.sqrt(vhat)
        out.append(torch.where((w > 0) & (vhat > 0), 1.0 / pinv, torch.full_like(w, math.inf)))
    return out


def preconditioned_sharpness(model: nn.Module, loss_fn, data, preconditioner, *, k: int = 1, params=None,
                             iters: int = 30, tol: float = 1e-6, seed: int = 0,
                             backend: HVPBackend | str = "auto"):
    """Preconditioned sharpness ``λ_max(P⁻¹H)`` for a diagonal preconditioner ``P > 0``.

    ``P⁻¹H`` is similar to the symmetric ``P^(-1/2) H P^(-1/2)``, whose top
    eigenvalues :func:`lanczos` finds (Cohen et al. 2022: under Adam it settles
    at ``38/η``). ``P = inf`` entries (frozen coordinates) contribute zero.

    Parameters
    ----------
    model, loss_fn, data, params, backend, k, iters, tol, seed
        As :func:`sharpness`.
    preconditioner : sequence of tensors
        ``P`` per parameter (e.g. :func:`adam_preconditioner`), positive.

    Returns
    -------
    float or torch.Tensor

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(2, 1, bias=False)            # H = diag(1, 9); P⁻¹H = diag(2, 0.1)
    >>> data = (torch.tensor([[1.0, 0.0], [0.0, 3.0]]), torch.zeros(2, 1))
    >>> round(preconditioned_sharpness(lin, torch.nn.functional.mse_loss, data, [torch.tensor([[0.5, 90.0]])]), 6)
    2.0
    """
    with _observing(model):
        op, ps = _hvp_operator(model, loss_fn, data, params, backend)
        if len(preconditioner) != len(ps):
            raise ValueError(f"preconditioner has {len(preconditioner)} tensors; the parameters are {len(ps)}")
        d = []
        for pr, p in zip(preconditioner, ps):
            pr = torch.as_tensor(pr, dtype=torch.float64, device=p.device)
            if tuple(pr.shape) != tuple(p.shape):
                raise ValueError(f"preconditioner shape {tuple(pr.shape)} differs from parameter {tuple(p.shape)}")
            if bool((pr <= 0).any()) or bool(pr.isnan().any()):
                raise ValueError("preconditioner entries must be > 0 (inf allowed for frozen coordinates)")
            d.append(pr.reshape(-1).rsqrt())
        d = torch.cat(d)
        vals = lanczos(lambda v: d * op(d * v), d.numel(), k=k, iters=max(iters, k), tol=tol, seed=seed,
                       device=d.device)
    return float(vals[0]) if k == 1 else vals.cpu()


def stability_threshold(optimizer: torch.optim.Optimizer) -> float | None:
    """The (preconditioned) sharpness at which the optimizer's linearised step turns unstable.

    ``2/η`` for SGD without momentum, ``(2 + 2β)/η`` with heavy-ball momentum β
    (``(2 + 2β)/((1 − β)η)`` with dampening ``1 − β``, Adam's form: 38/η at
    β₁ = 0.9, compared with :func:`adam_preconditioner`'s ``λ_max(P⁻¹H)``),
    ``2/η`` for Madam and LNS-Madam (against :func:`madam_preconditioner`), and
    ``None`` for sign rules, whose step has a fixed size whatever the curvature
    (no linear stability threshold). Uses the first parameter group.

    Examples
    --------
    >>> import torch
    >>> w = [torch.nn.Parameter(torch.ones(1))]
    >>> stability_threshold(torch.optim.SGD(w, lr=0.1)), round(stability_threshold(torch.optim.Adam(w, lr=0.1)), 6)
    (20.0, 380.0)
    """
    from neurolns.torch.optim import EFSignSGD, LNSMadam, Madam, Signum, SignSGD

    g = optimizer.param_groups[0]
    if isinstance(optimizer, (SignSGD, Signum, EFSignSGD)):
        return None
    if isinstance(optimizer, LNSMadam):
        lr = g["lr"] if g["lr"] is not None else 1.0 / g["update_gamma"]
        return 2.0 / lr
    if isinstance(optimizer, Madam):
        return 2.0 / g["lr"]
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        b1 = g["betas"][0]
        return (2 + 2 * b1) / ((1 - b1) * g["lr"])
    if isinstance(optimizer, torch.optim.SGD):
        b = g.get("momentum", 0.0)
        damp = g.get("dampening", 0.0)
        return (2 + 2 * b) / ((1 - damp) * g["lr"])
    raise TypeError(f"no stability threshold known for {type(optimizer).__name__}")


def _layers(model: nn.Module):
    """The modules with a matrix or kernel weight, in module order."""
    return [m for m in model.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)
            and m.weight.dim() >= 2]


def _forward_weight(m: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: the quantized one for LNS layers."""
    from neurolns.torch.modules import _LNSMixin

    if isinstance(m, _LNSMixin):
        return m._fwd_param("weight").detach()
    return m.weight.detach()


def weight_norms(model: nn.Module, norm: Norm | str = "frobenius") -> list[float]:
    """``‖W_k‖`` of every layer with a matrix or kernel weight (Linear, Conv, their LNS layers).

    ``"frobenius"``: ``sqrt(Σ w²)``; ``"spectral"``: the largest singular value
    of the weight reshaped to ``(out, in·kernel)`` (for a convolution this is the
    norm of its kernel matrix, not of the convolution as an operator on the
    whole signal). LNS layers contribute their forward (quantized) weights.
    Biases are not included.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = m[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]])); _ = m[2].weight.fill_(1.0)
    >>> [round(v, 6) for v in weight_norms(m) + weight_norms(m, "spectral")]
    [5.0, 1.414214, 4.0, 1.414214]
    """
    norm = Norm(norm)
    out = []
    with torch.no_grad():
        for m in _layers(model):
            w = _forward_weight(m).reshape(m.weight.shape[0], -1)
            if norm is Norm.FROBENIUS:
                out.append(float(torch.linalg.matrix_norm(w, ord="fro")))
            else:
                out.append(float(torch.linalg.matrix_norm(w.double(), ord=2)))
    return out


def normalised_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: Norm | str = "frobenius"):
    """Normalised margin per example, ``(f_y(x) − max_{j≠y} f_j(x)) / (Πₖ‖W_k‖ · ‖x‖)``.

    After Bernstein's "max-margin neural nets as Bayes point machines": for a
    bias-free ReLU network ``f`` is homogeneous of degree one in each ``W_k``
    and in ``x``, so the ratio is invariant to rescaling any layer or the input,
    and it is positive exactly on the examples classified correctly. ``‖x‖`` is
    the Euclidean norm of the flattened example; ``‖W_k‖`` as in
    :func:`weight_norms` (``norm`` chooses Frobenius or spectral; the spectral
    product bounds the network's Lipschitz constant, so with it the margin is at
    most 2 for a 1-Lipschitz activation, up to bias terms). The logits are taken
    in eval mode.

    Returns
    -------
    torch.Tensor
        One margin per example (float64).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> m = nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = m.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> x = torch.tensor([[3.0, 4.0]])
    >>> [round(v, 6) for v in normalised_margin(m, x, torch.tensor([1])).tolist()]   # (4 − 3) / (sqrt 2 · 5)
    [0.141421]
    """
    norm = Norm(norm)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples and y {y.shape[0]}")
    with _observing(model), torch.no_grad():
        f = model(x).double()
    if f.dim() != 2 or f.shape[1] < 2:
        raise ValueError(f"model output must be (n, classes >= 2), got {tuple(f.shape)}")
    y = y.to(f.device).long()
    fy = f.gather(1, y[:, None]).squeeze(1)
    other = f.scatter(1, y[:, None], -math.inf).amax(1)
    prod = math.prod(weight_norms(model, norm))
    xn = torch.linalg.vector_norm(x.reshape(len(x), -1).double(), dim=1).to(f.device)
    return (fy - other) / (prod * xn)


class Quantity(_StrEnum):
    """What a :class:`Tracker` records.

    ``sharpness`` (with ``threshold``: :func:`stability_threshold`, e.g. 2/η),
    ``preconditioned`` (``λ_max(P⁻¹H)`` for Adam or Madam/LNS-Madam, with the
    threshold), ``margin`` (min and median normalised margin), ``weight_norm``
    (Frobenius norm of all parameters), ``update_size`` (``‖Δθ‖/‖θ‖`` of the
    recorded step), ``codes`` (LNS-Madam: fraction of codes that moved in the
    recorded step, fraction at the code cap, fraction at the floor code 1).
    """

    SHARPNESS = "sharpness"
    PRECONDITIONED = "preconditioned"
    MARGIN = "margin"
    WEIGHT_NORM = "weight_norm"
    UPDATE_SIZE = "update_size"
    CODES = "codes"


class Tracker:
    """Record training-dynamics quantities every ``every`` steps into :attr:`history`.

    Call :meth:`before_step` right before ``optimizer.step()`` and
    :meth:`after_step` right after it; on steps ``t`` with ``t % every == 0``
    the first keeps a copy of the parameters (and LNS-Madam codes) and the
    second appends a row ``{"step", "lr", <quantities>}`` (plus any keyword
    given to it, e.g. ``loss=``). The quantities are taken after the step.

    Parameters
    ----------
    quantities : sequence of str
        Members of :class:`Quantity`.
    every : int
        Record period in steps (>= 1).
    loss_fn, data
        The loss and the (full-batch) data for the Hessian quantities.
    margin_data : (x, y), optional
        Examples for the margin (default: ``data`` when it is one pair).
    norm : {"frobenius", "spectral"}
        Norm for the margin.
    sharpness_kwargs : dict, optional
        Passed to :func:`sharpness` (``iters``, ``tol``, ``k``...).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0); m = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    >>> x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    >>> opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> tr = Tracker(["sharpness", "margin", "update_size"], every=5, loss_fn=nn.functional.cross_entropy,
    ...              data=(x, y))
    >>> for t in range(10):
    ...     opt.zero_grad(); loss = nn.functional.cross_entropy(m(x), y); loss.backward()
    ...     tr.before_step(t, m, opt); opt.step(); _ = tr.after_step(t, m, opt, loss=loss.item())
    >>> [r["step"] for r in tr.history], sorted(tr.history[0])[:4]
    ([0, 5], ['loss', 'lr', 'margin_median', 'margin_min'])
    """

    def __init__(self, quantities, *, every: int = 1, loss_fn=None, data=None, margin_data=None,
                 norm: Norm | str = "frobenius", sharpness_kwargs: dict | None = None):
        self.quantities = [Quantity(q) for q in quantities]
        self.every = _check_int_at_least("every", every, 1)
        needs_hessian = {Quantity.SHARPNESS, Quantity.PRECONDITIONED} & set(self.quantities)
        if needs_hessian and (loss_fn is None or data is None):
            raise ValueError(f"{sorted(q.value for q in needs_hessian)} need loss_fn and data")
        if margin_data is None and data is not None and isinstance(data, tuple) and len(data) == 2:
            margin_data = data
        if Quantity.MARGIN in self.quantities and margin_data is None:
            raise ValueError("margin needs margin_data (or data as one (x, y) pair)")
        self.loss_fn, self.data, self.margin_data = loss_fn, data, margin_data
        self.norm = Norm(norm)
        self.sharpness_kwargs = dict(sharpness_kwargs or {})
        self.history: list[dict] = []
        self._before = None

    def due(self, step: int) -> bool:
        """Whether ``step`` is recorded."""
        return step % self.every == 0

    @torch.no_grad()
    def before_step(self, step: int, model: nn.Module, optimizer=None) -> None:
        """Keep what the recorded step's update is measured against (only on due steps)."""
        if not self.due(step):
            return
        params = [p.detach().clone() for p in model.parameters()]
        codes = None
        if Quantity.CODES in self.quantities and optimizer is not None:
            codes = {id(p): st["codes"].clone() for p, st in optimizer.state.items() if "codes" in st}
        self._before = (step, params, codes)

    @torch.no_grad()
    def after_step(self, step: int, model: nn.Module, optimizer=None, **extra) -> dict | None:
        """Measure and append a row (on due steps); returns it, else ``None``."""
        if not self.due(step):
            return None
        row = {"step": int(step)}
        if optimizer is not None:
            lr = optimizer.param_groups[0].get("lr")
            row["lr"] = None if lr is None else float(lr)
        row.update(extra)
        before = self._before if self._before is not None and self._before[0] == step else None
        self._before = None
        for q in self.quantities:
            row.update(self._measure(q, model, optimizer, before))
        self.history.append(row)
        return row

    def _threshold(self, optimizer):
        try:
            return stability_threshold(optimizer) if optimizer is not None else None
        except TypeError:
            return None

    def _measure(self, q, model, optimizer, before) -> dict:
        if q is Quantity.SHARPNESS:
            with torch.enable_grad():
                s = sharpness(model, self.loss_fn, self.data, **self.sharpness_kwargs)
            out = {"sharpness": s if isinstance(s, float) else s.tolist()}
            from neurolns.torch.optim import LNSMadam, Madam

            if optimizer is not None and not isinstance(optimizer, (Madam, LNSMadam, torch.optim.Adam,
                                                                    torch.optim.AdamW)):
                out["threshold"] = self._threshold(optimizer)
            return out
        if q is Quantity.PRECONDITIONED:
            if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
                pre = adam_preconditioner(optimizer)
            else:
                pre = madam_preconditioner(optimizer)
            with torch.enable_grad():
                s = preconditioned_sharpness(model, self.loss_fn, self.data, pre, **self.sharpness_kwargs)
            return {"preconditioned_sharpness": s if isinstance(s, float) else s.tolist(),
                    "preconditioned_threshold": self._threshold(optimizer)}
        if q is Quantity.MARGIN:
            x, y = self.margin_data
            m = normalised_margin(model, x, y, self.norm)
            return {"margin_min": float(m.min()), "margin_median": float(m.median())}
        if q is Quantity.WEIGHT_NORM:
            return {"weight_norm": float(_flat([p.detach().double() for p in model.parameters()]).norm())}
        if q is Quantity.UPDATE_SIZE:
            if before is None:
                return {"update_size": None}
            now = _flat([p.detach().double() for p in model.parameters()])
            was = _flat([p.double() for p in before[1]])
            return {"update_size": float((now - was).norm() / was.norm().clamp_min(1e-300))}
        # codes: LNS-Madam state
        moved = known = total = top = floor = 0
        for p, st in (optimizer.state.items() if optimizer is not None else ()):
            if "codes" not in st:
                continue
            c = st["codes"].to(torch.int64)
            mag = c.abs()
            nz = mag > 0
            total += int(c.numel())
            top += int((nz & (mag >= st["max_code"])).sum())
            floor += int((nz & (mag == 1)).sum())
            if before is not None and before[2] is not None and id(p) in before[2]:
                moved += int((before[2][id(p)].to(torch.int64) != c).sum())
                known += int(c.numel())
        if total == 0:
            return {"codes_moved": None, "codes_saturated": None, "codes_floor": None}
        # the first step has no codes before it (the optimizer creates them): moved is then unknown
        return {"codes_moved": moved / known if known else None, "codes_saturated": top / total,
                "codes_floor": floor / total}
