"""Sparse connectivity: fixed probability, fixed in-degree and explicit lists.

A :class:`Connectivity` holds the synapses as two index arrays ``i`` (pre) and
``j`` (post) sorted by ``(i, j)``, plus the CSR row pointer ``indptr`` over the
presynaptic neurons, which is what event-driven propagation walks: a spike of
neuron ``i`` touches ``j[indptr[i]:indptr[i+1]]`` and nothing else.

The random generators run in Numba and draw from their own seeded stream, so the
same seed gives the same synapses on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurolns._jit import jit

__all__ = ["Connectivity", "fixed_probability", "fixed_indegree", "from_lists"]


@dataclass(frozen=True, eq=False)
class Connectivity:
    """Synapses ``i[k] → j[k]`` between ``n_pre`` and ``n_post`` neurons, sorted by (i, j)."""

    n_pre: int
    n_post: int
    i: np.ndarray
    j: np.ndarray

    def __post_init__(self) -> None:
        # own copies, read-only: the row pointer and the row order below are computed once
        # and must stay true (a caller's int32 arrays would otherwise be shared, and writable)
        i = np.array(self.i, dtype=np.int32, copy=True, order="C")
        j = np.array(self.j, dtype=np.int32, copy=True, order="C")
        if i.shape != j.shape or i.ndim != 1:
            raise ValueError(f"i and j must be 1-d of equal length, got {i.shape} and {j.shape}")
        if i.size:
            if i.min() < 0 or i.max() >= self.n_pre:
                raise ValueError(f"pre indices must lie in [0, {self.n_pre}); got [{i.min()}, {i.max()}]")
            if j.min() < 0 or j.max() >= self.n_post:
                raise ValueError(f"post indices must lie in [0, {self.n_post}); got [{j.min()}, {j.max()}]")
            if np.any(np.diff(i) < 0):
                order = np.lexsort((j, i))
                i, j = i[order], j[order]
        i.flags.writeable = False
        j.flags.writeable = False
        object.__setattr__(self, "i", i)
        object.__setattr__(self, "j", j)
        # the CSR row pointer, built once with the arrays (as a CSR matrix holds it): a
        # count per row and a running sum, one pass over i
        ptr = np.zeros(self.n_pre + 1, dtype=np.int64)
        np.cumsum(np.bincount(i, minlength=self.n_pre), out=ptr[1:])
        ptr.flags.writeable = False
        object.__setattr__(self, "_indptr", ptr)
        # whether each row's targets are in ascending order (pairs sorted by (i, j)):
        # checked once here, so a threaded run can cut rows by binary search
        di, dj = np.diff(i), np.diff(j)
        object.__setattr__(self, "_rows_sorted", bool(np.all((di > 0) | (dj >= 0))))

    @property
    def n_synapses(self) -> int:
        return int(self.i.size)

    @property
    def indptr(self) -> np.ndarray:
        """CSR row pointer over presynaptic neurons (length ``n_pre + 1``, read-only)."""
        return self._indptr

    @property
    def rows_sorted(self) -> bool:
        """Whether every row's targets ``j`` ascend (the generators' rows always do;
        :func:`from_lists` keeps the order of each row's list)."""
        return self._rows_sorted

    def __len__(self) -> int:
        return self.n_synapses


def _check_size(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}={n!r} is out of range; allowed: an int >= 1")
    return int(n)


def _seed_int(seed) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    return int(np.random.SeedSequence(int(seed)).generate_state(1)[0])


@jit
def _fixed_prob_kernel(n_pre, n_post, p, seed, allow_self, fill, i_out, j_out):
    # Geometric skipping: the gap to the next connected target of a Bernoulli(p)
    # row is 1 + floor(log(u) / log(1 - p)), so the cost is O(synapses), not O(n²).
    np.random.seed(seed)
    log1mp = math.log1p(-p) if p < 1.0 else -np.inf
    k = 0
    for a in range(n_pre):
        b = -1
        while True:
            if p >= 1.0:
                b += 1
            else:
                u = 1.0 - np.random.random()  # in (0, 1]
                b += 1 + int(math.floor(math.log(u) / log1mp))
            if b >= n_post:
                break
            if not allow_self and a == b:
                continue
            if fill:
                i_out[k] = a
                j_out[k] = b
            k += 1
    return k


