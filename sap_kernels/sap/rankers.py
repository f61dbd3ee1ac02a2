"""How training samples are ranked for trust (``select_trusted(strategy=...)``); lower is more trusted.

A ranker sees one batch already on the model's device and returns each sample's score ``[B]``
(float32, on the host) and the model's output (used to check the labels and, for class balancing,
to read each sample's class).
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import nn

from . import batches
from .objective import Objective


class Ranker(Protocol):
    def __call__(self, model: nn.Module, inputs: Any, labels: torch.Tensor,
                 batch_index: int) -> tuple[torch.Tensor, Any]:
        ...


class LossRanker:
    """The per-sample loss of the model on the given label (the paper's criterion)."""

    def __init__(self, objective: Objective, seed: int):
        self.objective = objective

    @torch.no_grad()
    def __call__(self, model: nn.Module, inputs: Any, labels: torch.Tensor,
                 batch_index: int) -> tuple[torch.Tensor, Any]:
        output = batches.call_model(model, inputs)
        return self.objective.losses(output, labels, batch_index).cpu(), output


class RandomRanker:
    """A seeded uniform random score: a random trusted set (a baseline)."""

    def __init__(self, objective: Objective, seed: int):
        self.objective = objective
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, model: nn.Module, inputs: Any, labels: torch.Tensor,
                 batch_index: int) -> tuple[torch.Tensor, Any]:
        output = batches.call_model(model, inputs)
        self.objective.losses(output, labels, batch_index)  # validates the labels against the output
        return torch.rand(int(labels.shape[0]), generator=self.generator), output


RANKERS: dict[str, Callable[[Objective, int], Ranker]] = {"loss": LossRanker, "random": RandomRanker}
