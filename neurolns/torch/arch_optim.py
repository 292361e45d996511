"""Architecture-aware optimizers as ``torch.optim.Optimizer`` subclasses.

The rules of :mod:`neurolns.learning.architecture` on tensors of any device,
every hyperparameter in ``defaults`` (so in ``state_dict``):

* :class:`Fromage` (Bernstein et al., NeurIPS 2020): per tensor
  ``w ← (w − η(‖w‖/‖g‖)g)/√(1+η²)``, optional ``‖w‖ ≤ p_bound·‖w₀‖``;
* :class:`Nero` (Liu et al., ICML 2021): per neuron ``v ← βv + (1−β)‖g_r‖²``,
  ``w_r ← w_r − η s g_r/√(v/(1−βᵗ))``, rows re-centred and re-normalised;
* :class:`AGD` (Bernstein et al. 2023): no learning rate,
  ``G = (1/L)Σ s_l‖∇W_l‖_F``, ``η = log((1+√(1+4G))/2)``,
  ``W_l ← W_l − (η/L) s_l ∇W_l/‖∇W_l‖_F``, ``s = √(d_out/d_in)``
  (÷ √kernel size), with :func:`agd_init_`;
* :class:`Dualised` and :class:`Muon` (Bernstein & Newhouse 2024): the
  gradient (or its momentum) orthogonalised by Newton–Schulz and scaled by
  ``√(d_out/d_in)``.

Every optimizer takes ``nonfinite`` (``"skip"``: a step with a NaN or ±inf
gradient is skipped whole and counted in ``skipped_steps``; ``"raise"``), as
the base class defines. Fromage, Nero and AGD compute in float64 and write back in the parameter's
dtype, as the numpy rules do, so float64 parameters follow the simulator's
trajectory to rounding. Newton–Schulz runs in the parameter's dtype (float32
on CPU: its matrix products are the cost).
"""

from __future__ import annotations

import math

import torch

from neurolns.torch.optim import _Base, _real

__all__ = ["Fromage", "Nero", "AGD", "Dualised", "Muon", "agd_init_", "agd_prepare_", "agd_square_loss", "ScaledReLU",
           "newton_schulz_t"]

_NS = {"cubic": (1.5, -0.5, 0.0), "muon": (3.4445, -4.7750, 2.0315)}


def _flag(name, x):
    if not isinstance(x, bool):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__} {x!r}")
    return x


def _check_lr(g):
    g["lr"] = _real("lr", g["lr"], 0.0, math.inf, lo_open=True)
    return g


class Fromage(_Base):
    """Fromage (see :func:`neurolns.learning.architecture.fromage_update`).

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float
        Relative step ``η`` (0.01).
    p_bound : float
        ``‖w‖ ≤ p_bound·‖w at its first step‖`` (``inf``: no cap; the paper suggests 2).

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64)); opt = Fromage([w], lr=0.75)
    >>> w.grad = torch.tensor([0.0, 1.0], dtype=torch.float64); opt.step(); w.data
    tensor([2.4000, 0.2000], dtype=torch.float64)
    """

    def __init__(self, params, lr: float = 0.01, p_bound: float = math.inf, nonfinite: str = "skip"):
        super().__init__(params, dict(lr=lr, p_bound=p_bound, nonfinite=nonfinite))

    @staticmethod
    def _check_group(g):
        _check_lr(g)
        g["p_bound"] = _real("p_bound", g["p_bound"], 0.0, math.inf, lo_open=True, allow_inf=True)
        return g

    def _update(self, group, ps, gs) -> None:
        lr = group["lr"]
        for p, g in zip(ps, gs):
            st = self.state[p]
            w = p.detach().to(torch.float64)
            if not st:
                n = float(torch.linalg.vector_norm(w))
                st["step"] = 0
                st["p_max"] = group["p_bound"] * n if math.isfinite(group["p_bound"]) and n > 0 else math.inf
            st["step"] += 1
            g = g.detach().to(torch.float64)
            wn, gn = float(torch.linalg.vector_norm(w)), float(torch.linalg.vector_norm(g))
            step = g * (lr * (wn / gn)) if (wn > 0.0 and gn > 0.0) else g * lr
            x = (w - step) / math.sqrt(1.0 + lr * lr)
            if math.isfinite(st["p_max"]):
                n = float(torch.linalg.vector_norm(x))
                if n > st["p_max"]:
                    x = x * (st["p_max"] / n)
            p.copy_(x)


def _rows(a: torch.Tensor) -> torch.Tensor:
    return a.reshape(a.shape[0], -1) if a.dim() > 1 else a.reshape(-1, 1)


