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
    with pytest.raises(ValueError, match=r"lr=-0.01 is out of range; allowed: \[0.0, inf\]"):
        LNSMadam(p, lr=-0.01)  # any finite rate >= 0 is allowed (fractional steps are rounded stochastically)


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


# ---------------------------------------------------------------------------
# non-finite gradients, bad hyperparameters, backend agreement on extreme gradients (issue 14)

_ALL_TORCH = [(Madam, {}), (LNSMadam, {}), (LNSMadam, {"backend": "torch"}), (SignSGD, {}), (Signum, {}),
              (EFSignSGD, {})]
_IDS = ["madam", "lns-madam", "lns-madam-torch", "signsgd", "signum", "ef-signsgd"]


def _two_group_model(seed=0):
    torch.manual_seed(seed)
    return nn.ModuleList([LNSLinear(6, 5, storage="lns"), nn.Linear(5, 4)])


def _state_tensors(opt):
    sd = opt.state_dict()
    return {(i, k): v for i, st in sd["state"].items() for k, v in st.items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cls,kw", _ALL_TORCH, ids=_IDS)
def test_skipped_step_leaves_the_run_bit_identical(cls, kw, bad):
    """A step with NaN/±inf in one gradient (group 1, parameter 0) is skipped whole: nothing
    changes, a RuntimeWarning names group, parameter, count and first index, skipped_steps
    counts it, and every later step equals, bit for bit, a run never offered the bad step."""
    clean, skip = _two_group_model(), _two_group_model()
    mk = lambda m: cls([{"params": m[0].parameters()}, {"params": m[1].parameters()}], **kw)  # noqa: E731
    oc, os_ = mk(clean), mk(skip)
    g = torch.Generator().manual_seed(3)
    for step in range(8):
        grads = [torch.randn(p.shape, generator=g) for p in clean.parameters()]
        if step == 3:
            before = [p.detach().clone() for p in skip.parameters()]
            st_before = _state_tensors(os_)
            bad_grads = [x.clone() for x in grads]
            bad_grads[2][1, 2] = bad_grads[2][3, 0] = bad
            for p, x in zip(skip.parameters(), bad_grads):
                p.grad = x
            with pytest.warns(RuntimeWarning) as rec:
                os_.step()
            msg = str(rec[0].message)
            assert "param_groups[1]['params'][0] holds 2 non-finite value(s)" in msg, msg
            assert "at index (1, 2)" in msg and "skipped_steps=1" in msg, msg
            assert all(torch.equal(a, b) for a, b in zip(before, skip.parameters()))
            st_after = _state_tensors(os_)
            assert st_before.keys() == st_after.keys()
            assert all(torch.equal(st_before[k], st_after[k]) for k in st_before)
        for m in (clean, skip):
            for p, x in zip(m.parameters(), grads):
                p.grad = x.clone()
        oc.step()
        os_.step()
        for a, b in zip(clean.parameters(), skip.parameters()):
            assert torch.equal(a, b)
    assert os_.skipped_steps == 1 and oc.skipped_steps == 0
    sa, sb = _state_tensors(oc), _state_tensors(os_)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(torch.isfinite(p).all() for p in skip.parameters())


@pytest.mark.parametrize("cls,kw", _ALL_TORCH, ids=_IDS)
def test_raise_policy_raises_and_changes_nothing(cls, kw):
    """nonfinite='raise': ValueError naming the parameter; parameters and state untouched."""
    m = _two_group_model()
    opt = cls(m.parameters(), nonfinite="raise", **kw)
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    before, st = [p.detach().clone() for p in m.parameters()], _state_tensors(opt)
    list(m.parameters())[1].grad[0] = math.nan
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\] holds 1 non-finite.*'raise'"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert all(torch.equal(st[k], v) for k, v in _state_tensors(opt).items()) and opt.skipped_steps == 0


def test_inf_gradient_numpy_and_torch_madam_agree():
    """Issue 14: an inf gradient made numpy Madam NaN while torch Madam left the weight
    unchanged. Now both skip the step, and the two trajectories stay equal (1 float32 ulp)."""
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal(20).astype(np.float32)
    w_np = w0.copy()
    ref = learning.Madam([w_np], lr=0.01)
    p = nn.Parameter(torch.from_numpy(w0.copy()))
    opt = Madam([p], lr=0.01)
    for t in range(6):
        g = rng.standard_normal(20).astype(np.float32)
        if t == 2:
            g[4] = np.inf
        with __import__("warnings").catch_warnings(record=True) as rec:
            __import__("warnings").simplefilter("always")
            ref.step([g])
            p.grad = torch.from_numpy(g)
            opt.step()
        assert len(rec) == (2 if t == 2 else 0)
    assert ref.skipped_steps == opt.skipped_steps == 1 and ref.t == 5
    assert np.all(np.isfinite(w_np))
    np.testing.assert_array_max_ulp(p.detach().numpy(), w_np, maxulp=1)


