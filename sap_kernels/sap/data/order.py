"""Reading a training loader in the dataset's order, so that a position means a dataset index.

Label issues are reported per sample position, and a user looks a position up in their dataset
(``dataset[i]``). A shuffling ``DataLoader`` yields its samples in a new order on every pass, so
its pass order is no position at all. The rule, decided here once:

- a ``DataLoader`` over a map-style dataset is read again in ascending index order over exactly
  the indices its sampler draws (every index for ``RandomSampler``/``SequentialSampler``, this
  rank's shard for ``DistributedSampler``, the subset for ``SubsetRandomSampler``; an index drawn
  twice is read once), with the loader's own ``collate_fn``, workers and batch size; positions
  are those dataset indices;
- any other iterable (a list of batches, a generator, a ``DataLoader`` over an
  ``IterableDataset``) has no index to sort by: positions are the order it yields, 0, 1, ...

Under torch.distributed, a ``DistributedSampler``'s indices are already indices of the one data
set all ranks share; any other loader is a rank's own shard, and its positions are offset by the
sizes of the lower ranks' shards (``span``), as if the shards were concatenated, rank 0 first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset

# Batch size for re-reading a DataLoader that was built with a custom batch_sampler.
DEFAULT_BATCH = 256


@dataclass(frozen=True)
class OrderedSource:
    """Batches to read and what their samples' positions are.

    batches: an iterable of the loader's batches, in dataset order where there is one.
    indices: int64 ``[n]`` dataset index of each sample read (in read order), or None when the
        positions are the read order itself.
    reordered: True when the loader shuffles and was re-read in index order.
    shared: the indices are of a data set every rank shares (a ``DistributedSampler``).
    span: how many positions this loader's data set takes (its length), None for pass order.
    """

    batches: Iterable[Any]
    indices: Optional[torch.Tensor]
    reordered: bool
    shared: bool = False
    span: Optional[int] = None


def sampler_indices(loader: DataLoader[Any]) -> torch.Tensor:
    """int64 ``[n]`` distinct dataset indices one pass of ``loader`` reads, ascending."""
    if loader.batch_sampler is not None and type(loader.batch_sampler).__name__ != "BatchSampler":
        drawn = [int(i) for batch in loader.batch_sampler for i in batch]
    else:
        drawn = [int(i) for i in loader.sampler]
    if not drawn:
        return torch.zeros(0, dtype=torch.int64)
    out: torch.Tensor = torch.unique(torch.tensor(drawn, dtype=torch.int64))
    return out


def _is_shuffled(loader: DataLoader[Any], indices: torch.Tensor) -> bool:
    sampler = loader.sampler
    return type(sampler).__name__ != "SequentialSampler" or int(indices.numel()) != len(sampler)  # type: ignore[arg-type]


def _reread(loader: DataLoader[Any], indices: torch.Tensor) -> DataLoader[Any]:
    """``loader``'s dataset read over ``indices`` in that order, batched as ``loader`` batches."""
    batch = loader.batch_size if loader.batch_size is not None else DEFAULT_BATCH
    workers = loader.num_workers
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"prefetch_factor": loader.prefetch_factor, "persistent_workers": False,
                 "worker_init_fn": loader.worker_init_fn, "multiprocessing_context": loader.multiprocessing_context}
    return DataLoader(loader.dataset, batch_size=batch, sampler=indices.tolist(), collate_fn=loader.collate_fn,
                      num_workers=workers, pin_memory=loader.pin_memory, timeout=loader.timeout, **extra)


def in_dataset_order(loader: Iterable[Any]) -> OrderedSource:
    """``loader`` as batches whose sample positions are known (see the module docstring)."""
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return OrderedSource(loader, None, False)
    indices = sampler_indices(loader)
    shared = isinstance(loader.sampler, DistributedSampler)
    span = len(loader.dataset)  # type: ignore[arg-type]
    if not _is_shuffled(loader, indices):
        return OrderedSource(_reread(loader, indices) if loader.drop_last else loader, indices, False, shared, span)
    return OrderedSource(_reread(loader, indices), indices, True, shared, span)


def positions_order(loader: Iterable[Any], *, given: bool) -> Iterable[Any]:
    """``loader`` as batches to read so that sample position ``i`` is dataset index ``i``.

    A shuffling ``DataLoader`` over a whole map-style dataset is re-read in index order
    (``in_dataset_order``); any other iterable is read as it yields. With given positions
    (``given=True``) a ``DataLoader`` whose sampler draws only part of its dataset, or draws a
    dataset over another index set, is refused: its pass order is no dataset index.
    """
    source = in_dataset_order(loader)
    if source.indices is None:
        return loader
    whole = source.span is not None and int(source.indices.numel()) == source.span
    if given and not whole:
        raise ValueError(
            f"trusted=<positions> are dataset indices, but this DataLoader's sampler draws "
            f"{int(source.indices.numel())} of its dataset's {source.span} samples: pass a DataLoader over exactly "
            "the samples the positions refer to (e.g. a Subset) with shuffle=False")
    return source.batches if source.reordered and whole else loader
