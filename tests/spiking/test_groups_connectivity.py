"""Validation of neuron/projection parameters and the statistics of the connectivity generators."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolns.formats import LNS8
from neurolns.sim.spiking import (
    STDP,
    LIFParams,
    NeuronGroup,
    PoissonGroup,
    SpikeGeneratorGroup,
    Synapses,
    fixed_indegree,
    fixed_probability,
    from_lists,
)


@pytest.mark.parametrize("kw", [dict(tau_m_ms=0), dict(tau_e_ms=-1), dict(refractory_ms=-0.1),
                                dict(v_reset_mV=-50.0, v_thresh_mV=-50.0), dict(v_rest_mV=float("nan")),
                                dict(synapse="conductance", integration="exact"), dict(synapse="voltage")])
def test_lif_params_reject_bad_values(kw):
    """Every out-of-range parameter raises ValueError naming it (never an assert)."""
    with pytest.raises(ValueError):
        LIFParams(**kw)


def test_lif_default_integration_follows_synapse_model():
    """Exact integration for the linear current-based system, exponential Euler otherwise."""
    assert LIFParams().integration.value == "exact"
    assert LIFParams(synapse="conductance").integration.value == "exponential_euler"


def test_group_inputs_validated():
    with pytest.raises(ValueError):
        NeuronGroup(0)
    with pytest.raises(ValueError):
        PoissonGroup(3, rate_hz=-1.0)
    with pytest.raises(ValueError):
        SpikeGeneratorGroup(2, [0, 2], [0.0, 0.1])
    with pytest.raises(ValueError):
        SpikeGeneratorGroup(2, [0], [0.0, 0.1])


def test_fixed_probability_count_and_seed():
    """Synapse count is Binomial(n², p): within 5 sigma; the same seed gives the same synapses."""
    n, p = 700, 0.03
    c = fixed_probability(n, n, p, seed=3)
    mu, sd = n * n * p, np.sqrt(n * n * p * (1 - p))
    assert abs(c.n_synapses - mu) < 5 * sd
    c2 = fixed_probability(n, n, p, seed=3)
    assert np.array_equal(c.i, c2.i) and np.array_equal(c.j, c2.j)
    # no duplicate pairs, sorted by (i, j)
    key = c.i.astype(np.int64) * n + c.j
    assert np.all(np.diff(key) > 0)
    # the targets of a row are uniform: a chi-square-free check on the column counts' mean
    assert abs(np.bincount(c.j, minlength=n).mean() - n * p) < 5 * np.sqrt(n * p) / np.sqrt(n)


def test_fixed_probability_no_self_and_full():
    c = fixed_probability(50, 50, 1.0, allow_self=False)
    assert c.n_synapses == 50 * 49 and not np.any(c.i == c.j)
    with pytest.raises(ValueError):
        fixed_probability(5, 5, 1.5)


def test_fixed_indegree_exact_and_distinct():
    """Every target gets exactly k distinct sources, never itself when allow_self=False."""
    c = fixed_indegree(40, 40, 13, seed=1, allow_self=False)
    assert np.all(np.bincount(c.j, minlength=40) == 13)
    assert not np.any(c.i == c.j)
    pairs = set(zip(c.i.tolist(), c.j.tolist()))
    assert len(pairs) == c.n_synapses
    with pytest.raises(ValueError):
        fixed_indegree(10, 10, 10, allow_self=False)


def test_from_lists_sorts_and_checks():
    c = from_lists(4, 3, [3, 1, 1], [0, 2, 0])
    assert c.i.tolist() == [1, 1, 3] and c.j.tolist() == [0, 2, 0]
    assert c.indptr.tolist() == [0, 0, 2, 2, 3]
    with pytest.raises(ValueError):
        from_lists(2, 2, [0, 2], [0, 0])


def test_synapses_lns_storage_decodes_within_half_a_step():
    """Nearest-rounded LNS8 weights are within half a code step (2^(1/16)-1 ≈ 4.4%) of the float ones."""
    rng = np.random.default_rng(0)
    pre, post = NeuronGroup(30), NeuronGroup(20)
    w = rng.uniform(0.1, 2.0, 600)
    c = fixed_indegree(30, 20, 30, seed=0)
    s = Synapses(pre, post, c, weight=w, weight_format=LNS8)
    assert s.codes.dtype == np.int8
    rel = np.abs(s.weights / w - 1)
    assert rel.max() <= 2 ** (1 / 16) - 1 + 1e-12


def test_synapses_validation():
    pre, post = NeuronGroup(3), NeuronGroup(2)
    c = fixed_probability(3, 2, 1.0)
    with pytest.raises(ValueError):
        Synapses(pre, post, fixed_probability(2, 2, 1.0), weight=1.0)
    with pytest.raises(ValueError):
        Synapses(pre, post, c, weight=1.0, delay_ms=-1)
    with pytest.raises(ValueError):  # plastic weights must lie in [0, w_max]
        Synapses(pre, post, c, weight=0.5, plasticity=STDP(w_max=0.1))
    with pytest.raises(ValueError):
        Synapses(pre, post, c, weight=1.0, plasticity=STDP(w_max=2.0), delay_ms=1.0)
    with pytest.raises(ValueError):
        Synapses(pre, post, c, weight=1.0, target="x")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)), max_size=60))
def test_indptr_is_the_csr_row_pointer(n_pre, n_post, pairs):
    """Row r of the CSR pointer starts at the first synapse with i >= r (oracle: searchsorted on
    sorted i), and ``rows_sorted`` says whether every row's targets ascend."""
    pairs = [(a % n_pre, b % n_post) for a, b in pairs]
    c = from_lists(n_pre, n_post, [a for a, _ in pairs], [b for _, b in pairs])
    oracle = np.searchsorted(np.sort(np.array([a for a, _ in pairs], dtype=np.int64)), np.arange(n_pre + 1))
    assert c.indptr.tolist() == oracle.tolist()
    assert not c.indptr.flags.writeable
    rows = [c.j[c.indptr[r]: c.indptr[r + 1]] for r in range(n_pre)]
    assert c.rows_sorted == all(bool(np.all(np.diff(row) >= 0)) for row in rows)


def test_connectivity_owns_read_only_index_arrays():
    """The arrays a Connectivity is built from are copied, and its own are read-only: the row
    pointer and the row order computed at construction stay true (a caller editing its int32
    arrays would otherwise edit the connectivity, and the threads' cut of the rows with it)."""
    i = np.array([0, 0, 0], dtype=np.int32)
    j = np.array([3, 9, 12], dtype=np.int32)
    c = from_lists(1, 16, i, j)
    assert c.rows_sorted
    j[:] = [12, 3, 9]
    assert c.j.tolist() == [3, 9, 12] and c.rows_sorted
    for arr in (c.i, c.j, c.indptr):
        with pytest.raises(ValueError):
            arr[0] = 1