def fixed_probability(n_pre: int, n_post: int, p: float, *, seed=None, allow_self: bool = True) -> Connectivity:
    """Connect every pair independently with probability ``p`` (Brian2 ``connect(p=...)``).

    Parameters
    ----------
    n_pre, n_post : int
    p : float
        Connection probability in [0, 1].
    seed : int, optional
    allow_self : bool
        Whether ``i == j`` pairs may connect (for recurrent projections; Brian2's
        CUBA example allows them).

    Examples
    --------
    >>> from neurolns.sim.spiking import fixed_probability
    >>> c = fixed_probability(1000, 1000, 0.02, seed=1)
    >>> 18000 < c.n_synapses < 22000
    True
    """
    n_pre, n_post = _check_size("n_pre", n_pre), _check_size("n_post", n_post)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p} is out of range; allowed: 0 <= p <= 1")
    s = _seed_int(seed)
    empty = np.empty(0, dtype=np.int32)
    if p == 0.0:
        return Connectivity(n_pre, n_post, empty, empty)
    # two passes over the same stream: count, then fill exactly-sized arrays
    k = _fixed_prob_kernel(n_pre, n_post, p, s, bool(allow_self), False, empty, empty)
    i = np.empty(k, dtype=np.int32)
    j = np.empty(k, dtype=np.int32)
    _fixed_prob_kernel(n_pre, n_post, p, s, bool(allow_self), True, i, j)
    return Connectivity(n_pre, n_post, i, j)


@jit
def _fixed_indegree_kernel(n_pre, n_post, k, seed, allow_self, i_out, j_out):
    # Floyd's algorithm draws k distinct sources per target without a permutation.
    np.random.seed(seed)
    chosen = np.zeros(n_pre, dtype=np.bool_)
    picks = np.empty(k, dtype=np.int64)
    pos = 0
    for b in range(n_post):
        m = 0
        pool = n_pre - 1 if (not allow_self and b < n_pre) else n_pre
        for r in range(pool - k, pool):
            t = np.random.randint(0, r + 1)
            if chosen[t]:
                t = r
            chosen[t] = True
            picks[m] = t
            m += 1
        for q in range(k):
            a = picks[q]
            chosen[a] = False
            if not allow_self and b < n_pre and a >= b:
                a += 1  # map the pool [0, n_pre-1) onto [0, n_pre) minus b
            i_out[pos] = a
            j_out[pos] = b
            pos += 1


def fixed_indegree(n_pre: int, n_post: int, k: int, *, seed=None, allow_self: bool = True) -> Connectivity:
    """Each postsynaptic neuron receives exactly ``k`` distinct presynaptic partners.

    Examples
    --------
    >>> from neurolns.sim.spiking import fixed_indegree
    >>> c = fixed_indegree(100, 50, 10, seed=0)
    >>> c.n_synapses, int(np.bincount(c.j).min())
    (500, 10)
    """
    n_pre, n_post = _check_size("n_pre", n_pre), _check_size("n_post", n_post)
    pool = n_pre - (0 if allow_self else 1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= pool:
        raise ValueError(f"k={k!r} is out of range; allowed: an int in [0, {pool}]")
    i = np.empty(n_post * int(k), dtype=np.int32)
    j = np.empty_like(i)
    if k:
        _fixed_indegree_kernel(n_pre, n_post, int(k), _seed_int(seed), bool(allow_self), i, j)
    return Connectivity(n_pre, n_post, i, j)


def from_lists(n_pre: int, n_post: int, i, j) -> Connectivity:
    """Explicit synapses ``i[k] → j[k]`` (duplicates allowed, as multapses).

    Examples
    --------
    >>> from neurolns.sim.spiking import from_lists
    >>> from_lists(3, 2, [2, 0], [1, 1]).i.tolist()
    [0, 2]
    """
    n_pre, n_post = _check_size("n_pre", n_pre), _check_size("n_post", n_post)
    return Connectivity(n_pre, n_post, np.asarray(i), np.asarray(j))
