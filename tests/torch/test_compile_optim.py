"""torch.compile(fullgraph=True) of LNS-Madam's per-parameter math
(:func:`neurolns.torch.optim.lns_madam_step`): the traced update gives the eager optimizer's
codes, second moments, step counts and weights bit for bit, for whole-step and fractional
rates, and skips a step with a non-finite gradient through a device flag instead of a host
decision.

Most tests use the ``aot_eager`` backend (quick to build); one uses inductor.
"""
import warnings

import pytest
import torch
from torch import nn

from neurolns import LNS8
from neurolns.torch import LNSLinear, LNSMadam, SignSGD, Signum
from neurolns.torch.optim import _fmt, all_finite, lns_madam_step, signum_step

SEED = 7
#: rates of the steps after the first (eager) one: whole steps, fractional ones, zero
RATES = [2 / 128, 0.37 / 128, 1 / 128, 2.6 / 128, 0.0, 0.5 / 128, 1 / 128]
NAN_STEP = 3  # index into RATES of the step whose gradient holds a NaN


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def _params():
    """A plain matrix, a plain vector (default update grid) and the weight of an LNS layer
    stored on its own grid (``storage="lns"``)."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # the layer's initialisation
    layer = LNSLinear(9, 5, weight_format=LNS8, storage="lns")
    return [nn.Parameter(torch.randn(40, 7, generator=g)), nn.Parameter(torch.randn(13, generator=g) * 1e-3),
            layer.weight], layer


def _grads(ps, n):
    g = torch.Generator().manual_seed(1)
    seq = [[torch.randn(p.shape, generator=g) * 10.0 ** float(i % 3 - 1) for p in ps] for i in range(n)]
    seq[NAN_STEP + 1][1][4] = float("nan")  # seq[0] is the first (eager) step
    seq[NAN_STEP + 1][0][0, 0] = float("inf")
    return seq


def _update(codes, grads, vs, steps, skipped, lr, meta):
    """One step of every parameter in pure torch: the whole step is kept or dropped by one flag."""
    ok = all_finite(grads)
    out = [lns_madam_step(c, g, v, t, fmt=f, scale=s, lr=lr, max_code=mc, seed=SEED, stream=i, finite=ok)
           for i, (c, g, v, t, (f, s, mc)) in enumerate(zip(codes, grads, vs, steps, meta))]
    return out, skipped + (~ok).to(torch.int64)


def _run(fn, backends=("torch", "auto"), rates=RATES, lr_tensor=False):
    """Eager optimizers (one per backend) against ``fn`` (the update, compiled or not), step by
    step from the state after one eager step; returns the number of compared steps."""
    opts, layers = {}, []  # the layers stay alive: LNSMadam finds a weight's grid through its layer
    for b in backends:
        own, layer = _params()
        layers.append(layer)
        opts[b] = (own, LNSMadam(own, lr=1 / 128, backend=b, seed=SEED, p_scale=4.0))
    ps = opts[backends[0]][0]
    gseq = _grads(ps, len(rates) + 1)
    for b, (own, opt) in opts.items():
        for p, g in zip(own, gseq[0]):
            p.grad = g.clone()
        opt.step()
    own, opt = opts[backends[0]]
    st = [opt.state[p] for p in own]
    meta = [(_fmt(s["fmt"]), s["scale"], s["max_code"]) for s in st]
    codes = [opt.codes(p) for p in own]
    vs = [s["v"].clone() for s in st]
    steps = [torch.tensor(s["step"]) for s in st]
    skipped = torch.zeros((), dtype=torch.int64)
    for i, (lr, gs) in enumerate(zip(rates, gseq[1:])):
        for b, (own, opt) in opts.items():
            for p, g in zip(own, gs):
                p.grad = g.clone()
            for group in opt.param_groups:
                group["lr"] = lr
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                opt.step()
            assert any(x.category is RuntimeWarning for x in w) == (i == NAN_STEP)
        rate = torch.tensor(lr, dtype=torch.float64) if lr_tensor else lr
        out, skipped = fn(codes, gs, vs, steps, skipped, rate, meta)
        codes, vs, steps = [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]
        for b, (own, opt) in opts.items():
            for j, (p, (c, v, t, w)) in enumerate(zip(own, out)):
                where = f"backend={b} step {i} (lr={lr}) param {j}"
                assert torch.equal(c, opt.codes(p)), where
                assert c.dtype == opt.codes(p).dtype, where
                assert torch.equal(_bits(v.to(torch.float32)), _bits(opt.state[p]["v"].to(torch.float32))), where
                assert torch.equal(v, opt.state[p]["v"]), where
                assert int(t) == opt.state[p]["step"], where
                assert torch.equal(_bits(w), _bits(p)), where
            assert int(skipped) == opt.skipped_steps == 1 * (i >= NAN_STEP), where
    return len(rates)


def test_lns_madam_step_uncompiled_equals_the_optimizer():
    assert _run(_update) == len(RATES)


def test_lns_madam_step_compiles_fullgraph_to_the_eager_codes():
    """aot_eager, fullgraph: whole and fractional rates, lr = 0, a parameter on an LNS layer's
    grid, a p_scale cap and a step with NaN and inf gradient entries (skipped on the device)."""
    compiled = torch.compile(_update, fullgraph=True, backend="aot_eager", dynamic=False)
    assert _run(compiled) == len(RATES)


def test_a_tensor_rate_compiles_once_to_the_eager_codes():
    """lr as a 0-d float64 tensor: one graph for every rate (no recompile), the same codes
    for whole, fractional and zero rates."""
    compiled = torch.compile(_update, fullgraph=True, backend="aot_eager")
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert _run(compiled, lr_tensor=True) == len(RATES)
    assert _run(_update, backends=("auto",), lr_tensor=True) == len(RATES)


def test_lns_madam_step_compiles_with_inductor_to_the_eager_codes():
    """Inductor, fullgraph: its generated CPU code gives the same codes, v and weights."""
    compiled = torch.compile(_update, fullgraph=True, dynamic=False)
    assert _run(compiled, backends=("torch",), rates=RATES[:4]) == 4


def test_a_non_finite_flag_keeps_the_old_state():
    """finite=False: codes, v and the step count come back unchanged, the values are the old
    codes decoded; the default flag is this gradient's own."""
    from neurolns.learning import update_format

    fmt = update_format(LNS8, 128)
    c0 = torch.tensor([1536, -1536, 0, 7], dtype=torch.int16)
    v0 = torch.tensor([0.5, 0.25, 0.0, 1.0], dtype=torch.float64)
    t0 = torch.tensor(4)
    fn = torch.compile(lns_madam_step, fullgraph=True, backend="aot_eager", dynamic=False)
    for kwargs, g in (({"finite": torch.tensor(False)}, torch.ones(4)),
                      ({}, torch.tensor([1.0, float("nan"), 1.0, 1.0]))):
        c, v, t, w = fn(c0, g, v0, t0, fmt=fmt, scale=2.0**-4, lr=0.3 / 128, **kwargs)
        assert torch.equal(c, c0) and torch.equal(v, v0) and int(t) == 4
        assert w.tolist() == [1.0, -1.0, 0.0, w[3].item()] and w[3].item() > 0
    zero = torch.zeros(4, dtype=torch.float64)
    c, v, t, w = fn(c0, torch.ones(4), zero, torch.tensor(0), fmt=fmt, scale=2.0**-4, lr=1 / 128)
    assert c.tolist() == [1535, -1537, 0, 6] and int(t) == 1  # ĝ = 1: one step each way, 0 stays 0
    assert torch.equal(w[:3], torch.tensor([2.0 ** (-1 / 128), -(2.0 ** (1 / 128)), 0.0]))  # float32


