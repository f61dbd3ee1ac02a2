"""The paper's comparison points: fine-tune on the trusted samples, retrain on clean labels."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .models import make_model
from .train import TrainConfig, train


def finetune_on_trusted(
    model: nn.Module,
    x_trusted: torch.Tensor,
    y_trusted: torch.Tensor,
    config: TrainConfig,
    seed: int,
    progress: str | None = None,
) -> nn.Module:
    """Fine-tune a copy of the vanilla ``model`` on the trusted samples only.

    Args:
        model: the model trained on noisy labels (not modified).
        x_trusted: float32 ``[T, 1, 8, 8]``, the samples SAP picked as trusted.
        y_trusted: int64 ``[T]`` their (noisy) labels.
        config: the fine-tuning recipe (a few epochs at a small learning rate).
        seed: seeds the batch order.
    Returns:
        the fine-tuned copy, in eval mode.
    """
    return train(copy.deepcopy(model), x_trusted, y_trusted, config, seed, progress)


def retrain_on_clean(
    x: torch.Tensor,
    y_clean: torch.Tensor,
    config: TrainConfig,
    seed: int,
    *,
    num_classes: int = 10,
    width: int = 32,
    progress: str | None = None,
) -> nn.Module:
    """Train a fresh model with the vanilla recipe on the clean labels: the upper bound.

    Args:
        x: float32 ``[N, 1, 8, 8]`` training images; y_clean: int64 ``[N]`` true labels.
        config: the same recipe as the vanilla model.
        seed: seeds the initialisation and the batch order.
    """
    return train(make_model(seed, num_classes, width), x, y_clean, config, seed, progress)
