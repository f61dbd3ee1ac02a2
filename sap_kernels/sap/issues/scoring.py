"""Phase 6, the pass: every training sample's predicted class probabilities under a model.

One no-grad pass over the training loader in the dataset's order (``order``); only the
``[N, C]`` probabilities, the given labels and the positions are kept, so memory grows with N by
``C + 2`` numbers a sample, whatever the inputs are; with ``features=True`` also the classifier
head's input (``d`` floats a sample, for the neighbours' vote, ``neighbours``). Under
torch.distributed each rank reads its own shard and every rank ends with the whole table, sorted
by position.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data import batches
from ..data.objective import class_labels, logits_of
from ..data.order import OrderedSource, in_dataset_order
from ..runtime.distributed import Ranks, agreed
from ..runtime.forward import call_model
from ..runtime.guards import eval_modes
from ..runtime.wrappers import device_of, unwrap
from .neighbours import MAX_SAMPLES, head_inputs


@dataclass(frozen=True)
class SampleTable:
    """Per sample, sorted by position.

    positions: int64 ``[N]`` distinct, ascending (dataset indices, or pass order; ``order``).
    labels: int64 ``[N]`` given labels in ``[0, C)``.
    probabilities: float32 ``[N, C]`` (float64 for a float64 model), rows summing to 1.
    reordered: the loader shuffles and was read again in index order.
    features: float32 ``[N, d]``, the head's inputs, when asked for and found in every batch; else None.
    """

    positions: torch.Tensor
    labels: torch.Tensor
    probabilities: torch.Tensor
    reordered: bool
    features: Optional[torch.Tensor] = None


def probabilities_of(output: Any, n: int, batch_index: int) -> torch.Tensor:
    """``[n, C]`` class probabilities from a model output: softmax of logits ``[n, C]``, or
    ``[1 - p, p]`` with ``p = sigmoid`` of one logit per sample (``[n]`` or ``[n, 1]``)."""
    logits = logits_of(output)
    if logits.dim() == 0 or logits.shape[0] != n:
        raise ValueError(f"batch {batch_index}: the model returned {list(logits.shape)} for {n} labels; dim 0 "
                         "of the output must be the sample dim")
    logits = logits.detach().to(torch.promote_types(logits.dtype, torch.float32))
    if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        p = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1 - p, p], 1)
    if logits.dim() != 2:
        raise ValueError(f"batch {batch_index}: label issues need logits [batch, classes] or one logit per "
                         f"sample; the model returned {list(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"batch {batch_index}: the model's logits hold NaN or Inf")
    return F.softmax(logits, dim=1)


Rows = tuple[list[torch.Tensor], list[torch.Tensor], Optional[list[torch.Tensor]]]


def _local_pass(model: nn.Module, source: Iterable[Any], split: batches.Splitter, progress: bool,
                features: bool) -> Rows:
    """This rank's probabilities, labels and (when asked for and found in every batch) head inputs."""
    device = device_of(model)
    probs: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    feats: Optional[list[torch.Tensor]] = [] if features else None
    rows = 0
    with torch.no_grad(), eval_modes(model), (head_inputs(model) if features else nullcontext()) as heads:
        for b, batch in enumerate(tqdm(source, desc="SAP: scoring labels", disable=not progress, leave=False)):
            inputs, y = split(batch)
            if y.dim() == 0:
                raise ValueError(f"batch {b} has a 0-d label: give the DataLoader a batch_size")
            n = int(y.shape[0])
            if n == 0:
                continue
            batches.check_samples(inputs, n, b)
            output = call_model(model, batches.to_device(inputs, device))
            p = probabilities_of(output, n, b).cpu()
            labels.append(class_labels(y.cpu(), int(p.shape[1]), b))
            probs.append(p)
            rows += n
            if feats is not None and heads is not None:
                f = heads.take(logits_of(output), n)
                if f is None or rows > MAX_SAMPLES:  # no head input here, or too many: none kept
                    feats = None
                else:
                    feats.append(f)
    return probs, labels, feats


