"""Operation and memory-traffic counts per layer, and counts from plain layer descriptions.

A :class:`LayerCounts` holds what one layer did in one phase (forward, backward,
optimizer update, gradient exchange): multiply-accumulates of dot products and
how many dot products (outputs) they formed, elementwise operations by kind, and
the elements read and written grouped by the size of the tensor they belong to
(the size decides where a tensor lives, see
:meth:`neurolns.accounting.EnergyModel.level_for`). Counts are format-free: an
entry whose format is ``None`` is priced in the format under study, one with a
named format (``"fp32"``, ``"int12"``, ``"lns16"``) always in that format.

The counting convention (shared by the PyTorch counter and the functions here,
and checked against hand counts in the tests):

* a matrix product or convolution of output ``y`` and reduction length ``K``
  counts ``numel(y)·K`` MACs and ``numel(y)`` dot outputs; a bias adds
  ``numel(y)`` adds; a bias gradient is a sum, ``numel(grad) - numel(bias)`` adds;
* ReLU and its backward: one compare per element; max pooling ``k`` elements:
  ``k - 1`` compares per output;
* log-softmax over rows of ``n``: ``n - 1`` compares, ``3n - 1`` adds, ``n + 1``
  exps per row; its backward ``2n - 1`` adds, ``n`` muls, ``n`` exps per row;
  mean NLL loss over ``N`` rows: ``N - 1`` adds and one division;
* a tensor made from a constant (zeros, ones, the seed gradient) is written, not read;
* every operation that is not a view reads each tensor argument once and writes
  each output once (an ideal-reuse lower bound on traffic).

Every count is a finite number ``>= 0`` and every size (elements, channels,
batch, kernel, window) a whole number: a negative, NaN, infinite or (for a
size) fractional argument raises ``ValueError`` naming it, in every function
here and again in :meth:`LayerCounts.check` before anything is priced.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from neurolns.accounting._checks import check_count, check_size, check_sizes
from neurolns.accounting.energy import Op, _StrEnum, format_bits

__all__ = [
    "Phase",
    "LayerCounts",
    "Counts",
    "dense_counts",
    "conv_counts",
    "relu_counts",
    "maxpool_counts",
    "log_softmax_nll_counts",
    "mlp_counts",
    "spiking_counts",
]


class Phase(_StrEnum):
    """Where in a training step the work happens."""

    FORWARD = "forward"
    BACKWARD = "backward"
    UPDATE = "update"
    EXCHANGE = "exchange"


@dataclass
class LayerCounts:
    """Counts of one layer in one phase.

    Attributes
    ----------
    name, kind : str
        Layer name (a module path) and type (``"Linear"``, ``"Conv2d"``, ...).
    phase : Phase
    macs : number
        Multiply-accumulates inside dot products.
    dot_outputs : number
        Dot products formed (outputs of matrix products/convolutions); LNS pays
        its ``2^{r/γ}`` conversion once per output.
    ops : Counter
        ``{(op, format or None): count}`` of elementwise operations.
    reads, writes : Counter
        ``{(tensor elements, format or None): elements}``.
    link_bits : number
        Bits sent between workers.
    """

    name: str
    kind: str = ""
    phase: Phase = Phase.FORWARD
    macs: float = 0
    dot_outputs: float = 0
    ops: Counter = field(default_factory=Counter)
    reads: Counter = field(default_factory=Counter)
    writes: Counter = field(default_factory=Counter)
    link_bits: float = 0

    def __post_init__(self) -> None:
        self.phase = Phase(self.phase)
        self.check()

    def check(self) -> "LayerCounts":
        """Raise ``ValueError`` naming the field if a count is negative, NaN or
        infinite or a tensor size is not a whole number ``>= 0`` (the fields are
        public and mutable, so pricing checks again)."""
        for f in ("macs", "dot_outputs", "link_bits"):
            check_count(f"{self.name}.{f}", getattr(self, f))
        for (op, fmt), n in self.ops.items():
            check_count(f"{self.name}.ops[{op}@{fmt or '*'}]", n)
        for which in ("reads", "writes"):
            for (numel, fmt), n in getattr(self, which).items():
                check_size(f"{self.name}.{which} tensor size", numel)
                check_count(f"{self.name}.{which}[{numel}@{fmt or '*'}]", n)
        return self

    # -- building -----------------------------------------------------------
    def op(self, op, n, fmt: str | None = None) -> "LayerCounts":
        """Count ``n`` operations ``op`` (an :class:`Op` name) in ``fmt`` (None: the studied format)."""
        check_count("n", n)
        if n:
            self.ops[(Op(op).value, fmt)] += n
        return self

    def read(self, tensor_elems, n=None, fmt: str | None = None) -> "LayerCounts":
        """Count a read of ``n`` elements (default: all) of a tensor of ``tensor_elems``."""
        tensor_elems = check_size("tensor_elems", tensor_elems)
        n = tensor_elems if n is None else check_count("n", n)
        if n:
            self.reads[(tensor_elems, fmt)] += n
        return self

    def write(self, tensor_elems, n=None, fmt: str | None = None) -> "LayerCounts":
        """Count a write of ``n`` elements (default: all) of a tensor of ``tensor_elems``."""
        tensor_elems = check_size("tensor_elems", tensor_elems)
        n = tensor_elems if n is None else check_count("n", n)
        if n:
            self.writes[(tensor_elems, fmt)] += n
        return self

    def dot(self, outputs, k) -> "LayerCounts":
        """Count ``outputs`` dot products of length ``k`` (a whole number)."""
        check_count("outputs", outputs)
        check_size("k", k)
        self.macs += outputs * k
        self.dot_outputs += outputs
        return self

    def merge(self, other: "LayerCounts") -> "LayerCounts":
        if not isinstance(other, LayerCounts):
            raise TypeError(f"other must be a LayerCounts, got {type(other).__name__}")
        other.check()
        self.macs += other.macs
        self.dot_outputs += other.dot_outputs
        self.ops.update(other.ops)
        self.reads.update(other.reads)
        self.writes.update(other.writes)
        self.link_bits += other.link_bits
        return self

    def scaled(self, k: float) -> "LayerCounts":
        """A copy with every count multiplied by ``k`` (e.g. ``1/batch`` or steps per epoch)."""
        check_count("k", k)

        def sc(c: Counter) -> Counter:
            return Counter({key: v * k for key, v in c.items()})

        return LayerCounts(self.name, self.kind, self.phase, self.macs * k, self.dot_outputs * k,
                           sc(self.ops), sc(self.reads), sc(self.writes), self.link_bits * k)

    # -- reading ------------------------------------------------------------
    def count(self, op) -> float:
        """Operations ``op`` in any format (``"mac"`` gives :attr:`macs`)."""
        if op == "mac":
            return self.macs
        op = Op(op).value
        return sum(v for (o, _), v in self.ops.items() if o == op)

    def elements_read(self) -> float:
        return sum(self.reads.values())

    def elements_written(self) -> float:
        return sum(self.writes.values())

    def bytes_moved(self, fmt, which: str = "both") -> float:
        """Bytes read and/or written, elements of unnamed format taken at ``fmt``'s width."""
        bits = format_bits(fmt)
        total = 0.0
        groups = {"read": [self.reads], "write": [self.writes], "both": [self.reads, self.writes]}[which]
        for c in groups:
            for (_, f), n in c.items():
                total += n * (bits if f is None else format_bits(f)) / 8
        return total

    def to_dict(self) -> dict:
        return dict(
            name=self.name, kind=self.kind, phase=self.phase.value, macs=self.macs, dot_outputs=self.dot_outputs,
            ops={f"{o}@{f or '*'}": v for (o, f), v in sorted(self.ops.items(), key=str)},
            elements_read=self.elements_read(), elements_written=self.elements_written(), link_bits=self.link_bits,
        )


