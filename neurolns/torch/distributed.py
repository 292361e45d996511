"""1-bit majority-vote gradient exchange as a DDP communication hook.

signSGD with majority vote (Bernstein et al., ICML 2018; ICLR 2019): every worker
sends only the signs of its gradient (1 bit per parameter, packed 8 per byte),
and every worker receives the elementwise majority

.. math::  \\hat g = \\operatorname{sign}\\Big(\\sum_{k=1}^{W} \\operatorname{sign}(d_k)\\Big)

where ``d_k`` is worker ``k``'s gradient, or its momentum
``m_k ← β m_k + (1-β) g_k`` (Signum: momentum kept per worker, taken before the
sign). The optimizer (plain ``torch.optim.SGD(lr=η)``) then applies
``w ← w − η ĝ``. Conventions follow :mod:`neurolns.learning.sign`:
``sign(0) = +1``; a packed bit is 1 for a negative sign, little-endian within a
byte; a tied vote (even ``W``) gives +1 (``ties="plus"``) or 0
(``ties="abstain"``, all-gather exchange only, since the result is ternary).

Two exchange schemes (:class:`Exchange`):

``allgather``
    ``all_gather`` of every worker's packed signs, then each worker votes on the
    whole vector: a worker sends ``(W-1)·d/8`` bytes (ring). Cheapest for few
    workers; 32× less than an FP32 ring all-reduce at W=2, 16× at W=4.
``two-phase``
    DeepSpeed 1-bit Adam's compressed all-reduce: ``all_to_all`` of packed signs
    so worker ``r`` holds slice ``r`` of everyone's signs, votes on its ``1/W``
    slice, then ``all_gather`` of the voted slices: ``2(W-1)/W·d/8`` bytes per
    worker, 32× less than FP32 at every ``W``.

Error feedback (Karimireddy et al., ICML 2019): ``p = g + e``,
``Δ = (‖p‖₁/d)·sign(p)`` per parameter, ``e ← p − Δ``; workers exchange the signs
and one float32 scale per parameter and return the mean of the ``Δ_k``. The mean
of scaled signs is NOT a vote: a single worker can move it arbitrarily, so error
feedback gives up the Byzantine robustness of the majority vote.

Per-parameter state (momentum, residuals) is keyed by the parameter, not by
the bucket, so it survives DDP's rebuild of its buckets after the first
iteration. Bytes are counted per step (:attr:`MajorityVoteState.last_step_bytes`).

Non-finite gradients: a NaN has no sign, and one worker's NaN must neither
vote nor make the ranks disagree. Every worker appends one byte to what it
sends for a bucket, 1 if its gradient there holds NaN or ±inf (checked on the
device, no synchronisation). Every rank receives every worker's flag with the
signs (all-gather: the byte travels with the packed row; two-phase: one flag
byte with each slice of the ``all_to_all``), so if any flag is set all ranks
return zeros for that bucket — the optimizer's update of those parameters is
skipped consistently everywhere — leave the momentum and error-feedback
residuals of the bucket's parameters as they were (the new values are only
committed after a clean exchange), count it in
:attr:`ByteCountState.skipped_buckets` and warn. The FP32 baseline does the
same on the all-reduced bucket (identical on every rank). Cost: one byte per
worker per bucket (all-gather), ``W`` bytes (two-phase).
"""

# no `from __future__ import annotations`: DDP checks the hooks' return annotation at runtime
import datetime as _dt
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from neurolns.formats import _StrEnum

__all__ = [
    "Exchange",
    "MajorityVoteState",
    "majority_vote_hook",
    "ByteCountState",
    "fp32_allreduce_hook",
    "pack_signs",
    "unpack_signs",
    "vote_from_packed",
    "ring_bytes",
]


class Exchange(_StrEnum):
    """How packed signs travel between workers (see the module docs)."""

    ALLGATHER = "allgather"
    TWO_PHASE = "two-phase"


