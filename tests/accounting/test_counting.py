"""Counting: the PyTorch counter against counts derived by hand, FlopCounterMode,
the plain-description helpers and the Numba simulator's networks."""
from collections import Counter

import pytest

torch = pytest.importorskip("torch")

from neurolns.accounting import Phase, count_sim, mlp_counts  # noqa: E402
from neurolns.torch.counting import count_torch  # noqa: E402


def _table(counts):
    """{(layer, phase): (macs, dot outputs, ops, reads, writes)} with formats dropped."""
    out = {}
    for lc in counts.layers:
        ops = Counter({op: n for (op, _), n in lc.ops.items()})
        reads = Counter({size: n for (size, _), n in lc.reads.items()})
        writes = Counter({size: n for (size, _), n in lc.writes.items()})
        out[(lc.name, lc.phase.value)] = (lc.macs, lc.dot_outputs, dict(ops), dict(reads), dict(writes))
    return out


def _loss_by_hand(B, O):
    """Log-softmax + mean NLL over B rows of O: the convention of neurolns.accounting.counts."""
    BO = B * O
    fwd = (0, 0, {"cmp": BO - B, "add": (3 * BO - B) + (B - 1), "exp": BO + B, "div": 1},
           {BO: 2 * BO, B: B}, {BO: BO, 1: 3})  # log-probs; loss, total weight, seed gradient
    bwd = (0, 0, {"add": 2 * BO - B, "mul": BO, "exp": BO}, {1: 2, BO: 3 * BO, B: B}, {BO: 2 * BO})
    return {("(loss)", "forward"): fwd, ("(loss)", "backward"): bwd}


def test_mlp_training_step_matches_the_hand_count_exactly():
    """Linear(I,H) → ReLU → Linear(H,O) + cross-entropy, batch B: every MAC, op and
    element read/written, per layer and phase, derived by hand (sizes chosen distinct)."""
    B, I, H, O = 16, 64, 32, 10
    net = torch.nn.Sequential(torch.nn.Linear(I, H), torch.nn.ReLU(), torch.nn.Linear(H, O))
    BI, IH, BH, HO, BO = B * I, I * H, B * H, H * O, B * O
    hand = {
        ("0", "forward"): (B * I * H, BH, {"add": BH}, {BI: BI, IH: IH, H: H}, {BH: BH}),
        ("1", "forward"): (0, 0, {"cmp": BH}, {BH: BH}, {BH: BH}),
        ("2", "forward"): (B * H * O, BO, {"add": BO}, {BH: BH, HO: HO, O: O}, {BO: BO}),
        # backward of layer 2: input gradient (BH dots of O), weight gradient (HO dots of B), bias sum
        ("2", "backward"): (2 * B * H * O, BH + HO, {"add": BO - O}, {BO: 3 * BO, HO: HO, BH: BH},
                            {BH: BH, HO: HO, O: O}),
        ("1", "backward"): (0, 0, {"cmp": BH}, {BH: 2 * BH}, {BH: BH}),
        # the first layer needs no input gradient
        ("0", "backward"): (B * I * H, IH, {"add": BH - H}, {BH: 2 * BH, BI: BI}, {IH: IH, H: H}),
        **_loss_by_hand(B, O),
    }
    c = count_torch(net, input_shape=(B, I))
    assert _table(c) == hand
    assert c.params == IH + H + HO + O and sorted(c.param_tensors) == sorted([IH, H, HO, O])
    # saved for backward: the input (weight gradient of layer 0), the ReLU output (shared by
    # ReLU's backward and layer 2's weight gradient), the log-probabilities, and the NLL's
    # targets and total weight
    assert c.saved_elems == BI + BH + BO + B + 1
    assert c.meta["flop_counter_agrees"] and not c.meta["uncounted_ops"]


