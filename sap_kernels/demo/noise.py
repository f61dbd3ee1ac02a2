"""Seeded label noise: symmetric (uniform over the other classes) and asymmetric (fixed map)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

NoiseType = Literal["symmetric", "asymmetric"]
NOISE_TYPES: tuple[str, ...] = ("symmetric", "asymmetric")


@dataclass(frozen=True)
class NoisyLabels:
    """Labels after noise.

    ``labels``: int64 ``[N]`` noisy labels; ``flipped``: bool ``[N]``, True where the label was
    changed (always to a different class); ``rate``: the actual share of changed labels.
    """

    labels: torch.Tensor
    flipped: torch.Tensor
    rate: float


def _flip_mask(n: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must lie in [0, 1], got {rate}")
    return torch.rand(n, generator=generator) < rate


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if labels.dim() != 1 or labels.dtype != torch.int64:
        raise ValueError(f"labels must be an int64 [N] tensor, got {labels.dtype} {tuple(labels.shape)}")
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {num_classes}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")


def symmetric_noise(
    labels: torch.Tensor, rate: float, num_classes: int, seed: int
) -> NoisyLabels:
    """Flip each label with probability ``rate`` to a uniformly random *other* class.

    Args:
        labels: int64 ``[N]`` clean labels in ``[0, num_classes)``.
        rate: flip probability per sample.
        num_classes: number of classes ``C``.
        seed: seeds the flips and the new classes.
    """
    _check_labels(labels, num_classes)
    g = torch.Generator().manual_seed(seed)
    flipped = _flip_mask(labels.numel(), rate, g)
    # An offset in [1, C-1] added modulo C picks each other class with equal probability.
    offset = torch.randint(1, num_classes, labels.shape, generator=g)
    noisy = torch.where(flipped, (labels + offset) % num_classes, labels)
    return NoisyLabels(noisy, flipped, float(flipped.float().mean()) if labels.numel() else 0.0)


def asymmetric_noise(
    labels: torch.Tensor,
    rate: float,
    num_classes: int,
    seed: int,
    mapping: torch.Tensor | None = None,
) -> NoisyLabels:
    """Flip each label with probability ``rate`` to ``mapping[label]`` (class-dependent noise).

    Args:
        labels: int64 ``[N]`` clean labels in ``[0, num_classes)``.
        rate: flip probability per sample.
        num_classes: number of classes ``C``.
        seed: seeds which samples flip.
        mapping: int64 ``[C]`` target class of each class, with ``mapping[c] != c``;
            default ``c -> (c + 1) % C``.
    """
    _check_labels(labels, num_classes)
    if mapping is None:
        mapping = (torch.arange(num_classes) + 1) % num_classes
    if mapping.shape != (num_classes,) or bool((mapping == torch.arange(num_classes)).any()):
        raise ValueError("mapping must be an int64 [C] tensor with mapping[c] != c")
    g = torch.Generator().manual_seed(seed)
    flipped = _flip_mask(labels.numel(), rate, g)
    noisy = torch.where(flipped, mapping.to(labels.dtype)[labels], labels)
    return NoisyLabels(noisy, flipped, float(flipped.float().mean()) if labels.numel() else 0.0)


def add_label_noise(
    labels: torch.Tensor, rate: float, kind: NoiseType, num_classes: int, seed: int
) -> NoisyLabels:
    """Dispatch to :func:`symmetric_noise` or :func:`asymmetric_noise` by ``kind``."""
    if kind == "symmetric":
        return symmetric_noise(labels, rate, num_classes, seed)
    if kind == "asymmetric":
        return asymmetric_noise(labels, rate, num_classes, seed)
    raise ValueError(f"noise type must be one of {NOISE_TYPES}, got {kind!r}")
