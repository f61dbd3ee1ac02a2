"""What a loader is and what it says about itself: the checks every phase applies to a loader,
its size when known without iterating it, and the default row mask (real tokens) of its batches."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, Optional

import torch

from ..options.configs import RowMaskFn

__all__ = ["RowMaskFn", "attention_mask_rows", "check_loader", "known_size"]


def check_loader(loader: Any, name: str) -> None:
    """A clear error for what is not an iterable of batches (None, a Dataset, a tensor)."""
    if loader is None:
        raise ValueError(f"{name} is None: pass batches of (inputs, labels), e.g. a DataLoader")
    if isinstance(loader, torch.Tensor):
        raise TypeError(f"{name} is a tensor; pass a DataLoader (or any iterable of (inputs, labels) batches)")
    if isinstance(loader, torch.utils.data.Dataset) and not isinstance(loader, torch.utils.data.IterableDataset):
        raise TypeError(
            f"{name} is a Dataset ({type(loader).__name__}), which yields single samples; wrap it in "
            "torch.utils.data.DataLoader(dataset, batch_size=...)"
        )
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"{name} must be an iterable of batches, got {type(loader).__name__}")


def known_size(loader: Iterable[Any]) -> Optional[int]:
    """Samples a DataLoader will yield, when that is knowable without iterating it."""
    dataset, bs = getattr(loader, "dataset", None), getattr(loader, "batch_size", None)
    if dataset is None or bs is None or getattr(loader, "batch_sampler", None) is None:
        return None
    try:
        n = len(dataset)
    except TypeError:
        return None
    if type(getattr(loader, "sampler", None)).__name__ not in ("SequentialSampler", "RandomSampler"):
        return None
    return (n // bs) * bs if getattr(loader, "drop_last", False) else n


def attention_mask_rows(inputs: Any) -> Optional[torch.Tensor]:
    """The default row mask: a dict input's ``attention_mask`` ``[B, T]`` (nonzero: a real token)."""
    if isinstance(inputs, Mapping):
        mask = inputs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            return mask != 0
    return None
