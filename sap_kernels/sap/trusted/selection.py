"""Phase 1, ``select_trusted``: rank every training sample and keep the most trusted ones.

One pass over the loader, in eval mode. Only the candidates (and an optional seeded hold-out) are
kept, on the host: memory is ``O(n_trusted + holdout)`` samples however large the loader is, and
the loader may shuffle (samples are identified by their position in the order it yielded them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import batches
from ..data.loaders import check_loader
from ..data.objective import Objective, PerSample
from ..data.order import positions_order
from ..data.samples import Part, SampleSet, content_keys, keep_lowest, merge
from ..options.choices import check_count, check_n_trusted
from ..options.configs import BatchFormat, Parallel, TrustConfig
from ..runtime.distributed import ProcessGroup, Ranks, agreed, dist_max, resolve_ranks
from ..runtime.guards import eval_modes
from ..runtime.wrappers import device_of, unwrap
from .rankers import RANKERS, Ranker
from .rule import Candidates, choose

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
    own_scores: ``[n_seen on this process]`` float32, each sample's score (accuracy) under the
        unchanged model as the ranking pass measured it, by position in this process's part of
        the loader (global position minus ``own_offset``); None with a custom ``loss_fn``.
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
    own_scores: Optional[torch.Tensor] = None
    own_offset: int = 0

    def unchanged_sum(self, samples: SampleSet) -> Optional[tuple[float, int]]:
        """``(sum, count)`` of the unchanged model's scores over ``samples`` (this process's,
        identified by their global ``indices``), from the ranking pass; None when not measured."""
        if self.own_scores is None:
            return None
        local = samples.indices - self.own_offset
        if local.numel() and (int(local.min()) < 0 or int(local.max()) >= self.own_scores.numel()):
            return None
        return float(self.own_scores[local].double().sum()), int(local.numel())

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


class _RankingPass:
    """Streams batches into per-class (or one) pools, the hold-out and the reference sample."""

    def __init__(self, ranker: Ranker, objective: Objective, class_balanced: bool, capacity: int,
                 holdout: float, max_holdout: int, seed: int, reference: int = 0):
        self.ranker, self.objective = ranker, objective
        self.class_balanced = class_balanced
        self.capacity = capacity
        self.overall = _Pool(capacity)  # also fills classes that fall short, when balanced
        self.per_class: dict[int, _Pool] = {}
        self.holdout, self.max_holdout, self.seed = holdout, max_holdout, seed
        self.held: list[Part] = []
        self.n_held = self.seen = self.largest = 0
        self.num_classes: Optional[int] = None
        self.reference = _Pool(reference) if reference else None  # uniform: lowest content keys
        self.own: list[torch.Tensor] = []  # per batch: each sample's score under the unchanged model
        self.given: Optional[torch.Tensor] = None  # indices known to be clean: scored 0, the rest 1
        self.given_length: Optional[int] = None  # given as a bool mask: the samples it must cover

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
        host, labels = batches.to_host(inputs), labels.detach().cpu()
        indices = torch.arange(self.seen, self.seen + n)
        if self.given is not None:
            scores = (~torch.isin(indices, self.given)).float()
        part = Part(host, labels, indices, scores, classes)
        if self.objective.loss_fn is None:
            self.own.append(self.objective.scores(output, labels, b).detach().float().cpu())
        keys = content_keys(host, labels, self.seed) if self.reference is not None or self.holdout > 0 else None
        if self.reference is not None and keys is not None:
            self.reference.offer(Part(host, labels, part.indices, keys.float()))
        self.seen += n
        self.largest = max(self.largest, n)
        part = self._hold_out(part, keys)
        if len(part):
            self._offer(part)

    def _hold_out(self, part: Part, keys: Optional[torch.Tensor]) -> Part:
        if keys is None or self.n_held >= self.max_holdout:
            return part
        hold = keys < self.holdout
        if self.given is not None:  # given clean positions are never held out
            hold &= ~torch.isin(part.indices, self.given)
        hold &= torch.cumsum(hold.long(), 0) <= self.max_holdout - self.n_held
        if not bool(hold.any()):
            return part
        self.held.append(part.select(hold.nonzero().squeeze(1)))
        self.n_held += int(hold.sum())
        return part.select((~hold).nonzero().squeeze(1))

    def _offer(self, part: Part) -> None:
        self.overall.offer(part)
        if part.classes is None:
            return
        for c in torch.unique(part.classes).tolist():
            pool = self.per_class.setdefault(int(c), _Pool(self.capacity))
            pool.offer(part.select((part.classes == c).nonzero().squeeze(1)))

    @property
    def correct(self) -> float:
        """Sum of the unchanged model's scores over the samples seen (0 without them)."""
        return sum(float(o.double().sum()) for o in self.own)

    def candidates(self) -> list[Part]:
        """Every sample still in a pool, once (by index)."""
        parts = self.overall.compact() + [p for pool in self.per_class.values() for p in pool.compact()]
        seen: set[int] = set()
        out = []
        for p in parts:
            fresh = [i for i, x in enumerate(p.indices.tolist()) if x not in seen]
            seen.update(p.indices[fresh].tolist())
            if fresh:
                out.append(p.select(torch.tensor(fresh, dtype=torch.long)))
        return merge(out)

    def result(self, requested: Optional[Union[int, float]], strategy: str, ranks: Optional[Ranks]) -> TrustedSet:
        totals = _Totals.of(self, ranks)
        if totals.seen == 0:
            raise ValueError("the loader yielded no samples")
        available = totals.seen - totals.held
        notices: list[str] = []
        if self.given is not None:
            if self.given_length is not None and self.given_length != totals.seen:
                raise ValueError(f"indices: the bool mask has {self.given_length} entries but the loader yielded "
                                 f"{totals.seen} samples; pass one entry per sample")
            beyond = self.given[self.given >= totals.seen]
            if beyond.numel():
                raise ValueError(f"indices {beyond[:5].tolist()} are beyond the {totals.seen} samples the loader "
                                 "yielded")
            requested = int(self.given.numel())
        n = trusted_count(requested, available, notices)
        if n > available:
            where = f" after holding out {totals.held} for choosing alpha" if totals.held else ""
            raise ValueError(
                f"n_trusted={n} is larger than the {available} training samples available{where}; "
                "lower n_trusted" + (" or pass val_loader / alpha" if totals.held else "")
            )
        local = [p.shifted(totals.offset) for p in self.candidates()]
        table = _table(local, ranks)
        chosen = choose(table, n, self.class_balanced, totals.num_classes, notices)
        parts = [p.select(torch.isin(p.indices, chosen).nonzero().squeeze(1)) for p in local]
        shift = totals.offset
        holdout = SampleSet(merge([p.shifted(shift) for p in self.held]), self.largest) if totals.held else None
        reference = None if self.reference is None else SampleSet(
            merge([p.shifted(shift) for p in self.reference.compact()]), self.largest)
        own = torch.cat(self.own) if self.objective.loss_fn is None and self.own else None
        return TrustedSet(SampleSet(merge(parts), self.largest), holdout, totals.seen, strategy, self.class_balanced,
                          totals.num_classes, notices, reference, totals.fit, own, totals.offset)


