"""How training samples are ranked for trust (``select_trusted(strategy=...)``); lower is more trusted.

A ranker sees one batch already on the model's device and returns each sample's score ``[B]``
(float32, on the host) and the model's output (used to check the labels and, for class balancing,
to read each sample's class).
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import nn

from ..data.objective import Objective
from ..runtime.forward import call_model


class Ranker(Protocol):
    def __call__(self, model: nn.Module, inputs: Any, labels: torch.Tensor,
                 batch_index: int) -> tuple[torch.Tensor, Any]:
        ...


class LossRanker:
    """The per-sample loss of the model on the given label (the criterion the paper's text
    describes; the published scripts rank by input curvature, ``CurvatureRanker``)."""

    def __init__(self, objective: Objective, seed: int):
        self.objective = objective

    @torch.no_grad()
    def __call__(self, model: nn.Module, inputs: Any, labels: torch.Tensor,
                 batch_index: int) -> tuple[torch.Tensor, Any]:
        output = call_model(model, inputs)
        return self.objective.losses(output, labels, batch_index).cpu(), output


class RandomRanker:
    """A seeded uniform random score: a random trusted set (a baseline)."""

    def __init__(self, objective: Objective, seed: int):
        self.objective = objective
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, model: nn.Module, inputs: Any, labels: torch.Tensor,
                 batch_index: int) -> tuple[torch.Tensor, Any]:
        output = call_model(model, inputs)
        self.objective.losses(output, labels, batch_index)  # validates the labels against the output
        return torch.rand(int(labels.shape[0]), generator=self.generator), output


# The published scripts' settings: 10 random +-1 directions, step 1e-3.
CURVATURE_DIRECTIONS = 10
CURVATURE_STEP = 1e-3


class CurvatureRanker:
    """The published scripts' input-curvature score: the mean over ``CURVATURE_DIRECTIONS`` random
    +-1 directions ``v`` of ``|| grad_x [L(x + h v) - L(x)] ||`` per sample, ``h = CURVATURE_STEP``,
    ``L`` the batch-mean loss (as published: a sample's score scales with ``1 / batch size``),
    model in eval mode. ``grad_x L(x)`` is computed once per batch (it does not depend on ``v``),
    then one batched forward and backward pass per direction. Directions are drawn from a
    generator seeded with ``seed``, batch after batch, ``v`` of the input's shape, as the published
    code draws them. Inputs must be one float tensor (the perturbed input)."""

    def __init__(self, objective: Objective, seed: int):
        self.objective = objective
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, inputs: Any, labels: torch.Tensor,
                 batch_index: int) -> tuple[torch.Tensor, Any]:
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
            raise TypeError(f"batch {batch_index}: strategy='curvature' perturbs the input, so it needs one float "
                            f"input tensor; got {type(inputs).__name__}"
                            + (f" of {inputs.dtype}" if isinstance(inputs, torch.Tensor) else ""))
        with torch.no_grad():
            output = call_model(model, inputs)
            self.objective.losses(output, labels, batch_index)  # validates the labels against the output
        with torch.enable_grad():
            base = self._grad(model, inputs, labels, batch_index)
            total = torch.zeros(inputs.shape[0], dtype=torch.float64, device=inputs.device)
            for _ in range(CURVATURE_DIRECTIONS):
                v = torch.randint(0, 2, inputs.shape, generator=self.generator).to(inputs)
                v[v == 0] = -1
                g = self._grad(model, inputs + CURVATURE_STEP * (v + 1e-7), labels, batch_index) - base
                total += g.reshape(g.shape[0], -1).norm(dim=1).double()
        return (total / CURVATURE_DIRECTIONS).float().cpu(), output

    def _grad(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, batch_index: int) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        loss = self.objective.losses(call_model(model, x), labels, batch_index, differentiable=True).mean()
        return torch.autograd.grad(loss, x)[0]


RANKERS: dict[str, Callable[[Objective, int], Ranker]] = {
    "loss": LossRanker, "random": RandomRanker, "curvature": CurvatureRanker,
}
