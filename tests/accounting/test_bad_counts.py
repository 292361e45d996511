"""Bad counts (issue 14): every public counting and pricing entry point refuses a
negative, NaN or infinite count, and a fractional size, with a ValueError naming
the argument; a bool or a string is a TypeError. Before, ``LayerCounts.dot(-2, 5)``
priced at -66 pJ and NaN counts gave NaN energies or silently picked DRAM."""

import math

import pytest

from neurolns.accounting import (
    RECIPES,
    Counts,
    EnergyModel,
    LayerCounts,
    conv_counts,
    count_sim,
    counts_table,
    dense_counts,
    exchange_counts,
    inference_energy,
    log_softmax_nll_counts,
    maxpool_counts,
    memory_footprint,
    mlp_counts,
    price_layer,
    relu_counts,
    spiking_counts,
    training_step_energy,
    update_counts,
)
from neurolns.accounting.rules import newton_schulz_macs

NAN, INF = math.nan, math.inf
M = EnergyModel.preset()
R = RECIPES["fp32-adam"]


def _lc(**kw):
    return LayerCounts("L", **kw)


BAD = [
    # (call, argument named in the message)
    (lambda: _lc().dot(-2, 5), "outputs"),
    (lambda: _lc().dot(2, -5), "k"),
    (lambda: _lc().dot(NAN, 5), "outputs"),
    (lambda: _lc().dot(2, 2.5), "k"),
    (lambda: _lc().op("add", -1), "n"),
    (lambda: _lc().op("add", INF), "n"),
    (lambda: _lc().read(-4), "tensor_elems"),
    (lambda: _lc().read(4, NAN), "n"),
    (lambda: _lc().write(4.5), "tensor_elems"),
    (lambda: _lc().write(4, -1), "n"),
    (lambda: _lc().scaled(-1.0), "k"),
    (lambda: _lc().scaled(NAN), "k"),
    (lambda: _lc(macs=-3), "L.macs"),
    (lambda: _lc(dot_outputs=NAN), "L.dot_outputs"),
    (lambda: _lc(link_bits=-INF), "L.link_bits"),
    (lambda: Counts(params=-1), "params"),
    (lambda: Counts(batch=0), "batch"),
    (lambda: Counts(saved_elems=NAN), "saved_elems"),
    (lambda: Counts(param_tensors=[3, -1]), r"param_tensors\[1\]"),
    (lambda: dense_counts("d", -3, 4, 2), "n_in"),
    (lambda: dense_counts("d", 3, 4, 2.5), "batch"),
    (lambda: dense_counts("d", 3, NAN, 2), "n_out"),
    (lambda: conv_counts("c", 3, 4, (3,), (10,), (8,), -1), "batch"),
    (lambda: conv_counts("c", 3, 4, (3, -3), (10, 10), (8, 8), 1), r"kernel\[1\]"),
    (lambda: conv_counts("c", 3, 4, (3,), (10,), (8,), 1, groups=2), "groups"),
    (lambda: relu_counts("r", -5), "n"),
    (lambda: maxpool_counts("m", 8, 4, 0), "window"),
    (lambda: maxpool_counts("m", NAN, 4, 2), "n_in"),
    (lambda: log_softmax_nll_counts("x", 0, 10), "rows"),
    (lambda: log_softmax_nll_counts("x", 4, 2.5), "classes"),
    (lambda: mlp_counts([64, -32, 10], 8), r"sizes\[1\]"),
    (lambda: mlp_counts([64, 10], NAN), "batch"),
    (lambda: mlp_counts([64], 8), "sizes"),
    (lambda: spiking_counts("s", neuron_updates=-1, synaptic_events=0), "neuron_updates"),
    (lambda: spiking_counts("s", neuron_updates=1, synaptic_events=NAN), "synaptic_events"),
    (lambda: spiking_counts("s", neuron_updates=1, synaptic_events=1, spikes=-2), "spikes"),
    (lambda: spiking_counts("s", neuron_updates=1, synaptic_events=1, plasticity_updates=INF), "plasticity_updates"),
    (lambda: spiking_counts("s", neuron_updates=1, synaptic_events=1, neurons=2.5), "neurons"),
    (lambda: spiking_counts("s", neuron_updates=1, synaptic_events=1, ops_per_neuron_update={"add": -1}),
     r"ops_per_neuron_update\['add'\]"),
    (lambda: spiking_counts("s", neuron_updates=1, synaptic_events=1, weight_reads=NAN), "weight_reads"),
    (lambda: M.mac_pj("fp32", k=NAN), "k"),
    (lambda: M.mac_pj("fp32", k=0), "k"),
    (lambda: M.dot_pj("fp32", -2), "k"),
    (lambda: M.dot_pj("lns8", 2.5), "k"),
    (lambda: M.access_pj("sram", NAN), "bits"),
    (lambda: M.access_pj("sram", 8, size_bytes=-1), "size_bytes"),
    (lambda: M.sram_pj_per_bit(NAN), "size_bytes"),
    (lambda: M.level_for(NAN), "tensor_bytes"),
    (lambda: M.access_pj_per_bit(-1), "tensor_bytes"),
    (lambda: update_counts(R, [10, -10]), r"param_tensors\[1\]"),
    (lambda: update_counts(R, [10], replicas=0), "replicas"),
    (lambda: exchange_counts(R, [10], 2.5), "workers"),
    (lambda: exchange_counts(R, [NAN], 2), r"param_tensors\[0\]"),
    (lambda: training_step_energy(mlp_counts([4, 2], 2), "fp32-adam", workers=-1), "workers|replicas"),
    (lambda: newton_schulz_macs(-4), "size"),
    (lambda: newton_schulz_macs(16, steps=-1), "steps"),
    (lambda: newton_schulz_macs(16, steps=2.5), "steps"),
]


