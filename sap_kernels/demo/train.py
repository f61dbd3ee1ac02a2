"""Seeded mini-batch training and accuracy evaluation on in-memory tensors."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe (Adam, cosine-decayed learning rate, no augmentation).

    The defaults fit (memorise) noisy digits labels: that memorisation is what SAP repairs.
    """

    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, seed: int,
    progress: str | None = None,
) -> nn.Module:
    """Train ``model`` in place and return it (left in eval mode).

    Args:
        model: classifier mapping ``x``-shaped batches to logits ``[B, C]``.
        x: float32 ``[N, ...]`` inputs.
        y: int64 ``[N]`` labels (noisy or clean).
        config: the recipe.
        seed: seeds the batch order; with the same model initialisation the run is repeatable
            (CPU, same thread count).
        progress: a label for a tqdm bar over the epochs, or None for no bar.
    """
    if config.epochs < 0 or config.batch_size < 1:
        raise ValueError(f"bad training config {config}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(y) // config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, config.epochs * steps_per_epoch))
    model.train()
    for _ in tqdm(range(config.epochs), desc=progress, disable=progress is None, leave=False, unit="epoch"):
        order = torch.randperm(len(y), generator=g)
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            if len(idx) < 2:  # a BatchNorm model needs two samples per batch
                continue
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)  # loss.backward(), which torch leaves untyped
            opt.step()
            sched.step()
    model.eval()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Share of ``argmax model(x) == y`` in eval mode, in ``[0, 1]``; the mode is restored.

    Args:
        x: float32 ``[N, ...]``; y: int64 ``[N]``.
    """
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(y))
