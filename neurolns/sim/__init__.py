"""Rate-network simulator: layers whose synapses are LNS codes, a trainer, checkpoints.

>>> import numpy as np
>>> from neurolns import LNS8
>>> from neurolns.sim import Dense, ReLU, Sequential, update_format
>>> fmt = dict(master_format=update_format(LNS8), forward_format=LNS8)
>>> net = Sequential([Dense(4, 8, seed=0, **fmt), ReLU(), Dense(8, 3, seed=1, **fmt)])
>>> net.forward(np.ones((2, 4))).shape
(2, 3)
"""

from neurolns.sim.layers import (
    Conv1d,
    Conv2d,
    Dense,
    Flatten,
    Layer,
    LeakyReLU,
    MaxPool1d,
    MaxPool2d,
    Products,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
)
from neurolns.sim.network import Sequential, softmax_cross_entropy
from neurolns.sim.trainer import Trainer
from neurolns.sim.checkpoint import read_checkpoint, save_checkpoint
from neurolns.sim.params import Param, WeightStorage, forward_table, storage_kwargs, update_format

__all__ = [
    "Param", "WeightStorage", "storage_kwargs", "update_format", "forward_table",
    "Layer", "Dense", "Conv1d", "Conv2d", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Flatten", "Reshape",
    "MaxPool1d", "MaxPool2d",
    "Products", "Sequential", "softmax_cross_entropy", "Trainer", "read_checkpoint", "save_checkpoint",
]
