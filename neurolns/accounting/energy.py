"""Energy per operation and per bit moved, per number format, with every source.

An :class:`EnergyModel` is a table of :class:`Figure` entries — a value, the kind of
evidence behind it (measured, simulated, derived, assumed) and the source — in
three sections:

``op.<format>.<op>``
    pJ per operation. Formats ``fp32 fp16 bf16 fp8 int8 int32``; operations
    ``add mul fma shift cmp lut div sqrt exp``. Only ``add`` and ``mul`` are
    stored for the float/int formats; the others are derived from them (see
    :meth:`EnergyModel.cost`) unless an entry is given.
``memory.<level>``
    pJ per bit: ``register``, ``sram_<KiB>kib`` (caches of a given size,
    interpolated log-log between sizes), ``dram`` and ``link`` (a bit sent
    between workers).
``setting.<name>``
    knobs of the cost model (on-chip buffer size, register operands per MAC,
    LNS accumulator guard bits, ...).

LNS costs are built from integer parts, as the hardware works (Zhao et al.,
"LNS-Madam", IEEE Trans. Computers 71(12), 2022; Dally et al., US patent
11,886,980). For a ``B``-bit LNS with base factor ``γ``, a dot product of length
``K``:

.. math::

    E_\\text{dot}(K) = K\\,[\\underbrace{A(B-1)}_{\\text{product: exponent add}}
      + \\underbrace{S(W) + A(W)}_{\\text{shift-and-add into one of γ partial sums}}]
      + \\underbrace{γ\\,M(W, L) + (γ-1)\\,A(W+L) + T}_{\\text{conversion by } 2^{r/γ},
      \\text{ once per output}}

with ``A(b)``, ``M(a, b)`` the energies of a ``b``-bit integer add and an
``a×b``-bit integer multiply (fitted to the INT8/INT32 entries: ``A`` linear in
``b``, ``M`` proportional to ``a·b``), ``S(W)`` a ``W``-bit shift (priced as an
add), ``W = ceil((e_max - e_min)/γ) + 1 + guard`` the partial-sum width, ``L`` the
width of the constants ``2^{r/γ}`` and ``T`` a table read (the conversion of the
result back to a log code). The conversion term is amortised over ``K``.

All energies are in picojoules (pJ).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from neurolns.accounting._checks import check_count, check_size
from neurolns.formats import FloatFormat, IntFormat, LNSFormat, _StrEnum, parse_format, resolve_format

__all__ = [
    "Kind",
    "Op",
    "Figure",
    "EnergyModel",
    "available_presets",
    "format_key",
    "resolve_format",
    "format_bits",
]

#: float/int formats whose add and mul the presets list
BASE_FORMATS = ("fp32", "fp16", "bf16", "fp8", "int8", "int32")
#: settings every model carries (the presets define all of them)
SETTINGS = (
    "sram_kib",
    "register_operands_per_mac",
    "lns_guard_bits",
    "lns_lut_bits",
    "lut_pj_per_bit",
    "special_in_muls",
    "overhead_pj_per_op",
)
_FIXED_LEVELS = ("register", "dram", "link")
#: accumulator format of a multiply-accumulate (mixed-precision practice)
ACCUMULATE = {"fp32": "fp32", "fp16": "fp32", "bf16": "fp32", "fp8": "fp32", "int8": "int32", "int32": "int32"}


class Kind(_StrEnum):
    """The evidence behind a number."""

    MEASURED = "measured"
    SIMULATED = "simulated"
    DERIVED = "derived"
    ASSUMED = "assumed"


class Op(_StrEnum):
    """Arithmetic operations priced per format.

    ``fma`` is one multiply-accumulate of a dot product (for LNS: exponent add +
    shift-and-add into a partial sum, without the per-output conversion);
    ``exp`` stands for every transcendental function (exp, log, tanh, ...).
    """

    ADD = "add"
    MUL = "mul"
    FMA = "fma"
    SHIFT = "shift"
    CMP = "cmp"
    LUT = "lut"
    DIV = "div"
    SQRT = "sqrt"
    EXP = "exp"


@dataclass(frozen=True)
class Figure:
    """One number of the model: ``value`` (pJ, pJ/bit or a setting), its ``kind`` and ``source``."""

    value: float
    kind: Kind = Kind.ASSUMED
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise TypeError(f"value must be a number, got {type(self.value).__name__} {self.value!r}")
        if not math.isfinite(self.value) or self.value < 0:
            raise ValueError(f"value={self.value!r} is not allowed; allowed: a finite number >= 0")
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "kind", Kind(self.kind))
        if not isinstance(self.source, str):
            raise TypeError(f"source must be a str, got {type(self.source).__name__}")


# ----------------------------------------------------------------------------- formats
def format_key(fmt) -> str:
    """Table key of a format: ``fp32 fp16 bf16 fp8 int<b> lns<B>``."""
    fmt = resolve_format(fmt)
    if isinstance(fmt, LNSFormat):
        return f"lns{fmt.bits}"
    if isinstance(fmt, IntFormat):
        return f"int{fmt.bits}"
    name = fmt.name.lower()
    return "fp8" if name.startswith("fp8") else name


def format_bits(fmt) -> int:
    """Width in bits of one stored element (``"bit"``: a packed sign, 1)."""
    if fmt == "bit":
        return 1
    return int(resolve_format(fmt).bits)


# ----------------------------------------------------------------------------- model
def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not ({"value"} <= set(v)):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _check_key(key: str) -> None:
    parts = key.split(".")
    section = parts[0]
    allowed_sections = ("op", "memory", "setting")
    if section not in allowed_sections:
        raise ValueError(f"unknown section {section!r} in key {key!r}; allowed: {', '.join(allowed_sections)}")
    if section == "op":
        if len(parts) != 3:
            raise ValueError(f"key {key!r} must be op.<format>.<op>")
        fmt, op = parts[1], parts[2]
        try:
            format_key(fmt)
        except ValueError:
            raise ValueError(
                f"unknown format {fmt!r} in key {key!r}; allowed: {', '.join(BASE_FORMATS)}, int<b>, lns<B>"
            ) from None
        try:
            Op(op)
        except ValueError as exc:
            raise ValueError(f"key {key!r}: {exc}") from None
    elif section == "memory":
        if len(parts) != 2:
            raise ValueError(f"key {key!r} must be memory.<level>")
        lvl = parts[1]
        if lvl not in _FIXED_LEVELS and _sram_kib(lvl) is None:
            raise ValueError(f"unknown memory level {lvl!r}; allowed: {', '.join(_FIXED_LEVELS)}, sram_<KiB>kib")
    else:
        if len(parts) != 2 or parts[1] not in SETTINGS:
            raise ValueError(f"unknown setting {key!r}; allowed: {', '.join('setting.' + s for s in SETTINGS)}")


def _sram_kib(level: str) -> float | None:
    if level.startswith("sram_") and level.endswith("kib"):
        num = level[5:-3]
        try:
            v = float(num)
        except ValueError:
            return None
        return v if v > 0 else None
    return None


def _to_figure(key: str, raw, default_source: str) -> Figure:
    if isinstance(raw, Figure):
        return raw
    if isinstance(raw, Mapping):
        extra = set(raw) - {"value", "kind", "source"}
        if extra:
            raise ValueError(f"unknown field(s) {sorted(extra)} in {key!r}; allowed: value, kind, source")
        if "value" not in raw:
            raise ValueError(f"entry {key!r} has no 'value'")
        try:
            return Figure(raw["value"], raw.get("kind", Kind.ASSUMED), raw.get("source", default_source))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{key}: {exc}") from None
    try:
        return Figure(raw, Kind.ASSUMED, default_source)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{key}: {exc}") from None


def available_presets() -> tuple[str, ...]:
    """Names of the packaged presets (``horowitz45`` is the default)."""
    files = resources.files("neurolns.accounting")
    return tuple(sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml")))


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation and per-bit energies with their sources (all energies in pJ).

    Build one with :meth:`preset` (``"horowitz45"``, the default, or ``"7nm"``),
    :meth:`from_toml` or :meth:`with_overrides`; query it with :meth:`cost`,
    :meth:`mac_pj`, :meth:`dot_pj`, :meth:`access_pj_per_bit`.

    Parameters
    ----------
    name : str
    entries : mapping of str to Figure
        Flat keys ``op.<format>.<op>``, ``memory.<level>``, ``setting.<name>``.

    Examples
    --------
    >>> m = EnergyModel.preset()
    >>> round(m.mac_pj("fp32"), 3)   # 3.7 pJ multiply + 0.9 pJ add (Horowitz 2014)
    4.6
    """

    name: str
    entries: Mapping[str, Figure] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean = {}
        for key, fig in self.entries.items():
            _check_key(key)
            clean[key] = _to_figure(key, fig, "")
        missing = [s for s in SETTINGS if f"setting.{s}" not in clean]
        if missing:
            raise ValueError(f"model {self.name!r} lacks settings {missing}")
        for lvl in ("register", "dram", "link"):
            if f"memory.{lvl}" not in clean:
                raise ValueError(f"model {self.name!r} lacks memory.{lvl}")
        if not any(_sram_kib(k.split(".")[1]) for k in clean if k.startswith("memory.")):
            raise ValueError(f"model {self.name!r} has no memory.sram_<KiB>kib entry")
        for f in ("int8", "int32"):
            for op in ("add", "mul"):
                if f"op.{f}.{op}" not in clean:
                    raise ValueError(f"model {self.name!r} lacks op.{f}.{op} (integer parts of LNS costs)")
        if self.setting("sram_kib") <= 0:
            raise ValueError("setting.sram_kib must be > 0")
        object.__setattr__(self, "entries", MappingProxyType(clean))

    # -- construction -------------------------------------------------------
    @classmethod
    def preset(cls, name: str = "horowitz45") -> "EnergyModel":
        """A packaged preset: ``"horowitz45"`` (default) or ``"7nm"``."""
        names = available_presets()
        if name not in names:
            raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(names)}")
        text = resources.files("neurolns.accounting").joinpath(f"{name}.toml").read_text()
        return cls._from_tree(tomllib.loads(text), source=f"{name}.toml")

    @classmethod
    def _from_tree(cls, tree: Mapping[str, Any], source: str, base: "EnergyModel | None" = None) -> "EnergyModel":
        tree = dict(tree)
        name = tree.pop("name", None)
        tree.pop("description", None)
        flat = _flatten(tree)
        entries = dict(base.entries) if base is not None else {}
        for key, raw in flat.items():
            _check_key(key)
            entries[key] = _to_figure(key, raw, f"override from {source}")
        if name is None:
            name = base.name + "+" + Path(source).stem if base is not None else Path(source).stem
        return cls(str(name), entries)

    @classmethod
    def from_toml(cls, path, base: "EnergyModel | str | None" = "horowitz45") -> "EnergyModel":
        """Read entries from a TOML file on top of ``base`` (a preset name, a model or None).

        An entry is either a table ``{value, kind, source}`` or a bare number
        (kind ``assumed``, source: the file). Unknown keys and negative numbers
        raise ``ValueError``.
        """
        base_model = cls.preset(base) if isinstance(base, str) else base
        with open(path, "rb") as f:
            tree = tomllib.load(f)
        return cls._from_tree(tree, source=str(path), base=base_model)

    def with_overrides(self, overrides: Mapping[str, Any], *, source: str = "in-code override") -> "EnergyModel":
        """A copy with entries replaced; keys dotted (``"op.fp32.mul"``) or nested dicts."""
        return self._from_tree({"name": self.name + "+override", **_nest_safe(overrides)}, source=source, base=self)

    # -- queries ------------------------------------------------------------
    def setting(self, name: str) -> float:
        key = f"setting.{name}"
        if key not in self.entries:
            raise ValueError(f"unknown setting {name!r}; allowed: {', '.join(SETTINGS)}")
        return self.entries[key].value

    def _int_add(self, bits: float) -> float:
        """``A(b)``: integer add energy, linear in width through the INT8 and INT32 entries."""
        a8, a32 = self.entries["op.int8.add"].value, self.entries["op.int32.add"].value
        slope = (a32 - a8) / 24.0
        return max(0.0, a8 + slope * (bits - 8))

    def _int_mul(self, a: float, b: float) -> float:
        """``M(a, b)``: integer multiply energy ``c·a·b``, ``c`` a least-squares fit to INT8/INT32."""
        m8, m32 = self.entries["op.int8.mul"].value, self.entries["op.int32.mul"].value
        c = (m8 * 64 + m32 * 1024) / (64.0**2 + 1024.0**2)
        return c * a * b

    def accumulator_bits(self, fmt: LNSFormat) -> int:
        """Partial-sum width ``W = ceil((e_max - e_min)/γ) + 1 + guard`` of an LNS dot product."""
        span = math.ceil((fmt.e_max - fmt.e_min) / fmt.gamma) + 1
        return int(span + self.setting("lns_guard_bits"))

    def cost(self, fmt, op) -> Figure:
        """Energy of one ``op`` in ``fmt`` (pJ), with its kind and where it comes from.

        A stored entry ``op.<format>.<op>`` wins. Otherwise float/int costs derive
        from the format's add/mul (``fma = mul + add`` of the accumulator format,
        ``cmp = shift = A(bits)``, ``div = sqrt = special_in_muls·mul``,
        ``exp = lut + 2 mul + add``, ``lut = lut_pj_per_bit·bits``) and LNS costs
        from integer parts (module docstring).
        """
        fmt_obj = resolve_format(fmt)
        key = format_key(fmt_obj)
        op = Op(op)
        stored = self.entries.get(f"op.{key}.{op.value}")
        if stored is not None:
            return stored
        if isinstance(fmt_obj, LNSFormat):
            return self._lns_cost(fmt_obj, op)
        return self._plain_cost(fmt_obj, key, op)

    def _plain_cost(self, fmt, key: str, op: Op) -> Figure:
        bits = fmt.bits

        def base(o: str) -> float:
            e = self.entries.get(f"op.{key}.{o}")
            if e is not None:
                return e.value
            if isinstance(fmt, IntFormat):
                return self._int_add(bits) if o == "add" else self._int_mul(bits, bits)
            raise ValueError(f"no op.{key}.{o} entry in model {self.name!r} and no rule to derive it")

        lut = self.setting("lut_pj_per_bit") * bits
        if op in (Op.ADD, Op.MUL):
            v, src = base(op.value), f"{key} {op.value} from integer fit A(b)/M(a,b) of INT8/INT32"
        elif op is Op.FMA:
            acc = ACCUMULATE.get(key, key)
            acc_add = self.cost(acc, Op.ADD).value
            v, src = base("mul") + acc_add, f"{key} mul + {acc} add (accumulate in {acc})"
        elif op in (Op.CMP, Op.SHIFT):
            v, src = self._int_add(bits), f"{bits}-bit integer add A({bits}) (comparator/shifter priced as an adder)"
        elif op is Op.LUT:
            v, src = lut, f"lut_pj_per_bit x {bits} bits"
        elif op in (Op.DIV, Op.SQRT):
            k = self.setting("special_in_muls")
            v, src = k * base("mul"), f"{k:g} x {key} mul"
        else:  # EXP
            v, src = lut + 2 * base("mul") + base("add"), f"table seed + 2 {key} mul + 1 add"
        return Figure(v, Kind.DERIVED, src)

    def _lns_cost(self, fmt: LNSFormat, op: Op) -> Figure:
        b = fmt.bits
        w = self.accumulator_bits(fmt)
        a_exp = self._int_add(b - 1)
        lut = self.setting("lut_pj_per_bit") * self.setting("lns_lut_bits")
        if op in (Op.MUL, Op.DIV):
            v, src = a_exp, f"exponent add/sub A({b - 1})"
        elif op is Op.FMA:
            v = a_exp + 2 * self._int_add(w)
            src = f"exponent add A({b - 1}) + shift S({w}) + partial-sum add A({w})"
        elif op is Op.SHIFT:
            v, src = self._int_add(w), f"{w}-bit shifter priced as A({w})"
        elif op in (Op.CMP, Op.SQRT):
            v, src = self._int_add(b), f"{b}-bit integer compare/halving A({b})"
        elif op is Op.LUT:
            v, src = lut, "lut_pj_per_bit x lns_lut_bits"
        elif op is Op.ADD:  # Gaussian logarithm: max, difference, table sb(d), add
            v = self._int_add(b) + 2 * a_exp + lut
            src = f"compare A({b}) + difference and sum A({b - 1}) x2 + table read of sb(d)"
        else:  # EXP: log<->linear conversion by table
            v, src = lut + a_exp, "table read + exponent add"
        return Figure(v, Kind.DERIVED, src)

    def conversion_pj(self, fmt) -> float:
        """Energy paid once per dot-product output (pJ).

        LNS: scale each of the γ partial sums by the constant ``2^{r/γ}`` (``γ``
        ``W×L`` multiplies), add them (``γ-1`` adds of ``W+L`` bits), and convert
        the sum back to a log code (a table read). INT: requantise the 32-bit
        accumulator (one INT32 multiply). Float: 0 (rounding only).
        """
        fmt = resolve_format(fmt)
        if isinstance(fmt, LNSFormat):
            w = self.accumulator_bits(fmt)
            lb = self.setting("lns_lut_bits")
            g = fmt.gamma
            lut = self.setting("lut_pj_per_bit") * lb
            return g * self._int_mul(w, lb) + (g - 1) * self._int_add(w + lb) + lut
        if isinstance(fmt, IntFormat):
            return self.cost("int32", Op.MUL).value
        return 0.0

    def mac_pj(self, fmt, k: int | None = None) -> float:
        """Energy of one multiply-accumulate (pJ); with ``k`` the per-output
        conversion is amortised over a dot product of length ``k``."""
        e = self.cost(fmt, Op.FMA).value
        if k is not None:
            e += self.conversion_pj(fmt) / check_size("k", k, minimum=1)
        return e

    def dot_pj(self, fmt, k: int) -> float:
        """Energy of a length-``k`` dot product: ``k·fma + conversion`` (pJ); ``k`` a whole number ``>= 1``."""
        k = check_size("k", k, minimum=1)
        return k * self.mac_pj(fmt) + self.conversion_pj(fmt)

    def level_pj_per_bit(self, level: str) -> float:
        """pJ per bit at ``register``, ``dram``, ``link`` or ``sram`` (at ``setting.sram_kib``)."""
        if level == "sram":
            return self.sram_pj_per_bit(self.setting("sram_kib") * 1024)
        key = f"memory.{level}"
        if key not in self.entries:
            raise ValueError(f"unknown memory level {level!r}; allowed: register, sram, dram, link")
        return self.entries[key].value

    def sram_pj_per_bit(self, size_bytes: float) -> float:
        """pJ per bit read from an SRAM of ``size_bytes``: log-log interpolation
        between the ``memory.sram_<KiB>kib`` entries, flat beyond the ends."""
        check_count("size_bytes", size_bytes)
        pts = sorted(
            (kib, fig.value)
            for k, fig in self.entries.items()
            if k.startswith("memory.") and (kib := _sram_kib(k.split(".")[1]))
        )
        kib = max(size_bytes / 1024.0, 1e-9)
        if kib <= pts[0][0]:
            return pts[0][1]
        if kib >= pts[-1][0]:
            return pts[-1][1]
        for (k0, e0), (k1, e1) in zip(pts, pts[1:]):
            if k0 <= kib <= k1:
                t = math.log(kib / k0) / math.log(k1 / k0)
                return math.exp(math.log(e0) + t * (math.log(e1) - math.log(e0))) if e0 > 0 and e1 > 0 else e0 + t * (e1 - e0)
        raise AssertionError("unreachable")  # pragma: no cover

    def access_pj(self, level: str, bits: int = 32, *, size_bytes: float | None = None) -> float:
        """Energy (pJ) to move one word of ``bits`` at ``level`` (``register``, ``sram``,
        ``dram``, ``link``); with ``size_bytes`` an SRAM of that size instead of the
        configured buffer."""
        check_count("bits", bits)
        if size_bytes is not None:
            check_count("size_bytes", size_bytes)
        if level == "sram" and size_bytes is not None:
            return bits * self.sram_pj_per_bit(size_bytes)
        return bits * self.level_pj_per_bit(level)

    def level_for(self, tensor_bytes: float) -> str:
        """``"sram"`` if a tensor of this size fits the on-chip buffer, else ``"dram"``."""
        check_count("tensor_bytes", tensor_bytes)
        return "sram" if tensor_bytes <= self.setting("sram_kib") * 1024 else "dram"

    def access_pj_per_bit(self, tensor_bytes: float) -> float:
        """pJ per bit to read or write an element of a tensor of ``tensor_bytes``."""
        return self.level_pj_per_bit(self.level_for(tensor_bytes))

    def table(self, formats=("fp32", "fp16", "bf16", "fp8", "int8", "int32", "lns8")) -> list[dict]:
        """Every number of the model (stored and derived for ``formats``) as rows
        ``{key, value, unit, kind, source}``."""
        rows = []
        for f in formats:
            key = format_key(f)
            for op in Op:
                fig = self.cost(f, op)
                rows.append(dict(key=f"op.{key}.{op.value}", value=fig.value, unit="pJ", kind=fig.kind.value, source=fig.source))
            conv = self.conversion_pj(f)
            if conv:
                rows.append(dict(key=f"conversion.{key}", value=conv, unit="pJ/output", kind="derived",
                                 source="per dot-product output (see conversion_pj)"))
        for k, fig in sorted(self.entries.items()):
            if not k.startswith("op."):
                unit = "pJ/bit" if k.startswith("memory.") else ""
                rows.append(dict(key=k, value=fig.value, unit=unit, kind=fig.kind.value, source=fig.source))
        return rows


def _nest_safe(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted keys into a nested tree ``_from_tree`` understands."""
    if not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a mapping, got {type(overrides).__name__}")
    tree: dict[str, Any] = {}
    for key, val in overrides.items():
        if not isinstance(key, str):
            raise TypeError(f"override keys must be str, got {key!r}")
        if key in ("name", "description"):
            raise ValueError(f"{key!r} cannot be overridden")
        parts = key.split(".")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"conflicting override keys at {key!r}")
        node[parts[-1]] = val
    return tree
