"""Numba kernel of Nero's per-neuron step (the fast path of
:func:`neurolns.learning.architecture.nero_update`).

One pass per row fuses what the numpy reference does in five array passes
(row norm of the gradient, second moment, step, re-centring, re-normalising),
in float64 with the reference's arithmetic; row sums are accumulated left to
right, so results agree with numpy's pairwise sums to a few float64 ulps.
The other architecture-aware rules are a handful of BLAS calls (norms, matrix
products of Newton–Schulz) that a kernel would not speed up.
"""

from __future__ import annotations

import math

from neurolns._jit import jit


@jit
def nero_rows(x, g, v, lr_scale, beta, inv_bc, project):
    """In place on ``x`` (rows, n) float64 and ``v`` (rows,): Nero's step and, if ``project``,
    re-centre and re-normalise each row (a row of norm 0 after centring becomes 0)."""
    rows, n = x.shape
    for r in range(rows):
        ss = 0.0
        for j in range(n):
            ss += g[r, j] * g[r, j]
        vn = beta * v[r] + (1.0 - beta) * ss
        v[r] = vn
        den = math.sqrt(vn * inv_bc)
        if den > 0.0:
            for j in range(n):
                x[r, j] = x[r, j] - lr_scale * (g[r, j] / den)
        if project:
            m = 0.0
            for j in range(n):
                m += x[r, j]
            m /= n
            ss = 0.0
            for j in range(n):
                x[r, j] -= m
                ss += x[r, j] * x[r, j]
            nrm = math.sqrt(ss)
            for j in range(n):
                x[r, j] = x[r, j] / nrm if nrm > 0.0 else 0.0
