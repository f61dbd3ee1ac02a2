"""The CIFAR ResNet: ResNet-18 for 32x32 inputs (3x3 stem, no max-pool, the paper's architecture)
at any width and depth, so one definition serves the GPU benchmarks (``width=64, blocks=2``) and
the CPU-sized CIFAR-10 reproduction (``python/cifar10.py``)."""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and a shortcut (a 1x1 conv + BatchNorm when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Input float32 ``[N, 3, 32, 32]`` (normalised), output float32 ``[N, num_classes]`` logits.

    Stages of width ``w, 2w, 4w, 8w`` (strides 1, 2, 2, 2), ``blocks`` BasicBlocks each;
    ``width=64, blocks=2`` is ResNet-18 (11.2 M parameters, 21 projected layers).
    """

    def __init__(self, num_classes: int = 10, width: int = 64, blocks: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, cin = [], width
        for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            cout = width * mult
            stages.append(nn.Sequential(*[BasicBlock(cin if b == 0 else cout, cout, stride if b == 0 else 1)
                                          for b in range(blocks)]))
            cin = cout
        self.layers = nn.Sequential(*stages)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(torch.relu(self.bn1(self.conv1(x))))
        logits: torch.Tensor = self.linear(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))
        return logits
