"""torch.compile(fullgraph=True) of the float optimizers' per-parameter math.

* :func:`~neurolns.torch.optim.madam_step`: weights, float64 second moments and step counts
  equal the eager :class:`~neurolns.torch.Madam`'s bit for bit (eager, ``aot_eager``,
  inductor) over a run with gradients of mixed magnitude, a step with NaN/±inf (skipped
  through a device flag, as the eager optimizer skips it on the host) and a bound ``p_max``
  that clamps.
* :func:`~neurolns.torch.optim.ef_sign_sgd_step`: eager and ``aot_eager`` give the eager
  :class:`~neurolns.torch.EFSignSGD`'s weights and error memory bit for bit over six steps;
  inductor, which may sum the ℓ1 norm in another order, stays within 4 float32 ulp of the
  largest weight; a non-finite step keeps the old state.
"""
import warnings

import pytest
import torch
from torch import nn

from neurolns.torch import EFSignSGD, Madam, ef_sign_sgd_step, madam_step

LR, BETA, GB, PSCALE = 0.05, 0.9, 10.0, 1.2
NAN_STEP = 3


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _grads(shape, n):
    g = torch.Generator().manual_seed(3)
    seq = [torch.randn(shape, generator=g) * 10.0 ** float(i % 3 - 1) for i in range(n)]
    seq[NAN_STEP][0, 1] = float("nan")
    seq[NAN_STEP][2, 2] = float("inf")
    seq[1][0, 0] = 0.0
    return seq


def _eager(w0, grads):
    p = nn.Parameter(w0.clone())
    opt = Madam([p], lr=LR, beta=BETA, g_bound=GB, p_scale=PSCALE)
    out = []
    for g in grads:
        p.grad = g.clone()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            opt.step()
        st = opt.state[p]
        out.append((p.detach().clone(), st["v"].clone(), st["step"]))
    return out, opt.state[p]["p_max"]


@pytest.mark.parametrize("backend", [None, "aot_eager", "inductor"])
def test_madam_step_equals_eager_madam(backend):
    w0 = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    grads = _grads(w0.shape, 8)
    ref, p_max = _eager(w0, grads)
    assert p_max < float(w0.abs().max())  # the bound clamps some weights

    def fn(w, g, v, t):
        return madam_step(w, g, v, t, lr=LR, beta=BETA, g_bound=GB, p_max=p_max)

    step_fn = fn if backend is None else torch.compile(fn, fullgraph=True, backend=backend)
    w, v, t = w0.clone(), torch.zeros(w0.shape, dtype=torch.float64), torch.tensor(0)
    for i, (g, (w_ref, v_ref, t_ref)) in enumerate(zip(grads, ref)):
        w, v, t = step_fn(w, g, v, t)
        assert torch.equal(w.view(torch.int32), w_ref.view(torch.int32)), f"step {i}"
        assert torch.equal(v.view(torch.int64), v_ref.view(torch.int64)), f"step {i}"
        assert int(t) == t_ref, f"step {i}"
    assert int(t) == len(grads) - 1  # the NaN step was skipped


def test_madam_step_keeps_the_state_when_not_finite():
    """``finite=False`` returns the old weights, moment and count unchanged."""
    w, g, v = torch.randn(4), torch.randn(4), torch.rand(4, dtype=torch.float64)
    w2, v2, t2 = madam_step(w, g, v, torch.tensor(5), lr=0.1, finite=torch.tensor(False))
    assert torch.equal(w2, w) and torch.equal(v2, v) and int(t2) == 5


EF_LR = 0.01


@pytest.mark.parametrize("backend", [None, "aot_eager", "inductor"])
def test_ef_sign_sgd_step_equals_eager(backend):
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(300, 7, generator=gen)
    grads = [torch.randn(300, 7, generator=gen) * 10.0 ** float(i % 3 - 1) for i in range(6)]
    p = torch.nn.Parameter(w0.clone())
    opt = EFSignSGD([p], lr=EF_LR)
    fn = ef_sign_sgd_step if backend is None else torch.compile(ef_sign_sgd_step, fullgraph=True,
                                                                  backend=backend)
    w, e = w0.clone(), torch.zeros_like(w0)
    for i, g in enumerate(grads):
        p.grad = g.clone()
        opt.step()
        w, e = fn(w, g, e, lr=EF_LR)
        if backend == "inductor":
            tol = 4 * torch.finfo(torch.float32).eps * float(w0.abs().max())
            torch.testing.assert_close(w, p.detach(), rtol=0.0, atol=tol)
        else:
            assert torch.equal(w, p.detach()) and torch.equal(e, opt.state[p]["error"]), f"step {i}"


def test_ef_sign_sgd_step_skips_a_non_finite_gradient():
    w, e = torch.randn(5), torch.randn(5)
    g = torch.randn(5)
    g[2] = float("nan")
    w2, e2 = ef_sign_sgd_step(w, g, e, lr=0.1)
    assert torch.equal(w2, w) and torch.equal(e2, e)
