"""Pass 1: score every training sample and keep the lowest-loss ("trusted") ones.

Only the trusted candidates (and an optional seeded hold-out split) are kept, on the CPU: memory
is ``O(n_trusted + holdout)`` samples however large the loader is, and the loader may shuffle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import batches


@dataclass
class _Pool:
    """The ``capacity`` lowest-loss samples seen so far, compacted lazily (amortised O(1) a sample)."""

    capacity: int
    losses: list = field(default_factory=list)
    indices: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    size: int = 0
    threshold: float = float("inf")  # every sample above it is certainly not among the lowest

    def offer(self, losses, indices, labels, inputs) -> None:
        if self.capacity == 0:
            return
        keep = losses <= self.threshold if self.size >= self.capacity else torch.ones_like(losses, dtype=torch.bool)
        if not bool(keep.any()):
            return
        idx = keep.nonzero().squeeze(1)
        self.losses.append(losses[idx])
        self.indices.append(indices[idx])
        self.labels.append(labels[idx])
        self.inputs.append(batches.map_tensors(batches.select(inputs, idx), lambda t: t.detach().cpu()))
        self.size += int(idx.numel())
        if self.size > 2 * self.capacity:
            self.compact()

    def compact(self) -> None:
        if not self.losses:
            return
        losses, indices = torch.cat(self.losses), torch.cat(self.indices)
        labels, inputs = torch.cat(self.labels), batches.concat(self.inputs)
        # Sort by (loss, index) so that ties are broken the same way on every run.
        order = torch.sort(indices).indices
        order = order[torch.sort(losses[order], stable=True).indices][: self.capacity]
        self.losses, self.indices, self.labels = [losses[order]], [indices[order]], [labels[order]]
        self.inputs = [batches.select(inputs, order)]
        self.size = int(order.numel())
        if self.size >= self.capacity:
            self.threshold = float(self.losses[0][-1])


@dataclass
class Selection:
    """Outcome of pass 1. ``inputs`` are nested CPU tensors with the trusted samples along dim 0."""

    inputs: Any
    labels: torch.Tensor  # [n_trusted] int64
    indices: torch.Tensor  # [n_trusted] int64, positions in the loader's sample order
    losses: torch.Tensor  # [n_trusted] float32
    num_classes: int
    n_seen: int
    batch_size: int  # largest batch the loader yielded
    holdout_inputs: Optional[Any] = None
    holdout_labels: Optional[torch.Tensor] = None
    holdout_indices: Optional[torch.Tensor] = None


def check_labels(labels: torch.Tensor, num_classes: int, batch_index: int) -> torch.Tensor:
    """Labels as int64 class indices in ``[0, num_classes)``, or a clear error."""
    if labels.is_floating_point() or labels.is_complex() or labels.dim() != 1:
        raise ValueError(
            f"labels must be a 1-d tensor of integer class indices; batch {batch_index} has "
            f"{labels.dtype} labels of shape {list(labels.shape)}"
        )
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].unique()[:5].tolist()
        raise ValueError(
            f"labels out of range: the model outputs {num_classes} classes (labels 0..{num_classes - 1}) "
            f"but batch {batch_index} has labels {bad}"
        )
    return labels


def per_sample_loss(model: nn.Module, inputs: Any, labels: torch.Tensor, batch_index: int) -> tuple[torch.Tensor, int]:
    """Cross-entropy of each sample ``[B]`` (float32) and the number of classes."""
    logits = batches.call_model(model, inputs)
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"batch {batch_index}: {logits.shape[0]} logits rows but {labels.shape[0]} labels")
    num_classes = int(logits.shape[1])
    labels = check_labels(labels.to(logits.device), num_classes, batch_index)
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    if not bool(torch.isfinite(losses).all()):
        raise ValueError(f"batch {batch_index}: the model produced non-finite logits or losses")
    return losses, num_classes


@torch.no_grad()
def select_trusted(
    model: nn.Module,
    loader: Iterable,
    *,
    n_trusted: int,
    class_balanced: bool,
    holdout: float,
    max_holdout: int,
    seed: int,
    device: torch.device,
    progress: bool,
    split: batches.Splitter = batches.split_batch,
) -> Selection:
    """Run ``model`` (already in eval mode) over ``loader`` and keep the trusted samples.

    With ``holdout > 0`` each sample is, with that probability (seeded), set aside for choosing
    alpha (at most ``max_holdout`` of them) and never trusted.
    """
    gen = torch.Generator().manual_seed(seed)
    pools: Optional[list[_Pool]] = None
    hold_parts: list = []
    n_hold = 0
    seen = 0
    num_classes = 0
    largest = 0
    for b, batch in enumerate(tqdm(loader, desc="SAP: scoring samples", disable=not progress, leave=False)):
        inputs, labels = split(batch)
        bsz = labels.shape[0] if labels.dim() else 0
        if bsz == 0:
            continue
        losses, num_classes = per_sample_loss(model, batches.to_device(inputs, device), labels, b)
        losses, labels = losses.cpu(), labels.long().cpu()
        index = torch.arange(seen, seen + bsz)
        largest = max(largest, bsz)
        seen += bsz
        trusted_mask = torch.ones(bsz, dtype=torch.bool)
        if holdout > 0 and n_hold < max_holdout:
            hold = torch.rand(bsz, generator=gen) < holdout
            hold &= torch.cumsum(hold.long(), 0) <= max_holdout - n_hold
            if bool(hold.any()):
                hidx = hold.nonzero().squeeze(1)
                hold_parts.append((batches.map_tensors(batches.select(inputs, hidx), lambda t: t.detach().cpu()),
                                   labels[hidx], index[hidx]))
                n_hold += int(hidx.numel())
                trusted_mask &= ~hold
        if pools is None:
            pools = _make_pools(n_trusted, num_classes if class_balanced else 1)
        keep = trusted_mask.nonzero().squeeze(1)
        if class_balanced:
            for c, pool in enumerate(pools):
                idx = keep[labels[keep] == c]
                if idx.numel():
                    pool.offer(losses[idx], index[idx], labels[idx], batches.select(inputs, idx))
        elif keep.numel():
            pools[0].offer(losses[keep], index[keep], labels[keep], batches.select(inputs, keep))
    if seen == 0 or pools is None:
        raise ValueError("the loader yielded no samples")
    available = seen - n_hold
    if n_trusted > available:
        where = f" after holding out {n_hold} for choosing alpha" if n_hold else ""
        raise ValueError(
            f"n_trusted={n_trusted} is larger than the {available} training samples available{where}; "
            "lower n_trusted" + (" or pass val_loader / alpha" if n_hold else "")
        )
    for pool in pools:
        pool.compact()
    filled = [p for p in pools if p.size]
    indices = torch.cat([p.indices[0] for p in filled])
    order = torch.argsort(indices)  # loader order: the activation pass then reads like the loader
    sel = Selection(
        inputs=batches.select(batches.concat([p.inputs[0] for p in filled]), order),
        labels=torch.cat([p.labels[0] for p in filled])[order],
        indices=indices[order],
        losses=torch.cat([p.losses[0] for p in filled])[order],
        num_classes=num_classes,
        n_seen=seen,
        batch_size=largest,
    )
    if hold_parts:
        sel.holdout_inputs = batches.concat([h[0] for h in hold_parts])
        sel.holdout_labels = torch.cat([h[1] for h in hold_parts])
        sel.holdout_indices = torch.cat([h[2] for h in hold_parts])
    return sel


def _make_pools(n_trusted: int, buckets: int) -> list[_Pool]:
    """Split ``n_trusted`` over ``buckets`` (per class when balanced; the remainder to the first)."""
    base, extra = divmod(n_trusted, buckets)
    return [_Pool(capacity=base + (1 if c < extra else 0)) for c in range(buckets)]
