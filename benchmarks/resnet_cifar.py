"""ResNet-18 for 32x32 inputs (3x3 stem, no max-pool), the paper's CIFAR architecture: the
package's ``CifarResNet`` at width 64, two blocks per stage.

About 4.7 G multiply-adds of Gram work per sample over its 21 projected layers.
"""
from __future__ import annotations

from sap_kernels.demo.cifar_resnet import CifarResNet


def ResNet18(num_classes: int = 10) -> CifarResNet:  # noqa: N802 - named like the architecture
    """ResNet-18: input ``[N, 3, 32, 32]`` float32, output ``[N, num_classes]`` logits."""
    return CifarResNet(num_classes, width=64, blocks=2)