def test_cnn_training_step_matches_the_hand_count_exactly():
    """Conv2d(1→4, 3×3) → ReLU → MaxPool(2) → Flatten → Linear(36→10), batch 5 on 8×8."""
    B, C, O = 5, 4, 10
    net = torch.nn.Sequential(torch.nn.Conv2d(1, C, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(C * 9, O))
    x, w, y, p, fw, bo = B * 64, C * 9, B * C * 36, B * C * 9, C * 9 * O, B * O
    hand = {
        ("0", "forward"): (y * 9, y, {"add": y}, {x: x, w: w, C: C}, {y: y}),
        ("1", "forward"): (0, 0, {"cmp": y}, {y: y}, {y: y}),
        ("2", "forward"): (0, 0, {"cmp": p * 3}, {y: y}, {p: 2 * p}),  # values and indices
        ("4", "forward"): (bo * 36, bo, {"add": bo}, {p: p, fw: fw, O: O}, {bo: bo}),
        ("4", "backward"): (2 * bo * 36, p + fw, {"add": bo - O}, {bo: 3 * bo, fw: fw, p: p}, {p: p, fw: fw, O: O}),
        ("2", "backward"): (0, 0, {}, {p: 2 * p, y: y}, {y: y}),
        ("1", "backward"): (0, 0, {"cmp": y}, {y: 2 * y}, {y: y}),
        # weight gradient only (the image needs none): numel(W) dots of length B·6·6
        ("0", "backward"): (y * 9, w, {"add": y - C}, {y: y, x: x, w: w}, {w: w, C: C}),
        **_loss_by_hand(B, O),
    }
    c = count_torch(net, input_shape=(B, 1, 8, 8))
    assert _table(c) == hand


def test_macs_equal_half_of_flop_counter_flops():
    """FlopCounterMode run on its own (real tensors) gives 2 FLOPs per counted MAC."""
    from torch.utils.flop_counter import FlopCounterMode

    net = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 5, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 19, 10))
    x = torch.randn(7, 1, 40)
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(net(x), torch.zeros(7, dtype=torch.long)).backward()
    c = count_torch(net, x)
    assert 2 * c.total().macs == fc.get_total_flops()


def test_meta_and_real_runs_count_the_same_and_leave_the_model_alone():
    net = torch.nn.Sequential(torch.nn.Linear(12, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(4, 12)
    a, b = count_torch(net, x), count_torch(net, x, device=None)
    assert _table(a) == _table(b) and a.saved_elems == b.saved_elems
    assert a.meta["device"] == "meta" and b.meta["device"] == "cpu"
    assert all(torch.equal(p, q) and p.device.type == "cpu" and p.grad is None
               for p, q in zip(net.parameters(), before))


def test_plain_description_mlp_counts_equal_the_torch_counter():
    sizes, B = [20, 17, 9, 4], 6
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += ([torch.nn.ReLU()] if i else []) + [torch.nn.Linear(a, b)]
    for training in (True, False):
        c = count_torch(torch.nn.Sequential(*layers), input_shape=(B, sizes[0]), training=training)
        h = mlp_counts(sizes, B, training=training, loss=training)
        assert _table(c) == _table(h)


@pytest.mark.parametrize("name,shape", [("mlp", (32, 64)), ("cnn1d", (16, 40))])
def test_simulator_networks_count_like_their_torch_twins(name, shape):
    """count_sim(build_sim()) and count_torch(build_torch()) of the same model agree exactly."""
    import importlib

    mod = importlib.import_module(f"neurolns.models.{name}")
    for training in (True, False):
        t = count_torch(mod.build_torch(), input_shape=shape, training=training)
        s = count_sim(mod.build_sim(), shape, training=training, loss=training)
        assert _table(t) == _table(s)
        assert t.params == s.params


def test_inference_counts_only_the_forward_phase():
    net = torch.nn.Sequential(torch.nn.Linear(8, 4))
    c = count_torch(net, input_shape=(3, 8), training=False)
    assert {lc.phase for lc in c.layers} == {Phase.FORWARD} and c.saved_elems == 0
    assert c.total().macs == 3 * 8 * 4


def test_resnet18_training_step_is_counted_and_matches_its_architecture():
    """The ResNet-18 at 32×32: 11,173,962 parameters; forward MACs per image summed here
    from the layer shapes (stem, 4 stages of 2 basic blocks, 1×1 shortcuts, fc)."""
    from neurolns.models.resnet import build_torch

    macs, hw, c_in = 32 * 32 * 64 * 3 * 9, 32, 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for blk in range(2):
            s = stride if blk == 0 else 1
            hw_out = hw // s
            macs += hw_out**2 * c_out * c_in * 9 + hw_out**2 * c_out * c_out * 9
            if s != 1 or c_in != c_out:
                macs += hw_out**2 * c_out * c_in
            hw, c_in = hw_out, c_out
    macs += 512 * 10
    c = count_torch(build_torch(), input_shape=(2, 3, 32, 32))
    assert c.params == 11_173_962
    assert c.total("forward").macs == 2 * macs
    assert c.meta["flop_counter_agrees"] and not c.meta["uncounted_ops"]


def test_bad_inputs_are_clear_errors():
    net = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="input_shape"):
        count_torch(net)
    with pytest.raises(TypeError, match="Tensor"):
        count_torch(net, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="device"):
        count_torch(net, input_shape=(1, 3), device="cuda:7")