def _project(x: torch.Tensor) -> torch.Tensor:
    """Rows to zero mean and unit norm (float64 (rows, n)); a constant row becomes 0."""
    x = x - x.mean(dim=1, keepdim=True)
    n = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return torch.where(n > 0, x / torch.where(n > 0, n, 1.0), torch.zeros_like(x))


class Nero(_Base):
    """Nero (see :func:`neurolns.learning.architecture.nero_update`): at a parameter's first
    step, with ``constraints``, a ≥2-D parameter's rows are projected to zero mean and
    unit norm and ``s`` (the mean row norm then; ``mean|b|`` or 0.01 for a vector) is recorded.

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float
        ``η`` (0.01), the step relative to each neuron's norm.
    beta : float
        Per-neuron second-moment decay (0.999).
    constraints : bool
        Re-centre and re-normalise rows (True).

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([[0.6, 0.8]], dtype=torch.float64))
    >>> opt = Nero([w], lr=0.1, constraints=False)
    >>> w.grad = torch.tensor([[1.0, -1.0]], dtype=torch.float64); opt.step(); w.data
    tensor([[0.5293, 0.8707]], dtype=torch.float64)
    """

    def __init__(self, params, lr: float = 0.01, beta: float = 0.999, constraints: bool = True,
                 nonfinite: str = "skip"):
        super().__init__(params, dict(lr=lr, beta=beta, constraints=constraints, nonfinite=nonfinite))

    @staticmethod
    def _check_group(g):
        _check_lr(g)
        g["beta"] = _real("beta", g["beta"], 0.0, 1.0, hi_open=True)
        g["constraints"] = _flag("constraints", g["constraints"])
        return g

    def _update(self, group, ps, gs) -> None:
        beta = group["beta"]
        for p, g in zip(ps, gs):
            if p.dim() == 0:
                raise ValueError("Nero needs tensors with a neuron axis (ndim >= 1); got a scalar parameter")
            st = self.state[p]
            project = group["constraints"] and p.dim() > 1
            x = _rows(p.detach().to(torch.float64))
            if not st:
                if project:
                    x = _project(x)
                s = float(torch.linalg.vector_norm(x, dim=1).mean()) if x.numel() else 0.0
                st["step"] = 0
                st["scale"] = s if s > 0.0 else 0.01
                # in the parameter's dtype: load_state_dict casts state to it, so a resumed run matches
                st["v"] = torch.zeros(x.shape[0] if p.dim() > 1 else p.numel(), dtype=p.dtype, device=p.device)
            st["step"] += 1
            gr = _rows(g.detach().to(torch.float64))
            v = st["v"].reshape(-1).to(torch.float64)
            vn = v * beta + (gr * gr).sum(dim=1) * (1.0 - beta)
            den = torch.sqrt(vn * (1.0 / (1.0 - beta ** st["step"]) if beta > 0 else 1.0))[:, None]
            gh = torch.where(den > 0, gr / torch.where(den > 0, den, 1.0), torch.zeros_like(gr))
            x = x - gh * (group["lr"] * st["scale"])
            if project:
                x = _project(x)
            st["v"].copy_(vn.view(st["v"].shape))
            p.copy_(x.view(p.shape))


def _agd_scale(shape) -> float:
    k = math.prod(shape[2:])
    return math.sqrt(shape[0] / shape[1]) / math.sqrt(k)


