"""Phase 1, ``select_trusted``: rank every training sample and keep the most trusted ones.

One pass over the loader, in eval mode. Only the candidates (and an optional seeded hold-out) are
kept, on the host: memory is ``O(n_trusted + holdout)`` samples however large the loader is, and
the loader may shuffle (samples are identified by their position in the order it yielded them).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from . import batches
from .guards import eval_modes
from .objective import Objective, PerSample
from .rankers import RANKERS, Ranker
from .samples import Part, SampleSet, keep_lowest, merge
from .wrappers import device_of, unwrap

# The paper's trusted-set size, and the share of a small data set used instead (see
# ``trusted_count``; chosen by measurement, python/README.md "Choosing alpha without unseen data").
DEFAULT_N_TRUSTED = 1000
DEFAULT_TRUSTED_FRACTION = 0.25


@dataclass
class TrustedSet:
    """Outcome of ``select_trusted``.

    samples: the trusted samples (inputs on the host, labels, ``indices`` into the loader's order,
        ``scores``: the ranking score, e.g. the loss).
    holdout: samples set aside for choosing alpha (never trusted), or None.
    n_seen: samples the loader yielded.
    reference: a seeded uniform sample of the loader (trusted samples included), or None.
    fit: share of the samples the model scores right (its training accuracy on the given
        labels; None with a custom ``loss_fn``).
    notices: what the selection had to decide on its own (a smaller trusted set on small data, a
        class with too few samples), in words for the report.
    """

    samples: SampleSet
    holdout: Optional[SampleSet]
    n_seen: int
    strategy: str
    class_balanced: bool
    num_classes: Optional[int] = None
    notices: list[str] = field(default_factory=list)
    reference: Optional[SampleSet] = None
    fit: Optional[float] = None

    @property
    def indices(self) -> torch.Tensor:
        """``[n]`` int64 positions of the trusted samples in the loader's sample order."""
        return self.samples.indices

    @property
    def labels(self) -> torch.Tensor:
        return self.samples.labels

    @property
    def scores(self) -> torch.Tensor:
        """``[n]`` float32 ranking scores (the loss for ``strategy="loss"``)."""
        return self.samples.scores

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        hold = f", hold-out {len(self.holdout)}" if self.holdout is not None else ""
        return (f"TrustedSet({len(self)} of {self.n_seen} samples by {self.strategy}"
                f"{', class-balanced' if self.class_balanced else ''}{hold})")