def _extreme_grads(shape, steps, seed):
    """float32 gradients spanning the whole finite range: random magnitudes 2^U(-149, 127.9)
    with both signs, and fixed entries at 1e-30, 1e30, 1e-45 (a subnormal), ±3e38 and 0."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        g = (rng.choice([-1.0, 1.0], shape) * np.exp2(rng.uniform(-149, 127.9, shape))).astype(np.float32)
        flat = g.reshape(-1)
        flat[:6] = [1e-30, 1e30, 1e-45, 3e38, -3e38, 0.0]
        if t == 0:
            flat[6:12] = 1e-30  # first gradient tiny: one step on every backend
        out.append(g)
    assert all(np.all(np.isfinite(g)) for g in out)
    return out


def test_lns_madam_codes_identical_on_every_backend_for_extreme_gradients():
    """Issue 14 item 5: numpy reference, Numba kernel, torch CPU (Numba) and torch
    backend='torch' (the GPU path) give identical codes over 8 steps of gradients from the
    float32 subnormals to 3e38; a first gradient of 1e-30 moves exactly one step everywhere."""
    torch.manual_seed(0)
    la = LNSLinear(40, 30, storage="lns")
    lb = LNSLinear(40, 30, storage="lns")
    lb.load_state_dict(la.state_dict())
    fmt = la.master_format
    c0 = la.param_codes("weight")[0].numpy().copy()
    c_kernel, c_ref, v_ref = c0.copy(), c0.copy(), np.zeros(c0.shape)
    ref = learning.LNSMadam([c_kernel], fmt=fmt)
    oa, ob = LNSMadam([la.weight]), LNSMadam([lb.weight], backend="torch")
    for t, g in enumerate(_extreme_grads((30, 40), 8, 11), start=1):
        ref.step([g])
        learning.lns_madam_update(c_ref, g, v_ref, t, fmt=fmt, reference=True)
        la.weight.grad, lb.weight.grad = torch.from_numpy(g), torch.from_numpy(g.copy())
        oa.step()
        ob.step()
        if t == 1:
            moved = np.abs(c_ref.astype(np.int64) - c0).reshape(-1)
            assert np.all(moved[(c0.reshape(-1) != 0) & (g.reshape(-1) != 0)] == 1)
        np.testing.assert_array_equal(c_kernel, c_ref)
        np.testing.assert_array_equal(oa.codes(la.weight).numpy(), c_ref)
        np.testing.assert_array_equal(ob.codes(lb.weight).numpy(), c_ref)
    assert torch.equal(la.weight, lb.weight)


def _madam_float64_oracle(w, grads, lr, beta, g_bound):
    """Scalar float64 Madam (Python floats), weights rounded to float32 after each step as stored."""
    w = [float(x) for x in w]
    v = [0.0] * len(w)
    out = []
    for t, g in enumerate(grads, start=1):
        for i, gi in enumerate(map(float, g)):
            v[i] = beta * v[i] + (1 - beta) * (gi * gi)
            den = math.sqrt(v[i] / (1 - beta**t))
            gh = 0.0 if den == 0 else max(-g_bound, min(g_bound, gi / den))
            s = (w[i] > 0) - (w[i] < 0)
            w[i] = float(np.float32(w[i] * math.exp(-lr * gh * s)))
        out.append(np.array(w, np.float32))
    return out


def test_madam_extreme_gradients_agree_with_float64_formula_on_every_backend():
    """Madam on float32 weights with gradients from 1e-45 to 3e38: numpy kernel, numpy
    reference and torch agree with each other and with a scalar float64 transcription to
    2 float32 ulp at every step (the first step is exactly exp(∓η) for any nonzero g)."""
    rng = np.random.default_rng(12)
    w0 = rng.standard_normal((8, 16)).astype(np.float32)
    grads = _extreme_grads((8, 16), 8, 13)
    want = _madam_float64_oracle(w0.reshape(-1), [g.reshape(-1) for g in grads], 0.01, 0.999, 10.0)
    w_k, w_r, v_r = w0.copy(), w0.copy(), np.zeros(w0.shape)
    ref = learning.Madam([w_k], lr=0.01, p_scale=math.inf)
    p = nn.Parameter(torch.from_numpy(w0.copy()))
    opt = Madam([p], lr=0.01, p_scale=math.inf)
    for t, (g, w_want) in enumerate(zip(grads, want), start=1):
        ref.step([g])
        learning.madam_update(w_r, g, v_r, t, lr=0.01, reference=True)
        p.grad = torch.from_numpy(g)
        opt.step()
        for got in (w_k, w_r, p.detach().numpy()):
            np.testing.assert_array_max_ulp(got.reshape(-1), w_want, maxulp=2)


def test_lr_and_groups_validated_at_construction_and_in_add_param_group():
    """Issue 14: LNSMadam(lr=-0.003) raises at construction naming the value and the allowed
    range (since issue 16 any finite rate >= 0 is allowed); add_param_group with a bad lr (or
    any bad hyperparameter) raises and leaves the optimizer unchanged; inf learning rates are
    refused by every class."""
    p = [nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match=r"lr=-0.003 is out of range"):
        LNSMadam(p, lr=-0.003)
    with pytest.raises(ValueError, match="gamma=64 is out of range"):
        LNSMadam(p, update_gamma=64, forward_format=learning.update_format(LNS8))  # coarser than the forward grid
    layer = LNSLinear(4, 3, storage="lns")
    opt = LNSMadam([p[0]])
    groups_before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match="lr=-0.003"):
        opt.add_param_group({"params": layer.parameters(), "lr": -0.003})
    with pytest.raises(ValueError, match="nonfinite|'ignore' is not a valid NonFinite"):
        opt.add_param_group({"params": layer.parameters(), "nonfinite": "ignore"})
    assert len(opt.param_groups) == 1 and opt.param_groups[0].keys() == groups_before[0].keys()
    opt.add_param_group({"params": layer.parameters(), "lr": 3 / 128})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["nonfinite"] == "skip"
    for cls in (Madam, LNSMadam, SignSGD, Signum, EFSignSGD):
        with pytest.raises(ValueError, match="lr=inf"):
            cls([nn.Parameter(torch.ones(2))], lr=math.inf)


def test_state_dict_keeps_skipped_steps_and_old_state_dicts_load(tmp_path):
    """skipped_steps and nonfinite survive torch.save/torch.load; v stays float64 through
    load_state_dict (torch would cast it to the parameter's dtype); a state dict from before
    (no skipped_steps, no nonfinite, float32 v) loads with skipped_steps = 0."""
    m = _two_group_model()
    opt = Madam(m.parameters(), nonfinite="skip")
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    list(m.parameters())[0].grad[0, 0] = math.nan
    with pytest.warns(RuntimeWarning):
        opt.step()
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    sd = torch.load(tmp_path / "o.pt", weights_only=True)
    other = Madam(m.parameters(), nonfinite="raise")
    other.load_state_dict(sd)
    assert other.skipped_steps == 1 and other.param_groups[0]["nonfinite"] == "skip"
    v = other.state[next(iter(m.parameters()))]["v"]
    assert v.dtype == torch.float64 and torch.equal(v, opt.state[next(iter(m.parameters()))]["v"])
    old = opt.state_dict()
    del old["skipped_steps"]
    for g in old["param_groups"]:
        del g["nonfinite"]
    old["state"] = {k: {**st, "v": st["v"].float()} for k, st in old["state"].items()}
    third = Madam(m.parameters(), nonfinite="raise")
    third.load_state_dict(old)
    assert third.skipped_steps == 0 and third.param_groups[0]["nonfinite"] == "raise"
    assert third.state[next(iter(m.parameters()))]["v"].dtype == torch.float64


@pytest.mark.gpu
def test_lns_madam_codes_on_cuda_equal_the_numpy_reference_for_extreme_gradients():
    """The CUDA path (torch operations, float64 ĝ) gives the numpy reference's codes bit for bit
    on gradients from the float32 subnormals to 3e38 (CUDA's float64 sqrt and division are
    correctly rounded, as the CPU's)."""
    torch.manual_seed(0)
    layer = LNSLinear(40, 30, storage="lns").to("cuda")
    fmt = layer.master_format
    c_ref = layer.param_codes("weight")[0].cpu().numpy().copy()
    v_ref = np.zeros(c_ref.shape)
    opt = LNSMadam([layer.weight])
    for t, g in enumerate(_extreme_grads((30, 40), 8, 11), start=1):
        learning.lns_madam_update(c_ref, g, v_ref, t, fmt=fmt, reference=True)
        layer.weight.grad = torch.from_numpy(g).to("cuda")
        opt.step()
        np.testing.assert_array_equal(opt.codes(layer.weight).cpu().numpy(), c_ref)
