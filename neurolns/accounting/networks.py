"""Counts for networks of the Numba simulators (``neurolns.sim`` and ``neurolns.sim.spiking``).

The simulators are read through their public attributes only (layer types and
shapes; neuron, synapse and spike counts), so this module imports neither. A
rate network is counted with the same convention as the PyTorch counter, so
``count_sim(build_sim())`` and ``count_torch(build_torch())`` of the same
architecture agree (the tests hold them to it).
"""
from __future__ import annotations

from neurolns.accounting.counts import (
    Counts,
    LayerCounts,
    Phase,
    conv_counts,
    dense_counts,
    log_softmax_nll_counts,
    maxpool_counts,
    relu_counts,
    spiking_counts,
)
from neurolns.accounting._checks import check_count, check_sizes
from neurolns.accounting.energy import Op

__all__ = ["count_sim", "count_spiking"]


def _elems(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _spatial(v) -> tuple:
    """A layer's per-dimension size: an int (1-D layers) or a tuple (2-D layers), as a tuple."""
    return tuple(int(s) for s in v) if isinstance(v, (tuple, list)) else (int(v),)


def count_sim(net, input_shape, *, training: bool = True, loss: bool = True) -> Counts:
    """Count a ``neurolns.sim.Sequential`` on inputs of ``input_shape`` (batch first).

    Dense, Conv1d, Conv2d, ReLU/LeakyReLU (one compare per element), Tanh/Sigmoid
    (one transcendental per element), MaxPool1d, MaxPool2d, Flatten and Reshape
    (free) are known; another layer type raises ``TypeError``. Layers are named
    by their index, as ``torch.nn.Sequential`` children.
    """
    dims = check_sizes("input_shape", input_shape, minimum=1)
    if not dims:
        raise ValueError("input_shape=() is out of range; allowed: (batch, features...) with every entry >= 1")
    batch, shape = dims[0], tuple(dims[1:])
    c = Counts(batch=batch)
    first_weighted = True
    for i, layer in enumerate(net.layers):
        kind = type(layer).__name__
        name = str(i)
        n_in = batch * _elems(shape)
        if kind == "Dense":
            bias = layer.bias is not None
            c.extend(dense_counts(name, layer.in_features, layer.out_features, batch, bias=bias, training=training,
                                  input_grad=not first_weighted))
            c.params += layer.in_features * layer.out_features + (layer.out_features if bias else 0)
            c.param_tensors += [layer.in_features * layer.out_features] + ([layer.out_features] if bias else [])
            c.saved_elems += n_in if training else 0
            shape = (layer.out_features,)
            first_weighted = False
        elif kind in ("Conv1d", "Conv2d"):
            kernel, stride, padding = (_spatial(getattr(layer, a)) for a in ("kernel_size", "stride", "padding"))
            in_size = shape[1:]
            out_size = tuple((s + 2 * p - k) // st + 1 for s, k, st, p in zip(in_size, kernel, stride, padding))
            bias = layer.bias is not None
            c.extend(conv_counts(name, layer.in_channels, layer.out_channels, kernel, in_size, out_size, batch,
                                 bias=bias, training=training, input_grad=not first_weighted))
            w = layer.out_channels * layer.in_channels * _elems(kernel)
            c.params += w + (layer.out_channels if bias else 0)
            c.param_tensors += [w] + ([layer.out_channels] if bias else [])
            c.saved_elems += n_in if training else 0
            shape = (layer.out_channels,) + out_size
            first_weighted = False
        elif kind in ("ReLU", "LeakyReLU"):
            c.extend(relu_counts(name, n_in, training=training))
            c.saved_elems += n_in if training else 0
        elif kind in ("Tanh", "Sigmoid"):
            fwd = LayerCounts(name, kind, Phase.FORWARD).op(Op.EXP, n_in).read(n_in).write(n_in)
            c.add(fwd)
            if training:
                c.add(LayerCounts(name, kind, Phase.BACKWARD).op(Op.MUL, 2 * n_in).op(Op.ADD, n_in)
                      .read(n_in, 2 * n_in).write(n_in))
                c.saved_elems += n_in
        elif kind in ("MaxPool1d", "MaxPool2d"):
            k = _spatial(layer.kernel_size)
            out_shape = shape[:-len(k)] + tuple(s // kk for s, kk in zip(shape[-len(k):], k))
            c.extend(maxpool_counts(name, n_in, batch * _elems(out_shape), _elems(k), training=training))
            shape = out_shape
        elif kind == "Flatten":
            shape = (_elems(shape),)
        elif kind == "Reshape":
            shape = tuple(int(s) for s in layer.shape)
        else:
            raise TypeError(f"count_sim does not know layer type {kind!r}; allowed: Dense, Conv1d, Conv2d, ReLU, "
                            "LeakyReLU, Tanh, Sigmoid, MaxPool1d, MaxPool2d, Flatten, Reshape")
        c.transient_elems = max(c.transient_elems, batch * _elems(shape))
    if loss:
        c.extend(log_softmax_nll_counts("(loss)", batch, _elems(shape), training=training))
    c.meta = dict(model=type(net).__name__, input_shape=list(input_shape), training=training, device="sim")
    return c


def _monitored_events(net):
    """Exact synaptic events and plasticity updates from the networks's spike monitors.

    Returns ``(events, plasticity_updates, shared_events)`` (``shared_events``:
    the events of projections with one shared weight, which read no weight
    from memory), or None when a projection's source group has no
    ``SpikeMonitor``. Monitor counts accumulate over every run of the
    network, so this is exact for a network run once.
    """
    import numpy as np

    counts = {id(m.group): np.asarray(m.count) for m in getattr(net, "monitors", [])
              if type(m).__name__ == "SpikeMonitor"}
    events = plastic = shared = 0.0
    synapses = getattr(net, "synapses", None)
    if not synapses:
        return None
    for syn in synapses:
        pre = counts.get(id(syn.pre))
        if pre is None:
            return None
        conn = syn.connectivity
        out_deg = np.bincount(np.asarray(conn.i), minlength=len(pre))
        ev = float(np.dot(pre, out_deg))
        events += ev
        if getattr(syn, "shared", False):
            shared += ev
        if getattr(syn, "plasticity", None) is not None:
            post = counts.get(id(syn.post))
            in_deg = np.bincount(np.asarray(conn.j), minlength=syn.post.n)
            post_updates = float(np.dot(post, in_deg)) if post is not None else ev
            plastic += ev + post_updates
    return events, plastic, shared


def count_spiking(net, report, *, synaptic_events: float | None = None, plastic: bool | None = None,
                  weight_format: str | None = None) -> Counts:
    """Count one run of a ``neurolns.sim.spiking.Network``.

    Parameters
    ----------
    net
        The network (``n_neurons``, ``n_synapses``, its projections and monitors are read).
    report
        The ``RunReport`` its ``run`` returned (``steps`` and ``spikes``).
    synaptic_events : number, optional
        Spikes delivered to synapses. Default: exact, ``Σ spikes_i · fan-out_i``
        over every projection, when each projection's source group has a
        ``SpikeMonitor``; otherwise ``spikes · n_synapses/n_neurons``, the mean
        out-degree (exact only when every neuron has the same fan-out).
    plastic : bool, optional
        Count plasticity updates: pair-based STDP touches a synapse at each pre
        spike and each post spike. Default: exactly that for the projections that
        have plasticity (from the monitors), none when the monitors are missing;
        True without monitors: two updates per event.
    weight_format : str, optional
        Stored weight format when it differs from the one priced.

    Projections with one shared weight (``Synapses(shared=True)``) store one
    weight, not one per synapse, and their events read no weight from memory
    (the value sits in a register): ``params`` and the weight reads count
    only stored weights (``meta["weight_reads"]``).
    """
    n, s = int(net.n_neurons), int(net.n_synapses)
    syns = list(getattr(net, "synapses", []) or [])
    shared_syn = sum(int(x.n_synapses) for x in syns if getattr(x, "shared", False))
    stored = s - shared_syn + sum(1 for x in syns if getattr(x, "shared", False))
    exact = _monitored_events(net) if synaptic_events is None else None
    shared_events = None
    if synaptic_events is not None:
        check_count("synaptic_events", synaptic_events)
        events, updates = float(synaptic_events), 2.0 * float(synaptic_events) if plastic else 0.0
    elif exact is not None:
        events, updates, shared_events = exact
        if plastic is False:
            updates = 0.0
        elif plastic and not updates:
            updates = 2.0 * events
    else:
        events = report.spikes * s / max(n, 1)
        updates = 2.0 * events if plastic else 0.0
    if shared_events is None:  # events spread over synapses in proportion (the mean out-degree estimate)
        shared_events = events * shared_syn / s if s else 0.0
    reads = events - shared_events
    lc = spiking_counts("network", neuron_updates=n * report.steps, synaptic_events=events,
                        plasticity_updates=updates, spikes=report.spikes, neurons=n, synapses=stored,
                        weight_format=weight_format, weight_reads=reads)
    c = Counts(layers=[lc], batch=1, params=stored, param_tensors=[stored] if stored else [])
    c.meta = dict(model="spiking", steps=int(report.steps), spikes=int(report.spikes), synaptic_events=events,
                  weight_reads=reads, plasticity_updates=updates, exact_events=exact is not None)
    return c