@torch.no_grad()
def agd_init_(w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """AGD's initialisation in place: each kernel position a (Haar) orthogonal matrix
    times ``s = √(d_out/d_in)/√(kernel size)``; returns ``w``.

    Examples
    --------
    >>> import torch
    >>> w = torch.empty(6, 3, dtype=torch.float64); _ = agd_init_(w, torch.Generator().manual_seed(0))
    >>> torch.linalg.svdvals(w)              # all √2
    tensor([1.4142, 1.4142, 1.4142], dtype=torch.float64)
    """
    if w.dim() < 2:
        raise ValueError(f"w has shape {tuple(w.shape)}; AGD initialises matrices or kernels (ndim >= 2)")
    m, n = w.shape[0], w.shape[1]
    k = math.prod(w.shape[2:])
    out = torch.empty(m, n, k, dtype=torch.float64)
    for i in range(k):
        a = torch.randn(max(m, n), min(m, n), generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(a)
        q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
        out[:, :, i] = q if m >= n else q.T
    w.copy_((out * _agd_scale(tuple(w.shape))).reshape(w.shape))
    return w


class ScaledReLU(torch.nn.Module):
    """``√2 · max(x, 0)``: the ReLU of the networks AGD is derived for.

    With orthogonal weights of singular value ``s = √(d_out/d_in)``, a ReLU
    halves the mean square of a layer's output; the ``√2`` gives it back, so
    every layer's output has the size the derivation of AGD's step assumes
    (Bernstein et al. 2023, whose fully connected networks use it).

    Examples
    --------
    >>> import torch
    >>> ScaledReLU()(torch.tensor([-1.0, 2.0]))
    tensor([0.0000, 2.8284])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * math.sqrt(2.0)


@torch.no_grad()
def agd_prepare_(net: torch.nn.Module, generator: torch.Generator | None = None) -> torch.nn.Module:
    """Make ``net`` the network AGD is derived for, in place; returns ``net``.

    Every ``Linear`` and ``Conv1d/2d`` loses its bias and is initialised by
    :func:`agd_init_`; every ``nn.ReLU`` becomes :class:`ScaledReLU`. Other
    layers (pooling, reshapes) are kept. With :func:`agd_square_loss` this is
    the setting of Bernstein et al. (2023).

    Raises
    ------
    TypeError
        If ``net`` holds a layer with parameters of another kind (a norm layer's
        affine weights, an embedding): AGD has no rule for them.

    Examples
    --------
    >>> import torch
    >>> net = agd_prepare_(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)),
    ...                    torch.Generator().manual_seed(0))
    >>> [type(m).__name__ for m in net], [p.dim() for p in net.parameters()]
    (['Linear', 'ScaledReLU', 'Linear'], [2, 2])
    """
    weighted = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
    for name, m in list(net.named_modules()):
        if isinstance(m, weighted):
            m.bias = None
            agd_init_(m.weight.data, generator)
        elif any(True for _ in m.parameters(recurse=False)):
            raise TypeError(f"{name or 'net'} ({type(m).__name__}) has parameters AGD has no rule for; "
                            "allowed: Linear, Conv1d, Conv2d (their biases are dropped)")
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(parent, child_name, ScaledReLU())
    return net


def agd_square_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The square loss AGD is derived for: ``mean((f(x) − √C·onehot(y))²)`` over the batch and the ``C`` classes.

    The ``√C`` makes the target vector's mean square 1, the size of the
    outputs of an :func:`agd_prepare_` network (Bernstein et al. 2023).

    Raises
    ------
    ValueError
        For shapes other than ``(N, C)`` and ``(N,)``, or a label outside ``0..C-1``.

    Examples
    --------
    >>> import torch
    >>> round(agd_square_loss(torch.zeros(1, 4), torch.tensor([2])).item(), 6)   # (√4)²/4
    1.0
    """
    if output.dim() != 2 or target.shape != output.shape[:1]:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)}: expected (N, C) and (N,)")
    c = output.shape[1]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= c):
        raise ValueError(f"target holds labels {int(target.min())}..{int(target.max())}; allowed: 0..{c - 1} "
                         f"(C = {c} outputs)")
    onehot = torch.nn.functional.one_hot(target.long(), c).to(output.dtype) * math.sqrt(c)
    return (output - onehot).square().mean()


class AGD(_Base):
    """Automatic gradient descent: no learning rate (see :func:`neurolns.learning.architecture.agd_update`).

    ``L`` and ``G`` are taken over the parameters of one group that have
    gradients (one group per network, the usual case). Every parameter must be
    a matrix or a convolution kernel (AGD has no biases); initialise them with
    :func:`agd_init_`. ``last_eta`` holds the last step's ``η``.

    Parameters
    ----------
    params : iterable of tensors or dicts
    gain : float
        Multiplies the step (1: the paper's rule).

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(4, 1, dtype=torch.float64)); opt = AGD([w])
    >>> w.grad = torch.full((4, 1), 0.5, dtype=torch.float64); opt.step(); round(opt.last_eta, 6)
    0.693147
    """

    def __init__(self, params, gain: float = 1.0, nonfinite: str = "skip"):
        super().__init__(params, dict(gain=gain, nonfinite=nonfinite))
        self.last_eta = 0.0
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() < 2:
                    raise ValueError(f"a parameter has shape {tuple(p.shape)}; AGD takes only weight matrices "
                                     "or convolution kernels (ndim >= 2), no biases")

    @staticmethod
    def _check_group(g):
        g["gain"] = _real("gain", g["gain"], 0.0, math.inf, lo_open=True)
        return g

    def _update(self, group, ps, gs) -> None:
        g64 = [g.detach().to(torch.float64) for g in gs]
        slices = [g.reshape(g.shape[0], g.shape[1], -1) for g in g64]
        norms = [torch.linalg.vector_norm(s, dim=(0, 1), keepdim=True) for s in slices]
        L = len(ps)
        G = sum(_agd_scale(tuple(p.shape)) * float(n.sum()) for p, n in zip(ps, norms)) / L
        eta = math.log(0.5 * (1.0 + math.sqrt(1.0 + 4.0 * G)))
        for p, s, n in zip(ps, slices, norms):
            st = self.state[p]
            st["step"] = st.get("step", 0) + 1
            d = torch.where(n > 0, s / torch.where(n > 0, n, 1.0), torch.zeros_like(s))
            x = p.detach().to(torch.float64) - d.reshape(p.shape) * (group["gain"] * eta / L * _agd_scale(tuple(p.shape)))
            p.copy_(x)
        self.last_eta = eta


