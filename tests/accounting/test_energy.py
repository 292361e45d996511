"""EnergyModel: presets against the published tables, LNS costs from parts, overrides and errors."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurolns import LNSFormat
from neurolns.accounting import EnergyModel, Kind, Op, available_presets

# Horowitz, ISSCC 2014, 45 nm, 0.9 V (references.md), pJ
HOROWITZ = {("int8", "add"): 0.03, ("int8", "mul"): 0.2, ("int32", "add"): 0.1, ("int32", "mul"): 3.1,
            ("fp16", "add"): 0.4, ("fp16", "mul"): 1.1, ("fp32", "add"): 0.9, ("fp32", "mul"): 3.7}
# BitNet (Wang et al. 2023) Table 2, 7 nm
BITNET7 = {("int8", "add"): 0.007, ("int32", "add"): 0.03, ("fp32", "add"): 0.38,
           ("int8", "mul"): 0.07, ("int32", "mul"): 1.48, ("fp32", "mul"): 1.31}


@pytest.fixture(scope="module")
def h45():
    return EnergyModel.preset()


def test_fp32_mac_costs_4_6_pj_under_horowitz45(h45):
    """The bar: an FP32 MAC is a 3.7 pJ multiply plus a 0.9 pJ add."""
    assert h45.name == "horowitz45"
    assert h45.mac_pj("fp32") == pytest.approx(3.7 + 0.9, abs=1e-12)
    assert h45.mac_pj("fp32", k=1000) == pytest.approx(4.6)  # floats pay no per-output conversion


@pytest.mark.parametrize("preset,table", [("horowitz45", HOROWITZ), ("7nm", BITNET7)])
def test_presets_carry_the_published_numbers(preset, table):
    m = EnergyModel.preset(preset)
    for (fmt, op), v in table.items():
        assert m.cost(fmt, op).value == pytest.approx(v), (fmt, op)


def test_every_number_has_a_source_and_a_kind_and_derived_ones_are_not_called_measured():
    """BF16, FP8 and LNS are not in Horowitz's table: they must be derived or assumed."""
    assert set(available_presets()) >= {"horowitz45", "7nm"}
    for name in available_presets():
        m = EnergyModel.preset(name)
        for row in m.table():
            assert row["source"], row
            assert row["kind"] in {k.value for k in Kind}
            if any(row["key"].startswith(f"op.{f}.") for f in ("bf16", "fp8", "lns8")):
                assert row["kind"] in ("derived", "assumed"), row
        for key, fig in m.entries.items():
            assert fig.source and fig.value >= 0, key
    h = EnergyModel.preset("horowitz45")
    assert all(h.cost(f, o).kind is Kind.MEASURED for f, o in HOROWITZ)


def test_lns_costs_are_built_from_integer_parts(h45):
    """Product = exponent add A(B-1); accumulate = shift + add of the W-bit partial sum;
    conversion = γ multiplies by the 9-bit constants + γ-1 adds + a table read,
    recomputed here from the INT8/INT32 entries."""
    fmt = LNSFormat(8, 8)
    a8, a32, m8, m32 = 0.03, 0.1, 0.2, 3.1

    def add(b):
        return a8 + (a32 - a8) / 24 * (b - 8)

    c = (m8 * 64 + m32 * 1024) / (64**2 + 1024**2)
    w = math.ceil(126 / 8) + 1 + 8  # exponent span / γ + 1 + 8 guard bits = 25
    assert h45.accumulator_bits(fmt) == w
    assert h45.cost(fmt, "mul").value == pytest.approx(add(7))
    assert h45.cost(fmt, "fma").value == pytest.approx(add(7) + 2 * add(w))
    lut = 9 / 32  # a 9-bit table entry read at 1 pJ per 32 bits
    conv = 8 * c * w * 9 + 7 * add(w + 9) + lut
    assert h45.conversion_pj(fmt) == pytest.approx(conv)
    assert h45.dot_pj(fmt, 64) == pytest.approx(64 * (add(7) + 2 * add(w)) + conv)
    # an LNS8 MAC is far below FP32's 4.6 pJ, and the amortised conversion shrinks with K
    assert h45.mac_pj(fmt, 16) > h45.mac_pj(fmt, 256) > h45.mac_pj(fmt) and h45.mac_pj(fmt, 256) < 0.1 * 4.6


@given(k=st.integers(1, 10_000))
def test_lns_mac_amortises_the_conversion_exactly(k):
    m = EnergyModel.preset()
    assert m.mac_pj("lns8", k) * k == pytest.approx(m.dot_pj("lns8", k))


