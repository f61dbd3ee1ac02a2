"""Training and evaluation for ``cifar10.py``: SGD (Nesterov momentum 0.9, weight decay 5e-4, cosine
learning rate), optional random crop (pad 4) + horizontal flip, on normalised in-memory tensors."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The authors' normalisation (github.com/sangamesh-kodge/SAP, utils.get_dataset).
MEAN = (0.491, 0.482, 0.447)
STD = (0.247, 0.243, 0.262)


@dataclass(frozen=True)
class Recipe:
    """One training: ``epochs`` of SGD at peak ``lr`` (cosine to 0), ``batch_size``, ``weight_decay``,
    ``augment`` (crop + flip), on the model ``width``/``blocks`` (see ``cifar10_model``)."""

    epochs: int = 30
    lr: float = 0.05
    batch_size: int = 128
    weight_decay: float = 5e-4
    augment: bool = False
    width: int = 16
    blocks: int = 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, 3, 32, 32]`` -> float32 normalised, channels-last (faster convolutions on CPU)."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((x_uint8.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)


def augment_batch(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random crop of a 4-pixel zero-padded image and a horizontal flip with probability 1/2, per sample."""
    n = len(x)
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=g)
    dx = torch.randint(0, 9, (n,), generator=g)
    rows = (dy.view(n, 1) + torch.arange(32)).view(n, 1, 32, 1).expand(n, x.shape[1], 32, 40)
    out = padded.gather(2, rows.to(x.device))
    cols = (dx.view(n, 1) + torch.arange(32)).view(n, 1, 1, 32).expand(n, x.shape[1], 32, 32)
    out = out.gather(3, cols.to(x.device))
    flip = torch.rand(n, generator=g) < 0.5
    out[flip.to(x.device)] = out[flip.to(x.device)].flip(3)
    return out.contiguous(memory_format=torch.channels_last)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int,
          epochs: int | None = None, lr: float | None = None) -> float:
    """Train ``model`` in place on float ``x`` ``[N, 3, 32, 32]`` (on the model's device) and int64
    ``y`` ``[N]``; returns the wall-clock seconds. ``epochs``/``lr`` override the recipe's (fine-tuning)."""
    t0 = time.perf_counter()
    n_epochs = recipe.epochs if epochs is None else epochs
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr if lr is None else lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    steps = max(1, n_epochs * -(-len(y) // recipe.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr if lr is None else lr, total_steps=steps,
                                                pct_start=0.15, anneal_strategy="cos")
    model.train()
    for _ in range(n_epochs):
        order = torch.randperm(len(y), generator=g).to(x.device)
        for start in range(0, len(y), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            if len(idx) < 2:
                continue
            xb = augment_batch(x[idx], g) if recipe.augment else x[idx]
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return time.perf_counter() - t0


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """float32 ``[N, C]`` softmax probabilities in eval mode (on the CPU)."""
    model.eval()
    out = [torch.softmax(model(x[s:s + batch_size]).float(), 1).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(out)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``argmax == y`` in ``[0, 1]``."""
    return float((predict_proba(model, x).argmax(1) == y.cpu()).float().mean())
