"""Ground-truth retina circuits of Bagherian et al. (KDD 2021) and synthetic data sets.

Shared parameters (references.md): 100×100 stimuli, the three true bipolar
types of :data:`~neurolns.sysid.TRUE_TYPES`, a 5×5 amacrine grid pooling 2×2
bipolar blocks with ``a = ReLU(3·Σ w·b − θ)`` (θ = 5 in the paper; 1 here by
default, see :data:`AMACRINE_THRESHOLD`).

* Circuit 1 — chain bipolar → amacrine → GC, ``y = ReLU(Σ w_ag a − 10)``
  (excitatory amacrines, no skip path).
* Circuit 2 — ``y = Σ w_bg b − Σ w_ag a`` (linear, with the skip path):
  type-0 bipolars of one 2×2 block → GC 0.8, type-1 bipolars → amacrines 0.2,
  four amacrines → GC −0.4.
* Circuits 3A / 3B — Circuit 2's synapses with ``y = ReLU(· + 8)`` / ``ReLU(·)``.

Where the paper leaves a position or a Circuit 1 weight unstated we pick one
and say so: the skip block is bipolars (4..5, 4..5), i.e. the block of amacrine
(2, 2); the inhibitory amacrines are (2..3, 2..3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolns.sysid.bank import TRUE_TYPES, DoGType, Geometry, kernel_bank
from neurolns.sysid.model import CircuitModel, CircuitWeights, block_features, bipolar_features, circuit_forward
from neurolns.sysid.stimuli import Stimulus, make_images, poisson_spikes

__all__ = ["RetinaCircuit", "SysIDData", "circuit1", "circuit2", "circuit3a", "circuit3b", "make_circuit",
           "make_dataset", "CIRCUITS"]


@dataclass(frozen=True)
class RetinaCircuit:
    """A circuit with weights: bank of bipolar types, architecture, synapses.

    ``respond(images)`` simulates the ganglion cell; ``embed(bank)`` re-indexes
    the synapses into another bank (a fitted model's), which is what the
    recovery metrics compare against.
    """

    name: str
    bank: tuple[DoGType, ...]
    model: CircuitModel
    weights: CircuitWeights

    def __post_init__(self):
        object.__setattr__(self, "bank", tuple(self.bank))
        if len(self.bank) != self.model.n_types:
            raise ValueError(f"bank has {len(self.bank)} types; the model has n_types={self.model.n_types}")
        object.__setattr__(self, "weights", self.weights.check(self.model))
        for k, s in self.model.signs.items():
            w = getattr(self.weights, k)
            if np.any(w * s < 0):
                raise ValueError(f"weights {k!r} disagree with the pathway sign {s:+d}")

    def features(self, images) -> np.ndarray:
        """Block features of this circuit's own bank (see :func:`block_features`)."""
        return block_features(bipolar_features(images, self.bank, self.model.geometry), self.model)

    def respond(self, images) -> np.ndarray:
        """Noise-free ganglion response to ``images`` (float64 ``(N,)``)."""
        return circuit_forward(self.features(images), self.weights, self.model)

    def embed(self, bank) -> CircuitWeights:
        """These synapses indexed by ``bank`` (zeros for types the circuit lacks).

        Raises ValueError if a type carrying a synapse is missing from ``bank``.

        Examples
        --------
        >>> c = circuit2()
        >>> w = c.embed(kernel_bank(28))
        >>> w.bg.shape, float(w.bg[0].sum()), float(w.ba[1].sum()), float(w.ag.sum())
        ((28, 10, 10), 3.2, 0.8, -1.6)
        """
        bank = tuple(bank)
        T = len(bank)
        g, p = self.model.geometry, self.model.geometry.pool
        bg, ba = np.zeros((T, *g.grid)), np.zeros((T, p, p))
        for i, t in enumerate(self.bank):
            used = np.any(self.weights.bg[i]) or np.any(self.weights.ba[i])
            if t not in bank:
                if used:
                    raise ValueError(f"bipolar type {t.name} of circuit {self.name!r} is not in the bank")
                continue
            j = bank.index(t)
            bg[j], ba[j] = self.weights.bg[i], self.weights.ba[i]
        return CircuitWeights(bg=bg, ba=ba, ag=self.weights.ag.copy())

    def fit_model(self, n_types: int | None = None, bank=None) -> tuple[tuple[DoGType, ...], CircuitModel]:
        """The bank and the architecture a fit uses: this circuit's with a candidate bank."""
        bank = tuple(bank) if bank is not None else kernel_bank(28 if n_types is None else n_types)
        m = self.model
        return bank, CircuitModel(
            n_types=len(bank), geometry=m.geometry, skip=m.skip, sign_bg=m.sign_bg, sign_ba=m.sign_ba,
            sign_ag=m.sign_ag, amacrine_gain=m.amacrine_gain, amacrine_threshold=m.amacrine_threshold,
            amacrine=m.amacrine, output=m.output, output_offset=m.output_offset,
        )


def _base(name, *, skip, sign_ag, output, offset, bg_w, ba_w, ba_type, ag_w, threshold, bg_type=0):
    geom = Geometry()
    model = CircuitModel(n_types=len(TRUE_TYPES), geometry=geom, skip=skip, sign_ag=sign_ag, output=output,
                         output_offset=offset, amacrine_threshold=threshold)
    w = CircuitWeights.zeros(model)
    bg, ba, ag = w.bg.copy(), w.ba.copy(), w.ag.copy()
    if bg_w:
        bg[bg_type, 4:6, 4:6] = bg_w
    ba[ba_type] = ba_w
    ag[2:4, 2:4] = sign_ag * ag_w
    return RetinaCircuit(name, TRUE_TYPES, model, CircuitWeights(bg=bg, ba=ba, ag=ag))


#: amacrine threshold of the circuits here. The reference value 5 leaves the
#: amacrines silent with max-normalised kernels and pixels in [−1, 1]
#: (3·0.2·Σb > 5 on 0.2% of white-noise images), so the amacrine pathway would
#: leave no trace in the data; at 1 they fire on ~22% of images.
AMACRINE_THRESHOLD = 1.0


def circuit1(amacrine_threshold: float = AMACRINE_THRESHOLD) -> RetinaCircuit:
    """Circuit 1: bipolar (type 0) → amacrine → GC chain, ``y = ReLU(Σ w_ag a − 10)``.

    Bipolar → amacrine 0.2, four amacrines → GC +6 (our choice, so that the
    ganglion cell fires on a few per cent of the images).
    """
    return _base("circuit1", skip=False, sign_ag=1, output="relu", offset=-10.0, bg_w=0.0, ba_w=0.2, ba_type=0,
                 ag_w=6.0, threshold=amacrine_threshold)


def circuit2(amacrine_threshold: float = AMACRINE_THRESHOLD) -> RetinaCircuit:
    """Circuit 2: ``y = Σ w_bg b − Σ w_ag a`` (linear output, skip path).

    Parameters
    ----------
    amacrine_threshold : float
        ``a = ReLU(3·Σ w_ba b − threshold)``; see :data:`AMACRINE_THRESHOLD`.

    Examples
    --------
    >>> c = circuit2()
    >>> c.model.skip, c.model.output.value, int(np.count_nonzero(c.weights.flat()))
    (True, 'linear', 12)
    """
    return _base("circuit2", skip=True, sign_ag=-1, output="linear", offset=0.0, bg_w=0.8, ba_w=0.2, ba_type=1,
                 ag_w=0.4, threshold=amacrine_threshold)


def circuit3a(amacrine_threshold: float = AMACRINE_THRESHOLD) -> RetinaCircuit:
    """Circuit 3A: Circuit 2's synapses, ``y = ReLU(· + 8)``."""
    return _base("circuit3a", skip=True, sign_ag=-1, output="relu", offset=8.0, bg_w=0.8, ba_w=0.2, ba_type=1,
                 ag_w=0.4, threshold=amacrine_threshold)


def circuit3b(amacrine_threshold: float = AMACRINE_THRESHOLD) -> RetinaCircuit:
    """Circuit 3B: Circuit 2's synapses, ``y = ReLU(·)``."""
    return _base("circuit3b", skip=True, sign_ag=-1, output="relu", offset=0.0, bg_w=0.8, ba_w=0.2, ba_type=1,
                 ag_w=0.4, threshold=amacrine_threshold)


CIRCUITS = {"circuit1": circuit1, "circuit2": circuit2, "circuit3a": circuit3a, "circuit3b": circuit3b}


def make_circuit(name: str) -> RetinaCircuit:
    """A ground-truth circuit by name: 'circuit1', 'circuit2', 'circuit3a', 'circuit3b' (or '1', '2', '3a', '3b')."""
    key = str(name).lower()
    key = key if key.startswith("circuit") else f"circuit{key}"
    if key not in CIRCUITS:
        raise ValueError(f"circuit {name!r} is unknown; allowed: {', '.join(CIRCUITS)}")
    return CIRCUITS[key]()


_BLOCK = 500  # images per seeded block in make_dataset (fixed: the data must not depend on it)


@dataclass(frozen=True)
class SysIDData:
    """A synthetic data set in a fit bank's feature space.

    ``X_*`` are block features ``(N, A, T·p·p)`` float32 of the fit bank,
    ``y_*`` the (possibly noisy) responses, ``w_true`` the circuit's synapses
    embedded in the fit bank.
    """

    circuit: RetinaCircuit
    bank: tuple[DoGType, ...]
    model: CircuitModel
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    w_true: CircuitWeights

    def subset(self, n: int) -> "SysIDData":
        """The first ``n`` training images (the sweep's training sets are nested)."""
        if n < 1 or n > len(self.y_train):
            raise ValueError(f"n={n} is out of range; allowed: 1..{len(self.y_train)}")
        return SysIDData(self.circuit, self.bank, self.model, self.X_train[:n], self.y_train[:n], self.X_test,
                         self.y_test, self.w_true)


def make_dataset(circuit: RetinaCircuit | str = "circuit2", n_train: int = 1000, n_test: int = 500, seed=0, *,
                 n_types: int = 28, bank=None, stimulus: Stimulus | str = Stimulus.WHITE, noise_std: float = 0.0,
                 spikes: bool = False) -> SysIDData:
    """Simulate a circuit on random stimuli; features in a candidate bank.

    Images are drawn and turned into features in blocks of 500, each from its
    own child seed, so 22,000 images need only their features in memory
    (≈ 11 kB each for 28 types), and a smaller ``n_train`` gives a prefix of a
    larger one with the same seed.

    Parameters
    ----------
    circuit : RetinaCircuit or name
    n_train, n_test : int
        Training and held-out images.
    seed : int
        One seed for the images and the noise.
    n_types, bank
        The fit bank (:func:`kernel_bank` of ``n_types`` unless ``bank`` is given).
    stimulus : {"white", "binary"}
    noise_std : float
        Gaussian noise added to the training and test responses (absolute units).
    spikes : bool
        Replace responses by Poisson counts of ``max(y, 0)`` (after the noise).

    Examples
    --------
    >>> d = make_dataset("circuit2", n_train=40, n_test=10, seed=0, n_types=3)
    >>> d.X_train.shape, d.y_test.shape
    ((40, 25, 12), (10,))
    """
    circuit = make_circuit(circuit) if isinstance(circuit, str) else circuit
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}={v!r} is out of range; allowed: an int >= 1")
    if not (np.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std={noise_std!r} is out of range; allowed: a finite number >= 0")
    bank, model = circuit.fit_model(n_types, bank)
    ss = np.random.SeedSequence(seed)
    s_img_tr, s_img_te, s_noise = ss.spawn(3)

    chunk = _BLOCK

    def simulate(n, s):
        Xs, ys = [], []
        for k, sc in zip(range(0, n, chunk), s.spawn(-(-n // chunk))):
            img = make_images(min(chunk, n - k), sc, kind=stimulus, shape=model.geometry.image_shape)
            Xs.append(block_features(bipolar_features(img, bank, model.geometry), model))
            ys.append(circuit.respond(img))
        return np.concatenate(Xs), np.concatenate(ys)

    X_tr, y_tr = simulate(int(n_train), s_img_tr)
    X_te, y_te = simulate(int(n_test), s_img_te)
    rng = np.random.default_rng(s_noise)
    if noise_std > 0:
        y_tr = y_tr + rng.normal(0.0, noise_std, y_tr.shape)
        y_te = y_te + rng.normal(0.0, noise_std, y_te.shape)
    if spikes:
        y_tr = poisson_spikes(y_tr, rng).astype(np.float64)
        y_te = poisson_spikes(y_te, rng).astype(np.float64)
    return SysIDData(circuit, bank, model, X_tr, y_tr, X_te, y_te, circuit.embed(bank))
