"""Scoring a model on validation data, and the alpha sweep built on it.

``Validation`` reads validation batches the way ``loader`` batches are read, re-iterating a
re-iterable source and caching a one-shot iterator (a generator) on the host the first time, so
that every alpha is scored on the same samples.
"""
from __future__ import annotations

import collections.abc
import math
from typing import Any, Iterable, Iterator, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import batches
from ..data.objective import Objective
from ..projection.projectors import Projector
from ..runtime.distributed import Ranks, agreed
from ..runtime.forward import call_model


class Validation:
    """Batches ``(inputs, labels)`` to score on; ``source`` a loader, a ``SampleSet`` or a generator."""

    def __init__(self, source: Iterable[Any], split: batches.Splitter = batches.split_batch):
        self.source, self.split = source, split
        self._cached: Optional[list[tuple[Any, torch.Tensor]]] = None
        self.one_shot = isinstance(source, collections.abc.Iterator)

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        if self._cached is not None:
            yield from self._cached
            return
        cache: Optional[list[tuple[Any, torch.Tensor]]] = [] if self.one_shot else None
        for batch in self.source:
            inputs, labels = self.split(batch)
            if cache is not None:
                cache.append((batches.to_host(inputs), labels.cpu()))
            yield inputs, labels
        if cache is not None:
            self._cached = cache


@torch.no_grad()
def _local_score(model: nn.Module, data: Iterable[tuple[Any, torch.Tensor]], device: torch.device,
                 objective: Objective) -> tuple[float, int]:
    """Sum of per-sample scores and the number of samples on this process's data."""
    total, count = 0.0, 0
    for b, (inputs, labels) in enumerate(data):
        if labels.dim() == 0:
            raise ValueError(f"validation batch {b} has a 0-d label: give the DataLoader a batch_size")
        n = int(labels.shape[0])
        if n == 0:
            continue
        batches.check_samples(inputs, n, b)
        output = call_model(model, batches.to_device(inputs, device))
        total += float(objective.scores(output, labels, b).double().sum())
        count += n
    return total, count


def score(model: nn.Module, data: Iterable[tuple[Any, torch.Tensor]], device: torch.device,
          objective: Objective, ranks: Optional[Ranks] = None) -> float:
    """Mean per-sample score of ``model`` (in eval mode) over ``data`` (accuracy by default);
    with ``ranks``, over every rank's data (each rank passes its own shard)."""
    total, count = agreed(ranks, "scoring the validation data", lambda: _local_score(model, data, device, objective))
    if ranks is not None:
        sums = ranks.all_reduce(torch.tensor([total, float(count)], dtype=torch.float64))
        total, count = float(sums[0]), int(sums[1])
    if count == 0:
        raise ValueError("the validation data yielded no samples")
    return total / count


def sweep(model: nn.Module, projectors: Sequence[Projector], alphas: Sequence[float],
          data: Iterable[tuple[Any, torch.Tensor]], device: torch.device, objective: Objective, progress: bool,
          ranks: Optional[Ranks] = None, unchanged: bool = True) -> dict[float, float]:
    """Validation score for the unchanged model (key ``inf``, unless ``unchanged=False``) and each
    alpha; the weights are left at their originals."""
    scores: dict[float, float] = {}
    if unchanged:
        scores[math.inf] = score(model, data, device, objective, ranks)
    try:
        for a in tqdm(alphas, desc="SAP: alpha sweep", disable=not progress, leave=False):
            agreed(ranks, "projecting for the sweep", lambda: _write_each(projectors, a))
            scores[float(a)] = score(model, data, device, objective, ranks)
    finally:
        for p in projectors:
            p.restore()
    return scores


def _write_each(projectors: Sequence[Projector], alpha: float) -> None:
    for p in projectors:
        p.write(alpha)