def check_count(value: Any, name: str) -> int:
    """A positive integral count (``int``, ``numpy.int64``, ...; not bool), or a named error."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


def check_n_trusted(value: Any) -> Optional[Union[int, float]]:
    """``n_trusted``: None (the default policy), a count, or a fraction in (0, 1]."""
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        if not 0 < value <= 1:
            raise ValueError(f"n_trusted must be a count >= 1 or a fraction in (0, 1], got {value!r}")
        return value
    return check_count(value, "n_trusted")


def trusted_count(requested: Optional[Union[int, float]], available: int, notices: list[str]) -> int:
    """How many samples to trust among ``available`` (see ``select_trusted``'s ``n_trusted``)."""
    if isinstance(requested, float):
        return max(1, math.ceil(requested * available))
    if requested is not None:
        return requested
    n = min(DEFAULT_N_TRUSTED, max(1, math.ceil(DEFAULT_TRUSTED_FRACTION * available)))
    if n < DEFAULT_N_TRUSTED:
        notices.append(
            f"the data holds {available} samples available for trusting, too few for the default "
            f"{DEFAULT_N_TRUSTED} trusted samples: trusting the {n} ranked best "
            f"({DEFAULT_TRUSTED_FRACTION:.0%}; pass n_trusted= to choose)"
        )
    return n


class _Pool:
    """The ``capacity`` lowest-scoring samples offered so far (compacted lazily)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.parts: list[Part] = []
        self.size = 0
        self.threshold = math.inf  # a sample scoring above it cannot be among the lowest

    def offer(self, part: Part) -> None:
        if self.size >= self.capacity:
            keep = (part.scores <= self.threshold).nonzero().squeeze(1)
            if keep.numel() == 0:
                return
            part = part.select(keep)
        self.parts.append(part)
        self.size += len(part)
        if self.size > 2 * self.capacity:
            self.compact()

    def compact(self) -> list[Part]:
        self.parts = keep_lowest(self.parts, self.capacity)
        self.size = sum(len(p) for p in self.parts)
        if self.size >= self.capacity:
            self.threshold = float(max(float(p.scores.max()) for p in self.parts))
        return self.parts


class _Selector:
    """Streams batches into per-class (or one) pools and the hold-out."""

    def __init__(self, ranker: Ranker, objective: Objective, class_balanced: bool, capacity: int,
                 holdout: float, max_holdout: int, seed: int, reference: int = 0):
        self.ranker, self.objective = ranker, objective
        self.class_balanced = class_balanced
        self.capacity = capacity
        self.overall = _Pool(capacity)  # also fills classes that fall short, when balanced
        self.per_class: dict[int, _Pool] = {}
        self.holdout, self.max_holdout = holdout, max_holdout
        self.generator = torch.Generator().manual_seed(seed)
        self.held: list[Part] = []
        self.n_held = self.seen = self.largest = 0
        self.num_classes: Optional[int] = None
        self.reference = _Pool(reference) if reference else None  # uniform: lowest random keys
        self.correct = 0.0

    def feed(self, model: nn.Module, batch: Any, split: batches.Splitter, b: int, device: torch.device) -> None:
        inputs, labels = split(batch)
        if labels.dim() == 0:
            raise ValueError(
                f"batch {b} has a 0-d label: the loader yields single unbatched samples; give the DataLoader a "
                "batch_size (SAP needs a sample dim on inputs and labels)"
            )
        n = int(labels.shape[0])
        if n == 0:
            return
        batches.check_samples(inputs, n, b)
        scores, output = self.ranker(model, batches.to_device(inputs, device), labels, b)
        classes = self.objective.classes(output, labels.cpu(), b) if self.class_balanced else None
        self.num_classes = self.objective.num_classes(output, n, b)
        part = Part(batches.to_host(inputs), labels.detach().cpu(), torch.arange(self.seen, self.seen + n), scores)
        if self.objective.loss_fn is None:
            self.correct += float(self.objective.scores(output, labels, b).sum())
        if self.reference is not None:
            keys = torch.rand(n, generator=self.generator)
            self.reference.offer(Part(part.inputs, part.labels, part.indices, keys))
        self.seen += n
        self.largest = max(self.largest, n)
        part, classes = self._hold_out(part, classes)
        if len(part):
            self._offer(part, classes)

    def _hold_out(self, part: Part, classes: Optional[torch.Tensor]) -> tuple[Part, Optional[torch.Tensor]]:
        if self.holdout <= 0 or self.n_held >= self.max_holdout:
            return part, classes
        hold = torch.rand(len(part), generator=self.generator) < self.holdout
        hold &= torch.cumsum(hold.long(), 0) <= self.max_holdout - self.n_held
        if not bool(hold.any()):
            return part, classes
        self.held.append(part.select(hold.nonzero().squeeze(1)))
        self.n_held += int(hold.sum())
        rest = (~hold).nonzero().squeeze(1)
        return part.select(rest), None if classes is None else classes[rest]

    def _offer(self, part: Part, classes: Optional[torch.Tensor]) -> None:
        self.overall.offer(part)
        if classes is None:
            return
        for c in torch.unique(classes).tolist():
            pool = self.per_class.setdefault(int(c), _Pool(self.capacity))
            pool.offer(part.select((classes == c).nonzero().squeeze(1)))

    def result(self, requested: Optional[Union[int, float]], strategy: str) -> TrustedSet:
        if self.seen == 0:
            raise ValueError("the loader yielded no samples")
        available = self.seen - self.n_held
        notices: list[str] = []
        n = trusted_count(requested, available, notices)
        if n > available:
            where = f" after holding out {self.n_held} for choosing alpha" if self.n_held else ""
            raise ValueError(
                f"n_trusted={n} is larger than the {available} training samples available{where}; "
                "lower n_trusted" + (" or pass val_loader / alpha" if self.n_held else "")
            )
        parts = self._balanced(n, notices) if self.class_balanced else keep_lowest(self.overall.compact(), n)
        holdout = SampleSet(merge(self.held), self.largest) if self.held else None
        reference = SampleSet(merge(self.reference.compact()), self.largest) if self.reference is not None else None
        fit = self.correct / self.seen if self.objective.loss_fn is None else None
        return TrustedSet(SampleSet(parts, self.largest), holdout, self.seen, strategy, self.class_balanced,
                          self.num_classes, notices, reference, fit)

    def _balanced(self, n: int, notices: list[str]) -> list[Part]:
        """``n / classes`` lowest per class; a class short of its share is filled from the others."""
        classes = self.num_classes or (max(self.per_class) + 1 if self.per_class else 1)
        base, extra = divmod(n, classes)
        chosen: list[Part] = []
        short = []
        for c in range(classes):
            quota = base + (1 if c < extra else 0)
            pool = self.per_class.get(c)
            got = keep_lowest(pool.compact(), quota) if pool is not None else []
            if sum(len(p) for p in got) < quota:
                short.append((c, quota, sum(len(p) for p in got)))
            chosen += got
        missing = n - sum(len(p) for p in chosen)
        if missing:
            taken = torch.cat([p.indices for p in chosen]) if chosen else torch.zeros(0, dtype=torch.long)
            rest = [p.select((~torch.isin(p.indices, taken)).nonzero().squeeze(1)) for p in self.overall.compact()]
            chosen += keep_lowest(rest, missing)
            notices.append("class-balanced selection: " + ", ".join(
                f"class {c} had {have} of its {quota}" for c, quota, have in short)
                + f"; the remaining {missing} trusted samples are the best ranked of the other classes")
        return merge(chosen)


def select_trusted(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    n_trusted: Optional[Union[int, float]] = None,
    class_balanced: Optional[bool] = None,
    strategy: str = "loss",
    holdout: float = 0.0,
    max_holdout: int = 10_000,
    reference: int = 0,
    seed: int = 0,
    loss_fn: Optional[PerSample] = None,
    batch_fn: Optional[batches.Splitter] = None,
    input_key: Optional[Union[str, list[str]]] = None,
    label_key: Optional[str] = None,
    progress: bool = True,
) -> TrustedSet:
    """Phase 1: rank every sample of ``loader`` and keep the ``n_trusted`` most trusted.

    Args:
        model: the classifier (run in eval mode; its modes are restored).
        loader: re-iterable or one-shot iterable of batches (see ``sap_kernels.project``).
        n_trusted: a count; a fraction in (0, 1) of the samples available; or None: the paper's
            1000, or a quarter of the available samples when that is fewer (stated in ``notices``).
            An explicit count larger than the data raises.
        class_balanced: the best ``n_trusted / classes`` of each class (a class short of its share
            is filled with the best of the others, stated in ``notices``). None (default): True
            for class labels under the default loss (as the published scripts select), False
            with a custom ``loss_fn``.
        strategy: ``"loss"`` (lowest per-sample loss, the paper's criterion) or ``"random"``.
        holdout, max_holdout, seed: with ``holdout > 0`` each sample is set aside with that
            probability (seeded; at most ``max_holdout``) for choosing alpha, and never trusted.
        reference: keep a seeded uniform sample of up to this many samples (trusted ones
            included) as ``TrustedSet.reference``, for choosing alpha on training data.
        loss_fn: per-sample loss ``(output, labels) -> [B]`` replacing the default (cross-entropy,
            or BCE-with-logits for one logit per sample).
        batch_fn, input_key, label_key: how a batch becomes ``(inputs, labels)``.
        progress: a tqdm bar over the loader.
    Returns:
        a ``TrustedSet``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    requested = check_n_trusted(n_trusted)
    if strategy not in RANKERS:
        raise ValueError(f"strategy must be one of {sorted(RANKERS)}, got {strategy!r}")
    if not isinstance(holdout, (int, float)) or isinstance(holdout, bool) or not 0 <= holdout < 1:
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    check_loader(loader, "loader")
    split = batches.make_splitter(batch_fn, input_key, label_key)
    objective = Objective(loss_fn=loss_fn)
    if class_balanced is None:
        class_balanced = loss_fn is None
    elif not isinstance(class_balanced, bool):
        raise TypeError(f"class_balanced must be True, False or None, got {class_balanced!r}")
    inner, _ = unwrap(model)
    device = device_of(inner)
    capacity = requested if isinstance(requested, int) else DEFAULT_N_TRUSTED if requested is None else 2**62
    if reference:
        reference = check_count(reference, "reference")
    selector = _Selector(RANKERS[strategy](objective, seed), objective, class_balanced, capacity,
                         float(holdout), check_count(max_holdout, "max_holdout"), seed, reference)
    with eval_modes(inner):
        for b, batch in enumerate(tqdm(loader, desc="SAP: ranking samples", disable=not progress, leave=False)):
            selector.feed(inner, batch, split, b, device)
    return selector.result(requested, strategy)


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