@dataclass
class _Totals:
    """Counts over every rank, and where this rank's samples start in the global order."""

    seen: int
    held: int
    offset: int
    num_classes: Optional[int]
    fit: Optional[float]

    @classmethod
    def of(cls, sel: _RankingPass, ranks: Optional[Ranks]) -> "_Totals":
        fit_known = sel.objective.loss_fn is None
        if ranks is None:
            fit = sel.correct / sel.seen if fit_known and sel.seen else None
            return cls(sel.seen, sel.n_held, 0, sel.num_classes, fit)
        seen = ranks.all_gather_ints(sel.seen)
        sums = ranks.all_reduce(torch.tensor([float(sel.n_held), sel.correct], dtype=torch.float64))
        num_classes = int(ranks.all_reduce(torch.tensor([sel.num_classes or 0]), dist_max()).item()) or None
        total = sum(seen)
        fit = float(sums[1]) / total if fit_known and total else None
        return cls(total, int(sums[0]), sum(seen[:ranks.rank]), num_classes, fit)


def _table(parts: list[Part], ranks: Optional[Ranks]) -> Candidates:
    """The candidates' (score, index, class) table, gathered from every rank."""
    scores = torch.cat([p.scores.double() for p in parts]) if parts else torch.zeros(0, dtype=torch.float64)
    indices = torch.cat([p.indices for p in parts]) if parts else torch.zeros(0, dtype=torch.long)
    balanced = bool(parts) and all(p.classes is not None for p in parts)
    classes = torch.cat([p.classes for p in parts]) if balanced else None  # type: ignore[misc]
    if ranks is None:
        return Candidates(scores, indices, classes)
    cls = classes if classes is not None else torch.full_like(indices, -1)
    rows = torch.stack([scores, indices.double(), cls.double()], dim=1)
    gathered = torch.cat(ranks.gather_rows(rows))
    table_classes = gathered[:, 2].long()
    return Candidates(gathered[:, 0], gathered[:, 1].long(), None if bool((table_classes < 0).any()) else table_classes)


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
    process_group: Optional[ProcessGroup] = None,
    distributed: Optional[bool] = None,
    indices: Optional[Sequence[int]] = None,
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
        strategy: ``"loss"`` (lowest per-sample loss, the criterion of the paper's text),
            ``"curvature"`` (the published scripts' input-curvature score, ``rankers.CurvatureRanker``)
            or ``"random"``.
        indices: positions of samples known to be clean (integers: a tensor, a NumPy array, a
            range or a list; or a bool mask with one entry per sample): exactly those are trusted
            (``n_trusted`` and ``class_balanced`` do not apply; one process only). Positions are
            dataset indices: a shuffling ``DataLoader`` is read in index order, one whose sampler
            draws part of its dataset is refused (``sap.data.order.positions_order``); any other
            iterable's positions are the order it yields.
        holdout, max_holdout, seed: with ``holdout > 0`` each sample is set aside with that
            probability (seeded; at most ``max_holdout``) for choosing alpha, and never trusted;
            given clean positions (``indices``) are never held out, so none is ever replaced.
        reference: keep a seeded uniform sample of up to this many samples (trusted ones
            included) as ``TrustedSet.reference``, for choosing alpha on training data.
        loss_fn: per-sample loss ``(output, labels) -> [B]`` replacing the default (cross-entropy,
            or BCE-with-logits for one logit per sample).
        batch_fn, input_key, label_key: how a batch becomes ``(inputs, labels)``.
        progress: a tqdm bar over the loader.
        process_group, distributed: under torch.distributed (``distributed=None``: whenever it is
            initialised with several processes; ``False``: this process alone) each rank passes its
            own shard and every rank gets its own part of the one trusted set a single process would
            choose on the concatenated shards (rank 0's first); ``n_seen`` and ``indices`` are global.
    Returns:
        a ``TrustedSet``.
    """
    config = TrustConfig(n_trusted=n_trusted, class_balanced=class_balanced, strategy=strategy, holdout=holdout,
                         max_holdout=max_holdout, reference=reference, seed=seed, loss_fn=loss_fn, indices=indices,
                         progress=progress, batches=BatchFormat(batch_fn, input_key, label_key),
                         parallel=Parallel(process_group, distributed))
    return select(model, loader, config)


def select(model: nn.Module, loader: Iterable[Any], config: TrustConfig) -> TrustedSet:
    """``select_trusted`` with its options as a ``TrustConfig`` (each checked here)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    requested = check_n_trusted(config.n_trusted)
    check_loader(loader, "loader")
    fmt = config.batches
    split = batches.make_splitter(fmt.batch_fn, fmt.input_key, fmt.label_key)
    inner, _ = unwrap(model)
    device = device_of(inner)
    ranks = resolve_ranks(config.parallel.process_group, config.parallel.distributed)
    ranking = _ranking_pass(requested, config, ranks)
    strategy = "given" if ranking.given is not None else config.strategy
    if ranks is None:  # positions are dataset indices: a shuffling DataLoader is read in index order
        loader = positions_order(loader, given=ranking.given is not None)

    def stream() -> None:
        with eval_modes(inner):
            bar = tqdm(loader, desc="SAP: ranking samples", disable=not config.progress, leave=False)
            for b, batch in enumerate(bar):
                ranking.feed(inner, batch, split, b, device)

    agreed(ranks, "ranking the samples", stream)
    return agreed(ranks, "choosing the trusted samples", lambda: ranking.result(requested, strategy, ranks))


def _ranking_pass(requested: Optional[Union[int, float]], config: TrustConfig, ranks: Optional[Ranks]) -> _RankingPass:
    """The ranking pass ``config`` describes, each option checked."""
    strategy, holdout, class_balanced = config.strategy, config.holdout, config.class_balanced
    loss_fn, reference = config.loss_fn, config.reference
    if strategy not in RANKERS:
        raise ValueError(f"strategy must be one of {sorted(RANKERS)}, got {strategy!r}")
    if not isinstance(holdout, (int, float)) or isinstance(holdout, bool) or not 0 <= holdout < 1:
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    objective = Objective(loss_fn=loss_fn)
    if class_balanced is None:
        class_balanced = loss_fn is None
    elif not isinstance(class_balanced, bool):
        raise TypeError(f"class_balanced must be True, False or None, got {class_balanced!r}")
    capacity = requested if isinstance(requested, int) else DEFAULT_N_TRUSTED if requested is None else 2**62
    reference = check_count(reference, "reference") if reference else 0
    per_rank = -(-reference // ranks.size) if reference and ranks is not None else reference
    given = _given(config.indices, ranks)
    if given[0] is not None:
        class_balanced, capacity, strategy = False, int(given[0].numel()), "loss"
    ranking = _RankingPass(RANKERS[strategy](objective, config.seed), objective, class_balanced, capacity,
                           float(holdout), check_count(config.max_holdout, "max_holdout"), config.seed, per_rank)
    ranking.given, ranking.given_length = given
    return ranking


def _given(indices: Optional[Union[Sequence[int], torch.Tensor]],
           ranks: Optional[Ranks]) -> tuple[Optional[torch.Tensor], Optional[int]]:
    """``indices=`` as a sorted int64 tensor of distinct non-negative positions (a bool mask: its
    True positions) and the number of samples a bool mask requires (else None), or a named error."""
    if indices is None:
        return None, None
    if ranks is not None:
        raise ValueError("indices= (given clean samples) runs on one process; pass distributed=False")
    try:
        t = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"indices must be a sequence of sample positions, got {type(indices).__name__}") from None
    if t.dtype == torch.bool and t.dim() == 1:
        if not bool(t.any()):
            raise ValueError(f"indices: the bool mask of {t.numel()} samples marks no sample as clean")
        return t.nonzero().squeeze(1), int(t.numel())
    if t.dim() != 1 or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or t.numel() == 0:
        raise TypeError(f"indices must be a non-empty 1-d sequence of integer positions, got {t.dtype} {list(t.shape)}")
    out: torch.Tensor = torch.unique(t.long())
    if int(out.min()) < 0:
        raise ValueError(f"indices must be >= 0, got {out[out < 0][:5].tolist()}")
    return out, None


