"""Bad codes and scales in the LNS core: a clear ValueError/TypeError naming the first
bad index, never a crash, garbage or silent sign flip (docs/input_policy.md).

Each case was seen misbehaving before: a segmentation fault for codes of 2**30, values
like 4.8e+228 for an int16 code of 30000, a negative scale flipping signs, and
``add_codes([1000], [0])`` wrapping to −24."""
import numpy as np
import pytest

from neurolns import LNS8, LNS12, LNSFormat
from neurolns import lns


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("n", [1, 100_000])
def test_huge_codes_raise_instead_of_reading_past_the_table(n, reference):
    codes = np.full(n, 2**30, np.int32)
    with pytest.raises(ValueError, match=r"out of range .* the first is 1073741824 at index \(0,\)"):
        lns.decode_codes(codes, LNS8, 1.0, reference=reference)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("n", [3, 300_000])
def test_every_decode_kernel_checks_codes(dtype, n):
    """Past the valid range by one (−128 for int8 codes of LNS8), at the last index, through
    the bit-pattern lookup (long 8/16-bit arrays), the table kernel and per-element scales."""
    fmt = LNS8
    c = np.zeros(n, dtype=dtype)
    c[-1] = -128 if dtype == np.int8 else 30000
    for scale in (1.0, np.full(n, 0.5), 0.3):
        with pytest.raises(ValueError, match=rf"at index \({n - 1},\)"):
            lns.decode_codes(c, fmt, scale, dtype=np.float32)


def test_int16_code_30000_is_refused_not_garbage():
    with pytest.raises(ValueError, match="30000"):
        lns.decode_codes(np.array([30000], np.int16), LNS8, 1.0)


@pytest.mark.parametrize("scale", [-1.0, 0.0, np.nan, np.inf, [1.0, -2.0]])
def test_bad_scales_raise(scale):
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        lns.decode_codes(np.array([3, 4]), LNS8, scale)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        lns.encode_codes(np.array([3.0, 4.0]), LNS8, scale)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        lns.LNSArray(np.array([3, 4]), LNS8, scale)


@pytest.mark.parametrize("codes", [np.array([1.5]), np.array([True])])
def test_non_integer_codes_raise_type_error(codes):
    with pytest.raises(TypeError, match="integer"):
        lns.decode_codes(codes, LNS8)
    with pytest.raises(TypeError):
        lns.LNSArray(codes, LNS8)


def test_add_codes_refuses_out_of_range_and_saturates_in_range():
    with pytest.raises(ValueError, match=r"ca holds 1 value\(s\) out of range"):
        lns.add_codes([1000], [0], LNS8)
    with pytest.raises(ValueError, match="cb holds"):
        lns.add_codes(np.zeros(100_000, np.int32), np.full(100_000, 2**30, np.int32), LNS8)
    assert lns.add_codes([127], [127], LNS8).tolist() == [127]  # sums past the top saturate
    assert lns.add_codes([-127], [-127], LNS8).tolist() == [-127]
    with pytest.raises(ValueError, match="shift"):
        lns.add_codes([3], [4], LNS8, shift=2**40)
    with pytest.raises(TypeError, match="shift"):
        lns.add_codes([3], [4], LNS8, shift=0.5)


def test_lnsarray_and_load_validate(tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        lns.LNSArray(np.array([2048]), LNS12)
    a = lns.encode(np.array([1.0, -2.0]), LNS8)
    path = tmp_path / "a.npz"
    lns.save(path, a)
    with np.load(path) as z:
        parts = dict(z)
    parts["codes"] = np.array([300, 3], np.int16)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **parts)
    with pytest.raises(ValueError, match="out of range"):
        lns.load(bad)


def test_torch_decode_validates():
    torch = pytest.importorskip("torch")
    import neurolns.torch as nt

    with pytest.raises(ValueError, match="30000"):
        nt.decode_codes_t(torch.tensor([3, 30000]), LNS8)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        nt.decode_codes_t(torch.tensor([3]), LNS8, -1.0)
    fmt = LNSFormat(bits=8, gamma=8)
    assert nt.decode_codes_t(torch.tensor([fmt.bias]), fmt, dtype=torch.float64).item() == 1.0


@pytest.mark.parametrize("n", [300_000, 300_003])
def test_block_check_finds_the_dtype_minimum(n):
    """int16 codes of a 16-bit format: −32768 is the only bad pattern; the block-wise
    check before each gather finds it anywhere, the first and last block included."""
    from neurolns import LNS16

    for where in (0, 4095, 4096, n // 2, n - 1):
        c = np.zeros(n, np.int16)
        c[where] = -32768
        with pytest.raises(ValueError, match=rf"at index \({where},\)"):
            lns.decode_codes(c, LNS16, 1.0, dtype=np.float32)
    ok = np.full(n, -32767, np.int16)
    assert np.isfinite(lns.decode_codes(ok, LNS16, 2.0**-20)).all()


def test_torch_quantizers_propagate_non_finite():
    """An LNS layer's activation quantizer keeps NaN as NaN (it used to become 0), and the
    gradient quantizer passes NaN and ±inf through, so the optimizer's skip sees them."""
    torch = pytest.importorskip("torch")
    import neurolns.torch as nt

    x = torch.tensor([1.0, float("nan"), -3.0, 0.5])
    y = nt.quantize(x, LNS8, check_nan=False, backend="torch")
    assert torch.isnan(y[1]) and torch.isfinite(y[[0, 2, 3]]).all()
    layer = nt.LNSLinear(4, 2, act_format=LNS8)
    assert torch.isnan(layer(x.reshape(1, 4))).all()
    t = torch.ones(4, requires_grad=True)
    (nt.quantize_grad(t, LNS8) * torch.tensor([1.0, float("nan"), float("inf"), 2.0])).sum().backward()
    assert torch.isnan(t.grad[1]) and torch.isinf(t.grad[2]) and torch.isfinite(t.grad[[0, 3]]).all()