def _positions(indices: Optional[torch.Tensor], n: int, what: str) -> torch.Tensor:
    if indices is None:
        return torch.arange(n, dtype=torch.int64)
    if int(indices.numel()) != n:
        raise ValueError(f"{what}: its sampler drew {int(indices.numel())} indices but its batches held {n} "
                         "samples (a collate_fn that drops or adds samples?); label issues need one label a sample")
    return indices


def _gather(ranks: Ranks, positions: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor,
            feats: Optional[torch.Tensor], source: OrderedSource
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Every rank's rows. Positions in a shared data set stay; a rank's own shard's positions are
    offset by the lower ranks' spans (``order``), so that rank 0's samples come first."""
    pos = ranks.gather_rows(positions)
    shared = ranks.all_gather_ints(int(source.shared))
    if len(set(shared)) > 1:
        raise ValueError("some ranks read the training data through a DistributedSampler and some do not")
    if not shared[0]:
        span = int(positions.numel()) if source.span is None else source.span
        offsets = torch.tensor([0] + ranks.all_gather_ints(span)[:-1]).cumsum(0).tolist()
        pos = [p + o for p, o in zip(pos, offsets)]
    # The head's inputs only where every rank has them, of one width: every rank gathers or none does.
    widths = set(ranks.all_gather_ints(-1 if feats is None else int(feats.shape[1])))
    f = torch.cat(ranks.gather_rows(feats)) if feats is not None and len(widths) == 1 and -1 not in widths else None
    return torch.cat(pos), torch.cat(ranks.gather_rows(labels)), torch.cat(ranks.gather_rows(probs)), f


def score_samples(model: nn.Module, loader: Iterable[Any], split: batches.Splitter = batches.split_batch, *,
                  ranks: Optional[Ranks] = None, progress: bool = True, what: str = "train_loader",
                  features: bool = False) -> SampleTable:
    """Phase 6's pass: ``model``'s class probabilities on every sample of ``loader``.

    Args:
        model: logits ``[B, C]`` or one logit ``[B]``/``[B, 1]`` (also as ``.logits``); run in eval
            mode without gradients, its modes restored.
        loader: the training batches (a shuffling DataLoader is read in index order, ``order``).
        split: batch -> ``(inputs, labels)``; labels int class indices ``[B]``.
        ranks: under torch.distributed, each rank passes its shard; all get the whole table.
        what: the argument's name in errors.
        features: also keep the classifier head's input per sample (``SampleTable.features``).
    """
    inner, _ = unwrap(model)
    source = in_dataset_order(loader)
    probs, labels, feats = agreed(ranks, "scoring the training samples",
                                  lambda: _local_pass(inner, source.batches, split, progress, features))
    widths = {int(p.shape[1]) for p in probs}
    if len(widths) > 1:
        raise ValueError(f"the model returned {sorted(widths)} classes in different batches of {what}")
    width = max(widths, default=0) if ranks is None else max(ranks.all_gather_ints(max(widths, default=0)))
    p = torch.cat(probs) if probs else torch.zeros(0, width)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)
    pos = _positions(source.indices, int(y.numel()), what)
    f = torch.cat(feats) if feats else None
    if ranks is not None:
        pos, y, p, f = _gather(ranks, pos, y, p, f, source)
    return _sorted_unique(pos, y, p, f, source.reordered, what)


def _sorted_unique(pos: torch.Tensor, y: torch.Tensor, p: torch.Tensor, f: Optional[torch.Tensor], reordered: bool,
                   what: str) -> SampleTable:
    """Rows sorted by position, a position held twice (a padded DistributedSampler) kept once."""
    if int(y.numel()) == 0:
        raise ValueError(f"{what} yielded no samples")
    order = torch.argsort(pos, stable=True)
    pos, y, p = pos[order], y[order], p[order]
    first = torch.ones_like(pos, dtype=torch.bool)
    first[1:] = pos[1:] != pos[:-1]
    return SampleTable(pos[first], y[first], p[first], reordered, None if f is None else f[order][first])
