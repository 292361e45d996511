"""Training loop: minibatches, epochs, a learning rule, K simulated workers, checkpoints.

Reproducibility: the network's initial weights come from the layers' seeds and
the order of the examples from one ``numpy.random.Generator`` (PCG64) seeded by
``seed``; the only other random numbers are the draws of stochastic rounding of
error signals (the network's own generator, seeded at build). The same seeds
therefore give the same trajectory bit for bit, and a checkpoint stores both
generators' states so that stopping and resuming gives the identical
trajectory too.

Recipes: ``Trainer(net, recipe)`` with a :class:`neurolns.recipes.Recipe`
runs the recipe's rule (:attr:`~neurolns.recipes.Recipe.trainer_rule`) over
its workers, after checking that ``net`` was built with the recipe's formats
(:func:`recipe_model_kwargs` gives the models' ``build_sim`` arguments), so
what is trained is what :mod:`neurolns.accounting` prices.

Majority vote over ``K`` workers (Bernstein et al., ICLR 2019): each minibatch
is split into ``K`` shards (``numpy.array_split``, sizes differing by at most
one); each shard's gradient is a worker's, and the optimizer receives the list
of the ``K`` gradient lists (``grads[k][i]``), packs their signs and votes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from neurolns._finite import check_finite
from neurolns.formats import _check_int_at_least
from neurolns.lns import check_codes, check_scale
from neurolns.sim.checkpoint import (
    check_counter,
    check_state_finite,
    from_savable,
    read_checkpoint,
    save_checkpoint,
    to_savable,
)
from neurolns.sim.network import Sequential

__all__ = ["Trainer", "recipe_model_kwargs"]


def recipe_model_kwargs(recipe) -> dict:
    """Keyword arguments of the models' ``build_sim`` (``neurolns.models``) for a recipe:
    ``weights, forward_format, update_gamma, act_format, grad_format, grad_rounding``.

    An LNS ``master`` (LNS-Madam's update grid) gives code storage
    (``weights="lns"``) whose forward copy is the recipe's ``weights`` format; a
    float master gives float32 storage read through ``weights`` (BF16, INT8,
    LNS8, or as it is for FP32).

    Examples
    --------
    >>> from neurolns.recipes import RECIPES
    >>> kw = recipe_model_kwargs(RECIPES["lns8-full"])
    >>> kw["weights"], str(kw["act_format"]), kw["grad_rounding"].value
    ('lns', 'LNS8(γ=8, bias=64, underflow=zero)', 'nearest')
    """
    from neurolns.formats import LNSFormat
    from neurolns.learning import update_format
    from neurolns.recipes import get_recipe

    recipe = get_recipe(recipe)
    master = recipe.role_format("master")
    forward = recipe.role_format("weights")
    kw = {"act_format": recipe.role_format("activations"), "grad_format": recipe.role_format("errors"),
          "grad_rounding": recipe.error_rounding}
    if isinstance(master, LNSFormat):
        if not isinstance(forward, LNSFormat) or update_format(forward, master.gamma) != master:
            raise ValueError(f"recipe {recipe.name!r}: master={recipe.master!r} is not the update grid of "
                             f"weights={recipe.weights_fmt!r}; allowed: lns<B+4>g<γ> for an LNS<B> forward format")
        return {"weights": "lns", "forward_format": forward, "update_gamma": master.gamma, **kw}
    return {"weights": "fp32", "forward_format": forward, **kw}


def _check_net_matches(net, recipe) -> None:
    """Raise ValueError when ``net`` was not built with ``recipe``'s formats."""
    kw = recipe_model_kwargs(recipe)
    have = {"act_format": net.act_format, "grad_format": net.grad_format, "grad_rounding": net.grad_rounding}
    for name, value in have.items():
        if value != kw[name]:
            raise ValueError(f"the network has {name}={value}, recipe {recipe.name!r} trains with {kw[name]}; "
                             "build it with neurolns.sim.recipe_model_kwargs(recipe)")
    for pname, p in net.named_params():
        if p.forward_format != kw["forward_format"] or p.on_codes != (kw["weights"] == "lns"):
            raise ValueError(f"parameter {pname} has forward format {p.forward_format} "
                             f"({'codes' if p.on_codes else 'float32'}), recipe {recipe.name!r} trains "
                             f"{kw['forward_format']} ({'codes' if kw['weights'] == 'lns' else 'float32'}); "
                             "build the network with neurolns.sim.recipe_model_kwargs(recipe)")


def _check_xy(x, y, what: str):
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"{what} is empty")
    check_finite(f"{what} features", x)
    return x, y


