"""Count what a PyTorch model does: MACs, elementwise operations and traffic per layer.

:func:`count_torch` runs a model once (forward, and for a training step the
backward of a loss) under two dispatch modes:

* :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix
  products, convolutions and attention (1 MAC = 2 FLOPs) but nothing
  elementwise, and
* :class:`OpCounterMode`, a ``TorchDispatchMode`` that attributes every aten
  operation to the innermost module running it, counts MACs with the same
  formula table as ``FlopCounterMode`` (``flop_registry``), the elementwise
  operations by kind (adds, multiplies, compares, divisions, square roots,
  transcendental functions) and the elements each operation reads and writes.

The MAC totals of the two are compared (``counts.meta["flop_counter_agrees"]``).
By default the model is copied to the ``meta`` device, so no arithmetic runs:
counting a ResNet-18 training step takes about a second. The counting
convention is that of :mod:`neurolns.accounting.counts`; the optimizer update
and gradient exchange are added by :func:`neurolns.accounting.training_step`.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, flop_registry
from torch.utils.module_tracker import ModuleTracker

from neurolns.accounting._checks import check_size, check_sizes
from neurolns.accounting.counts import Counts, LayerCounts, Phase

__all__ = ["count_torch", "OpCounterMode"]

aten = torch.ops.aten

#: operations that move no data (views, metadata)
_FREE = {
    "detach", "view", "_unsafe_view", "t", "transpose", "permute", "expand", "reshape", "squeeze", "unsqueeze",
    "slice", "select", "as_strided", "alias", "_reshape_alias", "split", "split_with_sizes", "unbind",
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "lift_fresh", "_to_copy_view",
    "unflatten", "flatten", "_local_scalar_dense", "is_same_size", "sym_size", "sym_stride", "sym_numel",
}


#: operations that write a tensor without reading data
_FACTORY = {
    "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "new_zeros", "new_ones", "new_full",
    "scalar_tensor", "fill", "zero", "randn", "rand", "randn_like", "rand_like",
}


def _numel(t) -> int:
    return int(t.numel()) if isinstance(t, torch.Tensor) else 0


def _tensors(tree) -> list:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _rows(x: torch.Tensor, dim: int) -> int:
    n = x.shape[dim] if x.dim() else 1
    return x.numel() // max(n, 1)


def _elementwise(name: str, args, kwargs, out) -> dict:
    """Operations of one aten call (the convention of neurolns.accounting.counts)."""
    outs = _tensors(out)
    n = _numel(outs[0]) if outs else 0
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if name in ("add", "sub", "rsub"):
        return {"add": n}
    if name in ("mul",):
        return {"mul": n}
    if name in ("div",):
        return {"div": n}
    if name in ("relu", "threshold_backward", "sign", "gt", "lt", "ge", "le", "eq", "ne", "maximum", "minimum"):
        return {"cmp": n}
    if name in ("clamp", "hardtanh", "hardtanh_backward"):
        bounds = sum(1 for a in list(args[1:3]) + [kwargs.get("min"), kwargs.get("max")] if a is not None)
        return {"cmp": n * max(bounds, 1)}
    if name in ("clamp_min", "clamp_max"):
        return {"cmp": n}
    if name in ("exp", "log", "tanh", "sigmoid", "log1p", "expm1", "erf"):
        return {"exp": n}
    if name in ("sqrt", "rsqrt"):
        return {"sqrt": n}
    if name in ("pow",):
        return {"mul": n}
    if name in ("addcmul",):
        return {"mul": 2 * n, "add": n}
    if name in ("addcdiv",):
        return {"div": n, "mul": n, "add": n}
    if name in ("lerp",):
        return {"add": 2 * n, "mul": n}
    if name in ("sum",):
        return {"add": _numel(x) - n}
    if name in ("mean",):
        return {"add": _numel(x) - n, "mul": n}
    if name in ("max_pool2d_with_indices", "max_pool1d_with_indices"):
        k = args[1] if len(args) > 1 else kwargs["kernel_size"]
        k = list(k) if isinstance(k, (list, tuple)) else [k]
        window = math.prod(k) if len(k) > 1 else (k[0] ** (x.dim() - 2) if name.startswith("max_pool2d") else k[0])
        return {"cmp": n * (window - 1)}
    if name in ("avg_pool2d", "_adaptive_avg_pool2d", "adaptive_avg_pool2d", "avg_pool1d"):
        return {"add": max(_numel(x) - n, 0), "mul": n}
    if name in ("avg_pool2d_backward", "_adaptive_avg_pool2d_backward"):
        return {"mul": n}
    if name == "_log_softmax":
        r = _rows(x, args[1])
        m = x.numel()
        return {"cmp": m - r, "add": 3 * m - r, "exp": m + r}
    if name == "_log_softmax_backward_data":
        r = _rows(args[0], args[2])
        m = args[0].numel()
        return {"add": 2 * m - r, "mul": m, "exp": m}
    if name == "_softmax":
        r = _rows(x, args[1])
        m = x.numel()
        return {"cmp": m - r, "add": 2 * m - r, "exp": m, "div": m}
    if name == "_softmax_backward_data":
        r = _rows(args[0], args[2])
        m = args[0].numel()
        return {"add": 2 * m - r, "mul": 2 * m}
    if name == "nll_loss_forward":
        rows = x.shape[0] if x.dim() == 2 else 1
        red = args[3] if len(args) > 3 else kwargs.get("reduction", 1)
        return {"add": rows - 1, "div": 1 if red == 1 else 0}
    if name in ("mse_loss",):
        m = x.numel()
        return {"add": m + (m - 1), "mul": m, "div": 1}
    if name in ("mse_loss_backward",):
        return {"add": n, "mul": 2 * n}
    if name in ("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_functional",
                "_native_batch_norm_legit_no_training", "native_batch_norm_backward", "batch_norm_backward"):
        return _batch_norm(name, args, kwargs, out)
    return {}


def _batch_norm(name, args, kwargs, out) -> dict:
    """Batch norm over ``T`` elements in ``C`` channels.

    Training forward: statistics (mean: ``T-C`` adds, ``C`` muls; variance:
    ``T`` subtracts, ``T`` squares, ``T-C`` adds, ``C`` muls), ``C`` square roots,
    divisions and eps adds, normalise-scale-shift (``2T`` adds, ``2T`` muls),
    running statistics (``4C`` muls, ``2C`` adds). Inference forward: ``2T``
    adds, ``2T`` muls and ``C`` (add, sqrt, div). Backward: ``3T`` adds, ``3T`` muls
    (two reductions and the normalised-gradient combination) and ``C`` divisions.
    """
    x = args[0] if "backward" not in name else args[1]
    t = x.numel()
    c = x.shape[1] if x.dim() > 1 else 1
    if "backward" in name:
        return {"add": 3 * t, "mul": 3 * t, "div": c}
    training = not name.endswith("no_training") and bool(args[5] if len(args) > 5 and isinstance(args[5], bool) else True)
    if name.endswith("no_training") or not training:
        return {"add": 2 * t + c, "mul": 2 * t, "sqrt": c, "div": c}
    return {"add": (t - c) + t + (t - c) + c + 2 * t + 2 * c, "mul": c + t + c + 2 * t + 4 * c, "sqrt": c, "div": c}


def _packet_name(func) -> str:
    name = func.overloadpacket.__name__
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]
    return name


class OpCounterMode(TorchDispatchMode):
    """Dispatch mode counting every aten operation per innermost module and phase.

    Parameters
    ----------
    tracker : torch.utils.module_tracker.ModuleTracker
        An active tracker giving the running module's path and whether the
        backward pass is running.
    root : str
        Name the tracker gives the model (its class name); stripped from paths.
    """

    def __init__(self, tracker: ModuleTracker, root: str, kinds: dict):
        super().__init__()
        self.tracker = tracker
        self.root = root
        self.kinds = kinds
        self.layers: dict = {}
        self.order: list = []
        self.uncounted: dict = {}
        self.transient = 0

    def _layer(self) -> LayerCounts:
        parents = [p for p in self.tracker.parents if p != "Global"]
        if parents:
            fqn = max(parents, key=lambda p: (p.count("."), len(p)))
            name = fqn[len(self.root) + 1:] if fqn.startswith(self.root + ".") else "(model)"
        else:
            name = "(loss)"
        phase = Phase.BACKWARD if self.tracker.is_bw else Phase.FORWARD
        key = (name, phase)
        if key not in self.layers:
            kind = self.kinds.get(name, "Loss" if name == "(loss)" else "")
            self.layers[key] = LayerCounts(name, kind, phase)
            self.order.append(key)
        return self.layers[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _packet_name(func)
        if name in _FREE or getattr(func, "is_view", False):
            return out
        lc = self._layer()
        ins, outs = _tensors((args, kwargs)), _tensors(out)
        if name in _FACTORY:  # reads only a shape
            ins = []
        for t in ins:
            lc.read(t.numel())
        for t in outs:
            lc.write(t.numel())
            self.transient = max(self.transient, t.numel())
        packet = func.overloadpacket
        if packet in flop_registry:
            flops = flop_registry[packet](*args, **kwargs, out_val=out)
            lc.macs += flops // 2
            if name == "convolution_backward":
                grad_out, mask = args[0], args[-1]
                gi, gw, gb = out
                lc.dot_outputs += (_numel(gi) if mask[0] else 0) + (_numel(gw) if mask[1] else 0)
                if mask[2] and gb is not None:
                    lc.op("add", grad_out.numel() - gb.numel())
            else:
                lc.dot_outputs += _numel(outs[0])
                has_bias = name in ("addmm", "baddbmm") or (name in ("convolution", "_convolution") and args[2] is not None)
                if has_bias:
                    lc.op("add", _numel(outs[0]))
            return out
        ops = _elementwise(name, args, kwargs, out)
        for op, n in ops.items():
            lc.op(op, n)
        if not ops and name not in ("_to_copy", "clone", "copy", "zeros", "ones", "zeros_like", "ones_like", "fill",
                                    "zero", "full", "full_like", "new_zeros", "new_ones", "scalar_tensor", "cat",
                                    "stack", "max_pool2d_with_indices_backward", "max_pool1d_with_indices_backward",
                                    "nll_loss_backward", "where", "index", "gather", "scatter", "constant_pad_nd",
                                    "neg", "abs", "copy_", "lift_fresh_copy", "masked_fill", "to", "contiguous"):
            self.uncounted[str(func)] = self.uncounted.get(str(func), 0) + 1
        return out


def _default_loss(batch: int, device) -> Callable:
    """Cross-entropy against class 0 for 2-D outputs (the target is made before
    counting starts), else the mean square."""
    target = torch.zeros(batch, dtype=torch.long, device=device)

    def loss(out: torch.Tensor) -> torch.Tensor:
        if out.dim() == 2 and out.is_floating_point():
            t = target if out.shape[0] == batch else torch.zeros(out.shape[0], dtype=torch.long, device=out.device)
            return torch.nn.functional.cross_entropy(out, t)
        return out.float().square().mean()

    return loss


def _run(model, x, training: bool, loss_fn: Callable | None) -> tuple:
    root = type(model).__name__
    kinds = {name: type(m).__name__ for name, m in model.named_modules() if name}
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict = {}

    def pack(t):
        st = t.untyped_storage()
        if st._cdata not in params:
            saved[st._cdata] = st.nbytes() // max(t.element_size(), 1)
        return t

    model.train(training)
    if loss_fn is None:
        loss_fn = _default_loss(int(x.shape[0]) if x.dim() else 1, x.device)
    for p in model.parameters():
        p.grad = None
    with FlopCounterMode(display=False, depth=None) as fc, ModuleTracker() as tracker:
        with OpCounterMode(tracker, root, kinds) as mode:
            if training:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    out = model(x)
                    loss = loss_fn(out)
                loss.backward()
            else:
                with torch.no_grad():
                    model(x)
    return mode, fc, sum(saved.values())


def count_torch(model: torch.nn.Module, example_input=None, *, input_shape=None, training: bool = True,
                loss_fn: Callable | None = None, device: str | None = "meta") -> Counts:
    """Count per layer the MACs, elementwise operations and traffic of one inference or training step.

    Parameters
    ----------
    model : torch.nn.Module
        Left untouched: a copy is counted.
    example_input : torch.Tensor, optional
        An input batch; or give ``input_shape`` (batch first) for a float32 one.
    training : bool
        True: forward, loss and backward (``model.train()``); False: forward
        under ``no_grad`` (``model.eval()``).
    loss_fn : callable, optional
        ``loss_fn(output) -> scalar``; default cross-entropy against class 0 for
        2-D outputs, else the mean square.
    device : str or None
        ``"meta"`` (default) counts on shapes only, without arithmetic; None
        runs on the input's device (a model that needs real values, e.g. one
        calling ``.item()``, falls back to this automatically).

    Returns
    -------
    Counts
        Forward and backward :class:`~neurolns.accounting.LayerCounts` per
        module (``"(loss)"`` for the loss, ``"(model)"`` for work in the root
        module's own ``forward``); ``params``, ``saved_elems`` (activations saved
        for backward), ``transient_elems`` and ``meta`` with the
        ``FlopCounterMode`` cross-check and the operations that were not
        counted.

    Examples
    --------
    >>> import torch
    >>> from neurolns.torch.counting import count_torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    >>> c = count_torch(net, input_shape=(16, 64))
    >>> int(c.total("forward").macs), int(c.total("backward").macs)
    (37888, 43008)
    """
    if example_input is None:
        if input_shape is None:
            raise ValueError("give example_input or input_shape")
        example_input = torch.randn(*check_sizes("input_shape", input_shape, minimum=1))
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    if device not in (None, "meta"):
        raise ValueError(f"device={device!r}; allowed: 'meta' or None")
    used = "meta"
    try:
        if device != "meta":
            raise NotImplementedError
        m = copy.deepcopy(model).to("meta")
        mode, fc, saved = _run(m, example_input.to("meta"), training, loss_fn)
    except (NotImplementedError, RuntimeError):
        used = str(example_input.device)
        m = copy.deepcopy(model)
        mode, fc, saved = _run(m, example_input, training, loss_fn)
    counts = Counts(batch=int(example_input.shape[0]) if example_input.dim() else 1)
    counts.extend(mode.layers[k] for k in mode.order)
    trainable = [p for p in model.parameters() if p.requires_grad]
    counts.params = sum(p.numel() for p in trainable)
    counts.param_tensors = [p.numel() for p in trainable]
    counts.saved_elems = int(saved)
    counts.transient_elems = int(mode.transient)
    macs = sum(lc.macs for lc in counts.layers)
    fc_macs = fc.get_total_flops() // 2
    counts.meta = dict(
        model=type(model).__name__, input_shape=list(example_input.shape), training=training, device=used,
        flop_counter_macs=int(fc_macs), flop_counter_agrees=bool(fc_macs == macs), uncounted_ops=mode.uncounted,
    )
    return counts


def _energy_meter():
    """The installed measurement tool, as ``(name, start, stop -> joules)``, or None."""
    import importlib.util

    if importlib.util.find_spec("zeus") is not None:
        from zeus.monitor import ZeusMonitor

        mon = ZeusMonitor()
        return "Zeus", lambda: mon.begin_window("neurolns"), lambda: float(mon.end_window("neurolns").total_energy)
    if importlib.util.find_spec("codecarbon") is not None:
        from codecarbon import OfflineEmissionsTracker

        tracker = OfflineEmissionsTracker(country_iso_code="USA", save_to_file=False, log_level="error")

        def stop() -> float:
            tracker.stop()
            return float(tracker.final_emissions_data.energy_consumed) * 3.6e6  # kWh -> J

        return "CodeCarbon", tracker.start, stop
    return None


def measure_baseline(model: torch.nn.Module, input_shape, *, training: bool = True, repeats: int = 20) -> dict:
    """Measure the energy of the FP32 run with Zeus or CodeCarbon, when one is installed.

    Runs ``repeats`` forward (and backward) passes of a copy of ``model`` on a
    random float32 input of ``input_shape`` and returns
    ``{"tool", "joules" (per pass), "note"}``; without either tool ``joules`` is
    None and the note says so — the simulated figures stand on their own.
    """
    input_shape = check_sizes("input_shape", input_shape, minimum=1)
    repeats = check_size("repeats", repeats, minimum=1)
    try:
        meter = _energy_meter()
    except Exception as exc:  # a tool present but unusable on this machine (no RAPL/NVML access)
        return dict(tool=None, joules=None, note=f"energy measurement unavailable: {exc}")
    if meter is None:
        return dict(tool=None, joules=None,
                    note="neither CodeCarbon nor Zeus is installed: no measured baseline, simulated energies only")
    name, start, stop = meter
    m = copy.deepcopy(model)
    x = torch.randn(*input_shape)
    m.train(training)
    try:
        start()
        for _ in range(repeats):
            if training:
                out = m(x)
                _default_loss(x.shape[0], x.device)(out).backward()
            else:
                with torch.no_grad():
                    m(x)
        joules = stop() / repeats
    except Exception as exc:
        return dict(tool=name, joules=None, note=f"{name} measurement failed: {exc}")
    return dict(tool=name, joules=joules,
                note=f"{name}: measured FP32 run {joules:.4g} J per pass (whole device, including idle power)")
