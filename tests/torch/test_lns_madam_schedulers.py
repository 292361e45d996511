"""LNS-Madam (torch) under any learning rate and any ``torch.optim.lr_scheduler`` (issue 16).

A rate that is not a whole number of grid steps moves each code by ``d = η γ rint(ĝ)``
rounded stochastically, so the mean move over many weights equals ``d``; whole rates
give the codes of the code before the change, bit for bit. The statistical tests use a
fixed seed and a stated tolerance of 5 standard deviations of the mean move (the move of
one element is ``floor d`` or ``floor d + 1``: variance ``f(1 − f) ≤ 1/4``).
"""

import copy
import hashlib
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.optim import lr_scheduler as sch

from neurolns import LNS8
from neurolns.learning import LNSMadam as SimLNSMadam
from neurolns.learning import Schedule, rounding_draws, scheduled_lr, update_format
from neurolns.torch import LNSLinear
from neurolns.torch.optim import LNSMadam
from neurolns.torch.quantize import choose_scale, encode_codes_t

GAMMA = 128
N = 20_000  # elements of the statistical tests: sd of one step's mean move <= 0.5/sqrt(N) = 0.0035


def _ones(n=N, dtype=torch.float32):
    """A parameter of ``n`` ones: every code starts at 1536 (LNS12, γ 128, scale 2^-4)."""
    return nn.Parameter(torch.ones(n, dtype=dtype))


def _run(opt, w, scheduler, steps, grad=1.0):
    """Steps with a constant gradient (ĝ = 1 at every step: each code moves by the step's k);
    returns the rate of each step and the mean code move of each step."""
    lrs, moves = [], []
    prev = None
    for _ in range(steps):
        w.grad = torch.full_like(w, grad)
        lrs.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        c = opt.codes(w).to(torch.int64)
        if prev is None:
            prev = torch.full_like(c, 1536)
        moves.append(float((prev - c).double().mean()))
        prev = c
        if scheduler is not None:
            if isinstance(scheduler, sch.ReduceLROnPlateau):
                scheduler.step(1.0)  # a loss that never improves: the rate is cut every `patience` steps
            else:
                scheduler.step()
    return np.array(lrs), np.array(moves)


def test_whole_step_rates_give_the_codes_of_before_bit_for_bit():
    """Invariant: whole-step rates (1/128 default, 3/128 in a second group, LNS-layer and plain
    parameters, both backends) give exactly the codes the optimizer gave before fractional steps
    existed: the digests were computed with that code on this scenario."""
    want = "9765e1caf0b3a3b3"
    for backend in ("auto", "torch"):
        torch.manual_seed(0)
        rng = np.random.default_rng(1)
        layer = LNSLinear(12, 7, storage="lns")
        w1 = nn.Parameter(torch.from_numpy(rng.standard_normal(257).astype(np.float32)))
        w2 = nn.Parameter(torch.from_numpy(rng.standard_normal((31, 17)).astype(np.float32)))
        ps = [w1, w2, *layer.parameters()]
        opt = LNSMadam([{"params": [w1, layer.weight]}, {"params": [w2, layer.bias], "lr": 3 / 128}],
                       backend=backend)
        for _ in range(25):
            for p in ps:
                g = rng.standard_normal(tuple(p.shape)).astype(np.float32)
                g[rng.random(g.shape) < 0.1] = 0.0
                p.grad = torch.from_numpy(g)
            opt.step()
        got = hashlib.sha256(b"".join(opt.codes(p).numpy().tobytes() for p in ps)).hexdigest()[:16]
        assert got == want, backend


