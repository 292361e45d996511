"""Correct rounding of the codec against an exact oracle (mpmath at 60 digits).

The oracle shares nothing with the code under test: the codec decides with
thresholds and tables built from :mod:`decimal` and Python integers, with
Numba's or numpy's ``log2`` for the rest; the oracle evaluates
``γ log2(x/σ)`` and ``2^(e/γ)`` with mpmath, and every oracle decision checks
its own distance from the rounding boundary (no near-tie is trusted).

Invariants checked, all with zero tolerance:

* nearest encoding of float32 and float64 values next to every rounding
  threshold ``2^((k+½)/γ)`` (γ = 8, 64, 1024, and a sample of 65536; scales
  1, 2^-3, 2^5; two octaves) equals the exact code, through the Numba kernel,
  the numpy reference and the torch codec;
* every decoded value of LNS8, LNS12 and LNS16 (float32 and float64, scales
  1, 2^-3, 2^5 and one that reaches the subnormals) is the correctly rounded
  ``σ·2^(e/γ)``, on numpy and torch;
* random float32/float64 values (hypothesis), stochastic rounding against
  its exact definition ``⌊t⌋ + [u < t − ⌊t⌋]``, and the float32 fast path's
  proven margin.

CI runs this file again under ``NUMBA_CPU_NAME=generic``,
``NEUROLNS_DISABLE_JIT=1`` and a narrowed ``NPY_DISABLE_CPU_FEATURES``, so one
machine exercises several SIMD paths.
"""
from __future__ import annotations

import os
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns import LNS8, LNS12, LNS16, LNSFormat
from neurolns.lns import decode_codes, encode_codes

mpmath.mp.dps = 60
#: an oracle decision closer than this to its boundary would not be trusted
_MARGIN = mpmath.mpf(10) ** -45
#: pure-Python kernels are slow: sample fewer thresholds without the JIT
_SLOW = os.environ.get("NEUROLNS_DISABLE_JIT", "") not in ("", "0")

SCALES = [1.0, 2.0**-3, 2.0**5]


def _format_for(gamma: int) -> LNSFormat:
    """A format wide enough that values near 1..4 at the test scales never saturate;
    γ = 8 uses 12 bits so that float32 input takes the float32 power path."""
    return LNSFormat(bits=12, gamma=8) if gamma == 8 else LNSFormat(bits=24, gamma=gamma)


def _oracle_nearest(x: float, sigma: float, gamma: int) -> int:
    """``rint(γ log2(|x|/σ))`` by mpmath, refusing any decision within 1e-45 of a tie."""
    t = gamma * mpmath.log(mpmath.mpf(abs(x)) / mpmath.mpf(sigma), 2)
    fl = mpmath.floor(t + mpmath.mpf("0.5"))
    assert abs(t + mpmath.mpf("0.5") - fl) > _MARGIN and abs(t + mpmath.mpf("0.5") - fl - 1) > _MARGIN
    return int(fl)


def _near_threshold_values(gamma: int, ks, dtype) -> tuple[np.ndarray, list]:
    """Floats around each threshold 2^((k+½)/γ)·2^E (E = 0, 1): the float nearest it and its
    two neighbours on each side; with the exact code of each (from an exact comparison)."""
    xs, codes = [], []
    for k in ks:
        for octave in (0, 1):
            y = mpmath.power(2, mpmath.mpf(2 * k + 1) / (2 * gamma) + octave)
            f = dtype(float(y))
            for step in (-2, -1, 0, 1, 2):
                v = f
                for _ in range(abs(step)):
                    v = np.nextafter(v, dtype(np.inf) if step > 0 else dtype(0))
                above = mpmath.mpf(float(v)) > y  # y is irrational: never equal
                xs.append(v)
                codes.append(gamma * octave + k + (1 if above else 0))
    return np.array(xs, dtype=dtype), codes