@dataclass
class Counts:
    """All layers' counts of one run, plus what the memory model needs.

    Attributes
    ----------
    layers : list of LayerCounts
    params : int
        Trainable parameters.
    batch : int
        Samples in the counted run.
    saved_elems : int
        Activation elements saved for the backward pass (0 for inference).
    transient_elems : int
        Largest single intermediate tensor (a stand-in for the workspace at the peak).
    param_tensors : list of int
        Size of each parameter tensor (placement of update traffic).
    """

    layers: list = field(default_factory=list)
    params: int = 0
    batch: int = 1
    saved_elems: int = 0
    transient_elems: int = 0
    param_tensors: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> "Counts":
        """Raise ``ValueError`` naming the field if a size is not a whole number
        ``>= 0`` (``batch >= 1``) or a layer holds a bad count."""
        for f in ("params", "saved_elems", "transient_elems"):
            check_size(f, getattr(self, f))
        check_size("batch", self.batch, minimum=1)
        check_sizes("param_tensors", self.param_tensors)
        for lc in self.layers:
            if not isinstance(lc, LayerCounts):
                raise TypeError(f"layers must hold LayerCounts, got {type(lc).__name__}")
            lc.check()
        return self

    def add(self, layer: LayerCounts) -> LayerCounts:
        self.layers.append(layer)
        return layer

    def extend(self, layers: Iterable[LayerCounts]) -> "Counts":
        self.layers.extend(layers)
        return self

    def phase(self, phase) -> list:
        phase = Phase(phase)
        return [lc for lc in self.layers if lc.phase is phase]

    def total(self, phase=None) -> LayerCounts:
        """All layers (of one phase, or all phases) merged into one :class:`LayerCounts`."""
        tot = LayerCounts("total", phase=Phase(phase) if phase is not None else Phase.FORWARD)
        for lc in self.layers if phase is None else self.phase(phase):
            tot.merge(lc)
        return tot

    def by_layer(self, phase=None) -> dict:
        """``{layer name: merged counts}`` in first-seen order."""
        out: dict = {}
        for lc in self.layers if phase is None else self.phase(phase):
            if lc.name not in out:
                out[lc.name] = LayerCounts(lc.name, lc.kind, lc.phase)
            out[lc.name].merge(lc)
        return out

    def to_dict(self) -> dict:
        return dict(params=self.params, batch=self.batch, saved_elems=self.saved_elems,
                    transient_elems=self.transient_elems, meta=self.meta,
                    layers=[lc.to_dict() for lc in self.layers])


