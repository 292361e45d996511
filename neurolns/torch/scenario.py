"""The torch backend of the LNS-versus-float training comparison.

:func:`run_method` trains one model with one method through the bridge and
returns its learning curve; ``scenarios/lns_vs_float.py --backend torch``
calls it for every method and seed. The example order, the initialisation and
the hyperparameters follow the simulator's trainer: a PCG64 generator seeded
with ``seed`` shuffles every epoch, the model comes from
``neurolns.models.<model>.build_torch(seed=seed)``, and each rule uses
:data:`neurolns.learning.TRAINER_DEFAULTS`.

Methods: ``fp32-adam``, ``fp32-sgd`` (float baselines), ``lns8-lnsmadam``
(LNS8 weights stored on the LNS12/γ=128 update grid, LNS-Madam),
``madam`` (float weights), ``signsgd``, ``signum`` and ``majority-vote``
(``K = 5`` simulated workers, one shard of each minibatch each, per-worker
momentum before the sign, ``sign(Σ_k sign(m_k))`` with ties to +1).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from neurolns.formats import LNS8, _check_int_at_least, _StrEnum

__all__ = ["Method", "run_method", "run_recipe", "prepare_recipe", "build_model", "make_torch_optimizer"]


class Method(_StrEnum):
    """Training methods of the comparison."""

    FP32_ADAM = "fp32-adam"
    FP32_SGD = "fp32-sgd"
    LNS8_LNSMADAM = "lns8-lnsmadam"
    MADAM = "madam"
    SIGNSGD = "signsgd"
    SIGNUM = "signum"
    MAJORITY_VOTE = "majority-vote"


def build_model(model: str, n_features: int, n_classes: int, *, seed: int = 0, **kwargs) -> nn.Module:
    """``neurolns.models.mlp`` or ``neurolns.models.cnn1d`` as a torch ``nn.Sequential``
    (``kwargs``: further arguments of its ``build_torch``, e.g. ``channels=64``)."""
    if model == "mlp":
        from neurolns.models.mlp import build_torch

        return build_torch(n_features, n_classes=n_classes, seed=seed, **kwargs)
    if model == "cnn":
        from neurolns.models.cnn1d import build_torch

        return build_torch(n_features, n_classes=n_classes, seed=seed, **kwargs)
    if model == "cnn2d":
        from neurolns.models.cnn2d import build_torch, image_size

        return build_torch(image_size(n_features), n_classes=n_classes, seed=seed, **kwargs)
    raise ValueError(f"model={model!r} is not known; allowed: 'mlp', 'cnn', 'cnn2d'")


def make_torch_optimizer(method: Method | str, model: nn.Module, **overrides):
    """Prepare ``model`` for ``method`` (LNS layers where needed) and build its optimizer.

    Returns the optimizer (``None`` for majority vote, which
    :func:`run_method` applies itself). Hyperparameters default to
    :data:`neurolns.learning.TRAINER_DEFAULTS`; ``overrides`` replace them.
    """
    from neurolns.learning import TRAINER_DEFAULTS, Rule
    from neurolns.torch import LNSMadam, Madam, Signum, SignSGD, convert

    method = Method(method)
    if method == Method.FP32_ADAM:
        hp = {**TRAINER_DEFAULTS[Rule.ADAM], **overrides}
        return torch.optim.Adam(model.parameters(), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"])
    if method == Method.FP32_SGD:
        hp = {**TRAINER_DEFAULTS[Rule.SGD], **overrides}
        return torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    if method == Method.LNS8_LNSMADAM:
        convert(model, LNS8, storage="lns")
        return LNSMadam(model.parameters(), **{**TRAINER_DEFAULTS[Rule.LNS_MADAM], **overrides})
    if method == Method.MADAM:
        return Madam(model.parameters(), **{**TRAINER_DEFAULTS[Rule.MADAM], **overrides})
    if method == Method.SIGNSGD:
        return SignSGD(model.parameters(), **{**TRAINER_DEFAULTS[Rule.SIGNSGD], **overrides})
    if method == Method.SIGNUM:
        return Signum(model.parameters(), **{**TRAINER_DEFAULTS[Rule.SIGNUM], **overrides})
    return None


def prepare_recipe(recipe, model: nn.Module, *, seed: int = 0, **overrides):
    """Convert ``model`` for a :class:`neurolns.recipes.Recipe` and build what steps it.

    Every LNS role becomes an LNS layer setting (:func:`neurolns.torch.convert`:
    weights on the recipe's update grid with ``storage="lns"``, activation and
    error-signal formats, :func:`~neurolns.torch.set_grad_rounding` seeded with
    ``seed``); FP32 roles stay float. The rule is the recipe's
    :attr:`~neurolns.recipes.Recipe.trainer_rule` with
    :data:`neurolns.learning.TRAINER_DEFAULTS` (``overrides`` replace them).

    Returns
    -------
    (optimizer, vote)
        ``vote`` is ``None`` unless the recipe votes: then the workers' signs
        are voted and the voted signs drive ``optimizer`` (LNS-Madam: a code
        step of ``lr·γ`` against the vote; Signum: ``w −= lr·vote``).

    Raises
    ------
    ValueError
        For a role in a format the torch layers do not quantise (BF16, INT8:
        train those recipes with the simulator, ``--backend sim``).
    """
    from neurolns.formats import LNSFormat
    from neurolns.learning import TRAINER_DEFAULTS, Rule
    from neurolns.recipes import get_recipe
    from neurolns.torch import LNSMadam, convert, set_grad_rounding

    recipe = get_recipe(recipe)
    roles = {r: recipe.role_format(r) for r in ("weights", "activations", "errors", "master")}
    bad = {r: f for r, f in roles.items() if f is not None and not isinstance(f, LNSFormat)}
    if bad:
        r, f = next(iter(bad.items()))
        raise ValueError(f"recipe {recipe.name!r}: {r} in {getattr(f, 'name', f)} is not a format the torch layers "
                         "quantise; allowed on the torch backend: LNS formats and FP32 (train it with the simulator)")
    rule = recipe.trainer_rule
    master = roles["master"]
    if master is not None or any(roles[r] is not None for r in ("weights", "activations", "errors")):
        convert(model, roles["weights"], act_format=roles["activations"], grad_format=roles["errors"],
                storage="lns" if master is not None else "fp32",
                update_gamma=master.gamma if master is not None else 128)
        set_grad_rounding(model, recipe.error_rounding, seed=seed)
    params = list(model.parameters())
    overrides = recipe.vote_hyperparameters(overrides)  # the tie rule is priced with the recipe: one source
    if rule == "lns-majority-vote":
        hp = {**TRAINER_DEFAULTS[Rule.LNS_MAJORITY_VOTE], **overrides}
        inner = LNSMadam(params, lr=hp["lr"], p_scale=float("inf"))
        vote = _MajorityVote(params, lr=hp["lr"], workers=recipe.workers, momentum=hp["momentum"], ties=hp["ties"],
                             apply_to=inner)
        return inner, vote
    if rule == "majority-vote":
        hp = {**TRAINER_DEFAULTS[Rule.MAJORITY_VOTE], **overrides}
        return None, _MajorityVote(params, lr=hp["lr"], workers=recipe.workers, momentum=hp["momentum"],
                                   ties=hp["ties"])
    method = {"adam": Method.FP32_ADAM, "sgd": Method.FP32_SGD, "lns-madam": Method.LNS8_LNSMADAM,
              "madam": Method.MADAM, "signum": Method.SIGNUM}[rule]
    if method is Method.LNS8_LNSMADAM:  # the layers are converted already: only the optimizer
        return LNSMadam(params, **{**TRAINER_DEFAULTS[Rule.LNS_MADAM], **overrides}), None
    return make_torch_optimizer(method, model, **overrides), None


def run_recipe(recipe, model: str, data, *, epochs: int, batch_size: int, seed: int, device: str = "cpu",
               progress: bool = False, lr_schedule: str = "constant", model_kwargs: dict | None = None,
               threads: int | None = 1, track=(), **overrides) -> dict:
    """Train ``model`` on ``data`` under a :class:`neurolns.recipes.Recipe` through the torch bridge.

    Arguments and the returned dict as :func:`run_method` (``"method"`` is the
    recipe's key and ``"recipe"`` its fields); the model is prepared by
    :func:`prepare_recipe`. With a 1-bit exchange each minibatch is split into
    the recipe's workers (``numpy.array_split``), each keeps its momentum and
    the vote drives the update, as in the simulator's trainer.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns.data import Dataset
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((64, 8)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
    >>> d = Dataset(x[:48], y[:48], x[48:], y[48:], n_classes=2)
    >>> r = run_recipe("lns8-full", "mlp", d, epochs=2, batch_size=16, seed=0)
    >>> r["method"], r["recipe"]["workers"], len(r["history"])
    ('lns8-full', 4, 2)
    """
    from neurolns.recipes import get_recipe

    return _run_on_threads(None, model, data, epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                           progress=progress, lr_schedule=lr_schedule, model_kwargs=model_kwargs,
                           overrides=overrides, track=track, threads=threads, recipe=get_recipe(recipe))


def _run_on_threads(method, model, data, *, epochs, device, threads, **kw) -> dict:
    """:func:`_run` with torch's intra-op threads set to ``threads`` on CPU (restored afterwards)."""
    epochs = _check_int_at_least("epochs", epochs, 1)
    if threads is not None:
        threads = _check_int_at_least("threads", threads, 1)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    before = torch.get_num_threads()
    if threads is not None and torch.device(device).type == "cpu":
        torch.set_num_threads(threads)
    try:
        return _run(method, model, data, epochs=epochs, device=device, **kw)
    finally:
        torch.set_num_threads(before)


class _MajorityVote:
    """signSGD with majority vote over K simulated workers (Bernstein et al., ICLR 2019)."""

    def __init__(self, params, *, lr, workers, momentum, ties="plus", apply_to=None):
        self.apply_to = apply_to  # an optimizer that takes the voted signs as its gradients (LNS-Madam)
        self.params = [p for p in params]
        self.lr, self.k, self.beta = float(lr), int(workers), float(momentum)
        self.tie = 0.0 if ties == "abstain" else 1.0
        self.m = [[torch.zeros_like(p) for p in self.params] for _ in range(self.k)]

    @torch.no_grad()
    def step(self, worker_grads):
        votes = [torch.zeros_like(p) for p in self.params]
        for j, grads in enumerate(worker_grads):
            for i, g in enumerate(grads):
                m = self.m[j][i]
                if self.beta > 0:
                    m.mul_(self.beta).add_(g, alpha=1.0 - self.beta)
                else:
                    m.copy_(g)
                votes[i] += torch.where(m < 0, -1.0, 1.0)
        for p, v in zip(self.params, votes):
            s = torch.where(v > 0, 1.0, torch.where(v < 0, -1.0, self.tie))
            if self.apply_to is None:
                p.add_(s, alpha=-self.lr)
            else:
                p.grad = s.to(p.dtype)
        if self.apply_to is not None:
            # LNS-Madam on a ±1 signal: v̂ = 1, so ĝ = ±1 and every code moves lr·γ steps
            # (a fraction of a step rounded stochastically) against the vote
            self.apply_to.step()


def _lr_setter(method, opt, vote, lr_schedule):
    """A function ``(step, total_steps)`` that puts the scheduled rate into ``opt`` or ``vote``."""
    from neurolns.learning import Schedule, scheduled_lr

    schedule = Schedule(lr_schedule)
    if schedule is Schedule.CONSTANT:
        return lambda step, total: None
    if vote is not None and vote.apply_to is None:
        base = vote.lr

        def set_vote(step, total):
            vote.lr = scheduled_lr(base, schedule, step, total)

        return set_vote
    grid = method == Method.LNS8_LNSMADAM
    bases = [(g, g["lr"] if g["lr"] is not None else 1.0 / g["update_gamma"], g["update_gamma"] if grid else None)
             for g in opt.param_groups]

    def set_groups(step, total):
        for g, base, gamma in bases:
            g["lr"] = scheduled_lr(base, schedule, step, total, grid_gamma=gamma)

    return set_groups


def _accuracy(model, x, y, batch=2048) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train()
    return correct / len(x)


def run_method(method: str, model: str, data, *, epochs: int, batch_size: int, seed: int, device: str = "cpu",
               progress: bool = False, lr_schedule: str = "constant", model_kwargs: dict | None = None,
               threads: int | None = 1, track=(), **overrides) -> dict:
    """Train ``model`` on ``data`` with ``method`` through the torch bridge.

    Parameters
    ----------
    method : str
        One of :class:`Method`.
    model : {"mlp", "cnn"}
    data
        Has ``x_train, y_train, x_test, y_test`` (numpy) and ``n_classes``
        (a :class:`neurolns.data.Dataset`).
    epochs, batch_size, seed : int
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"`` (CUDA when present).
    progress : bool
        A tqdm bar over the epochs.
    lr_schedule : {"constant", "cosine"}
        As the simulator's trainer: :func:`neurolns.learning.scheduled_lr`
        over the ``epochs × steps-per-epoch`` steps, on whole grid steps for
        LNS-Madam.
    model_kwargs : dict, optional
        Extra arguments of the model's ``build_torch`` (e.g. ``channels=64``).
    threads : int or None
        torch's intra-op threads on CPU during the run (restored afterwards);
        ``None`` leaves torch's setting. One, as the simulator's trainer uses
        for BLAS: these products are too small to share, and on a busy machine
        a team of threads that waits for busy cores made a 128-channel CNN
        epoch about 4× slower than one thread (2 cores, load average 5).
    track : sequence of str
        Quantities of :class:`neurolns.torch.dynamics.Tracker` (e.g.
        ``("sharpness", "margin")``) added to each epoch's history row,
        measured after the epoch on the first 512 training examples with the
        cross-entropy loss (see ``docs/dynamics.md``).
    **overrides
        Hyperparameters replacing the trainer defaults (e.g. ``lr=``).

    Returns
    -------
    dict
        ``{"method", "model", "seed", "device", "history": [{"epoch", "train_loss", "train_acc",
        "test_acc"}, ...], "test_acc", "seconds"}``.

    Examples
    --------
    >>> import numpy as np
    >>> from neurolns.data import Dataset
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((64, 8)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
    >>> d = Dataset(x[:48], y[:48], x[48:], y[48:], n_classes=2)
    >>> r = run_method("lns8-lnsmadam", "mlp", d, epochs=2, batch_size=16, seed=0)
    >>> len(r["history"]), 0.0 <= r["test_acc"] <= 1.0
    (2, True)
    """
    return _run_on_threads(Method(method), model, data, epochs=epochs, batch_size=batch_size, seed=seed,
                           device=device, progress=progress, lr_schedule=lr_schedule, model_kwargs=model_kwargs,
                           overrides=overrides, track=track, threads=threads)


def _run(method, model, data, *, epochs, batch_size, seed, device, progress, lr_schedule, model_kwargs, overrides,
         track=(), recipe=None):
    from neurolns.learning import TRAINER_DEFAULTS, Rule

    batch_size = _check_int_at_least("batch_size", batch_size, 1)
    seed = _check_int_at_least("seed", seed, 0)
    dev = torch.device(device)
    n_features = int(np.asarray(data.x_train).shape[1])
    net = build_model(model, n_features, int(data.n_classes), seed=seed, **(model_kwargs or {})).to(dev)
    vote = None
    if recipe is not None:
        opt, vote = prepare_recipe(recipe, net, seed=seed, **overrides)
        if vote is not None and vote.k > batch_size:
            raise ValueError(f"workers={vote.k} is out of range; allowed: 1 <= workers <= batch_size ({batch_size})")
    else:
        opt = make_torch_optimizer(method, net, **overrides)
    if method == Method.MAJORITY_VOTE:
        hp = {**TRAINER_DEFAULTS[Rule.MAJORITY_VOTE], **overrides}
        vote = _MajorityVote(net.parameters(), lr=hp["lr"], workers=hp["workers"], momentum=hp["momentum"],
                             ties=hp["ties"])
        if vote.k > batch_size:
            raise ValueError(f"workers={vote.k} is out of range; allowed: 1 <= workers <= batch_size ({batch_size})")
    xtr = torch.as_tensor(np.array(data.x_train, dtype=np.float32), device=dev)
    ytr = torch.as_tensor(np.array(data.y_train, dtype=np.int64), device=dev)
    xte = torch.as_tensor(np.array(data.x_test, dtype=np.float32), device=dev)
    yte = torch.as_tensor(np.array(data.y_test, dtype=np.int64), device=dev)
    rng = np.random.Generator(np.random.PCG64(seed))
    loss_fn = nn.CrossEntropyLoss()
    grid_method = method if recipe is None else (Method.LNS8_LNSMADAM if recipe.trainer_rule == "lns-madam" else None)
    set_lr = _lr_setter(grid_method, opt, vote, lr_schedule)
    min_batch = vote.k if vote is not None else 1
    per_epoch = sum(1 for start in range(0, len(xtr), batch_size) if min(batch_size, len(xtr) - start) >= min_batch)
    history = []
    tracker = None
    if track:
        from neurolns.torch.dynamics import Tracker

        tracker = Tracker(track, loss_fn=loss_fn, data=(xtr[:512], ytr[:512]),
                          sharpness_kwargs={"iters": 20, "tol": 1e-3})
    t0 = time.perf_counter()
    epochs_iter = range(1, epochs + 1)
    if progress:
        from tqdm import tqdm

        epochs_iter = tqdm(epochs_iter, desc=f"{method.value if recipe is None else recipe.key} {model}",
                           unit="epoch")
    net.train()
    for epoch in epochs_iter:
        order = torch.as_tensor(rng.permutation(len(xtr)), device=dev)
        total = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        seen = 0
        for i, start in enumerate(range(0, len(xtr), batch_size)):
            idx = order[start:start + batch_size]
            xb, yb = xtr[idx], ytr[idx]
            set_lr((epoch - 1) * per_epoch + i, epochs * per_epoch)
            if vote is None:
                opt.zero_grad(set_to_none=True)
                out = net(xb)
                loss = loss_fn(out, yb)
                loss.backward()
                opt.step()
            else:
                if len(idx) < vote.k:  # too few examples left to give each worker one
                    continue
                worker_grads, losses, outs = [], [], []
                for shard in np.array_split(np.arange(len(idx)), vote.k):
                    net.zero_grad(set_to_none=True)
                    o = net(xb[shard])
                    li = loss_fn(o, yb[shard])
                    li.backward()
                    worker_grads.append([p.grad.detach().clone() for p in net.parameters()])
                    losses.append(li.detach() * len(shard))
                    outs.append(o.detach())
                vote.step(worker_grads)
                out = torch.cat(outs)
                loss = torch.stack(losses).sum() / len(idx)
            total += loss.detach() * len(idx)
            correct += (out.detach().argmax(1) == yb).sum()
            seen += len(idx)
        history.append({"epoch": epoch, "train_loss": float(total) / seen, "train_acc": int(correct) / seen,
                        "test_acc": _accuracy(net, xte, yte)})
        if tracker is not None:
            row = tracker.after_step(epoch, net, opt)
            history[-1].update({k: v for k, v in row.items() if k not in ("step", "lr")})
    label = method.value if recipe is None else (recipe.key or recipe.name)
    return {"method": label, "model": model, "seed": seed, "device": str(dev), "history": history,
            "test_acc": history[-1]["test_acc"], "seconds": time.perf_counter() - t0,
            **({} if recipe is None else {"recipe": recipe.to_dict()})}