def newton_schulz_t(g: torch.Tensor, steps: int = 5, coefficients: str = "muon") -> torch.Tensor:
    """Newton–Schulz orthogonalisation of a matrix in its own dtype
    (see :func:`neurolns.learning.architecture.newton_schulz`).

    Examples
    --------
    >>> import torch
    >>> newton_schulz_t(torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64)), 30, "cubic")
    tensor([[1., 0.],
            [0., 1.]], dtype=torch.float64)
    """
    if g.dim() != 2:
        raise ValueError(f"g must be a matrix (2-D), got shape {tuple(g.shape)}")
    if coefficients not in _NS:
        raise ValueError(f"coefficients={coefficients!r} is not known; allowed: {sorted(_NS)}")
    a, b, c = _NS[coefficients]
    n = torch.linalg.vector_norm(g)
    if float(n) == 0.0:
        return torch.zeros_like(g)
    tall = g.shape[0] > g.shape[1]
    x = (g.T if tall else g) / n
    for _ in range(steps):
        A = x @ x.T
        x = a * x + (b * A + c * (A @ A)) @ x
    return x.T if tall else x


class Dualised(_Base):
    """The dualised (spectral) update with optional momentum; :class:`Muon` has Muon's defaults.

    ``b ← μb + g``; direction ``g + μb`` (Nesterov) or ``b``;
    ``W ← W − η√(d_out/d_in)·NS(direction)`` with ``W`` seen as
    ``(d_out, d_in)`` (a kernel flattened per output, a vector as a column).

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float
        ``η`` (0.02), the RMS→RMS operator norm of each step.
    momentum : float
        ``μ`` in ``[0, 1)`` (0).
    nesterov : bool
        (False).
    ns_steps : int
        Newton–Schulz iterations (5).
    coefficients : {"muon", "cubic"}

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    >>> opt = Dualised([w], lr=0.1, ns_steps=30, coefficients="cubic")
    >>> w.grad = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64)); opt.step(); w.data
    tensor([[-0.1000,  0.0000],
            [ 0.0000, -0.1000]], dtype=torch.float64)
    """

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.0, nesterov: bool = False,
                 ns_steps: int = 5, coefficients: str = "muon", nonfinite: str = "skip"):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                      coefficients=coefficients, nonfinite=nonfinite))

    @staticmethod
    def _check_group(g):
        _check_lr(g)
        g["momentum"] = _real("momentum", g["momentum"], 0.0, 1.0, hi_open=True)
        g["nesterov"] = _flag("nesterov", g["nesterov"])
        k = g["ns_steps"]
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 100:
            raise ValueError(f"ns_steps={k!r} is out of range; allowed: an int in [0, 100]")
        if g["coefficients"] not in _NS:
            raise ValueError(f"coefficients={g['coefficients']!r} is not known; allowed: {sorted(_NS)}")
        return g

    def _update(self, group, ps, gs) -> None:
        mu = group["momentum"]
        for p, g in zip(ps, gs):
            if p.dim() == 0:
                raise ValueError("the dualised update needs tensors with an output axis (ndim >= 1)")
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["step"] += 1
            b = st["momentum_buffer"]
            b.mul_(mu).add_(g)
            d = g.add(b, alpha=mu) if group["nesterov"] else b
            m = d.reshape(d.shape[0], -1) if d.dim() > 1 else d.reshape(-1, 1)
            u = newton_schulz_t(m, group["ns_steps"], group["coefficients"])
            p.add_(u.reshape(p.shape), alpha=-group["lr"] * math.sqrt(m.shape[0] / m.shape[1]))


class Muon(Dualised):
    """Muon: :class:`Dualised` with momentum 0.95, Nesterov, 5 quintic Newton–Schulz steps, η = 0.02.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(1, 1)); opt = Muon([w], lr=0.1)
    >>> w.grad = torch.tensor([[-3.0]]); opt.step(); w.data
    tensor([[0.0696]])
    """

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, coefficients: str = "muon", nonfinite: str = "skip"):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                         coefficients=coefficients, nonfinite=nonfinite)