def _ks(gamma: int):
    if gamma <= 1024 and not _SLOW:
        return range(gamma)
    rng = np.random.default_rng(gamma)
    return sorted(set(rng.integers(0, gamma, 64 if _SLOW else 1500).tolist()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [8, 64, 1024, 65536])
def test_values_next_to_thresholds_encode_exactly(gamma, dtype):
    """0 mismatches against the exact codes, for the kernel, the numpy reference and
    the torch codec (both backends), at scales 1, 2^-3, 2^5."""
    fmt = _format_for(gamma)
    x, exact = _near_threshold_values(gamma, _ks(gamma), dtype)
    exact = np.array(exact, dtype=np.int64)
    for sigma in SCALES:
        xs = (x * dtype(sigma)).astype(dtype)  # exact: a power of two
        ls = int(np.log2(sigma))
        want = exact + fmt.bias  # x·σ at scale σ has the exponent of x at scale 1
        for sign in (1, -1):
            got = encode_codes(sign * xs, fmt, sigma).astype(np.int64)
            np.testing.assert_array_equal(got, sign * want, err_msg=f"kernel, scale 2^{ls}")
            ref = encode_codes(sign * xs, fmt, sigma, reference=True).astype(np.int64)
            np.testing.assert_array_equal(ref, sign * want, err_msg=f"reference, scale 2^{ls}")
        # scale 1 of the scaled values: a plain shift of the exponent by γ·log2 σ
        got1 = encode_codes(xs, fmt, 1.0).astype(np.int64)
        np.testing.assert_array_equal(got1, exact + gamma * ls + fmt.bias)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [8, 1024])
def test_torch_codec_next_to_thresholds(gamma, dtype):
    """The torch codec (torch ops, the GPU path; and the Numba backend) gives the exact
    codes too, at every scale, for float32 and float64."""
    torch = pytest.importorskip("torch")
    import neurolns.torch as nt

    fmt = _format_for(gamma)
    x, exact = _near_threshold_values(gamma, _ks(gamma), dtype)
    for sigma in SCALES:
        xs = (x * dtype(sigma)).astype(dtype)
        want = np.array(exact) + fmt.bias
        for backend in ("torch", "numba"):
            codes, _ = nt.encode_codes_t(torch.from_numpy(xs), fmt, scale=sigma, backend=backend)
            np.testing.assert_array_equal(codes.numpy().astype(np.int64), want, err_msg=backend)


def test_issue_examples():
    """The two cases reported wrong before thresholds were exact."""
    assert int(encode_codes(np.array([9.110309078053533]), LNSFormat(bits=8, gamma=8))[0]) == 64 + 25
    fmt = LNSFormat(bits=24, gamma=64)
    assert int(encode_codes(np.array([1.4530279958490528]), fmt, 2.0**-3)[0]) == 4194531
    assert _oracle_nearest(1.4530279958490528, 2.0**-3, 64) + fmt.bias == 4194531


