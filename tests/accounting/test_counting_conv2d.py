"""count_sim of networks with Conv2d and MaxPool2d agrees exactly with count_torch of their
torch twins (every MAC, op, read and write per layer and phase), training and inference."""
import pytest

torch = pytest.importorskip("torch")

from neurolns.accounting import count_sim  # noqa: E402
from neurolns.models import cnn2d  # noqa: E402
from neurolns.sim import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sequential  # noqa: E402
from neurolns.torch import from_sim  # noqa: E402
from neurolns.torch.counting import count_torch  # noqa: E402


def _by_layer(counts):
    """{(layer, phase): (macs, dot outputs, ops, reads, writes)}; the kind names differ by side."""
    return {(lc.name, lc.phase): (lc.macs, lc.dot_outputs, lc.ops, lc.reads, lc.writes) for lc in counts.layers}


@pytest.mark.parametrize("case", ["cnn2d", "rect"])
def test_conv2d_networks_count_like_their_torch_twins(case):
    """models.cnn2d on (16, 64) flat digits, and a net with a rectangular strided kernel, no
    bias and a 2×3 pool on (3, 2, 9, 10) images."""
    if case == "cnn2d":
        net, shape = cnn2d.build_sim(channels=8), (16, 64)
    else:
        net = Sequential([Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), bias=False, seed=0), ReLU(),
                          MaxPool2d((2, 3)), Flatten(), Dense(3 * 2 * 3, 4, seed=1)])
        shape = (3, 2, 9, 10)
    model = from_sim(net)
    for training in (True, False):
        t = count_torch(model, input_shape=shape, training=training)
        s = count_sim(net, shape, training=training, loss=training)
        assert _by_layer(t) == _by_layer(s)
        assert t.params == s.params and sorted(t.param_tensors) == sorted(s.param_tensors)
