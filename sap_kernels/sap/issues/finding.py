"""Phase 6: label issues from a (corrected) model's own probabilities on its training samples.

A model that memorised its noisy labels gives every training label a high probability, so its
in-sample probabilities say little about which labels are wrong; that is why confident learning
asks for K-fold cross-validated ones (K extra trainings). SAP removes the directions that carry the
memorised noise, and the corrected model's in-sample probabilities stand in for out-of-sample
ones at the cost of one forward pass (measured: ``python/label_issues_study.py``).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

from torch import nn
from torch.utils.data import DataLoader

from ..data import batches
from ..runtime.distributed import Ranks
from ..runtime.wrappers import device_of, unwrap
from .label_issues import LabelIssues, build
from .neighbours import DEFAULT_NEIGHBOURS, MAX_SAMPLES, neighbour_votes
from .rules import DEFAULT_RULE, Rule, check_rule, distribution, flag
from .scoring import SampleTable, score_samples


def _check_count(table: SampleTable, loader: Iterable[Any], expected: Optional[int], ranks: Optional[Ranks],
                 what: str) -> None:
    """The loader holds the samples the model was corrected on (a drop_last DataLoader's tail aside:
    it is scored too, the correction never saw it)."""
    n = int(table.positions.numel())
    if expected is None or n == expected:
        return
    tail = (loader.batch_size or 0) if isinstance(loader, DataLoader) and loader.drop_last else 0
    if 0 <= n - expected < tail * (1 if ranks is None else ranks.size):
        return
    raise ValueError(f"{what} holds {n} samples but the model was corrected on {expected}: pass the training "
                     "loader the result was computed from")


def _no_neighbours(table: SampleTable) -> str:
    if len(table.labels) > MAX_SAMPLES:
        why = (f"{len(table.labels)} samples are more than the exact neighbours' vote takes ({MAX_SAMPLES}: N^2 "
               "similarities)")
    else:
        why = ("no Linear/Conv layer's output is the model's logits, so the classifier head's input (the "
               "neighbours' features) could not be taken")
    return f"{why}: labels were judged by the probabilities alone (rule argmax)"


def label_issues_of(
    model: nn.Module, loader: Iterable[Any], *, rule: Rule = DEFAULT_RULE, alpha: float = math.inf,
    split: batches.Splitter = batches.split_batch, ranks: Optional[Ranks] = None, expected: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None, progress: bool = True, what: str = "train_loader",
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> LabelIssues:
    """Score every sample of ``loader`` with ``model`` and flag the labels ``rule`` calls wrong.

    Args:
        model: the (corrected) classifier; logits ``[B, C]`` or one logit per sample. Not changed.
        loader: the training batches, ``(inputs, labels)`` or via ``split``; int labels in ``[0, C)``.
        rule: ``"neighbours"`` (default), ``"argmax"``, ``"confident_learning"`` or ``"prune_by_noise_rate"``
            (``sap.issues.rules``).
        alpha: the alpha ``model`` was corrected with, recorded.
        ranks: under torch.distributed, each rank passes its shard; every rank gets every sample.
        expected: the number of samples the model was corrected on, checked against the loader.
        class_names: ``C`` names for printing and the report.
        neighbours: ``k`` of ``rule="neighbours"`` (the pass then also keeps the head's input, ``[N, d]``).
    """
    rule = check_rule(rule)
    if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1:
        raise ValueError(f"neighbours must be an int >= 1, got {neighbours!r}")
    if class_names is not None and (isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names)):
        raise TypeError("class_names must be a sequence of str")
    table = score_samples(model, loader, split, ranks=ranks, progress=progress, what=what,
                          features=rule == "neighbours")
    _check_count(table, loader, expected, ranks, what)
    c = int(table.probabilities.shape[1])
    if class_names is not None and len(class_names) != c:
        raise ValueError(f"class_names has {len(class_names)} names but the model outputs {c} classes")
    notices = ["the training loader shuffles: it was read again in dataset index order, so positions are "
               "dataset indices"] if table.reordered else []
    votes = None
    if rule == "neighbours" and (table.features is None or len(table.labels) > MAX_SAMPLES):
        rule = "argmax"
        notices.append(_no_neighbours(table))
    elif rule == "neighbours" and table.features is not None:
        votes = neighbour_votes(table.features, table.labels, c, neighbours, device_of(unwrap(model)[0]))
    issues = flag(table.labels, table.probabilities, rule, votes=votes, k=neighbours)
    dist = distribution(table.probabilities, rule, votes, neighbours)
    return build(table.positions, table.labels, table.probabilities, dist, issues, rule, alpha, class_names, notices)
