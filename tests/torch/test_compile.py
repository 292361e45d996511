"""torch.compile(fullgraph=True) of the quantizers and the LNS layers: the traced path (pure
torch operations, nothing read back from the device) gives the eager codes bit for bit.

The model tests use the ``aot_eager`` backend (the traced graph run by aten, quick to
build); the quantizer test and the training test use inductor, the default backend,
whose generated CPU code must give the same codes.
"""
import copy

import pytest
import torch
from torch import nn

from neurolns import LNS8, LNS16
from neurolns.torch import LNSLinear, convert, mantissa_thresholds, quantize, quantize_grad


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each test compiles from an empty cache, so that the recompile limit of one code
    object (nn.Sequential.forward, shared by every model) is not reached across tests."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The float32 bit patterns: equality of these is equality bit for bit, NaN and -0 included."""
    return t.detach().contiguous().view(torch.int32)


def _hard_values(n: int = 1 << 17) -> torch.Tensor:
    """Magnitudes over 60 octaves, both signs, zeros, subnormals, ±inf and NaN; at least
    ``PARALLEL_THRESHOLD`` entries so that eager CPU takes the Numba codec."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-30, 30, (n,), generator=g).float())
    x[:8] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-45, -3e-39, 2.0**-126])
    edges = []  # every rounding threshold of LNS8 and LNS16, and the float32 just below it, at several octaves
    for gamma in {LNS8.gamma, LNS16.gamma}:
        t = torch.from_numpy(mantissa_thresholds(gamma).copy())
        edges += [t, torch.nextafter(t, torch.zeros(()))]
    e = torch.cat(edges)
    e = torch.cat([e * 2.0**k for k in (-20, -3, 0, 5)])
    x[8:8 + e.numel()] = e * torch.where(torch.arange(e.numel()) % 2 == 0, 1.0, -1.0)
    return x


def test_quantize_and_quantize_grad_compile_fullgraph_to_the_eager_codes():
    """Inductor, fullgraph: quantize (per-tensor and per-channel scale) and the gradient of
    quantize_grad equal eager bit for bit; NaN activations stay NaN and non-finite gradient
    entries pass through unchanged."""
    x = _hard_values()

    def fwd(v):
        return quantize(v, LNS8, check_nan=False), quantize(v.view(256, -1), LNS16, channel_axis=0, check_nan=False)

    def through(v, g):
        return (quantize_grad(v, LNS8) * g).sum()

    def grad_of(fn, v, g):
        v = v.detach().requires_grad_(True)
        fn(v, g).backward()  # the backward graph is compiled with the forward one
        return v.grad

    cfwd = torch.compile(fwd, fullgraph=True)
    for got, want in zip(cfwd(x), fwd(x)):
        assert torch.equal(_bits(got), _bits(want))
    assert torch.isnan(cfwd(x)[0][0])
    cthrough = torch.compile(through, fullgraph=True)
    ones = torch.ones_like(x)
    got, want = grad_of(cthrough, ones, x), grad_of(through, ones, x)
    assert torch.equal(_bits(got), _bits(want))
    assert torch.isnan(got[0]) and got[1] == float("inf") and got[2] == -float("inf")


def test_float64_and_half_inputs_compile_to_the_eager_values():
    """float64 (the 52-bit threshold table) and bfloat16/float16 inputs: compiled equals eager."""
    x = _hard_values(1 << 14)
    f = torch.compile(lambda v: quantize(v, LNS8, check_nan=False), fullgraph=True, backend="aot_eager")
    for dt in (torch.float64, torch.bfloat16, torch.float16):
        v = x.to(dt)
        got, want = f(v), quantize(v, LNS8, check_nan=False)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def _mlp(storage: str) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    convert(m, LNS8, act_format=LNS8, grad_format=LNS8, storage=storage)
    return m


def _outputs_and_grads(model, x, y):
    model.zero_grad(set_to_none=True)
    out = model(x)
    nn.functional.cross_entropy(out, y).backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("storage", ["fp32", "lns"])
def test_converted_model_compiles_fullgraph_with_eager_outputs_and_gradients(storage):
    """A converted MLP with LNS8 weights, activations and gradients compiles without graph
    breaks, and its outputs and parameter gradients equal eager bit for bit."""
    model = _mlp(storage)
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 10
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out_c, grads_c = _outputs_and_grads(compiled, x, y)
    out_e, grads_e = _outputs_and_grads(model, x, y)
    assert torch.equal(_bits(out_c), _bits(out_e))
    for gc, ge in zip(grads_c, grads_e):
        assert torch.equal(_bits(gc), _bits(ge))


def test_compiled_layer_propagates_nan_activations():
    """NaN in the input of a compiled layer with act_format reaches its output, as in eager."""
    layer = LNSLinear(4, 2, act_format=LNS8)
    x = torch.tensor([[1.0, float("nan"), 2.0, 3.0], [1.0, 0.5, 2.0, 3.0]])
    got = torch.compile(layer, fullgraph=True, backend="aot_eager")(x)
    assert torch.isnan(got[0]).all() and torch.equal(got[1], layer(x)[1])


@pytest.mark.parametrize("kwargs,word", [({}, "check_nan"),
                                         ({"check_nan": False, "rounding": "stochastic"}, "stochastic"),
                                         ({"check_nan": False, "scale": 0.3}, "power of two")])
def test_what_needs_the_host_is_refused_under_compile_with_a_message(kwargs, word):
    """Options that read data back from the device (or need host arithmetic) raise at trace
    time, naming the option, instead of breaking the graph."""
    f = torch.compile(lambda v: quantize(v, LNS8, **kwargs), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match=word):
        f(torch.ones(4))


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _train_digits(model, step_model, epochs=8, batch=50):
    from neurolns.torch import LNSMadam

    xtr, ytr, xte, yte = _digits()
    opt = LNSMadam(model.parameters(), lr=4 / 128)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(ytr), batch):
            idx = order[i:i + batch]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(step_model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    with torch.no_grad():
        return float((step_model(xte).argmax(1) == yte).float().mean())


@pytest.mark.slow
def test_compiled_lns8_digits_mlp_trains_to_the_eager_accuracy():
    """torch.compile(model, fullgraph=True) (inductor) of an MLP converted with LNS8 weights
    (grid storage), activations and gradients, trained with LNS-Madam on sklearn's digits,
    reaches the eager model's test accuracy (within one test example in 397) and above 90%."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    eager = copy.deepcopy(base)
    convert(eager, LNS8, act_format=LNS8, grad_format=LNS8, storage="lns")
    comp = copy.deepcopy(base)
    convert(comp, LNS8, act_format=LNS8, grad_format=LNS8, storage="lns")
    acc_e = _train_digits(eager, eager)
    acc_c = _train_digits(comp, torch.compile(comp, fullgraph=True))
    assert acc_e > 0.9
    assert abs(acc_c - acc_e) <= 1 / 397 + 1e-9, (acc_c, acc_e)