@pytest.mark.parametrize("call,name", BAD, ids=[f"{i}-{n}" for i, (_, n) in enumerate(BAD)])
def test_bad_count_raises_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"(^|\W)({name})=.*out of range; allowed"):
        call()


@pytest.mark.parametrize("call", [
    lambda: _lc().dot(True, 5),
    lambda: _lc().op("add", "3"),
    lambda: dense_counts("d", None, 4, 2),
    lambda: M.dot_pj("fp32", "8"),
    lambda: mlp_counts("64", 2),
])
def test_non_numbers_are_type_errors(call):
    with pytest.raises(TypeError):
        call()


def test_pricing_rechecks_counts_mutated_after_they_were_built():
    """The fields are public: a count made negative or NaN after construction is
    refused where it is priced (price_layer, inference/training energy, memory)."""
    lc = dense_counts("d", 3, 4, 2)[0]
    lc.macs = -24
    with pytest.raises(ValueError, match=r"d\.macs=-24"):
        price_layer(lc, "fp32", M)
    c = mlp_counts([4, 3, 2], 2)
    c.layers[0].ops[("add", None)] = NAN
    with pytest.raises(ValueError, match=r"0\.ops\[add@\*\]=nan"):
        inference_energy(c)
    with pytest.raises(ValueError, match=r"0\.ops\[add@\*\]"):
        training_step_energy(c)
    c = mlp_counts([4, 3, 2], 2)
    c.params = -7
    with pytest.raises(ValueError, match="params=-7"):
        memory_footprint(c, R)
    c = mlp_counts([4, 3, 2], 2)
    c.layers[1].reads[(-5, None)] = 3
    with pytest.raises(ValueError, match="reads tensor size=-5"):
        inference_energy(c)
    c = mlp_counts([4, 3, 2], 2)
    c.layers[2].link_bits = -1.0
    with pytest.raises(ValueError, match=r"link_bits=-1\.0"):
        counts_table(c)


def test_count_sim_checks_input_shape():
    from neurolns.sim import Dense, Sequential

    net = Sequential([Dense(4, 3, seed=0)])
    with pytest.raises(ValueError, match=r"input_shape\[0\]=-8"):
        count_sim(net, (-8, 4))
    with pytest.raises(ValueError, match=r"input_shape\[1\]=4\.5"):
        count_sim(net, (8, 4.5))


def test_good_counts_still_price_as_before():
    """The checks change no valid figure: one dot of length 5 costs 5 FMAs (FP32 has
    no conversion) and zero counts cost zero."""
    assert M.dot_pj("fp32", 5) == pytest.approx(5 * M.mac_pj("fp32"))
    assert M.dot_pj("fp32", 5.0) == M.dot_pj("fp32", 5)
    e = price_layer(_lc().dot(0, 5), "fp32", M)
    assert e.total == 0
    assert price_layer(_lc().dot(2, 5), "fp32", M).compute > 0


def test_count_torch_checks_input_shape():
    """Before, torch.randn(*[int(s) ...]) truncated 4.5 to 4 and a negative size
    failed deep inside torch."""
    torch = pytest.importorskip("torch")
    from neurolns.torch.counting import count_torch, measure_baseline

    net = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"input_shape\[1\]=4\.5"):
        count_torch(net, input_shape=(8, 4.5))
    with pytest.raises(ValueError, match=r"input_shape\[0\]=-1"):
        count_torch(net, input_shape=(-1, 4))
    with pytest.raises(ValueError, match="repeats=0"):
        measure_baseline(net, (2, 4), repeats=0)
