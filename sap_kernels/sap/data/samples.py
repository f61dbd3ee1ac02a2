"""Samples kept on the host (trusted samples, a hold-out), grouped by shape.

Loaders may yield batches whose per-sample shapes differ (images of several sizes for a fully
convolutional model, token batches padded per batch). Samples are kept as *parts*, each a nested
batch of one shape; parts of the same shape are merged, so the number of parts stays the number
of distinct shapes. Batches are read back part by part, in loader order within each part.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import torch

from . import batches

# Parts with equal keys can be concatenated: inputs' signature, per-sample label shape, label dtype.
PartKey = tuple[batches.Signature, tuple[int, ...], torch.dtype]


@dataclass
class Part:
    """Samples of one shape: ``inputs`` nested CPU tensors with ``n`` rows on dim 0, ``labels``
    ``[n, ...]``, ``indices`` ``[n]`` int64 (positions in the loader's sample order), ``scores``
    ``[n]`` float32 (the ranking score; lower is more trusted), ``classes`` ``[n]`` int64 (for
    class balancing) or None."""

    inputs: Any
    labels: torch.Tensor
    indices: torch.Tensor
    scores: torch.Tensor
    classes: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def select(self, index: torch.Tensor) -> "Part":
        classes = None if self.classes is None else self.classes.index_select(0, index)
        return Part(batches.select(self.inputs, index), self.labels.index_select(0, index),
                    self.indices.index_select(0, index), self.scores.index_select(0, index), classes)

    def shifted(self, offset: int) -> "Part":
        """The same samples with ``offset`` added to their indices."""
        return Part(self.inputs, self.labels, self.indices + offset, self.scores, self.classes)

    def key(self) -> PartKey:
        return (batches.signature(self.inputs), tuple(self.labels.shape[1:]), self.labels.dtype)


def merge(parts: Sequence[Part]) -> list[Part]:
    """Parts of equal shape concatenated (first-seen order of shapes), each sorted by index."""
    groups: dict[PartKey, list[Part]] = {}
    for p in parts:
        if len(p):
            groups.setdefault(p.key(), []).append(p)
    out = []
    for same in groups.values():
        classes = None if any(p.classes is None for p in same) else torch.cat([p.classes for p in same])  # type: ignore[misc]
        joined = same[0] if len(same) == 1 else Part(
            batches.concat([p.inputs for p in same]), torch.cat([p.labels for p in same]),
            torch.cat([p.indices for p in same]), torch.cat([p.scores for p in same]), classes)
        order = torch.argsort(joined.indices)
        out.append(joined if bool((order == torch.arange(len(order))).all()) else joined.select(order))
    return out


def lowest(scores: torch.Tensor, indices: torch.Tensor, n: int) -> torch.Tensor:
    """Positions of the ``n`` lowest scores, ties to the lower index."""
    order = torch.argsort(indices, stable=True)
    return order[torch.argsort(scores[order].double(), stable=True)][:n]


def keep_lowest(parts: Sequence[Part], capacity: int) -> list[Part]:
    """The ``capacity`` samples with the lowest scores (ties: lower index first), merged."""
    if not parts:
        return []
    scores = torch.cat([p.scores for p in parts])
    order = lowest(scores, torch.cat([p.indices for p in parts]), capacity)
    chosen = torch.zeros(scores.shape[0], dtype=torch.bool)
    chosen[order] = True
    out, start = [], 0
    for p in parts:
        mask = chosen[start:start + len(p)]
        start += len(p)
        if bool(mask.any()):
            out.append(p if bool(mask.all()) else p.select(mask.nonzero().squeeze(1)))
    return merge(out)


@dataclass
class SampleSet:
    """Samples on the host in parts of one shape each; ``batches()`` reads them back."""

    parts: list[Part]
    batch_size: int

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    @property
    def labels(self) -> torch.Tensor:
        """``[n, ...]`` labels, part by part (each part in loader order)."""
        return torch.cat([p.labels for p in self.parts]) if self.parts else torch.zeros(0, dtype=torch.long)

    @property
    def indices(self) -> torch.Tensor:
        """``[n]`` int64 positions in the loader's sample order, matching ``labels``."""
        return torch.cat([p.indices for p in self.parts]) if self.parts else torch.zeros(0, dtype=torch.long)

    @property
    def scores(self) -> torch.Tensor:
        return torch.cat([p.scores for p in self.parts]) if self.parts else torch.zeros(0)

    def batches(self, batch_size: int | None = None) -> Iterator[tuple[Any, torch.Tensor]]:
        """``(inputs, labels)`` batches of at most ``batch_size`` samples of one shape."""
        bs = max(1, int(batch_size or self.batch_size))
        for p in self.parts:
            for a in range(0, len(p), bs):
                yield batches.slice_rows(p.inputs, a, a + bs), p.labels[a:a + bs]

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        return self.batches()

    def subset(self, positions: torch.Tensor) -> "SampleSet":
        """The samples at ``positions`` (into the concatenated order of ``indices``)."""
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[positions] = True
        out, start = [], 0
        for p in self.parts:
            m = mask[start:start + len(p)]
            start += len(p)
            if bool(m.any()):
                out.append(p.select(m.nonzero().squeeze(1)))
        return SampleSet(out, self.batch_size)


def _bytes(t: torch.Tensor) -> bytes:
    return t.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes()


def content_keys(inputs: Any, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``[n]`` float64 keys in ``[0, 1)``, one per sample, from a hash (CRC-32) of its bytes.

    Uniform over distinct samples and seeded, and a function of the sample alone: the same
    samples get the same keys however a loader batches or shards them, so a sample drawn by key
    is the same on one process or several.
    """
    n = int(labels.shape[0])
    start = zlib.crc32(seed.to_bytes(8, "little", signed=True))
    tensors = [leaf for _, leaf in batches.leaves(inputs) if isinstance(leaf, torch.Tensor)] + [labels]
    keys = []
    for i in range(n):
        crc = start
        for t in tensors:
            crc = zlib.crc32(_bytes(t[i]), crc)
        keys.append(crc / 2**32)
    return torch.tensor(keys, dtype=torch.float64)
