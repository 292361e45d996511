"""LNS layers and convert: forward weights, activations and gradients against the numpy codec
and the simulator's forward table; conversion reports; storage on the update grid."""
import copy
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from neurolns import LNS8, LNSFormat
from neurolns.lns import encode_codes
from neurolns.lns import quantize as np_quantize
from neurolns.sim import forward_table, update_format
from neurolns.torch import LNSConv1d, LNSConv2d, LNSLinear, convert, lns_modules


def _q(t, fmt=LNS8):
    return torch.from_numpy(np_quantize(t.detach().numpy(), fmt))


def test_linear_forward_uses_quantized_weights_and_inputs():
    """fp32 storage: y = Q(x) Q(W)ᵀ + Q(b) with Q the numpy codec at per-tensor scales (float32 tolerance)."""
    torch.manual_seed(0)
    layer = LNSLinear(16, 8, act_format=LNS8)
    x = torch.randn(4, 16)
    ref = F.linear(_q(x), _q(layer.weight), _q(layer.bias))
    torch.testing.assert_close(layer(x), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls,shape", [(LNSConv1d, (2, 3, 10)), (LNSConv2d, (2, 3, 6, 6))])
def test_conv_forward_matches_functional_with_quantized_weights(cls, shape):
    """Conv layers convolve the quantized weights exactly as torch's functional conv would."""
    torch.manual_seed(1)
    layer = cls(3, 4, 3, padding=1)
    x = torch.randn(*shape)
    conv = F.conv1d if cls is LNSConv1d else F.conv2d
    ref = conv(x, _q(layer.weight), _q(layer.bias), padding=1)
    torch.testing.assert_close(layer(x), ref, rtol=0, atol=1e-6)


def test_weight_gradient_is_straight_through():
    """∂L/∂W equals the float layer's gradient computed at the quantized weights (STE)."""
    torch.manual_seed(2)
    layer = LNSLinear(5, 3)
    x = torch.randn(7, 5)
    layer(x).sum().backward()
    w = _q(layer.weight).requires_grad_(True)
    F.linear(x, w, _q(layer.bias)).sum().backward()
    torch.testing.assert_close(layer.weight.grad, w.grad)


def test_grad_format_quantizes_the_error_signal():
    """With grad_format the gradient reaching the input is Wq^T Q(dy) (Q = numpy codec)."""
    torch.manual_seed(3)
    layer = LNSLinear(5, 3, grad_format=LNS8)
    x = torch.randn(4, 5, requires_grad=True)
    dy = torch.randn(4, 3)
    layer(x).backward(dy)
    torch.testing.assert_close(x.grad, _q(dy) @ _q(layer.weight), rtol=0, atol=1e-6)


def test_lns_storage_puts_weights_on_the_update_grid_and_forward_matches_sim_table():
    """storage='lns': every weight is a value of LNS12/γ128 at the buffer scale (re-encoding is
    exact), and the forward weight is the simulator's re-gridded table value."""
    torch.manual_seed(4)
    layer = LNSLinear(32, 16, storage="lns")
    master = update_format(LNS8)
    assert layer.master_format == master
    s = float(layer.weight_scale)
    w = layer.weight.detach().numpy()
    codes = encode_codes(w, master, s)
    table = forward_table(master, LNS8)
    grid = np.sign(codes) * np.exp2((np.abs(codes) - master.bias) / 128).astype(np.float32) * np.float32(s)
    np.testing.assert_array_equal(w, grid)
    fwd = layer._fwd_param("weight").detach().numpy()
    np.testing.assert_array_equal(fwd, (np.sign(codes) * table[np.abs(codes)] * s).astype(np.float32))
    c, sc = layer.param_codes("weight")
    np.testing.assert_array_equal(c.numpy(), codes)


def test_convert_swaps_in_place_and_reports():
    """convert replaces Linear/Conv layers (not subclasses, not skipped names), copies the weights
    and reports every swap; the converted model's output matches the quantized float model."""

    class MyLinear(nn.Linear):
        pass

    torch.manual_seed(5)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 8), MyLinear(8, 4),
                      nn.Sequential(nn.Linear(4, 2)))
    w_before = m[3].weight.detach().clone()
    report = convert(m, LNS8, skip=["5.0"])
    assert [r[0] for r in report.swapped] == ["0", "3"]
    assert sorted(report.kept) == ["4", "5.0"]
    assert isinstance(m[0], LNSConv2d) and isinstance(m[3], LNSLinear) and type(m[5][0]) is nn.Linear
    assert torch.equal(m[3].weight, w_before)
    assert "2 layer(s) swapped" in str(report) and len(report) == 2
    assert convert(m, skip=["5.0"]).swapped == []  # already converted


def test_lns_layers_are_found_after_deepcopy_and_pickle():
    """Copies of LNS layers register themselves, so optimizers find their grids."""
    layer = LNSLinear(3, 2, storage="lns")
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert any(m is clone for m in lns_modules())
        assert clone.param_grid("weight")[0] == layer.master_format
        assert torch.equal(clone.weight, layer.weight)


