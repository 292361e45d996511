"""Update rules, gradient exchange, memory footprint and energy pricing against hand arithmetic."""
import json
from types import SimpleNamespace

import pytest

from neurolns.accounting import (
    RECIPES,
    Counts,
    EnergyModel,
    LayerCounts,
    Phase,
    Recipe,
    count_spiking,
    exchange_counts,
    format_table,
    inference_energy,
    memory_footprint,
    mlp_counts,
    plot_energy_bars,
    price_layer,
    reports_to_json,
    spiking_counts,
    training_step_energy,
    update_counts,
)


@pytest.fixture(scope="module")
def h45():
    return EnergyModel.preset()


@pytest.fixture(scope="module")
def mlp():
    return mlp_counts([64, 256, 10], 64)


def test_bytes_per_parameter_of_each_recipe(mlp):
    """FP32 Adam: w 4 + g 4 + m,v 8 = 16 B; BF16 mixed: 2 + 4 master + 2 + 8 = 16 B (ZeRO's count);
    LNS8 + LNS-Madam: 12-bit code 1.5 + LNS8 gradient 1 + 16-bit v 2 = 4.5 B."""
    expect = {"fp32-adam": 16.0, "bf16": 16.0, "lns8-full": 4.5}
    for key, bpp in expect.items():
        m = memory_footprint(mlp, RECIPES[key])
        assert m.bytes_per_param == pytest.approx(bpp)
        assert m.peak == pytest.approx(m.weights + m.master + m.grads + m.state + m.activations + m.workspace)
    inf = memory_footprint(mlp, RECIPES["int8-inference"])
    assert inf.bytes_per_param == 1.0 and inf.activations == 0 and inf.grads == 0


def test_fp32_allreduce_sends_32_times_the_bits_of_the_1bit_exchange():
    """Ring all-reduce: 2(W-1)/W·d words per worker; two-phase sign exchange: 2(W-1)/W·d bits."""
    d, W = [1000, 24], 8
    fp = exchange_counts(RECIPES["fp32-adam"], d, W)[0]
    sg = exchange_counts(RECIPES["lns8-full"], d, W)[0]
    assert fp.link_bits == 2 * (W - 1) * sum(d) * 32
    assert sg.link_bits == 2 * (W - 1) * sum(d)
    assert fp.link_bits / sg.link_bits == 32
    assert fp.count("add") == (W - 1) * sum(d)
    assert exchange_counts(RECIPES["fp32-adam"], d, 1) == []
    with pytest.raises(ValueError, match="workers"):
        exchange_counts(RECIPES["fp32-adam"], d, 0)


def test_an_abstaining_vote_is_priced_as_an_all_gather_of_the_signs():
    """ties="abstain": each of W workers receives the other W-1 sign rows (d bits each): W(W-1)d
    link bits, against the two-phase 2(W-1)d of a +1-tie vote; every worker votes all d
    elements, (W-1)d adds each. Refused with an exchange that has no vote."""
    d, W = [1000, 24], 4
    plus = exchange_counts(RECIPES["lns8-full"], d, W)[0]
    abstain = exchange_counts(RECIPES["lns8-full"].replace(ties="abstain"), d, W)[0]
    assert abstain.link_bits == W * (W - 1) * sum(d) == 12 * 1024
    assert plus.link_bits == 2 * (W - 1) * sum(d) == 6 * 1024
    assert abstain.count("add") == W * (W - 1) * sum(d)
    assert plus.count("add") == (W - 1) * sum(d)
    assert RECIPES["lns8-full"].replace(ties="abstain").to_dict()["ties"] == "abstain"
    with pytest.raises(ValueError, match="ties='abstain' is out of range with exchange='allreduce'"):
        RECIPES["fp32-adam"].replace(ties="abstain")
    with pytest.raises(ValueError, match="'maybe' is not a valid TieRule"):
        RECIPES["lns8-full"].replace(ties="maybe")