_SHIFTS = {}


def _shifts(device) -> torch.Tensor:
    key = str(device)
    if key not in _SHIFTS:
        _SHIFTS[key] = torch.arange(8, dtype=torch.uint8, device=device)
    return _SHIFTS[key]


def pack_signs(x: torch.Tensor, n_padded: int | None = None) -> torch.Tensor:
    """Pack ``x < 0`` into uint8, 8 signs per byte, little-endian (bit j = element 8i+j).

    Matches :func:`neurolns.learning.pack_signs` (1 = negative; ``sign(0) = +1``).
    ``n_padded`` (a multiple of 8, ``>= x.numel()``) pads with positive signs.
    """
    flat = x.reshape(-1)
    n = flat.numel()
    total = n_padded if n_padded is not None else (n + 7) // 8 * 8
    if total % 8 or total < n:
        raise ValueError(f"n_padded={total} must be a multiple of 8 and >= {n}")
    bits = torch.zeros(total, dtype=torch.uint8, device=flat.device)
    bits[:n] = flat < 0
    # the eight bits of a byte are distinct powers of two, so their sum is their OR
    return (bits.view(-1, 8) << _shifts(flat.device)).sum(dim=1, dtype=torch.uint8)


def unpack_signs(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Bits (1 = negative) of the first ``n`` packed signs, as uint8 0/1."""
    b = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 1
    return b.reshape(*packed.shape[:-1], -1)[..., :n]


def vote_from_packed(packed_rows: torch.Tensor, n: int, ties: str, dtype) -> torch.Tensor:
    """Majority vote over the rows (one per worker) of packed signs.

    ``Σ_k sign_k = W − 2·(number of negative bits)``; > 0 → +1, < 0 → −1,
    0 (a tie) → +1 or 0 per ``ties``.
    """
    workers = packed_rows.shape[0]
    negatives = unpack_signs(packed_rows, n).sum(dim=0, dtype=torch.int32)
    total = workers - 2 * negatives
    tie = 1.0 if ties == "plus" else 0.0
    out = torch.where(total > 0, 1.0, torch.where(total < 0, -1.0, tie))
    return out.to(dtype)


def ring_bytes(op: str, payload: int, world: int) -> int:
    """Bytes one worker sends for a collective on ``payload`` bytes (ring/pairwise model).

    ``all_reduce``: ``2(W-1)/W·P``; ``all_gather``: ``(W-1)·P`` (P = this worker's
    contribution); ``all_to_all``: ``(W-1)/W·P`` (P = the whole send buffer).
    """
    if op == "all_reduce":
        return 2 * (world - 1) * payload // world
    if op == "all_gather":
        return (world - 1) * payload
    if op == "all_to_all":
        return (world - 1) * payload // world
    raise ValueError(f"unknown collective {op!r}; allowed: all_reduce, all_gather, all_to_all")


def _all_gather_flat(out: torch.Tensor, inp: torch.Tensor, group):
    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    return fn(out, inp, group=group, async_op=True)


@dataclass
class ByteCountState:
    """Counts bytes sent per step; base of the hook states.

    Attributes
    ----------
    process_group : ProcessGroup or None
        ``None`` = the default group.
    step : int
        Completed optimizer steps (counted on the last bucket of a step).
    last_step_bytes, total_bytes : int
        Bytes this worker sent in the last completed step / since the start,
        under the ring model of :func:`ring_bytes`.
    skipped_buckets : int
        Buckets whose update was skipped (zeros returned on every rank) because
        some worker's gradient there held NaN or ±inf.
    """

    process_group: object = None
    step: int = 0
    last_step_bytes: int = 0
    total_bytes: int = 0
    skipped_buckets: int = 0
    _current: int = field(default=0, repr=False)

    def _count(self, op: str, payload: int, world: int) -> None:
        sent = ring_bytes(op, payload, world)
        self._current += sent
        self.total_bytes += sent

    def _end_bucket(self, bucket) -> None:
        if bucket.is_last():
            self.last_step_bytes = self._current
            self._current = 0
            self.step += 1

    def _skip(self, buf: torch.Tensor, bucket_name: str, why: str) -> torch.Tensor:
        """Zero the bucket's result, count and warn (every rank takes this branch together)."""
        self.skipped_buckets += 1
        warnings.warn(f"{bucket_name}: {why}; its update was skipped on every rank (zeros returned, "
                      f"skipped_buckets={self.skipped_buckets})", RuntimeWarning, stacklevel=2)
        return buf.zero_()


def _nonfinite_flag(x: torch.Tensor) -> torch.Tensor:
    """One uint8 byte on ``x``'s device: 1 if ``x`` holds NaN or ±inf (no host synchronisation)."""
    return (~torch.isfinite(x)).any().to(torch.uint8).reshape(1)


def fp32_allreduce_hook(state: ByteCountState, bucket) -> torch.futures.Future[torch.Tensor]:
    """The FP32 baseline: average the bucket with one all-reduce, counting bytes.

    A non-finite result (some worker sent NaN or ±inf; the reduced bucket is the
    same on every rank) is returned as zeros and counted in ``skipped_buckets``.
    """
    group = state.process_group
    world = dist.get_world_size(group)
    buf = bucket.buffer().div_(world)
    state._count("all_reduce", buf.numel() * buf.element_size(), world)
    state._end_bucket(bucket)
    fut = dist.all_reduce(buf, group=group, async_op=True).get_future()
    name = f"bucket {bucket.index()}"

    def finish(f):
        out = f.value()[0]
        if not bool(torch.isfinite(out).all()):
            return state._skip(out, name, "the all-reduced gradient holds NaN or ±inf")
        return out

    return fut.then(finish)


@dataclass
class MajorityVoteState(ByteCountState):
    """State and options of :func:`majority_vote_hook`.

    Parameters
    ----------
    exchange : Exchange or str
        ``"allgather"`` (default) or ``"two-phase"``.
    momentum : float
        β of the worker-side momentum (Signum), in ``[0, 1)``; 0 = signSGD.
    error_feedback : bool
        Exchange scaled signs with residuals instead of voting (all-gather only).
    warmup_steps : int
        Steps of plain FP32 all-reduce (averaged) before switching to 1 bit.
    ties : {"plus", "abstain"}
        Result of a tied vote (even number of workers).
    flip_signs : bool
        This worker sends flipped signs: an adversary for robustness experiments.
    timeout_s : float
        A collective that does not complete within this time raises instead of
        hanging (e.g. a peer died).
    """

    exchange: Exchange = Exchange.ALLGATHER
    momentum: float = 0.0
    error_feedback: bool = False
    warmup_steps: int = 0
    ties: str = "plus"
    flip_signs: bool = False
    timeout_s: float = 60.0
    _param_state: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.exchange = Exchange(self.exchange)
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"momentum={self.momentum} is out of range; allowed: 0 <= momentum < 1")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps!r} must be an int >= 0")
        if self.ties not in ("plus", "abstain"):
            raise ValueError(f"ties={self.ties!r}; allowed: 'plus', 'abstain'")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s={self.timeout_s} must be > 0")
        if self.exchange == Exchange.TWO_PHASE and self.ties == "abstain":
            raise ValueError(
                "ties='abstain' makes the vote ternary, which the two-phase scheme cannot send as 1 bit; "
                "use ties='plus' or exchange='allgather'"
            )
        if self.exchange == Exchange.TWO_PHASE and self.error_feedback:
            raise ValueError(
                "error feedback exchanges scaled signs whose mean is not a vote; the two-phase scheme "
                "only votes. Use exchange='allgather' with error_feedback=True"
            )
        if dist.is_available() and dist.is_initialized():
            self.check_backend()

    def check_backend(self) -> None:
        """Refuse backends that lack the collectives the scheme needs (before any hang)."""
        backend = str(dist.get_backend(self.process_group)).lower()
        supported = {"gloo", "nccl"}
        if backend not in supported:
            raise ValueError(
                f"majority_vote_hook supports the backends {sorted(supported)}; this process group uses {backend!r}"
            )

    def direction(self, param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """What this worker signs for one parameter: g, its new momentum, or g + residual.

        Nothing is stored here: the new momentum (or residual) is committed by
        :meth:`_commit` once the exchange came back clean, so a skipped bucket
        leaves the state as it was.
        """
        if not (self.momentum or self.error_feedback):
            return grad
        st = self._param_state.get(id(param))
        if st is None or st["buf"].shape != grad.shape:
            st = {"buf": torch.zeros_like(grad)}
            self._param_state[id(param)] = st
        if self.momentum:
            return st["buf"].mul(self.momentum).add_(grad, alpha=1.0 - self.momentum)
        return st["buf"] + grad  # p = g + e

    def _commit(self, params, new_bufs) -> None:
        """Store the new momenta (or residuals) of a bucket's parameters."""
        for p, x in zip(params, new_bufs):
            st = self._param_state.get(id(p))
            if st is not None:
                st["buf"].copy_(x)


def _exchange_error(bucket_name: str, exc: Exception) -> RuntimeError:
    """The error a failed collective becomes (raised ``from`` the cause): it names the bucket."""
    return RuntimeError(f"majority-vote exchange failed in {bucket_name} (a peer may have died or timed out): {exc}")


def _result(fut_value_fn, state, bucket_name: str):
    def wrap(fut):
        try:
            return fut_value_fn(fut)
        except Exception as exc:
            raise _exchange_error(bucket_name, exc) from exc

    return wrap


def majority_vote_hook(state: MajorityVoteState, bucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: send packed signs, return the majority vote.

    Register with ``ddp.register_comm_hook(state, majority_vote_hook)`` and train
    with ``torch.optim.SGD(model.parameters(), lr=η)`` (no momentum there: it
    lives in the hook, per worker, before the sign).

    Examples
    --------
    >>> from neurolns.torch.distributed import MajorityVoteState, majority_vote_hook
    >>> state = MajorityVoteState(exchange="two-phase", momentum=0.9)   # doctest: +SKIP
    >>> ddp.register_comm_hook(state, majority_vote_hook)               # doctest: +SKIP
    """
    group = state.process_group
    world = dist.get_world_size(group)
    buf = bucket.buffer()
    if state.step < state.warmup_steps:
        return fp32_allreduce_hook(state, bucket)
    params = bucket.parameters()
    grads = bucket.gradients()
    flag = _nonfinite_flag(buf)  # this worker's bucket holds NaN or ±inf
    dirs = [state.direction(p, g) for p, g in zip(params, grads)]
    d = torch.cat([x.reshape(-1) for x in dirs]) if len(dirs) > 1 else dirs[0].reshape(-1)
    if state.flip_signs:
        d = -d
    n = d.numel()
    name = f"bucket {bucket.index()}"
    why = "a worker's gradient holds NaN or ±inf"

    if state.error_feedback:
        return _ef_exchange(state, bucket, params, dirs, d, flag, world, group, name)

    if state.exchange == Exchange.ALLGATHER:
        packed = torch.cat([pack_signs(d), flag])  # the packed row, then the flag byte
        out = torch.empty(world * packed.numel(), dtype=torch.uint8, device=buf.device)
        state._count("all_gather", packed.numel(), world)
        state._end_bucket(bucket)
        fut = _all_gather_flat(out, packed, group).get_future()

        def finish(f):
            f.wait()
            rows = out.view(world, -1)
            if bool(rows[:, -1].any()):
                return state._skip(buf, name, why)
            buf.copy_(vote_from_packed(rows[:, :-1], n, state.ties, buf.dtype))
            if state.momentum:
                state._commit(params, dirs)
            return buf

        return fut.then(_result(finish, state, name))

    # two-phase: pad to a multiple of 8·W bits so every worker owns a whole-byte slice.
    # Phase 1 is waited for here, on the autograd thread, so that every rank issues its
    # collectives in the same order (bucket by bucket); issuing phase 2 from a future's
    # callback would interleave with the next bucket's phase 1 differently on each rank.
    n_pad = -(-n // (8 * world)) * 8 * world
    slice_bytes = n_pad // 8 // world
    # every slice carries the sender's flag byte, so every rank learns every worker's flag in phase 1
    send = torch.cat([pack_signs(d, n_pad).view(world, slice_bytes), flag.expand(world, 1)], dim=1).reshape(-1)
    recv = torch.empty_like(send)
    state._count("all_to_all", send.numel(), world)
    state._count("all_gather", slice_bytes, world)
    state._end_bucket(bucket)
    try:
        dist.all_to_all_single(recv, send, group=group, async_op=True).wait(
            timeout=_dt.timedelta(seconds=state.timeout_s))
    except Exception as exc:
        raise _exchange_error(name, exc) from exc
    rows = recv.view(world, slice_bytes + 1)
    skip = rows[:, -1].any()  # the same on every rank: all of them received every flag (read in finish)
    mine = vote_from_packed(rows[:, :-1], slice_bytes * 8, state.ties, torch.float32)
    gathered = torch.empty(world * slice_bytes, dtype=torch.uint8, device=buf.device)
    fut = _all_gather_flat(gathered, pack_signs(mine), group).get_future()  # sent anyway: the ranks stay in step

    def finish(f):
        f.wait()
        if bool(skip):
            return state._skip(buf, name, why)
        bits = unpack_signs(gathered, n)
        buf.copy_(1 - 2 * bits.to(buf.dtype))
        if state.momentum:
            state._commit(params, dirs)
        return buf

    return fut.then(_result(finish, state, name))


def _ef_exchange(state, bucket, params, dirs, d, flag, world, group, name):
    """Error feedback: all-gather signs (+ the flag byte) and per-parameter scales, return the mean Δ."""
    buf = bucket.buffer()
    sizes = [x.numel() for x in dirs]
    scales = torch.stack([x.abs().mean() for x in dirs]).to(torch.float32)
    packed = torch.cat([pack_signs(d), flag])
    delta_local = torch.cat([torch.where(x >= 0, s, -s).reshape(-1) for x, s in zip(dirs, scales)])
    # new residuals e <- p - Δ, committed only after a clean exchange
    residuals = [x - dl.view_as(x) for x, dl in zip(dirs, delta_local.split(sizes))]
    out_bits = torch.empty(world * packed.numel(), dtype=torch.uint8, device=buf.device)
    out_scales = torch.empty(world * scales.numel(), dtype=torch.float32, device=buf.device)
    state._count("all_gather", packed.numel() + scales.numel() * 4, world)
    state._end_bucket(bucket)
    w1 = _all_gather_flat(out_bits, packed, group)
    fut = _all_gather_flat(out_scales, scales, group).get_future()
    n = d.numel()

    def finish(f):
        if not w1.wait(timeout=_dt.timedelta(seconds=state.timeout_s)):
            raise RuntimeError(f"all_gather did not complete within {state.timeout_s} s")
        f.wait()
        rows = out_bits.view(world, -1)
        if bool(rows[:, -1].any()):
            return state._skip(buf, name, "a worker's gradient holds NaN or ±inf")
        signs = 1.0 - 2.0 * unpack_signs(rows[:, :-1], n).to(torch.float32)
        per_elem = torch.repeat_interleave(out_scales.view(world, -1), torch.tensor(sizes, device=buf.device), dim=1)
        buf.copy_((signs * per_elem).mean(dim=0).to(buf.dtype))
        state._commit(params, residuals)
        return buf

    return fut.then(_result(finish, state, name))
