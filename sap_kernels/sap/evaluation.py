"""Accuracy of a model on a validation source, and the alpha sweep that uses it."""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import batches
from .trusted import check_labels
from .weights import LayerProjector


class CachedSplit:
    """A validation split held in memory: nested CPU inputs and int64 labels ``[n]``."""

    def __init__(self, inputs: Any, labels: torch.Tensor, batch_size: int):
        self.inputs, self.labels, self.batch_size = inputs, labels, batch_size

    def __iter__(self):
        n = self.labels.shape[0]
        for a in range(0, n, self.batch_size):
            yield batches.slice_rows(self.inputs, a, a + self.batch_size), self.labels[a : a + self.batch_size]


@torch.no_grad()
def accuracy(model: nn.Module, data: Iterable, device: torch.device,
             split: batches.Splitter = batches.split_batch) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (in eval mode) over batches ``split`` into
    ``(inputs, labels)``."""
    correct = total = 0
    for b, batch in enumerate(data):
        inputs, labels = split(batch)
        logits = batches.call_model(model, batches.to_device(inputs, device))
        labels = check_labels(labels.to(logits.device), logits.shape[1], b)
        correct += int((logits.argmax(1) == labels).sum())
        total += int(labels.numel())
    if total == 0:
        raise ValueError("the validation data yielded no samples")
    return correct / total


def default_alphas() -> list[float]:
    """Half-decade log grid ``1, 3.16, 10, ..., 1e6`` (small models favour small alphas)."""
    return [10 ** (e / 2) for e in range(0, 13)]


def sweep(
    model: nn.Module,
    projectors: Sequence[LayerProjector],
    alphas: Sequence[float],
    data: Iterable,
    device: torch.device,
    progress: bool,
    split: batches.Splitter = batches.split_batch,
) -> dict[float, float]:
    """Validation accuracy for the unchanged model (key ``inf``) and each alpha.

    Leaves the model's weights at their originals.
    """
    scores: dict[float, float] = {math.inf: accuracy(model, data, device, split)}
    try:
        for a in tqdm(alphas, desc="SAP: alpha sweep", disable=not progress, leave=False):
            for p in projectors:
                p.write(a)
            scores[float(a)] = accuracy(model, data, device, split)
    finally:
        for p in projectors:
            p.restore()
    return scores


def best_alpha(scores: dict[float, float]) -> float:
    """The alpha with the highest score; ties go to the larger alpha (the milder change)."""
    return max(scores, key=lambda a: (scores[a], a))


def validate_alphas(alpha: Optional[float], alphas: Optional[Sequence[float]]) -> Optional[list[float]]:
    from ..ops.scales import check_alpha

    if alpha is not None:
        check_alpha(alpha)
        return None
    grid = default_alphas() if alphas is None else [check_alpha(a) for a in alphas]
    if not grid:
        raise ValueError("alphas is empty: give at least one alpha, or alpha=")
    return sorted(set(grid))