def test_update_counts_scale_with_parameters_and_replicas():
    """Adam: 8 mul, 4 add, 1 sqrt, 1 div per parameter, all FP32; LNS-Madam's step is one integer
    add on the 12-bit code per parameter."""
    n = [300, 7]
    adam = update_counts(RECIPES["fp32-adam"], n, replicas=3)[0]
    assert adam.ops[("mul", "fp32")] == 8 * 307 * 3 and adam.ops[("add", "fp32")] == 4 * 307 * 3
    assert adam.ops[("sqrt", "fp32")] == adam.ops[("div", "fp32")] == 307 * 3
    lm = update_counts(RECIPES["lns8-full"], n)[0]
    assert lm.ops[("add", "int12")] == 307 and lm.phase is Phase.UPDATE
    assert update_counts(RECIPES["int8-inference"], n) == []


def test_price_layer_equals_hand_arithmetic(h45):
    """10 FP32 MACs, 3 adds, 2 compares; a 100-element tensor read once (SRAM, 1 MB: 100 pJ/64 bit)
    and a 10^7-element tensor written 5 elements (DRAM, 20 pJ/bit), 64 link bits."""
    lc = LayerCounts("x", phase=Phase.FORWARD)
    lc.dot(2, 5).op("add", 3).op("cmp", 2).read(100).write(10**7, 5)
    lc.link_bits = 64
    e = price_layer(lc, "fp32", h45)
    assert e.compute == pytest.approx(10 * 4.6 + 3 * 0.9 + 2 * 0.1)
    assert e.register == pytest.approx(10 * 2 * 32 / 32)  # two 32-bit operands at 1 pJ per 32 bits
    assert e.sram == pytest.approx(100 * 32 * 100 / 64)
    assert e.dram == pytest.approx(5 * 32 * 20)
    assert e.link == pytest.approx(64 * 20)
    lns = price_layer(lc, "lns8", h45)
    assert lns.compute == pytest.approx(10 * h45.mac_pj("lns8") + 2 * h45.conversion_pj("lns8")
                                        + 3 * h45.cost("lns8", "add").value + 2 * h45.cost("lns8", "cmp").value)
    assert lns.sram == pytest.approx(e.sram / 4)


def test_changing_one_toml_entry_changes_the_report_as_expected(tmp_path, h45, mlp):
    """Raising the FP32 multiply from 3.7 to 4.7 pJ adds exactly 1 pJ per FP32 multiply — every
    MAC, every elementwise and optimizer multiply, the 4 multiplies of each derived division or
    square root and the 2 of each exp — and changes no memory energy."""
    p = tmp_path / "e.toml"
    p.write_text("[op.fp32]\nmul = 4.7\n")
    m2 = EnergyModel.from_toml(p)
    a = training_step_energy(mlp, "fp32-adam", h45)
    b = training_step_energy(mlp, "fp32-adam", m2)
    muls = a.macs + sum(lc.count("mul") + 4 * lc.count("div") + 4 * lc.count("sqrt") + 2 * lc.count("exp")
                        for lc in mlp.layers)
    mul_ops = muls + (8 + 4 + 4) * mlp.params  # Adam: 8 mul, 1 div, 1 sqrt per parameter
    assert b.total.compute - a.total.compute == pytest.approx(mul_ops * 1.0)
    assert b.total.memory == pytest.approx(a.total.memory)
    # the DRAM entry scales only the DRAM part
    m3 = h45.with_overrides({"memory.dram": 40.0, "setting.sram_kib": 8})
    c = training_step_energy(mlp, "fp32-adam", h45.with_overrides({"setting.sram_kib": 8}))
    d = training_step_energy(mlp, "fp32-adam", m3)
    assert d.total.dram == pytest.approx(2 * c.total.dram) and d.total.compute == pytest.approx(c.total.compute)


