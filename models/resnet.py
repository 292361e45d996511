"""A ResNet-18-sized CNN for 32×32 images (the CIFAR variant of He et al., CVPR 2016).

A 3×3 stem convolution (64 channels, no max pooling, as is usual at 32×32),
four stages of two basic blocks (64, 128, 256, 512 channels; the last three
halve the resolution), global average pooling and a linear read-out:
11.17 M parameters and 0.56 G multiply-accumulates per 32×32×3 image at
``width=64``. Only the PyTorch form exists (this module imports torch); the
energy-footprint scenario counts it as the larger model a user would recognise.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["BasicBlock", "build_torch", "STAGES"]

#: (channels multiplier, first stride) of the four stages, two blocks each
STAGES = ((1, 1), (2, 2), (4, 2), (8, 2))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with ReLU and an identity (or 1×1 conv-BN) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + self.shortcut(x))


def build_torch(num_classes: int = 10, *, width: int = 64, in_channels: int = 3, seed: int = 0) -> nn.Sequential:
    """The ResNet-18 as a ``torch.nn.Sequential`` (``stem``, ``layer1..layer4``, ``pool``, ``flatten``, ``fc``).

    Parameters
    ----------
    num_classes : int
    width : int
        Channels of the first stage (64 for ResNet-18).
    in_channels : int
    seed : int
        Initialisation seed (the global RNG is left untouched).

    Examples
    --------
    >>> m = build_torch()
    >>> sum(p.numel() for p in m.parameters())
    11173962
    """
    for name, v in (("num_classes", num_classes), ("width", width), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} is out of range; allowed: an int >= 1")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [("stem", nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                         nn.BatchNorm2d(width), nn.ReLU()))]
        c = width
        for i, (mult, stride) in enumerate(STAGES):
            c_out = width * mult
            layers.append((f"layer{i + 1}", nn.Sequential(BasicBlock(c, c_out, stride), BasicBlock(c_out, c_out, 1))))
            c = c_out
        layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c, num_classes))]
        return nn.Sequential(OrderedDict(layers))