def test_signum_step_compiles_fullgraph_to_the_optimizers_weights():
    """aot_eager, fullgraph: Signum's weights and momentum bit for bit over steps that include
    a zero momentum entry and a NaN gradient (skipped on the device)."""
    g = torch.Generator().manual_seed(2)
    w0 = torch.randn(64, generator=g)
    p = nn.Parameter(w0.clone())
    opt = Signum([p], lr=0.01, beta=0.9)
    fn = torch.compile(signum_step, fullgraph=True, backend="aot_eager", dynamic=False)
    w, m, skipped = w0.clone(), torch.zeros(64), torch.zeros((), dtype=torch.int64)
    for i in range(5):
        grad = torch.randn(64, generator=g)
        grad[0] = 0.0
        if i == 2:
            grad[5] = float("nan")
        p.grad = grad.clone()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            opt.step()
        ok = all_finite([grad])
        w, m = fn(w, grad, m, lr=0.01, beta=0.9, finite=ok)
        skipped = skipped + (~ok).to(torch.int64)
        assert torch.equal(_bits(w), _bits(p)), i
        assert torch.equal(_bits(m), _bits(opt.state[p]["momentum"])), i
    assert int(skipped) == opt.skipped_steps == 1


def test_signum_step_with_beta_zero_is_sign_sgd():
    """beta=0 and a zero momentum: SignSGD's weights bit for bit, sign(0) = +1 and -0 included."""
    g = torch.Generator().manual_seed(3)
    w0 = torch.randn(32, generator=g)
    p = nn.Parameter(w0.clone())
    opt = SignSGD([p], lr=0.003)
    fn = torch.compile(signum_step, fullgraph=True, backend="aot_eager", dynamic=False)
    w = w0.clone()
    for i in range(3):
        grad = torch.randn(32, generator=g)
        grad[:2] = torch.tensor([0.0, -0.0])
        p.grad = grad.clone()
        opt.step()
        w, _ = fn(w, grad, torch.zeros(32), lr=0.003, beta=0.0)
        assert torch.equal(_bits(w), _bits(p)), i


def test_a_format_built_inside_the_compiled_function():
    """The grid may be built while tracing (update_format inside the function): the compiled
    codes equal the uncompiled ones for a whole and a fractional rate."""
    from neurolns.learning import update_format

    g = torch.Generator().manual_seed(4)
    c0 = (torch.randint(1, 2047, (200,), generator=g) * torch.where(torch.rand(200, generator=g) < 0.5, -1, 1))
    c0 = c0.to(torch.int16)
    grad = torch.randn(200, generator=g)

    def fn(c, gr, lr):
        return lns_madam_step(c, gr, torch.zeros(200, dtype=torch.float64), torch.tensor(0),
                              fmt=update_format(LNS8, 128), scale=2.0**-4, lr=lr, seed=1, stream=2)

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager", dynamic=False)
    for lr in (2 / 128, 0.3 / 128):
        want, got = fn(c0, grad, lr), compiled(c0, grad, lr)
        assert not torch.equal(want[0], c0)
        for a, b in zip(want, got):
            assert torch.equal(a, b), lr