def test_training_step_sums_its_phases_and_lns_beats_fp32(h45, mlp):
    reps = [training_step_energy(mlp, k, h45, workers=4) for k in ("fp32-adam", "bf16", "lns8-full")]
    for r in reps:
        phases = r.by_phase()
        assert set(phases) == {"forward", "backward", "update", "exchange"}
        assert sum(e.total for e in phases.values()) == pytest.approx(r.total.total)
        assert sum(e.total for e in r.by_layer().values()) == pytest.approx(r.total.total)
    fp32, bf16, lns = (r.total.total for r in reps)
    assert lns < bf16 < fp32
    with pytest.raises(ValueError, match="does not train"):
        training_step_energy(mlp, "int8-inference", h45)
    with pytest.raises(ValueError, match="backward"):
        training_step_energy(mlp_counts([4, 2], 1, training=False), "fp32-adam", h45)


def test_inference_of_training_counts_uses_the_forward_phase(h45, mlp):
    fwd_only = mlp_counts([64, 256, 10], 64, training=False)
    a, b = inference_energy(mlp, "lns8", h45), inference_energy(fwd_only, "lns8", h45)
    # the same forward work; the training counts also write the 8-bit seed gradient to SRAM
    assert a.total.total == pytest.approx(b.total.total + 8 * h45.level_pj_per_bit("sram"))
    assert a.per_sample().total == pytest.approx(a.total.total / 64)


def test_reports_table_json_and_png(tmp_path, h45, mlp):
    reps = [inference_energy(mlp, f, h45) for f in ("fp32", "bf16", "int8", "lns8")]
    table = format_table(reps)
    assert all(name in table for name in ("FP32", "BF16", "INT8", "LNS8")) and "1.000" in table
    data = json.loads(reports_to_json(reps, tmp_path / "r.json", model="mlp"))
    assert data["model"] == "mlp" and len(data["reports"]) == 4
    assert data["reports"][3]["compute_format"] == "lns8"
    assert json.loads((tmp_path / "r.json").read_text()) == data
    plot_energy_bars(reps, tmp_path / "r.png", per_sample=True)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_counts_table_lists_every_layer_and_the_total(mlp):
    from neurolns.accounting import counts_table

    text = counts_table(mlp, "fp32")
    lines = text.splitlines()
    assert len(lines) == 2 + len(mlp.layers) + 1 and lines[-1].startswith("total")
    total_macs = int(lines[-1].split()[1].replace(",", ""))
    assert total_macs == 64 * 64 * 256 + 64 * 256 * 10 + (64 * 256 * 10) * 2 + 64 * 64 * 256


def test_recipe_validation():
    with pytest.raises(ValueError, match="Rule"):
        Recipe("x", rule="rmsprop")
    with pytest.raises(ValueError, match="fp99"):
        Recipe("x", compute="fp99")
    with pytest.raises(ValueError, match="exchange"):
        Recipe("x", rule="none", exchange="allreduce")


def test_spiking_counts_from_a_run():
    """Events default to spikes × mean out-degree; each is one accumulate (binary spikes, no multiply)."""
    net = SimpleNamespace(n_neurons=4000, n_synapses=320_000)
    report = SimpleNamespace(steps=10_000, spikes=240_000)
    c = count_spiking(net, report)
    lc = c.layers[0]
    events = 240_000 * 80
    assert c.meta["synaptic_events"] == events
    assert lc.count("add") == events + 3 * 4000 * 10_000 and lc.count("mul") == 2 * 4000 * 10_000
    assert lc.macs == 0
    plastic = count_spiking(net, report, plastic=True).layers[0]
    assert plastic.count("mul") == lc.count("mul") + 2 * 2 * events
    e = price_layer(spiking_counts("s", neuron_updates=0, synaptic_events=1000, synapses=10), "lns8",
                    EnergyModel.preset())
    assert e.compute == pytest.approx(1000 * EnergyModel.preset().cost("lns8", "add").value)


def test_counts_scale_and_merge():
    c = Counts(layers=[LayerCounts("a").dot(3, 4).op("add", 5).read(10)], batch=2)
    s = c.layers[0].scaled(0.5)
    assert s.macs == 6 and s.count("add") == 2.5 and s.elements_read() == 5
    assert c.total().macs == 12 and c.by_layer()["a"].dot_outputs == 3
    assert c.layers[0].bytes_moved("fp32") == 40 and c.layers[0].bytes_moved("lns8") == 10
