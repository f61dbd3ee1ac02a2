"""The model of ``cifar10.py``: the package's CIFAR ResNet (``sap_kernels.demo.cifar_resnet``),
ResNet-18 at the GPU and paper scales, narrower and shallower at the CPU scale."""
from __future__ import annotations

import torch

from sap_kernels.demo.cifar_resnet import CifarResNet


def make_model(seed: int, width: int, blocks: int, num_classes: int = 10) -> CifarResNet:
    """A freshly initialised :class:`CifarResNet`, the initialisation seeded by ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CifarResNet(num_classes, width, blocks)
