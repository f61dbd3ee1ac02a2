"""What a loader is and what it says about itself: the checks every phase applies to a loader,
its size when known without iterating it, and the default row mask (real tokens) of its batches."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, Optional

import torch

from ..options.configs import RowMaskFn

__all__ = ["RowMaskFn", "attention_mask_rows", "check_loader", "known_size", "row_mask_of"]


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


def row_mask_of(mask_fn: RowMaskFn, inputs: Any, batch_len: Optional[int] = None) -> Optional[torch.Tensor]:
    """``mask_fn(inputs)`` checked and made boolean: a ``[B, T]`` bool tensor, or None.

    An integer mask (Hugging Face's int64 ``attention_mask``) or a float one must hold only 0 and 1
    and is used as a mask (1: a real token), never as row indices; anything but a tensor or None is
    a TypeError, a mask that is not ``[B, T]`` (``B`` the batch's samples, when known) a ValueError,
    each naming ``row_mask``.
    """
    mask = mask_fn(inputs)
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"row_mask must return a [B, T] tensor (bool, or 0/1 integers) or None; "
                        f"got {type(mask).__name__}")
    if mask.is_sparse or mask.layout != torch.strided:
        raise TypeError(f"row_mask must return a dense [B, T] tensor; got layout {mask.layout}")
    if mask.dim() != 2:
        raise ValueError(f"row_mask must return a [B, T] mask; got shape {list(mask.shape)}")
    if batch_len is not None and mask.shape[0] != batch_len:
        raise ValueError(f"row_mask returned a mask of shape {list(mask.shape)} for a batch of {batch_len} samples "
                         f"(expected [{batch_len}, T])")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise TypeError(f"row_mask must return a bool or 0/1 integer/float mask; got dtype {mask.dtype}")
    if mask.numel() and not bool(((mask == 0) | (mask == 1)).all()):
        bad = mask[(mask != 0) & (mask != 1)].flatten()[0].item()
        raise ValueError(f"row_mask returned a {mask.dtype} mask with values other than 0 and 1 (e.g. {bad!r}); "
                         "return a bool mask, or 0/1 values (1: a real token)")
    return mask != 0