# -- decode ----------------------------------------------------------------------------
def _oracle_round(v: mpmath.mpf, dtype) -> float:
    """Correctly rounded (ties to even) ``v > 0`` in ``dtype``, subnormals and overflow included."""
    fi = np.finfo(dtype)
    p, emin, emax = fi.nmant + 1, fi.minexp, fi.maxexp
    m, e = mpmath.frexp(v)  # v = m·2^e, m in [0.5, 1)
    lead = int(e) - 1
    kept = p if lead >= emin else p - (emin - lead)
    scaled = mpmath.ldexp(v, kept - 1 - lead)
    n = mpmath.floor(scaled)
    frac = scaled - n
    assert abs(frac - mpmath.mpf("0.5")) > _MARGIN or frac == mpmath.mpf("0.5")
    if frac > 0.5 or (frac == 0.5 and int(n) % 2 == 1):
        n += 1
    n = int(n)
    if n and n.bit_length() + lead - kept + 1 > emax:
        return float(np.inf)
    return float(mpmath.ldexp(n, lead - kept + 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", [LNS8, LNS12, LNS16], ids=str)
def test_every_decoded_value_is_correctly_rounded(fmt, dtype):
    """Each of the 2·max_code + 1 values of the format, at four power-of-two scales (one
    reaching float32's subnormals), equals the correctly rounded σ·2^((|c|−β)/γ) (numpy
    kernel, reference path and torch); float32 values are rounded once, from the exact value."""
    mags = np.arange(1, fmt.max_code + 1)
    if _SLOW and fmt.bits > 12:
        mags = mags[:: 37]
    scales = [0, -3, 5, -140 if dtype == np.float32 else -1030]
    codes = np.concatenate([-mags[::-1], [0], mags])
    for ls in scales:
        want_mag = np.array([_oracle_round(mpmath.power(2, mpmath.mpf(int(m) - fmt.bias) / fmt.gamma + ls), dtype)
                             for m in mags], dtype=dtype)
        want = np.concatenate([-want_mag[::-1], [0.0], want_mag]).astype(dtype)
        for reference in (False, True):
            got = decode_codes(codes.astype(fmt.code_dtype), fmt, 2.0**ls, dtype=dtype, reference=reference)
            np.testing.assert_array_equal(got, want, err_msg=f"scale 2^{ls}, reference={reference}")
        # the bit-pattern lookup (large arrays) and per-element scales take other kernels
        tiled = np.tile(codes.astype(fmt.code_dtype), 2 + (1 << 17) // codes.size)
        got = decode_codes(tiled, fmt, 2.0**ls, dtype=dtype)
        np.testing.assert_array_equal(got[: codes.size], want)
        per_elem = np.full(codes.shape, 2.0**ls)
        np.testing.assert_array_equal(decode_codes(codes, fmt, per_elem, dtype=dtype), want)
        try:
            import torch

            import neurolns.torch as nt
        except ImportError:  # pragma: no cover
            continue
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tv = nt.decode_codes_t(torch.from_numpy(codes.astype(np.int64)), fmt, 2.0**ls, dtype=tdt, backend="torch")
        np.testing.assert_array_equal(tv.numpy(), want, err_msg=f"torch, scale 2^{ls}")


def test_decode_table_gamma128_every_value():
    """12 bits at γ = 128, where exp2 left 192 of the 2,047 table values an ulp off: every
    table value is the correctly rounded 2^((m−β)/γ) by mpmath."""
    from neurolns.lns.codec import decode_table

    fmt = LNSFormat(bits=12, gamma=128)
    t = decode_table(fmt)
    want = [_oracle_round(mpmath.power(2, mpmath.mpf(m - fmt.bias) / 128), np.float64) for m in range(1, 2048)]
    np.testing.assert_array_equal(t[1:], want)


# -- properties ------------------------------------------------------------------------
@settings(max_examples=150 if _SLOW else 400, deadline=None)
@given(
    x=st.one_of(st.floats(min_value=1e-300, max_value=1e300, allow_nan=False),
                st.integers(-320, 320).map(lambda k: float(mpmath.power(2, mpmath.mpf(2 * k + 1) / 16)))),
    dt=st.sampled_from([np.float32, np.float64]),
    gamma=st.sampled_from([1, 8, 64, 1024]),
    scale=st.sampled_from([1.0, 2.0**-3, 2.0**5, 0.3, 3.7e-5]),
)
def test_encode_matches_exact_oracle(x, dt, gamma, scale):
    """Any float32/float64 value (also those nearest a γ = 8 threshold), power-of-two and
    other scales: the code is rint(γ log2(|x|/σ)) + β decided exactly (unless it saturates)."""
    with np.errstate(over="ignore"):
        xv = dt(x)
    if not np.isfinite(xv) or xv == 0:
        return
    fmt = LNSFormat(bits=32, gamma=gamma)
    e = _oracle_nearest(float(xv), scale, gamma)
    if not fmt.e_min <= e <= fmt.e_max:
        return
    arr = np.array([xv, -xv], dtype=dt)
    np.testing.assert_array_equal(encode_codes(arr, fmt, scale).astype(np.int64), [e + fmt.bias, -(e + fmt.bias)])
    np.testing.assert_array_equal(encode_codes(arr, fmt, scale, reference=True).astype(np.int64),
                                  [e + fmt.bias, -(e + fmt.bias)])


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_stochastic_rounding_meets_its_definition(scale):
    """``e = ⌊t⌋ + [u < t − ⌊t⌋]`` with the exact ``t`` and the generator's float64 ``u``
    (``numpy.random.default_rng(seed).random(n)``), on grid values (t within an ulp of an
    integer), values next to half-integers and random values."""
    gamma = 64
    fmt = LNSFormat(bits=24, gamma=gamma)
    grid = decode_codes(np.arange(fmt.bias - 300, fmt.bias + 300), fmt, scale)
    near_half, _ = _near_threshold_values(gamma, range(0, gamma, 5), np.float64)
    rnd = np.random.default_rng(1).uniform(0.01, 100.0, 500)
    x = np.concatenate([grid, near_half * scale, rnd])
    u = np.random.default_rng(11).random(x.size)
    got = encode_codes(x, fmt, scale, rounding="stochastic", seed=11).astype(np.int64)
    ref = encode_codes(x, fmt, scale, rounding="stochastic", seed=11, reference=True).astype(np.int64)
    want = []
    for xi, ui in zip(x.tolist(), u.tolist()):
        t = gamma * mpmath.log(mpmath.mpf(xi) / mpmath.mpf(scale), 2)
        fl = mpmath.floor(t)
        frac = t - fl
        if frac == 0:
            want.append(int(fl))
            continue
        assert abs(frac - mpmath.mpf(ui)) > _MARGIN
        want.append(int(fl) + (1 if mpmath.mpf(ui) < frac else 0))
    want = np.array(want) + fmt.bias
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ref, want)


@pytest.mark.parametrize("gamma", [1, 2, 4, 8])
def test_float32_power_path_margin(gamma):
    """The float32 γ ≤ 8 path squares ``x·2^(-1/(2γ))`` in float64 (rounding error below
    15·2^-53 relative); its codes are exact because every float32 mantissa lies at least
    1e-9 (relative) from every threshold. Checked here for all thresholds exactly."""
    worst = mpmath.mpf(1)
    for k in range(gamma):
        y = mpmath.power(2, mpmath.mpf(2 * k + 1) / (2 * gamma))
        f = np.float32(float(y))
        for v in (np.nextafter(f, np.float32(0)), f, np.nextafter(f, np.float32(4))):
            worst = min(worst, abs(mpmath.mpf(float(v)) / y - 1))
    assert worst > 1e-9


def test_exact_module_thresholds_against_mpmath():
    """The cached integer ceilings equal ⌈(2^((k+½)/γ) − 1)·2^M⌉ by mpmath for γ = 64, M = 52."""
    from neurolns.lns._exact import threshold_ceilings

    c = threshold_ceilings(64, 52)
    for k in range(64):
        t = (mpmath.power(2, mpmath.mpf(2 * k + 1) / 128) - 1) * mpmath.mpf(2) ** 52
        assert int(c[k]) == int(mpmath.ceil(t))


def test_adder_corrections_against_mpmath():
    """The exact adder's integer corrections rint(γ log2(1 ± 2^(−d/γ))) equal mpmath's."""
    from neurolns.lns._exact import gauss_log_rint

    for gamma in (8, 128):
        d = np.arange(0, 40 * gamma, 7)
        plus = [int(mpmath.nint(gamma * mpmath.log(1 + mpmath.power(2, -mpmath.mpf(int(v)) / gamma), 2))) for v in d]
        np.testing.assert_array_equal(gauss_log_rint(d, gamma, True), plus)
        d1 = d[d > 0]
        minus = [int(mpmath.nint(gamma * mpmath.log(1 - mpmath.power(2, -mpmath.mpf(int(v)) / gamma), 2))) for v in d1]
        np.testing.assert_array_equal(gauss_log_rint(d1, gamma, False), minus)


def test_choose_scale_is_exact_at_the_boundary():
    """choose_scale's k = ⌈log2 max|x| − e_max/γ⌉ is decided exactly: the float64 just below
    and just above 2^(e_max/γ) get scales 1 and 2 (LNS8: e_max/γ = 63/8)."""
    from neurolns.lns import choose_scale

    y = mpmath.power(2, mpmath.mpf(63) / 8)
    f = float(y)
    lo = f if mpmath.mpf(f) < y else float(np.nextafter(f, 0))
    hi = float(np.nextafter(lo, np.inf))
    assert float(choose_scale(np.array([lo]), LNS8)) == 1.0
    assert float(choose_scale(np.array([hi]), LNS8)) == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = encode_codes(np.array([lo]), LNS8, 1.0)
    assert int(c[0]) == LNS8.max_code


@pytest.mark.parametrize("gamma", [2, 128, 4096])
def test_exact_module_floors_against_mpmath(gamma):
    """H_r = ⌊2^(r/γ)·2^128⌋, the integers every decoded value is rounded from, equal
    mpmath's at 400 bits (all r for small γ, a stride for 4096)."""
    from neurolns.lns._exact import exp2_floor

    h = exp2_floor(gamma)
    with mpmath.workprec(400):
        for r in range(0, gamma, 1 if gamma <= 128 else 13):
            assert h[r] == int(mpmath.floor(mpmath.power(2, mpmath.mpf(r) / gamma) * mpmath.mpf(2) ** 128))