def test_default_lr_is_a_number_that_schedulers_scale():
    """The default rate is 1/128 (one grid step, as the former lr=None); StepLR scales it
    (it raised TypeError on None); lr=None is still accepted as 1/update_gamma."""
    w = _ones(4)
    opt = LNSMadam([w])
    assert opt.defaults["lr"] == 1 / 128 and opt.param_groups[0]["lr"] == 1 / 128
    s = sch.StepLR(opt, step_size=1, gamma=0.5)
    w.grad = torch.ones(4)
    opt.step()
    s.step()
    assert opt.param_groups[0]["lr"] == 1 / 256
    assert opt.codes(w).tolist() == [1535] * 4  # the first step: one whole grid step
    assert LNSMadam([_ones(2)], lr=None, update_gamma=256, forward_format=LNS8).defaults["lr"] == 1 / 256


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cosine_annealing_matches_schedule_cosine_in_expectation(backend):
    """Done-when of issue 16. CosineAnnealingLR(T_max=S) over S steps from η₀ = 3.3/128:
    the mean code move of each step equals η₀·γ·f(s) of Schedule("cosine") (scheduled_lr without
    grid rounding) within 5 sd of the mean (sd <= 0.5/sqrt(N) = 0.0035), and the mean total move
    equals Σ η₀ γ f(s) within 5 sd (sd <= sqrt(S/4/N) = 0.027)."""
    steps, lr0 = 60, 3.3 / 128
    w = _ones()
    opt = LNSMadam([w], lr=lr0, backend=backend, seed=11)
    lrs, moves = _run(opt, w, sch.CosineAnnealingLR(opt, T_max=steps), steps)
    want = np.array([scheduled_lr(lr0, Schedule.COSINE, s, steps) * GAMMA for s in range(steps)])
    np.testing.assert_allclose(lrs * GAMMA, want, rtol=1e-12, atol=1e-12)  # the scheduler is the Schedule
    tol_step = 5 * 0.5 / math.sqrt(N)
    assert np.max(np.abs(moves - want)) < tol_step, np.max(np.abs(moves - want))
    total = moves.sum()
    assert abs(total - want.sum()) < 5 * math.sqrt(steps / 4 / N), (total, want.sum())
    # the integer-rounded schedule of the trainer (grid_gamma) differs from this expectation
    rounded = sum(scheduled_lr(lr0, "cosine", s, steps, grid_gamma=GAMMA) * GAMMA for s in range(steps))
    assert abs(rounded - want.sum()) > 1.0


def test_steplr_moves_by_its_rates_in_expectation():
    """StepLR(step_size=10, gamma=0.5) from 3/128: k = 3, 1.5, 0.75, 0.375 code steps; the mean
    move of each step equals k within 5 sd; the whole-k steps move every element by exactly 3."""
    w = _ones()
    opt = LNSMadam([w], lr=3 / 128)
    lrs, moves = _run(opt, w, sch.StepLR(opt, step_size=10, gamma=0.5), 40)
    k = lrs * GAMMA
    np.testing.assert_array_equal(k, np.repeat([3.0, 1.5, 0.75, 0.375], 10))
    assert np.max(np.abs(moves - k)) < 5 * 0.5 / math.sqrt(N)
    assert np.all(moves[:10] == 3.0)


def _schedulers():
    """Every scheduler of torch.optim.lr_scheduler, built on an optimizer."""
    return {
        "StepLR": lambda o: sch.StepLR(o, step_size=5, gamma=0.7),
        "MultiStepLR": lambda o: sch.MultiStepLR(o, milestones=[4, 9], gamma=0.3),
        "ConstantLR": lambda o: sch.ConstantLR(o, factor=0.37, total_iters=6),
        "LinearLR": lambda o: sch.LinearLR(o, start_factor=0.2, total_iters=10),
        "ExponentialLR": lambda o: sch.ExponentialLR(o, gamma=0.9),
        "PolynomialLR": lambda o: sch.PolynomialLR(o, total_iters=12, power=2.0),  # reaches 0
        "CosineAnnealingLR": lambda o: sch.CosineAnnealingLR(o, T_max=15),
        "CosineAnnealingWarmRestarts": lambda o: sch.CosineAnnealingWarmRestarts(o, T_0=6),
        "CyclicLR": lambda o: sch.CyclicLR(o, base_lr=0.2 / 128, max_lr=2.5 / 128, step_size_up=4,
                                           cycle_momentum=False),  # LNS-Madam has no momentum
        "OneCycleLR": lambda o: sch.OneCycleLR(o, max_lr=2.5 / 128, total_steps=20, cycle_momentum=False),
        "LambdaLR": lambda o: sch.LambdaLR(o, lambda s: 1.0 / (1 + s)),
        "MultiplicativeLR": lambda o: sch.MultiplicativeLR(o, lambda s: 0.93),
        "SequentialLR": lambda o: sch.SequentialLR(o, [sch.ConstantLR(o, factor=0.5, total_iters=5),
                                                       sch.ExponentialLR(o, gamma=0.8)], milestones=[5]),
        "ChainedScheduler": lambda o: sch.ChainedScheduler([sch.ConstantLR(o, factor=0.5, total_iters=5),
                                                            sch.ExponentialLR(o, gamma=0.9)]),
        "ReduceLROnPlateau": lambda o: sch.ReduceLROnPlateau(o, factor=0.45, patience=2),
    }


