"""Architecture-aware optimisers: the measurements behind docs/architecture_aware.md.

Three parts, each printed as a comparison within the same run:

* ``kernel``: Nero's Numba row kernel against its numpy float64 reference
  (time ratio, 1024×1024 weights);
* ``lns-nero``: Nero on LNS codes (:class:`neurolns.learning.LNSNero`, LNS16
  γ = 128 update grid; forward through the γ = 8 grid, LNS8's spacing) against
  FP32 Nero, both in numpy on the digits MLP 64-256-10 (same initial weights
  and example order; biases take FP32 Nero in both);
* ``agd``: AGD (no learning rate) on the network and loss it is derived for
  (:func:`neurolns.torch.agd_prepare_`: bias-free, orthogonal init, √2·ReLU;
  :func:`neurolns.torch.agd_square_loss`) against Adam on the usual network
  (biases, torch's init, ReLU, cross-entropy) tuned over a rate grid, on the
  digits MLP (20 epochs) and the MNIST-1D CNN (25 channels, 60 epochs), 3
  seeds, in torch; ``agd-ablation``: AGD on the usual ReLU and loss, and at
  30 epochs, seed 0.

.. code-block:: bash

    python benchmarks/architecture.py kernel lns-nero agd agd-ablation
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import best_time  # noqa: E402


def bench_kernel() -> None:
    from neurolns.learning import nero_update

    rng = np.random.default_rng(0)
    w = rng.standard_normal((1024, 1024))
    g = rng.standard_normal(w.shape)
    v = np.zeros(1024)
    nero_update(w, g, v, 1)  # compile
    tk = best_time(lambda: nero_update(w, g, v, 2))
    tr = best_time(lambda: nero_update(w, g, v, 2, reference=True))
    print(f"Nero step 1024x1024: kernel {tk * 1e3:.2f} ms, numpy reference {tr * 1e3:.2f} ms ({tr / tk:.1f}x)")


# ----------------------------------------------------------------- LNS-Nero vs FP32 Nero (numpy)
def _mlp_grads(ws, bs, x, y):
    """Loss and gradients of a ReLU MLP with softmax cross-entropy (float64)."""
    acts = [x]
    for i, (w, b) in enumerate(zip(ws, bs)):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
    z = acts[-1] - acts[-1].max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    d = p
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    gws, gbs = [None] * len(ws), [None] * len(ws)
    for i in range(len(ws) - 1, -1, -1):
        gws[i] = d.T @ acts[i]
        gbs[i] = d.sum(0)
        if i:
            d = (d @ ws[i]) * (acts[i] > 0)
    return loss, gws, gbs


def _accuracy(ws, bs, x, y):
    a = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        a = a @ w.T + b
        if i < len(ws) - 1:
            a = np.maximum(a, 0)
    return float((a.argmax(1) == y).mean())


def train_nero_numpy(data, *, lns: bool, seed: int, epochs: int = 20, batch: int = 32, lr: float = 0.01,
                     forward_gamma: int = 8, constraints: bool = False):
    """Digits MLP 64-256-10 with FP32 Nero or LNS-Nero weights (forward on the ``forward_gamma`` grid);
    returns test accuracy."""
    from neurolns.formats import LNSFormat
    from neurolns.learning import LNSNero, Nero
    from neurolns.learning.architecture import nero_project

    rng = np.random.default_rng(seed)
    sizes = [data.x_train.shape[1], 256, int(data.n_classes)]
    ws = [rng.uniform(-1, 1, (b, a)) / math.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.uniform(-1, 1, b) / math.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    bias_opt = Nero(bs, lr=lr)
    f = LNSFormat(bits=16, gamma=128)
    if lns:
        codes = []
        for w in ws:
            nero_project(w)
            e = np.rint(128 * np.log2(np.abs(w))).astype(np.int64) + f.bias
            codes.append((np.sign(w) * np.clip(e, 1, f.max_code)).astype(np.int32))
        w_opt = LNSNero(codes, fmt=f, lr=round(lr / math.log(2) * 128) / 128, constraints=constraints)

        r = 128 // forward_gamma

        def decode():  # forward on the coarser grid: every r-th code of the update grid
            return [np.sign(c) * np.exp2(np.rint((np.abs(c) - f.bias) / r) / forward_gamma) for c in codes]
    else:
        w_opt = Nero(ws, lr=lr)

        def decode():
            return ws
    x, y = np.asarray(data.x_train, np.float64), np.asarray(data.y_train)
    order_rng = np.random.Generator(np.random.PCG64(seed))
    for _ in range(epochs):
        order = order_rng.permutation(len(x))
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            _, gws, gbs = _mlp_grads(decode(), bs, x[idx], y[idx])
            w_opt.step(gws)
            bias_opt.step(gbs)
    return _accuracy(decode(), bs, np.asarray(data.x_test, np.float64), np.asarray(data.y_test))


def bench_lns_nero(seeds: int = 3) -> None:
    from neurolns.data import load_digits

    data = load_digits()
    res = {}
    for name, kw in (("FP32 Nero", {"lns": False}),
                     ("LNS-Nero, row-norm shift, γ8 forward", {"lns": True, "constraints": True}),
                     ("LNS-Nero, row-norm shift, γ128 fwd", {"lns": True, "constraints": True, "forward_gamma": 128}),
                     ("LNS-Nero (default), γ8 forward", {"lns": True})):
        accs = [train_nero_numpy(data, seed=s, **kw) for s in range(seeds)]
        res[name] = accs
        print(f"digits MLP, {name:34s}: test acc {100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f}% "
              f"({', '.join(f'{100 * a:.1f}' for a in accs)}), "
              f"{100 * (np.mean(accs) - np.mean(res['FP32 Nero'])):+.2f} points vs FP32 Nero")


# ----------------------------------------------------------------- AGD vs tuned Adam (torch)
def _train_torch(net, opt, data, *, epochs, batch, seed, loss_fn=None):
    import torch
    from torch import nn

    xtr = torch.as_tensor(np.array(data.x_train, np.float32))
    ytr = torch.as_tensor(np.array(data.y_train, np.int64))
    rng = np.random.Generator(np.random.PCG64(seed))
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(len(xtr)))
        for s in range(0, len(xtr), batch):
            idx = order[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
    with torch.no_grad():
        xte = torch.as_tensor(np.array(data.x_test, np.float32))
        return float((net(xte).argmax(1) == torch.as_tensor(np.array(data.y_test, np.int64))).float().mean())


def _net(model, data, seed, agd, relu_gain=True):
    """The scenario's torch model; for AGD prepared by ``agd_prepare_`` (``relu_gain=False``:
    biases dropped and orthogonal init, but the plain ReLU kept)."""
    import torch
    from torch import nn

    from neurolns.torch import ScaledReLU, agd_prepare_
    from neurolns.torch.scenario import build_model

    net = build_model(model, int(np.asarray(data.x_train).shape[1]), int(data.n_classes), seed=seed)
    if agd:
        agd_prepare_(net, torch.Generator().manual_seed(seed))
        if not relu_gain:
            for parent in net.modules():
                for name, child in parent.named_children():
                    if isinstance(child, ScaledReLU):
                        setattr(parent, name, nn.ReLU())
    return net


AGD_CASES = (("digits", "mlp", 20, 32), ("mnist1d", "cnn", 60, 100))
ADAM_RATES = (1e-3, 3e-3, 1e-2, 3e-2)


def _data(name):
    from neurolns.data import load_digits, load_mnist1d

    return load_digits() if name == "digits" else load_mnist1d(num_samples=5000)


def bench_agd(seeds: int = 3) -> None:
    import torch

    from neurolns.torch import AGD, agd_square_loss

    torch.set_num_threads(1)
    for dname, model, epochs, batch in AGD_CASES:
        data = _data(dname)
        t0 = time.perf_counter()
        agd = [_train_torch(n, AGD(n.parameters()), data, epochs=epochs, batch=batch, seed=s, loss_fn=agd_square_loss)
               for s in range(seeds) for n in [_net(model, data, s, True)]]
        adam = {}
        for lr in ADAM_RATES:
            adam[lr] = [_train_torch(n, torch.optim.Adam(n.parameters(), lr=lr), data, epochs=epochs, batch=batch,
                                     seed=s) for s in range(seeds) for n in [_net(model, data, s, False)]]
        best = max(adam, key=lambda k: np.mean(adam[k]))
        print(f"{dname} {model}, {epochs} epochs, batch {batch}, {seeds} seeds ({time.perf_counter() - t0:.0f} s):")
        for lr, accs in adam.items():
            print(f"  Adam lr {lr:g}: {100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f}%")
        print(f"  AGD (no rate): {100 * np.mean(agd):.2f} ± {100 * np.std(agd):.2f}%   "
              f"gap to tuned Adam (lr {best:g}): {100 * (np.mean(agd) - np.mean(adam[best])):+.2f} points")


def bench_agd_ablation() -> None:
    """AGD, seed 0: what the √2 ReLU, the square loss and the epochs each give."""
    import torch
    from torch import nn

    from neurolns.torch import AGD, agd_square_loss

    torch.set_num_threads(1)
    for dname, model, epochs, batch in AGD_CASES:
        data = _data(dname)
        rows = [("ReLU, cross-entropy", False, nn.CrossEntropyLoss(), epochs),
                ("√2·ReLU, cross-entropy", True, nn.CrossEntropyLoss(), epochs),
                ("√2·ReLU, square loss", True, agd_square_loss, epochs),
                ("√2·ReLU, square loss, half the epochs", True, agd_square_loss, epochs // 2)]
        print(f"{dname} {model}, batch {batch}, seed 0, AGD:")
        for label, gain, loss_fn, ep in rows:
            net = _net(model, data, 0, True, relu_gain=gain)
            acc = _train_torch(net, AGD(net.parameters()), data, epochs=ep, batch=batch, seed=0, loss_fn=loss_fn)
            print(f"  {label}, {ep} epochs: {100 * acc:.1f}%")


def main(argv=None) -> int:
    parts = (argv if argv is not None else sys.argv[1:]) or ["kernel", "lns-nero", "agd", "agd-ablation"]
    fns = {"kernel": bench_kernel, "lns-nero": bench_lns_nero, "agd": bench_agd, "agd-ablation": bench_agd_ablation}
    bad = [p for p in parts if p not in fns]
    if bad:
        print(f"unknown part(s) {bad}; allowed: {', '.join(fns)}")
        return 2
    for p in parts:
        fns[p]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
