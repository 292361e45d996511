"""The torch optimizers against the formulas (float64 oracles) and against neurolns.learning."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from neurolns import LNS8
from neurolns import learning
from neurolns.learning import update_format
from neurolns.lns import encode_codes
from neurolns.torch import EFSignSGD, LNSLinear, LNSMadam, Madam, Signum, SignSGD


def _madam_oracle(w, grads, lr, beta, g_bound, p_scale):
    """Plain float64 transcription of design.md's Madam: v ← βv + (1−β)g²,
    ĝ = clamp(g/sqrt(v/(1−β^t)), ±g_bound) with 0/0 = 0, w ← w·exp(−η ĝ sign w),
    |w| ≤ p_scale·RMS(w at the first step)."""
    w = w.copy()
    v = np.zeros_like(w)
    p_max = p_scale * math.sqrt(float(np.mean(w * w)))
    out = []
    for t, g in enumerate(grads, start=1):
        v = beta * v + (1 - beta) * g * g
        den = np.sqrt(v / (1 - beta**t))
        gh = np.divide(g, den, out=np.zeros_like(g), where=den > 0)
        gh = np.clip(gh, -g_bound, g_bound)
        w = np.clip(w * np.exp(-lr * gh * np.sign(w)), -p_max, p_max)
        out.append(w.copy())
    return out


def _grads(n_steps, shape, seed):
    rng = np.random.default_rng(seed)
    gs = []
    for t in range(n_steps):
        g = rng.standard_normal(shape) * np.exp(rng.uniform(-3, 3))
        g[0] = 0.0  # an entry that never sees a gradient: 0/0 must give 0
        if t % 7 == 0:
            g[1] = 0.0
        gs.append(g)
    return gs


def test_madam_trajectory_matches_float64_formula():
    """300 steps on float64 weights (with a zero weight, a never-touched entry and the cap
    reached): the torch trajectory equals the float64 formula to 1e-12 relative."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(50)
    w0[2] = 0.0
    w0[3] = 4.0  # far above the RMS: the cap p_scale·RMS binds
    grads = _grads(300, w0.shape, 1)
    ref = _madam_oracle(w0, grads, lr=0.05, beta=0.99, g_bound=3.0, p_scale=2.0)
    p = nn.Parameter(torch.from_numpy(w0.copy()))
    opt = Madam([p], lr=0.05, beta=0.99, g_bound=3.0, p_scale=2.0)
    for g, r in zip(grads, ref):
        p.grad = torch.from_numpy(g)
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-12, atol=0)
    assert p[2].item() == 0.0
    p_max = 2.0 * math.sqrt(np.mean(w0 * w0))
    assert sum(abs(r[3]) == p_max for r in ref) >= 1  # the cap was exercised
    assert np.all(np.sign(p.detach().numpy()) == np.sign(w0))


def test_madam_float32_equals_learning_madam():
    """float32 weights: the same trajectory as neurolns.learning.Madam (float64 arithmetic per
    element in both) within one float32 ulp per value, over 100 steps."""
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal(300).astype(np.float32)
    grads = [g.astype(np.float32) for g in _grads(100, w0.shape, 3)]
    w_np = w0.copy()
    ref = learning.Madam([w_np], lr=0.01, p_scale=3.0)
    p = nn.Parameter(torch.from_numpy(w0.copy()))
    opt = Madam([p], lr=0.01, p_scale=3.0)
    for g in grads:
        ref.step([g])
        p.grad = torch.from_numpy(g)
        opt.step()
    np.testing.assert_array_max_ulp(p.detach().numpy(), w_np, maxulp=2)