# ----------------------------------------------------------------------------- plain descriptions
def dense_counts(name: str, n_in: int, n_out: int, batch: int, *, bias: bool = True, training: bool = True,
                 input_grad: bool = True) -> list:
    """Counts of a fully connected layer ``y = x Wᵀ + b`` on ``batch`` rows.

    Forward: ``batch·n_out`` dot products of length ``n_in`` (+ ``batch·n_out`` bias
    adds). Backward: the input gradient (``batch·n_in`` dots of length ``n_out``,
    skipped with ``input_grad=False`` for the first layer), the weight gradient
    (``n_in·n_out`` dots of length ``batch``) and the bias gradient (a sum over
    the batch). Matches what :func:`neurolns.torch.counting.count_torch` counts
    for ``torch.nn.Linear``. Sizes are whole numbers ``>= 1``.
    """
    n_in, n_out, batch = (check_size(k, v, minimum=1) for k, v in (("n_in", n_in), ("n_out", n_out),
                                                                    ("batch", batch)))
    w, y, x = n_in * n_out, batch * n_out, batch * n_in
    fwd = LayerCounts(name, "Linear", Phase.FORWARD).dot(y, n_in)
    fwd.read(x).read(w).write(y)
    if bias:
        fwd.op(Op.ADD, y).read(n_out)
    out = [fwd]
    if training:
        bwd = LayerCounts(name, "Linear", Phase.BACKWARD)
        if input_grad:
            bwd.dot(x, n_out).read(y).read(w).write(x)
        bwd.dot(w, batch).read(y).read(x).write(w)
        if bias:
            bwd.op(Op.ADD, y - n_out).read(y).write(n_out)
        out.append(bwd)
    return out