def test_lns_parts_follow_an_overridden_integer_entry(h45):
    """Changing the INT8 add changes the LNS product (an exponent add) accordingly."""
    m = h45.with_overrides({"op.int8.add": 0.06})
    slope = (0.1 - 0.06) / 24
    assert m.cost("lns8", "mul").value == pytest.approx(0.06 + slope * (7 - 8))
    assert m.cost("lns8", "mul").value != h45.cost("lns8", "mul").value


def test_toml_override_changes_one_entry_and_keeps_the_rest(tmp_path, h45):
    p = tmp_path / "mine.toml"
    p.write_text('[op.fp32.mul]\nvalue = 4.0\nkind = "measured"\nsource = "my chip"\n'
                 '[memory]\ndram = 10.0\n')
    m = EnergyModel.from_toml(p)
    assert m.mac_pj("fp32") == pytest.approx(4.9)
    assert m.cost("fp32", "mul").source == "my chip" and m.cost("fp32", "mul").kind is Kind.MEASURED
    assert m.level_pj_per_bit("dram") == 10.0 and "override" in m.entries["memory.dram"].source
    assert m.cost("fp32", "add").value == 0.9 and m.cost("int8", "mul").value == 0.2


def test_in_code_overrides_dotted_and_nested_agree(h45):
    a = h45.with_overrides({"op.bf16.mul": 0.5, "setting.sram_kib": 32})
    b = h45.with_overrides({"op": {"bf16": {"mul": 0.5}}, "setting": {"sram_kib": 32}})
    assert a.entries == b.entries
    assert a.level_pj_per_bit("sram") == pytest.approx(20 / 64)  # the measured 32 KB point


@pytest.mark.parametrize("bad,match", [
    ({"op.fp32.mull": 1.0}, "mull"),
    ({"op.fp99.mul": 1.0}, "fp99"),
    ({"memory.l3": 1.0}, "l3"),
    ({"setting.colour": 1.0}, "colour"),
    ({"bogus": 1.0}, "bogus"),
    ({"op.fp32.mul": -1.0}, "-1"),
    ({"op.fp32.mul": float("nan")}, "nan"),
    ({"op.fp32.mul": {"value": 1.0, "kind": "guessed"}}, "guessed"),
    ({"op.fp32.mul": {"value": 1.0, "unit": "pJ"}}, "unit"),
])
def test_unknown_keys_and_negative_numbers_are_clear_errors(h45, bad, match):
    with pytest.raises(ValueError, match=match):
        h45.with_overrides(bad)


def test_bad_toml_names_the_key(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[op.int8]\nadd = -0.5\n")
    with pytest.raises(ValueError, match=r"op\.int8\.add.*-0\.5"):
        EnergyModel.from_toml(p)
    with pytest.raises(ValueError, match="nope"):
        EnergyModel.preset("nope")


@given(kib=st.floats(8.0, 1024.0))
def test_sram_energy_interpolates_between_measured_sizes(kib):
    """Log-log interpolation: exact at 8 KB/32 KB/1 MB and monotone in between."""
    m = EnergyModel.preset()
    e = m.sram_pj_per_bit(kib * 1024)
    assert 10 / 64 - 1e-12 <= e <= 100 / 64 + 1e-12
    assert m.sram_pj_per_bit(kib * 1024 * 1.01) >= e - 1e-12


def test_word_access_energies_match_the_per_32_bit_figures(h45):
    """Han et al. 2015 per 32-bit word: register 1 pJ, DRAM 640 pJ; Horowitz: 64-bit from 8 KB 10 pJ."""
    assert h45.access_pj("register") == pytest.approx(1.0)
    assert h45.access_pj("dram") == pytest.approx(640.0)
    assert h45.access_pj("sram", 64, size_bytes=8 * 1024) == pytest.approx(10.0)
    assert h45.access_pj("sram", 64) == pytest.approx(100.0)  # the default 1 MB buffer


def test_sram_measured_points_and_placement(h45):
    for kib, pj64 in ((8, 10), (32, 20), (1024, 100)):
        assert h45.sram_pj_per_bit(kib * 1024) == pytest.approx(pj64 / 64)
    assert h45.level_for(1024 * 1024) == "sram" and h45.level_for(1024 * 1024 + 1) == "dram"
    assert h45.level_pj_per_bit("dram") == pytest.approx(640 / 32)


def test_every_op_of_every_format_has_a_cost(h45):
    for f in ("fp32", "fp16", "bf16", "fp8", "int8", "int32", "int16", "lns8", "lns12g128", "lns16"):
        for op in Op:
            assert h45.cost(f, op).value >= 0
    with pytest.raises(ValueError, match="fp99"):
        h45.cost("fp99", "add")