def test_lns_madam_codes_equal_learning_over_many_steps():
    """LNS-Madam on an LNS layer: after 200 steps with the same gradients the codes equal
    neurolns.learning.lns_madam_update's bit for bit (k = 2 steps, a p_scale cap)."""
    torch.manual_seed(0)
    layer = LNSLinear(40, 30, storage="lns")
    fmt = layer.master_format
    codes_np, scale = (t.numpy().copy() for t in layer.param_codes("weight"))
    ref = learning.LNSMadam([codes_np], fmt=fmt, lr=2 / 128, p_scale=4.0)
    opt = LNSMadam([layer.weight], lr=2 / 128, p_scale=4.0)
    grads = [g.astype(np.float32) for g in _grads(200, (30, 40), 4)]
    for g in grads:
        ref.step([g])
        layer.weight.grad = torch.from_numpy(g)
        opt.step()
    got, s = layer.param_codes("weight")
    np.testing.assert_array_equal(got.numpy(), codes_np)
    assert float(s) == float(scale)


def test_lns_madam_keeps_sign_and_zero_and_grid():
    """Signs never flip, zeros stay zero, |c| ≥ 1, and plain parameters (outside LNS layers)
    are snapped to update_format(LNS8) at their first step and stay on it."""
    w0 = torch.tensor([1e-3, -2.0, 0.0, 0.7, -1e-30])
    p = nn.Parameter(w0.clone())
    opt = LNSMadam([p], lr=8 / 128)
    fmt = update_format(LNS8)
    for t in range(300):
        p.grad = torch.full_like(p, 1.0 if t % 3 else -5.0)
        opt.step()
        c = encode_codes(p.detach().numpy(), fmt, opt.state[p]["scale"])
        np.testing.assert_array_equal(p.detach().numpy(),
                                      (np.sign(c) * np.exp2((np.abs(c) - fmt.bias) / 128)).astype(np.float32)
                                      * np.float32(opt.state[p]["scale"]))
    assert p[2].item() == 0.0
    assert torch.all(torch.sign(p[[0, 1, 3]]) == torch.sign(w0[[0, 1, 3]]))
    assert torch.all(opt.codes(p).abs()[[0, 1, 3]] >= 1)


def _sign_rule_pair(name):
    mk = {
        "signsgd": (lambda ps: SignSGD(ps, lr=0.01), lambda ps: learning.SignSGD(ps, lr=0.01)),
        "signum": (lambda ps: Signum(ps, lr=0.01, beta=0.8), lambda ps: learning.Signum(ps, lr=0.01, beta=0.8)),
        "ef": (lambda ps: EFSignSGD(ps, lr=0.05), lambda ps: learning.EFSignSGD(ps, lr=0.05)),
    }
    return mk[name]


@pytest.mark.parametrize("name", ["signsgd", "signum", "ef"])
def test_sign_rules_match_learning(name):
    """float64 parameters, 50 steps, gradients with exact zeros (sign(0) = +1): the torch rule
    equals neurolns.learning's to 1e-12."""
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((2, 20))
    grads = _grads(50, w0.shape, 6)
    mk_t, mk_np = _sign_rule_pair(name)
    w_np = w0.copy()
    ref = mk_np([w_np])
    p = nn.Parameter(torch.from_numpy(w0.copy()))
    opt = mk_t([p])
    for g in grads:
        ref.step([g])
        p.grad = torch.from_numpy(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), w_np, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls,kw", [(Madam, {}), (LNSMadam, {}), (SignSGD, {}), (Signum, {}), (EFSignSGD, {})])
def test_state_dict_round_trip_resumes_identically(cls, kw, tmp_path):
    """Save after 3 steps (torch.save/torch.load, weights_only), load into a fresh optimizer of a
    copied model, continue 3 steps: identical to the uninterrupted run; defaults carry every
    hyperparameter."""
    torch.manual_seed(0)
    a = nn.Sequential(LNSLinear(6, 5, storage="lns"), nn.ReLU(), nn.Linear(5, 3))
    b = nn.Sequential(LNSLinear(6, 5, storage="lns"), nn.ReLU(), nn.Linear(5, 3))
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 6)

    def steps(model, opt, n, seed):
        g = torch.Generator().manual_seed(seed)
        for _ in range(n):
            opt.zero_grad()
            (model(x) * torch.randn(8, 3, generator=g)).sum().backward()
            opt.step()

    opt_a = cls(a.parameters(), **kw)
    steps(a, opt_a, 3, 1)
    torch.save(opt_a.state_dict(), tmp_path / "opt.pt")
    b.load_state_dict(a.state_dict())
    opt_b = cls(b.parameters(), **kw)
    opt_b.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
    steps(a, opt_a, 3, 2)
    steps(b, opt_b, 3, 2)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    sd = opt_a.state_dict()["param_groups"][0]
    import inspect

    for name in inspect.signature(cls.__init__).parameters:
        if name not in ("self", "params"):
            assert name in sd


