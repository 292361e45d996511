"""The LNS-Madam streaming kernel (signed-form code update, float64 normalisation,
parallel slices) gives the numpy reference path's codes and state bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from neurolns import LNS8, LNSFormat
from neurolns._jit import PARALLEL_THRESHOLD
from neurolns.learning import lns_madam_update, update_format


@pytest.mark.parametrize("n", [1000, PARALLEL_THRESHOLD + 4099])
@pytest.mark.parametrize("fmt, lr, max_code", [(LNS8, None, None), (update_format(LNS8), 3 / 128, 1500),
                                               (LNSFormat(bits=26, gamma=128), 2 / 128, None)], ids=str)
def test_kernel_equals_reference_over_steps(fmt, lr, max_code, n):
    """Over 6 steps, codes (int8, int16, and int32 with float64 code arithmetic) and
    the second moment equal the reference path's, serially and in parallel slices,
    with zero codes, codes at ±1 and ±cap, zero, tiny (down to the float32 subnormals),
    huge (up to 3e38), and, passed unchecked, inf and NaN gradients."""
    rng = np.random.default_rng(n + fmt.bits)
    cap = max_code or fmt.max_code
    c = rng.integers(-cap, cap + 1, n).astype(fmt.code_dtype)
    c[::11] = 0
    c[1::13] = 1
    c[2::17] = -cap
    c1, c2 = c.copy(), c.copy()
    v1, v2 = np.zeros(n), np.zeros(n)
    for t in range(1, 7):
        g = (rng.standard_normal(n) * np.exp2(rng.uniform(-8, 8, n))).astype(np.float32)
        g[::7] = 0.0
        g[3::29] = 1e-30
        g[5::31] = 1e18
        g[6::37] = 1e-45
        g[7::41] = -3e38
        if t == 4:
            g[9], g[10] = np.inf, np.nan
        kw = dict(fmt=fmt, lr=lr, max_code=max_code, check_finite=t < 4)  # v is non-finite after step 4
        lns_madam_update(c1, g, v1, t, **kw)
        lns_madam_update(c2, g, v2, t, reference=True, **kw)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(v1, v2)
    assert np.all((c1 == 0) == (c == 0)) and np.all(np.sign(c1) == np.sign(c))