def conv_counts(name: str, in_ch: int, out_ch: int, kernel: Sequence[int], in_size: Sequence[int],
                out_size: Sequence[int], batch: int, *, bias: bool = True, groups: int = 1,
                training: bool = True, input_grad: bool = True) -> list:
    """Counts of a 1-D/2-D convolution (``len(kernel)`` spatial dims).

    Each output element is a dot product of length ``in_ch/groups · prod(kernel)``;
    the backward input gradient costs the same MACs as the forward, with
    ``numel(x)`` outputs, and the weight gradient too, with ``numel(W)`` outputs.
    Sizes are whole numbers ``>= 1``; ``groups`` divides ``in_ch`` and ``out_ch``.
    """
    in_ch, out_ch, batch, groups = (check_size(k, v, minimum=1) for k, v in (
        ("in_ch", in_ch), ("out_ch", out_ch), ("batch", batch), ("groups", groups)))
    kernel, in_size, out_size = (check_sizes(k, v, minimum=1) for k, v in (
        ("kernel", kernel), ("in_size", in_size), ("out_size", out_size)))
    if in_ch % groups or out_ch % groups:
        raise ValueError(f"groups={groups} is out of range; allowed: a divisor of in_ch={in_ch} and out_ch={out_ch}")
    kprod = 1
    for k in kernel:
        kprod *= k
    in_sp = 1
    for s in in_size:
        in_sp *= s
    out_sp = 1
    for s in out_size:
        out_sp *= s
    x, y = batch * in_ch * in_sp, batch * out_ch * out_sp
    w = out_ch * (in_ch // groups) * kprod
    k = (in_ch // groups) * kprod
    macs = y * k
    kind = f"Conv{len(kernel)}d"
    fwd = LayerCounts(name, kind, Phase.FORWARD).dot(y, k)
    fwd.read(x).read(w).write(y)
    if bias:
        fwd.op(Op.ADD, y).read(out_ch)
    out = [fwd]
    if training:
        bwd = LayerCounts(name, kind, Phase.BACKWARD)
        bwd.read(y).read(x).read(w)  # convolution_backward reads grad, input and weight
        if input_grad:
            bwd.macs += macs
            bwd.dot_outputs += x
            bwd.write(x)
        bwd.macs += macs
        bwd.dot_outputs += w
        bwd.write(w)
        if bias:
            bwd.op(Op.ADD, y - out_ch).write(out_ch)
        out.append(bwd)
    return out


def relu_counts(name: str, n: int, *, training: bool = True) -> list:
    """ReLU on ``n`` elements: one compare per element forward and backward
    (the backward reads the gradient and the saved output)."""
    n = check_size("n", n)
    out = [LayerCounts(name, "ReLU", Phase.FORWARD).op(Op.CMP, n).read(n).write(n)]
    if training:
        out.append(LayerCounts(name, "ReLU", Phase.BACKWARD).op(Op.CMP, n).read(n, 2 * n).write(n))
    return out


def maxpool_counts(name: str, n_in: int, n_out: int, window: int, *, training: bool = True) -> list:
    """Max pooling of ``window`` elements per output: ``window - 1`` compares per
    output; forward writes the values and their indices; the backward scatters
    the gradient (reads the gradient and the indices, writes ``n_in``)."""
    n_in, n_out = check_size("n_in", n_in), check_size("n_out", n_out)
    window = check_size("window", window, minimum=1)
    kind = "MaxPool"
    fwd = LayerCounts(name, kind, Phase.FORWARD).op(Op.CMP, n_out * (window - 1)).read(n_in).write(n_out, 2 * n_out)
    out = [fwd]
    if training:
        bwd = LayerCounts(name, kind, Phase.BACKWARD).read(n_out, 2 * n_out).read(n_in).write(n_in)
        out.append(bwd)
    return out


def log_softmax_nll_counts(name: str, rows: int, classes: int, *, training: bool = True) -> list:
    """Cross-entropy as log-softmax + mean NLL over ``rows`` rows of ``classes``
    (the convention in the module docstring). The loss gradient seeds with one
    write of the scalar; the NLL backward writes ``rows·classes`` gradients."""
    rows, classes = check_size("rows", rows, minimum=1), check_size("classes", classes, minimum=1)
    n = rows * classes
    fwd = LayerCounts(name, "CrossEntropy", Phase.FORWARD)
    fwd.op(Op.CMP, n - rows).op(Op.ADD, 3 * n - rows).op(Op.EXP, n + rows).read(n).write(n)
    fwd.op(Op.ADD, rows - 1).op(Op.DIV, 1).read(n).read(rows).write(1, 2)  # loss and total weight
    out = [fwd]
    if training:
        fwd.write(1)  # the seed gradient 1.0, made before the backward pass starts
        bwd = LayerCounts(name, "CrossEntropy", Phase.BACKWARD)
        bwd.read(1).read(n).read(rows).read(1).write(n)  # nll_loss_backward
        bwd.op(Op.ADD, 2 * n - rows).op(Op.MUL, n).op(Op.EXP, n).read(n, 2 * n).write(n)
        out.append(bwd)
    return out


def mlp_counts(sizes: Sequence[int], batch: int, *, training: bool = True, bias: bool = True,
               loss: bool = True) -> Counts:
    """Counts of an MLP ``sizes[0] → ... → sizes[-1]`` with ReLU between layers and
    a cross-entropy loss, named like ``torch.nn.Sequential`` children (``"0"``,
    ``"1"``, ...). The plain-description entry point for rate networks of the
    Numba simulator."""
    sizes = check_sizes("sizes", sizes, minimum=1)
    if len(sizes) < 2:
        raise ValueError(f"sizes={sizes!r} is out of range; allowed: at least 2 layer widths (input and output)")
    c = Counts(batch=check_size("batch", batch, minimum=1))
    idx = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        c.extend(dense_counts(str(idx), a, b, batch, bias=bias, training=training, input_grad=i > 0))
        c.params += a * b + (b if bias else 0)
        c.param_tensors += [a * b] + ([b] if bias else [])
        idx += 1
        if i < len(sizes) - 2:
            c.extend(relu_counts(str(idx), batch * b, training=training))
            idx += 1
    if loss:
        c.extend(log_softmax_nll_counts("(loss)", batch, sizes[-1], training=training))
    return c


def spiking_counts(name: str, *, neuron_updates: float, synaptic_events: float, plasticity_updates: float = 0,
                   spikes: float = 0, neurons: int = 0, synapses: int = 0, ops_per_neuron_update=None,
                   weight_format: str | None = None, weight_reads: float | None = None) -> LayerCounts:
    """Counts of a spiking network run: neuron updates and synaptic events.

    Parameters
    ----------
    neuron_updates : number
        Neuron-steps (neurons × time steps).
    synaptic_events : number
        Spikes delivered to synapses (spikes × fan-out): each reads a weight
        and adds it into the target's input current — one accumulate, no
        multiply, since spikes are binary.
    plasticity_updates : number
        Weight updates (e.g. STDP at pre/post spikes): each reads and writes one
        weight and its trace (2 mul + 2 add: trace decay and weight step).
    spikes : number
        Spikes emitted (each resets one neuron: one write).
    neurons, synapses : int
        Sizes of the neuron state vectors and of the weight matrix; they place
        the traffic in SRAM or DRAM (0: unknown, taken as off-chip).
    ops_per_neuron_update : dict, optional
        Operations of one neuron update; default the exact-integration LIF
        ``v ← v_r + (v - v_r)·e^{-dt/τ} + I``, ``I ← I·e^{-dt/τ_s}``,
        threshold: ``{"mul": 2, "add": 3, "cmp": 2}`` (threshold and refractory test).
    weight_format : str, optional
        Format of the stored weights when it differs from the one studied.
    weight_reads : number, optional
        Weights read from memory, when not one per synaptic event (default:
        ``synaptic_events``); a projection with one shared weight reads none.

    The Loihi chip spends 23.6 pJ per synaptic operation and TrueNorth 26 pJ per
    synaptic event (references.md) — figures to set these counts against.
    """
    for k, v in (("neuron_updates", neuron_updates), ("synaptic_events", synaptic_events),
                 ("plasticity_updates", plasticity_updates), ("spikes", spikes)):
        check_count(k, v)
    neurons, synapses = check_size("neurons", neurons), check_size("synapses", synapses)
    per = {"mul": 2, "add": 3, "cmp": 2} if ops_per_neuron_update is None else dict(ops_per_neuron_update)
    for op, k in per.items():
        check_count(f"ops_per_neuron_update[{op!r}]", k)
    lc = LayerCounts(name, "Spiking", Phase.FORWARD)
    for op, k in per.items():
        lc.op(op, k * neuron_updates)
    off_chip = 1 << 40
    n_state, n_syn = neurons or off_chip, synapses or off_chip
    state = 3  # v, I, refractory counter: read and written per update
    lc.read(n_state, state * neuron_updates).write(n_state, state * neuron_updates)
    reads = synaptic_events if weight_reads is None else check_count("weight_reads", weight_reads)
    if not 0 <= reads <= synaptic_events:
        raise ValueError(f"weight_reads={reads} is out of range; allowed: 0 <= weight_reads <= synaptic_events")
    lc.op(Op.ADD, synaptic_events).read(n_syn, reads, weight_format)
    lc.write(n_state, spikes)
    if plasticity_updates:
        lc.op(Op.MUL, 2 * plasticity_updates).op(Op.ADD, 2 * plasticity_updates)
        lc.read(n_syn, 2 * plasticity_updates, weight_format)
        lc.write(n_syn, 2 * plasticity_updates, weight_format)
    return lc