def _first_difference(a, b, path="") -> str:
    """Where two JSON-like values first differ, for error messages."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: present in only one"
            d = _first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return ""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} entries vs {len(b)}"
        for i, (u, v) in enumerate(zip(a, b)):
            d = _first_difference(u, v, f"{path}[{i}]")
            if d:
                return d
        return ""
    return "" if a == b else f"{path}: {a!r} vs {b!r}"


def _restored_generator(state, field: str) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint field {field} is not a PCG64 state: {exc}") from None
    return rng


def _blas_limit(threads):
    """Context limiting BLAS threads (no-op when ``threads`` is None)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(threads), user_api="blas")


class Trainer:
    """Train a :class:`~neurolns.sim.Sequential` network with one learning rule.

    Parameters
    ----------
    net : Sequential
        Its parameters must be all float32 (float rules) or all LNS codes
        (``"lns-madam"``, ``"lns-majority-vote"``: ``Rule(rule).on_codes``).
    rule : str, neurolns.learning.Rule or neurolns.recipes.Recipe
        ``"sgd", "adam", "madam", "lns-madam", "signsgd", "signum", "ef-signsgd",
        "majority-vote", "lns-majority-vote"``; built with
        :func:`neurolns.learning.make_optimizer` (its trainer defaults). A
        recipe gives its rule and, with a 1-bit exchange, its workers; ``net``
        must carry its formats (:func:`recipe_model_kwargs`).
    batch_size : int
        Examples per step (the last, shorter batch of an epoch is used too).
    seed : int
        Seed of the example order.
    workers : int, optional
        ``K`` simulated workers for the majority-vote rules (default: the
        optimizer's, 5); other rules use 1.
    progress : bool
        Show a tqdm progress bar over the epochs.
    blas_threads : int or None
        BLAS threads during :meth:`fit` (via ``threadpoolctl``). The products of
        small networks are too small to share: one thread is faster, and far
        faster on a busy machine, than a team that waits for busy cores.
        ``None`` leaves BLAS alone.
    lr_schedule : {"constant", "cosine"}
        Learning-rate schedule over the steps of the run
        (:func:`neurolns.learning.scheduled_lr`); for LNS-Madam the rate stays
        a whole number (≥ 1) of grid steps; the multiplicative vote takes
        fractional steps, rounded stochastically.
    schedule_epochs : int, optional
        Planned length of the run for the schedule; default: the ``epochs`` of
        the :meth:`fit` call (give it explicitly when a run is trained in
        several ``fit`` calls, so every call sees the same schedule).
    **hyperparameters
        Passed to the optimizer (``lr``, ``momentum``, ``beta``, ...). For
        code parameters the update grid ``fmt`` is the parameters' master format.

    Attributes
    ----------
    optimizer : neurolns.learning.Optimizer
    epoch : int
        Epochs completed.
    history : list of dict
        One entry per epoch: ``epoch, train_loss, train_acc, test_loss, test_acc``
        (the test entries when test data were given), and ``skipped_steps``
        (steps the optimizer skipped for non-finite gradients) when the
        optimizer counts them.
    """

    def __init__(self, net: Sequential, rule="adam", *, batch_size: int = 64, seed: int = 0,
                 workers: int | None = None, progress: bool = False, blas_threads: int | None = 1,
                 lr_schedule: str = "constant", schedule_epochs: int | None = None, **hyperparameters):
        from neurolns.learning import Rule, Schedule, make_optimizer
        from neurolns.recipes import Recipe

        if not isinstance(net, Sequential):
            raise TypeError(f"net must be a neurolns.sim.Sequential, got {type(net).__name__}")
        self.net = net
        self.recipe = rule if isinstance(rule, Recipe) else None
        if self.recipe is not None:
            _check_net_matches(net, self.recipe)
            if self.recipe.voted:
                if workers not in (None, self.recipe.workers):
                    raise ValueError(f"workers={workers!r} differs from recipe {self.recipe.name!r}'s "
                                     f"{self.recipe.workers}; allowed: None or {self.recipe.workers}")
                workers = self.recipe.workers
                hyperparameters = self.recipe.vote_hyperparameters(hyperparameters)
            rule = self.recipe.trainer_rule
        self.rule = Rule(rule)
        self.batch_size = _check_int_at_least("batch_size", batch_size, 1)
        self.seed = _check_int_at_least("seed", seed, 0)
        self.progress = bool(progress)
        self.blas_threads = blas_threads
        self.params = net.params()
        if not self.params:
            raise ValueError("the network has no parameters to train")
        on_codes = net.on_codes
        hp = dict(hyperparameters)
        if self.rule.needs_worker_grads:
            if workers is not None:
                hp["workers"] = workers
        elif workers not in (None, 1):
            raise ValueError(f"workers={workers!r} applies to majority vote only; rule {self.rule.value!r} uses 1")
        if self.rule.on_codes != on_codes:
            have = "LNS codes" if on_codes else "float32 values"
            need = "LNS codes (give the layers a master_format)" if self.rule.on_codes else "float32 values"
            hint = " (use 'lns-majority-vote' for a vote on codes)" if self.rule.needs_worker_grads else ""
            raise ValueError(f"rule {self.rule.value!r} updates {need}, but the network holds {have}{hint}")
        if on_codes:
            fmts = {p.master_format for p in self.params}
            if len(fmts) != 1:
                raise ValueError(f"all parameters must share one update grid for one optimizer; found {fmts}")
            hp.setdefault("fmt", fmts.pop())
        self.optimizer = make_optimizer(self.rule, [p.data for p in self.params], **hp)
        self.workers = int(self.optimizer.defaults.get("workers", 1)) if self.rule.needs_worker_grads else 1
        if self.workers > self.batch_size:
            raise ValueError(f"workers={self.workers} is out of range; allowed: 1 <= workers <= batch_size "
                             f"({self.batch_size}), each worker needs at least one example")
        self.lr_schedule = Schedule(lr_schedule)
        self.schedule_epochs = None if schedule_epochs is None else _check_int_at_least("schedule_epochs",
                                                                                        schedule_epochs, 1)
        self._horizon = self.schedule_epochs
        self.base_lr = float(self.optimizer.defaults["lr"])
        # LNS-Madam's scheduled rate stays a whole number of grid steps (its rint(ĝ)
        # already lets small gradients rest); the multiplicative vote moves every
        # weight each step, so its rate anneals below one step by stochastic rounding
        fmt = self.optimizer.defaults.get("fmt") if self.rule is Rule.LNS_MADAM else None
        self._grid_gamma = None if fmt is None else int(fmt.gamma)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self.epoch = 0
        self.history: list[dict] = []
        self.seconds = 0.0

    # -- one step -------------------------------------------------------------
    def _check_params(self, when: str) -> None:
        """Raise if a parameter holds NaN or ±inf (codes are integers and always pass)."""
        for name, p in self.net.named_params():
            if not p.on_codes and not np.isfinite(p.data).all():
                try:
                    check_finite(f"parameter {name}", p.data)
                except ValueError as exc:
                    raise ValueError(f"{exc} ({when}); the training state is corrupt") from None

    def step(self, x, y) -> tuple[float, int]:
        """One optimizer step on a minibatch; returns ``(mean loss, n_correct)``.

        Raises :class:`ValueError` if ``x`` holds NaN or ±inf, or if a parameter
        does before or after the step. A non-finite loss is returned as it is;
        see the module notes for what the optimizer does with its gradients.
        """
        x, y = _check_xy(x, y, "minibatch")
        return self._step(x, y)

    def _step(self, x, y) -> tuple[float, int]:
        self._check_params("before the step")
        loss, k = self._loss_and_step(x, y)
        self._check_params("after the optimizer step")
        return loss, k

    def _loss_and_step(self, x, y) -> tuple[float, int]:
        if self.workers == 1:
            loss, k = self.net.loss_and_grads(x, y)
            self.optimizer.step([p.grad for p in self.params])
            return loss, k
        worker_grads = []
        total = 0.0
        correct = 0
        for idx in np.array_split(np.arange(len(x)), self.workers):
            loss, k = self.net.loss_and_grads(x[idx], y[idx])
            total += loss * len(idx)
            correct += k
            worker_grads.append([p.grad.copy() for p in self.params])
        self.optimizer.step(worker_grads)
        return total / len(x), correct

    def _set_lr(self, step: int, total_steps: int) -> None:
        """Put the scheduled rate of global step ``step`` into the optimizer."""
        from neurolns.learning import Schedule, scheduled_lr

        if self.lr_schedule is Schedule.CONSTANT:
            return
        if self._horizon is None:
            raise ValueError("lr_schedule='cosine' needs the run's length: give schedule_epochs, or train with fit()")
        self.optimizer.defaults["lr"] = scheduled_lr(self.base_lr, self.lr_schedule, step, total_steps,
                                                     grid_gamma=self._grid_gamma)

    def train_epoch(self, x, y) -> tuple[float, float]:
        """One pass over ``(x, y)`` in a shuffled order; returns ``(mean loss, accuracy)``.

        With a schedule, step ``i`` of this epoch is global step
        ``epoch·B + i`` of ``horizon·B`` (``B`` steps per epoch).
        """
        x, y = _check_xy(x, y, "training data")
        order = self.rng.permutation(len(x))
        # too few examples left to give each worker one: the last batch is skipped
        batches = [order[i:i + self.batch_size] for i in range(0, len(x), self.batch_size)]
        batches = [idx for idx in batches if len(idx) >= self.workers]
        total = 0.0
        correct = 0
        seen = 0
        per_epoch = len(batches)
        for i, idx in enumerate(batches):
            self._set_lr(self.epoch * per_epoch + i, (self._horizon or 1) * per_epoch)
            loss, k = self._step(x[idx], y[idx])
            total += loss * len(idx)
            correct += k
            seen += len(idx)
        return total / seen, correct / seen

    def evaluate(self, x, y) -> tuple[float, float]:
        """``(mean loss, accuracy)`` of the current network on ``(x, y)``."""
        x, y = _check_xy(x, y, "evaluation data")
        return self.net.evaluate(x, y)

    # -- the loop -------------------------------------------------------------
    def fit(self, data, epochs: int, *, checkpoint=None, progress: bool | None = None) -> list[dict]:
        """Train until ``epochs`` epochs are complete in total (resumed runs continue).

        Parameters
        ----------
        data
            An object with ``x_train, y_train`` and optionally ``x_test, y_test``
            (a :class:`neurolns.data.Dataset`).
        epochs : int
            Total epoch count to reach; a trainer restored from a checkpoint at
            epoch 3 and asked for 5 trains 2 more.
        checkpoint : path, optional
            Written (atomically) after every epoch.
        progress : bool, optional
            Overrides the trainer's ``progress`` setting.

        Returns
        -------
        list of dict
            :attr:`history`.
        """
        from tqdm.auto import tqdm

        epochs = _check_int_at_least("epochs", epochs, 0)
        x_tr, y_tr = _check_xy(data.x_train, data.y_train, "training data")
        x_te = getattr(data, "x_test", None)
        y_te = getattr(data, "y_test", None)
        if x_te is not None and y_te is not None and len(x_te):
            x_te, y_te = _check_xy(x_te, y_te, "test data")
        show = self.progress if progress is None else bool(progress)
        self._horizon = self.schedule_epochs if self.schedule_epochs is not None else max(int(epochs), 1)
        bar = tqdm(range(self.epoch, int(epochs)), disable=not show, desc=f"{self.rule.value}", leave=False)
        with _blas_limit(self.blas_threads):
            self._loop(bar, x_tr, y_tr, x_te, y_te, checkpoint)
        return self.history

    def _loop(self, bar, x_tr, y_tr, x_te, y_te, checkpoint) -> None:
        for _ in bar:
            t0 = time.perf_counter()
            skipped0 = getattr(self.optimizer, "skipped_steps", None)
            loss, acc = self.train_epoch(x_tr, y_tr)
            self.epoch += 1
            entry = {"epoch": self.epoch, "train_loss": float(loss), "train_acc": float(acc)}
            if skipped0 is not None:
                entry["skipped_steps"] = int(self.optimizer.skipped_steps - skipped0)
            if x_te is not None and y_te is not None and len(x_te):
                tl, ta = self.evaluate(x_te, y_te)
                entry.update(test_loss=float(tl), test_acc=float(ta))
            self.history.append(entry)
            self.seconds += time.perf_counter() - t0
            bar.set_postfix({k: round(v, 4) for k, v in entry.items() if k != "epoch"})
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)

    # -- checkpoints ----------------------------------------------------------
    def _identity(self) -> dict:
        return {"rule": self.rule.value, "batch_size": self.batch_size, "workers": self.workers,
                "lr_schedule": self.lr_schedule.value,
                "recipe": None if self.recipe is None else self.recipe.to_dict()}

    def save_checkpoint(self, path) -> Path:
        """Write codes, formats, optimizer state, RNG state and history to ``path`` (atomic)."""
        arrays: dict[str, np.ndarray] = {}
        for i, p in enumerate(self.params):
            arrays[f"param{i}"] = p.data
        meta = {
            **self._identity(),
            "network": self.net.spec(),
            "scales": [float(p.scale) for p in self.params],
            "optimizer": to_savable(self.optimizer.state_dict(), arrays, "opt"),
            "rng": self.rng.bit_generator.state,
            "net_rng": self.net.rng.bit_generator.state,
            "seed": self.seed,
            "epoch": self.epoch,
            "history": self.history,
            "seconds": self.seconds,
        }
        return save_checkpoint(path, meta, arrays)

    def load_checkpoint(self, path) -> None:
        """Restore a :meth:`save_checkpoint` file into this trainer and its network.

        Everything is checked before anything changes: a corrupt file or one
        from another architecture, format, rule, batch size or worker count
        raises :class:`ValueError` naming the difference. Values are checked
        too, each failure a :class:`ValueError` naming the field: LNS codes
        within their master format, float weights finite, scales finite and
        ``> 0``, ``epoch`` and the optimizer's step counters ints ``>= 0``,
        the optimizer's state finite.
        """
        meta, arrays = read_checkpoint(path)
        try:
            mine = {**self._identity(), "network": self.net.spec()}
            # checkpoints written before schedules existed ran at a constant rate
            # and before recipes were recorded they were trained without one
            old_defaults = {"lr_schedule": "constant", "recipe": None}
            theirs = {k: meta.get(k, old_defaults[k]) if k in old_defaults else meta[k] for k in mine}
            diff = _first_difference(theirs, mine)
            if diff:
                raise ValueError(f"checkpoint {path} was made for another setup ({diff.lstrip('.')}; "
                                 "checkpoint value first)")
            new_data = []
            for i, (name, p) in enumerate(self.net.named_params()):
                a = arrays[f"param{i}"]
                if a.shape != p.data.shape or a.dtype != p.data.dtype:
                    raise ValueError(f"checkpoint parameter {i} is {a.dtype}{a.shape}; the network's is "
                                     f"{p.data.dtype}{p.data.shape}")
                field = f"checkpoint parameter {name} (param{i})"
                if p.on_codes:
                    check_codes(a, p.master_format, name=field)
                else:
                    check_finite(field, a)
                new_data.append(a)
            scales = meta["scales"]
            if not isinstance(scales, list) or len(scales) != len(self.params):
                raise ValueError(f"checkpoint field scales must list {len(self.params)} numbers, got {scales!r}")
            scales = [float(check_scale(s, name=f"checkpoint field scales[{i}]")) for i, s in enumerate(scales)]
            rng = _restored_generator(meta["rng"], "rng")
            # the stochastic-rounding generator (absent in files written before it existed)
            net_rng = _restored_generator(meta["net_rng"], "net_rng") if "net_rng" in meta else None
            opt_state = from_savable(meta["optimizer"], arrays)
            for counter in ("t", "step", "skipped_steps"):
                if isinstance(opt_state, dict) and counter in opt_state:
                    check_counter(f"optimizer.{counter}", opt_state[counter])
            check_state_finite("optimizer.state", opt_state.get("state", []) if isinstance(opt_state, dict) else [])
            epoch = check_counter("epoch", meta["epoch"])
            history = meta["history"]
            if not isinstance(history, list):
                raise ValueError(f"checkpoint field history must be a list, got {type(history).__name__}")
            seconds = meta.get("seconds", 0.0)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < np.inf:
                raise ValueError(f"checkpoint field seconds={seconds!r} is invalid; allowed: a finite number >= 0")
            self.optimizer.load_state_dict(opt_state)
        except KeyError as exc:
            raise ValueError(f"checkpoint {path} lacks {exc}; it is incomplete") from None
        except TypeError as exc:  # a field of the wrong type (a str where a number belongs, ...)
            raise ValueError(f"checkpoint {path} holds a field of the wrong type: {exc}") from None
        # commit: in place, so the optimizer keeps pointing at the same arrays
        for p, a, s in zip(self.params, new_data, scales):
            p.data[...] = a
            p.scale = s
        self.rng = rng
        if net_rng is not None:
            self.net.rng = net_rng
        self.epoch = epoch
        self.history = list(history)
        self.seconds = float(seconds)

    def __repr__(self) -> str:
        return (f"Trainer(rule={self.rule.value!r}, batch_size={self.batch_size}, workers={self.workers}, "
                f"lr_schedule={self.lr_schedule.value!r}, epoch={self.epoch})")