@pytest.mark.parametrize("name", sorted(_schedulers()))
def test_every_torch_scheduler_runs_and_moves_by_its_rate_in_expectation(name):
    """Each scheduler of torch.optim.lr_scheduler: 20 steps run (they raised before whenever the
    rate left the 1/128 grid), the rates really change, and each step's mean code move equals the
    step's k = η γ within 5 sd (0.018 code steps)."""
    w = _ones()
    opt = LNSMadam([w], lr=2 / 128, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's own notes on scheduler call order
        lrs, moves = _run(opt, w, _schedulers()[name](opt), 20)
    assert len(set(lrs.tolist())) > 1, "the scheduler changed nothing"
    assert np.max(np.abs(moves - lrs * GAMMA)) < 5 * 0.5 / math.sqrt(N)


@settings(max_examples=25, deadline=None)
@given(k=st.floats(0.0, 12.0), seed=st.integers(0, 2**32 - 1), grad=st.sampled_from([1.0, -1.0]))
def test_any_rate_moves_by_k_in_expectation(k, seed, grad):
    """Property: for any rate η = k/128 in [0, 12/128] and any seed, the first step's mean move
    (ĝ = ±1) is ±k within 5 sd; every element moves by floor(k) or floor(k) + 1."""
    w = _ones(4000)
    opt = LNSMadam([w], lr=k / GAMMA, seed=seed)
    w.grad = torch.full_like(w, grad)
    opt.step()
    move = (1536 - opt.codes(w).to(torch.int64)).double() * grad
    assert abs(float(move.mean()) - k) < 5 * 0.5 / math.sqrt(4000) + 1e-6
    assert set(move.unique().tolist()) <= {math.floor(k), math.floor(k) + 1}


def test_fractional_draws_are_those_of_rounding_draws():
    """Invariant: element i moves up by an extra step exactly when rounding_draws(seed, stream, t, n)[i]
    < frac(d)·2^24: here k = 0.5, stream 1 (the second parameter), t = 1."""
    a, b = _ones(50), _ones(1000)
    opt = LNSMadam([{"params": [a]}, {"params": [b]}], lr=0.5 / 128, seed=99)
    a.grad, b.grad = torch.ones(50), torch.ones(1000)
    opt.step()
    r = rounding_draws(99, 1, 1, 1000)
    want = 1536 - (r < 0.5 * 2**24).astype(np.int64)
    np.testing.assert_array_equal(opt.codes(b).numpy(), want)


def test_backends_and_the_simulator_give_identical_codes_for_fractional_rates():
    """Invariant: Numba (auto), torch operations and the simulator's LNSMadam, with the same seed,
    streams and rates (a CosineAnnealingLR the simulator copies), give the same codes bit for bit."""
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(300).astype(np.float32), rng.standard_normal((20, 9)).astype(np.float32)]
    grads = [[rng.standard_normal(x.shape).astype(np.float32) for x in init] for _ in range(15)]
    out = {}
    for backend in ("auto", "torch"):
        ps = [nn.Parameter(torch.from_numpy(x.copy())) for x in init]
        opt = LNSMadam([{"params": [ps[0]]}, {"params": [ps[1]]}], lr=2.6 / 128, backend=backend, seed=21)
        s = sch.CosineAnnealingLR(opt, T_max=15)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = torch.from_numpy(g)
            opt.step()
            s.step()
        out[backend] = [opt.codes(p).numpy() for p in ps]
    fmt = update_format(LNS8, 128)
    codes = []
    for x in init:
        scale = float(choose_scale(torch.from_numpy(x), LNS8)) * 2.0**3
        codes.append(encode_codes_t(torch.from_numpy(x), fmt, scale=scale)[0].numpy().copy())
    sim = SimLNSMadam(codes, fmt=fmt, lr=2.6 / 128, seed=21)
    for s_, gs in enumerate(grads):
        sim.defaults["lr"] = scheduled_lr(2.6 / 128, "cosine", s_, 15)
        sim.step(gs)
    for i in range(2):
        np.testing.assert_array_equal(out["auto"][i], out["torch"][i])
        np.testing.assert_array_equal(out["auto"][i], codes[i])


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_bfloat16_parameters_on_cpu(backend):
    """bfloat16 parameters step on CPU with either backend (auto raised TypeError before); both give
    the codes of the same parameter in float32 (bf16 → f32 is exact), whole and fractional rates."""
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal(500).astype(np.float32)).to(torch.bfloat16)
    gs = [torch.from_numpy(rng.standard_normal(500).astype(np.float32)).to(torch.bfloat16) for _ in range(8)]
    for lr in (1 / 128, 1.7 / 128):
        res = {}
        for dt in (torch.bfloat16, torch.float32):
            w = nn.Parameter(x.to(dt, copy=True))  # a copy: x.to(bfloat16) would share x's storage
            opt = LNSMadam([w], lr=lr, backend=backend if dt == torch.bfloat16 else "torch", seed=4)
            for g in gs:
                w.grad = g.to(dt)
                opt.step()
            assert w.dtype == dt
            res[dt] = opt.codes(w)
        assert torch.equal(res[torch.bfloat16], res[torch.float32])


