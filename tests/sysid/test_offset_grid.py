"""A recording whose bipolar grid is offset from the default one (``Geometry(offset=...)``).

Invariants: cell (i, j) of ``bipolar_drive`` sees exactly the window whose
top-left pixel is ``origin + stride·(i, j)`` (zeros outside the image), equal
to a direct sum to float32 rounding (rtol 1e-5); the default geometry is
unchanged; and Circuit 2 simulated on a grid offset by −3 pixels is fitted by
``fit_recording(offset=-3)`` with held-out correlation ≥ 0.98 and R_sys ≥ 0.85,
where the default grid stays below correlation 0.3 on the same data.
"""
from dataclasses import replace

import numpy as np
import pytest

from neurolns.sysid import FitConfig, Geometry, bipolar_drive, circuit2, kernel_bank, make_images
from neurolns.sysid.bank import bank_kernels
from neurolns.sysid.circuits import RetinaCircuit
from neurolns.sysid.data import Recording, fit_recording


def _direct_drive(x, bank, g):
    """Drive by the definition: one window sum per cell, windows padded with zeros as needed."""
    K, _ = bank_kernels(bank, g.kernel_size)
    k, s = g.kernel_size, g.stride
    big = k + max(abs(o) for o in g.origin) + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (big, big + k * 2), (big, big + k * 2)))
    (gh, gw), (r0, c0) = g.grid, g.origin
    out = np.zeros((x.shape[0], K.shape[1], gh, gw))
    for i in range(gh):
        for j in range(gw):
            r, c = big + r0 + s * i, big + c0 + s * j
            out[:, :, i, j] = xp[:, r : r + k, c : c + k].reshape(x.shape[0], -1) @ K
    return out


@pytest.mark.parametrize("kw", [dict(), dict(offset=-3), dict(offset=(2, -5)), dict(offset=9),
                                dict(image_shape=(40, 30), stride=5, offset=(-10, 4), pool=1)])
def test_offset_windows_match_the_definition(kw):
    g = Geometry(**kw)
    x = make_images(3, 1, kind="white", shape=g.image_shape)
    bank = kernel_bank(3)
    np.testing.assert_allclose(bipolar_drive(x, bank, g), _direct_drive(x, bank, g), rtol=1e-5, atol=1e-4)


def test_default_geometry_is_unchanged_and_offset_is_checked():
    g = Geometry()
    assert g.origin == (0, 0) and g.padding == ((0, 1), (0, 1))
    assert Geometry(offset=0).padding == g.padding  # offset 0 is the default grid spelled out
    assert Geometry(offset=-3).padding == ((3, 0), (3, 0)) and Geometry(offset=(1, -2)).origin == (1, -2)
    with pytest.raises(ValueError, match="offset=-11 is out of range"):
        Geometry(offset=-11)
    with pytest.raises(ValueError, match="offset=100 is out of range"):
        Geometry(offset=(0, 100))
    with pytest.raises(ValueError, match="offset=.*pair"):
        Geometry(offset=(1, 2, 3))
    with pytest.raises(TypeError, match="offset must be an int"):
        Geometry(offset=1.5)


def test_fit_recording_on_an_offset_grid():
    """Correlation ≥ 0.98 and R_sys ≥ 0.85 with offset=-3; below 0.3 correlation on the default grid."""
    c = circuit2()
    truth = RetinaCircuit("circuit2_offset", c.bank, replace(c.model, geometry=Geometry(offset=-3)), c.weights)
    stim = make_images(1500, 0, kind="white")
    rec = Recording(stim, truth.respond(stim))
    bank = kernel_bank(8)
    cfg = FitConfig(method="madam", max_steps=3000, seed=0)
    wrong = fit_recording(rec, cfg, bank=bank, output="linear")[0]
    right = fit_recording(rec, cfg, bank=bank, output="linear", offset=-3)[0]
    right.evaluate(w_true=truth.embed(bank))
    assert wrong.metrics["test_corr"] < 0.3, wrong.metrics
    assert right.metrics["test_corr"] >= 0.98, right.metrics
    assert right.metrics["r_sys"] >= 0.85, right.metrics