def test_state_dict_round_trip_keeps_the_scale():
    """The scales of LNS storage are buffers: a state_dict round trip restores them."""
    a = LNSLinear(6, 4, storage="lns", headroom=2)
    b = LNSLinear(6, 4, storage="lns", headroom=2)
    b.load_state_dict(a.state_dict())
    assert float(b.weight_scale) == float(a.weight_scale)
    x = torch.randn(3, 6)
    assert torch.equal(a(x), b(x))


def test_bad_arguments():
    with pytest.raises(TypeError, match="weight_format"):
        LNSLinear(2, 2, weight_format="lns8")
    with pytest.raises(ValueError, match="headroom"):
        LNSLinear(2, 2, headroom=-1)
    with pytest.raises(ValueError, match="needs a weight_format"):
        LNSLinear(2, 2, weight_format=None, storage="lns")
    with pytest.raises(ValueError, match="allowed"):
        LNSLinear(2, 2, storage="int8")
    with pytest.raises(TypeError, match="nn.Module"):
        convert([nn.Linear(2, 2)])


def test_float_weight_format_none_is_plain_layer():
    """weight_format=None and no act/grad formats: identical to nn.Linear."""
    torch.manual_seed(6)
    ref = nn.Linear(4, 3)
    m = nn.Sequential(copy.deepcopy(ref))
    convert(m, None)
    x = torch.randn(2, 4)
    assert torch.equal(m[0](x), ref(x))


@pytest.mark.gpu
def test_layers_run_on_gpu_like_cpu():
    """A converted model moved to CUDA gives the CPU outputs (float32 tolerance) and grid codes."""
    torch.manual_seed(7)
    m = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(24, 3))
    convert(m, LNS8, storage="lns", act_format=LNS8, grad_format=LNS8)
    x = torch.randn(5, 1, 8)
    y_cpu = m(x)
    m_gpu = copy.deepcopy(m).to("cuda")
    y_gpu = m_gpu(x.to("cuda"))
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-5, atol=1e-5)
    assert torch.equal(m_gpu[3].param_codes("weight")[0].cpu(), m[3].param_codes("weight")[0])
    y_gpu.sum().backward()


def test_grid_forward_kernel_equals_torch_reference():
    """The CPU kernel of grid-stored forward weights equals the torch-operations path (float64
    input takes it) on grid values of every magnitude, zeros included."""
    from neurolns.lns import decode_codes
    from neurolns.torch.modules import _MasterForward

    master = update_format(LNS8)
    codes = np.arange(-master.max_code, master.max_code + 1).astype(master.code_dtype)
    scale = 2.0**-3
    w32 = torch.from_numpy(decode_codes(codes, master, scale, dtype=np.float32))
    s = torch.tensor(scale, dtype=torch.float64)
    got = _MasterForward.apply(w32, master, LNS8, s)          # Numba kernel
    ref = _MasterForward.apply(w32.to(torch.float64), master, LNS8, s)  # torch reference
    assert torch.equal(got, ref.to(torch.float32))
    table = forward_table(master, LNS8)
    np.testing.assert_array_equal(got.numpy(), (np.sign(codes) * table[np.abs(codes)] * scale).astype(np.float32))


def test_float_state_dict_loads_into_grid_storage_as_convert_would():
    """load_state_dict of a float model's state into a model converted with storage='lns' fills
    weight_scale/bias_scale and puts the values on the grid: the same parameters and buffers,
    bit for bit, as converting the float model itself."""
    torch.manual_seed(7)
    src = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3, bias=False))
    torch.manual_seed(8)
    dst = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3, bias=False))
    convert(dst, LNS8, storage="lns")
    dst.load_state_dict(src.state_dict())
    want = copy.deepcopy(src)
    convert(want, LNS8, storage="lns")
    got_state, want_state = dst.state_dict(), want.state_dict()
    assert got_state.keys() == want_state.keys()
    for k in want_state:
        assert torch.equal(got_state[k], want_state[k]), k
    dst.load_state_dict(want.state_dict())  # a state with scales loads as saved
    assert torch.equal(dst[0].weight_scale, want[0].weight_scale)


@pytest.mark.parametrize("storage", ["fp32", "lns"])
def test_forward_weight_is_what_the_layer_computes_with(storage):
    """forward_weight() is the detached quantized weight of the forward pass: y = x W_qᵀ + b_q,
    equal to the numpy codec (fp32 storage) or the simulator's forward_value (lns storage)."""
    from neurolns.torch import to_sim

    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(6, 4))
    convert(model, LNS8, storage=storage)
    layer = model[0]
    w, b = layer.forward_weight(), layer.forward_weight("bias")
    assert not w.requires_grad
    x = torch.randn(3, 6)
    assert torch.equal(layer(x), F.linear(x, w, b))
    if storage == "fp32":
        assert torch.equal(w, _q(layer.weight))
    else:
        sim_w = to_sim(model).params()[0].forward_value()
        np.testing.assert_array_equal(w.numpy(), sim_w)
    assert LNSLinear(2, 2, bias=False).forward_weight("bias") is None
    with pytest.raises(ValueError, match="'kernel'"):
        layer.forward_weight("kernel")