def test_zero_rate_moves_nothing_and_a_bad_rate_raises_before_any_change():
    """lr = 0 (where PolynomialLR ends) moves no code; a negative or NaN rate set between steps
    raises ValueError naming it and the range, and nothing changes (not even the step count)."""
    w = _ones(10)
    opt = LNSMadam([w], lr=0.0)
    w.grad = torch.ones(10)
    opt.step()
    assert opt.codes(w).tolist() == [1536] * 10
    for bad in (-1 / 128, math.nan, math.inf):
        opt.param_groups[0]["lr"] = bad
        with pytest.raises(ValueError, match=r"lr=.* is out of range; allowed: \[0.0, inf\]"):
            opt.step()
        assert opt.state[w]["step"] == 1
    opt.param_groups[0]["lr"] = torch.tensor(2.0 / 128)  # a one-element tensor rate is read as a number
    opt.step()
    assert opt.codes(w).tolist() == [1534] * 10
    with pytest.raises(ValueError, match="seed=-1 is out of range"):
        LNSMadam([_ones(2)], seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        LNSMadam([_ones(2)], seed=1.5)


def test_nonfinite_gradient_skips_the_step_with_fractional_rates():
    """The non-finite policy holds under a scheduler: the step is skipped with a RuntimeWarning,
    skipped_steps grows, and the run continues with the draws an uninterrupted run would take."""
    def run(bad_at):
        w = _ones(300)
        opt = LNSMadam([w], lr=1.3 / 128, seed=8)
        s = sch.ExponentialLR(opt, gamma=0.9)
        for t in range(6):
            if t == bad_at:
                w.grad = torch.ones(300)
                w.grad[7] = math.nan
                with pytest.warns(RuntimeWarning, match="skipped"):
                    opt.step()
            w.grad = torch.ones(300)
            opt.step()
            s.step()
        return opt.codes(w), opt.skipped_steps

    c_clean, n_clean = run(None)
    c_bad, n_bad = run(3)
    assert (n_clean, n_bad) == (0, 1)
    assert torch.equal(c_clean, c_bad)


def test_resume_from_state_dict_continues_the_same_draws():
    """A run saved mid-schedule (optimizer and scheduler state dicts) and resumed in a fresh
    optimizer gives the codes of the uninterrupted run: the draws depend on (seed, stream, step)."""
    def make():
        torch.manual_seed(0)
        layer = LNSLinear(16, 8, storage="lns")
        opt = LNSMadam(layer.parameters(), lr=2.2 / 128, seed=5)
        return layer, opt, sch.CosineAnnealingLR(opt, T_max=20)

    def grads(layer, t):
        g = torch.Generator().manual_seed(t)
        for p in layer.parameters():
            p.grad = torch.randn(p.shape, generator=g)

    layer, opt, s = make()
    for t in range(20):
        grads(layer, t)
        opt.step()
        s.step()
        if t == 9:
            # deep copies: torch's state dicts hold references to tensors the next steps update in place
            saved = copy.deepcopy((layer.state_dict(), opt.state_dict(), s.state_dict()))
    want = [opt.codes(p) for p in layer.parameters()]
    layer2, opt2, s2 = make()
    layer2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    s2.load_state_dict(saved[2])
    for t in range(10, 20):
        grads(layer2, t)
        opt2.step()
        s2.step()
    for a, b in zip(want, [opt2.codes(p) for p in layer2.parameters()]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_bfloat16_resume_from_state_dict_is_exact(backend):
    """A bfloat16 parameter holds its grid values rounded to bfloat16, which need not re-encode to
    the same codes: a resumed run keeps the saved integer codes (torch's load_state_dict would cast
    them to bfloat16) and continues with the codes of the uninterrupted run, every one of 500."""
    def make():
        torch.manual_seed(0)
        w = nn.Parameter(torch.randn(500).to(torch.bfloat16))
        return w, LNSMadam([w], lr=1.5 / 128, seed=5, backend=backend)

    def grad(w, t):
        w.grad = torch.randn(500, generator=torch.Generator().manual_seed(t)).to(torch.bfloat16)

    w, opt = make()
    for t in range(10):
        grad(w, t)
        opt.step()
        if t == 4:
            saved = copy.deepcopy((w.detach(), opt.state_dict()))
    w2, opt2 = make()
    with torch.no_grad():
        w2.copy_(saved[0])
    opt2.load_state_dict(saved[1])
    for t in range(5, 10):
        grad(w2, t)
        opt2.step()
    assert torch.equal(opt.codes(w), opt2.codes(w2))