def test_param_groups_use_their_own_hyperparameters():
    """Two groups with different lr move by their own step sizes (signSGD: exactly ±lr)."""
    a = nn.Parameter(torch.zeros(3))
    b = nn.Parameter(torch.zeros(3))
    opt = SignSGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = torch.ones(3)
    b.grad = -torch.ones(3)
    opt.step()
    assert torch.allclose(a, torch.full((3,), -0.1)) and torch.allclose(b, torch.full((3,), 0.5))


def test_bad_hyperparameters_raise_naming_the_range():
    p = [nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match="beta=1.0 is out of range"):
        Madam(p, beta=1.0)
    with pytest.raises(ValueError, match="lr"):
        SignSGD(p, lr=0.0)
    with pytest.raises(TypeError, match="real number"):
        Signum(p, beta="0.9")
    with pytest.raises(ValueError, match="update_gamma"):
        LNSMadam(p, update_gamma=100)
    opt = Madam(p)
    with pytest.raises(ValueError, match="g_bound"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(1))], "g_bound": -1.0})
    opt = LNSMadam(p, lr=0.01)  # not a whole number of 1/128 steps: refused at the first step
    p[0].grad = torch.ones(2)
    with pytest.raises(ValueError, match="whole number"):
        opt.step()


@pytest.mark.gpu
def test_optimizers_on_gpu_equal_cpu():
    """Every optimizer gives the CPU result on CUDA (LNS-Madam: identical codes)."""
    for cls in (Madam, LNSMadam, SignSGD, Signum, EFSignSGD):
        torch.manual_seed(0)
        cpu = LNSLinear(30, 20, storage="lns")
        import copy

        gpu = copy.deepcopy(cpu).to("cuda")
        oc, og = cls(cpu.parameters()), cls(gpu.parameters())
        g = torch.Generator().manual_seed(1)
        for _ in range(10):
            for m in (cpu, gpu):
                m.zero_grad()
            grads = [torch.randn(p.shape, generator=g) for p in cpu.parameters()]
            for pc, pg, gr in zip(cpu.parameters(), gpu.parameters(), grads):
                pc.grad, pg.grad = gr.clone(), gr.to("cuda")
            oc.step()
            og.step()
        for pc, pg in zip(cpu.parameters(), gpu.parameters()):
            torch.testing.assert_close(pg.cpu(), pc, rtol=1e-6, atol=1e-7)
        if cls is LNSMadam:
            assert torch.equal(gpu.param_codes("weight")[0].cpu(), cpu.param_codes("weight")[0])


def test_lns_madam_cpu_kernel_equals_torch_path():
    """The Numba CPU step and the torch-operations step (what a GPU runs) give identical codes
    and values over 50 steps on a small CNN, per-parameter scales and caps included."""
    import copy

    from neurolns.models.cnn1d import build_torch
    from neurolns.torch import convert

    torch.manual_seed(0)
    a = build_torch(seed=2)
    convert(a, LNS8, storage="lns")
    b = copy.deepcopy(a)
    oa = LNSMadam(a.parameters(), lr=2 / 128, p_scale=3.0)
    ob = LNSMadam(b.parameters(), lr=2 / 128, p_scale=3.0, backend="torch")
    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        for pa, pb in zip(a.parameters(), b.parameters()):
            gr = torch.randn(pa.shape, generator=g) * 3
            pa.grad, pb.grad = gr, gr.clone()
        oa.step()
        ob.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
        assert torch.equal(oa.codes(pa), ob.codes(pb))
