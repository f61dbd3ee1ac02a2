"""``project``: the whole SAP method on any ``nn.Module``, as the composition of its phases.

select_trusted -> collect -> (alpha given) apply from the statistics
                          -> (sweep) decompose -> choose_alpha -> apply from the spectra

The arguments are resolved once (``_resolve``) into each phase's frozen configuration
(``options.configs``); ``routes.route`` names the route taken and ``routes.fuses_phases`` when
phases 1 and 2 share one pass over the loader.

Every argument is checked before any work; the model is worked on in a copy unless
``inplace=True``; weights are written once, at the end, after every projection was computed and
checked (and restored if the write itself fails).
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .alpha.choice import AlphaChoice, choose
from .alpha.rules import MEMORISED_SCORE
from .data import batches
from .data.loaders import attention_mask_rows, check_loader, known_size, row_mask_of
from .data.order import positions_order
from .data.samples import SampleSet
from .gram.collection import collect_with, statistics_of
from .gram.collector import GramCollector
from .layers.discovery import discover, nothing_to_project
from .options.configs import (
    BatchFormat,
    CollectConfig,
    Parallel,
    PerSample,
    ProjectionConfig,
    RowMaskFn,
    Selection,
    Selector,
    Settings,
    SweepConfig,
    TrustConfig,
    settings,
)
from .projection.projectors import EigenProjector, GeneralProjector, Projector
from .projection.rounds import first_round, run_rounds
from .projection.write import projectors_from_spectra, projectors_from_statistics, write_all
from .result import LayerReport, SAPResult
from .routes import fuses_phases, route
from .runtime.distributed import ProcessGroup, Ranks, resolve_ranks
from .runtime.guards import eval_modes
from .runtime.wrappers import check_not_sharded, working_copy
from .spectra.decomposition import Spectra
from .spectra.statistics import Statistics
from .trusted.selection import TrustedSet, select


def _reports(source: Union[Spectra, Statistics], projectors: Sequence[Projector]) -> list[LayerReport]:
    """One report per projector: the input-side spectrum it used (any mode and side), or the
    output side's decomposition method without energies (``location="post"``), or ``"solve"``."""
    out = []
    for p in projectors:
        t = p.target
        rows = source.rows[t.stream] if isinstance(source, Spectra) else source.streams[t.stream].rows
        pre = p.spectrum if isinstance(p, EigenProjector) else p.pre if isinstance(p, GeneralProjector) else None
        used = pre if pre is not None else p.post if isinstance(p, GeneralProjector) else None
        energies = None if pre is None else pre.energies(t.k)
        method = "solve" if used is None else ("rows" if used.dual else "gram")
        out.append(LayerReport(t.name, t.kind, t.k, t.groups, rows, energies, method, t.tied))
    return out


@dataclass(frozen=True)
class Resolved:
    """``project``'s arguments resolved once, before any work: its settings, each phase's
    configuration, the ranks it runs on and the given clean samples, if any."""

    settings: Settings
    trust: TrustConfig
    collect: CollectConfig
    sweep: SweepConfig
    projection: ProjectionConfig
    batches: BatchFormat
    ranks: Optional[Ranks]
    needs_data: bool  # alpha is chosen on training samples, kept by the ranking pass
    given: Optional[torch.Tensor] = None  # trusted=<clean positions>
    clean: Optional[Iterable[Any]] = None  # trusted=<a loader of clean samples>

    @property
    def parallel(self) -> Parallel:
        return self.collect.parallel


def _resolve(s: Settings, given: Optional[Union[torch.Tensor, Iterable[Any]]], val_loader: Optional[Iterable[Any]],
             layers: Selection, skip: Selection,
             loss_fn: Optional[PerSample], score_fn: Optional[PerSample], row_mask: Optional[RowMaskFn],
             fmt: BatchFormat, process_group: Optional[ProcessGroup], distributed: Optional[bool]) -> Resolved:
    """Every phase's configuration from the checked settings; the ranks to run on."""
    ranks = resolve_ranks(process_group, distributed)
    parallel = Parallel(process_group, ranks is not None)
    needs_data = s.sweeping and val_loader is None
    indices = given if isinstance(given, torch.Tensor) else None
    trust = TrustConfig(n_trusted=s.n_trusted, class_balanced=s.class_balanced, strategy=s.strategy,
                        holdout=(s.holdout or 0.0) if needs_data else 0.0, max_holdout=s.max_holdout,
                        reference=s.max_holdout if needs_data and s.holdout is None else 0, seed=s.seed,
                        loss_fn=loss_fn, indices=indices, progress=s.progress, batches=fmt, parallel=parallel)
    collect = CollectConfig(layers=layers, skip=skip, skip_head=s.skip_head, batch_size=s.batch_size,
                            backend=s.backend, row_mask=row_mask, progress=s.progress, location=s.location,
                            parallel=parallel)
    sweep = SweepConfig(grid=tuple(s.grid or ()), refine=s.refine, score_fn=score_fn, backend=s.backend,
                        progress=s.progress, mode=s.mode, location=s.location,
                        batches=fmt if val_loader is not None else BatchFormat(), parallel=parallel)
    projection = ProjectionConfig(mode=s.mode, location=s.location, solver=s.solver, backend=s.backend,
                                  eig_dtype=s.eig_dtype)
    clean = given if given is not None and indices is None else None
    return Resolved(s, trust, collect, sweep, projection, fmt, ranks, needs_data, indices, clean)


def _trusted_and_statistics(target: nn.Module, loader: Iterable[Any], r: Resolved) -> tuple[TrustedSet, Statistics]:
    """Phases 1 and 2; one pass over the loader when ``fuses_phases`` says so."""
    s = r.settings
    if r.clean is not None:
        return _clean_loader(target, loader, r.clean, r)
    fused = fuses_phases(s, needs_data=r.needs_data, distributed=r.ranks is not None, given=r.given is not None,
                         size=known_size(loader) if isinstance(s.n_trusted, int) else None)
    if fused:
        disc = discover(target, r.collect.layers, r.collect.skip)
        ordered = positions_order(loader, given=False) if r.ranks is None else loader
        with GramCollector(disc.units, backend=s.backend) as collector:
            trusted = select(target, _with_row_masks(ordered, collector, r.batches, r.collect.row_mask), r.trust)
        if len(trusted) == trusted.n_seen:
            return trusted, statistics_of(collector, disc, None, len(trusted), trusted.indices, trusted.notices)
    else:
        trusted = select(target, loader, r.trust)
    return trusted, collect_with(target, trusted, r.collect)


def _clean_loader(target: nn.Module, loader: Iterable[Any], clean: Iterable[Any],
                  r: Resolved) -> tuple[TrustedSet, Statistics]:
    """``trusted=<a loader of clean samples>``: statistics from all of them; ``loader`` is read
    only when alpha is chosen on training data (for its sample of training samples)."""
    stats = collect_with(target, clean, replace(r.collect, batches=r.batches))
    if r.needs_data:
        trusted = select(target, loader, replace(r.trust, n_trusted=1, class_balanced=False))
    else:
        trusted = TrustedSet(SampleSet([], 1), None, 0, "clean loader", False)
    trusted.strategy = "clean loader"
    return trusted, stats


def _with_row_masks(loader: Iterable[Any], collector: GramCollector, fmt: BatchFormat,
                    mask_fn: Optional[RowMaskFn]) -> Iterator[Any]:
    """``loader``'s batches as they are, setting ``collector.row_mask`` for each before the model
    sees it: on the one-pass route the Grams fill while ``select_trusted`` runs the batches, so
    padding rows must be masked there as ``collect`` masks them."""
    split = batches.make_splitter(fmt.batch_fn, fmt.input_key, fmt.label_key)
    for batch in loader:
        try:
            inputs = split(batch)[0]
        except (TypeError, ValueError, KeyError):
            inputs = None  # select_trusted reports this batch's error itself
        collector.row_mask = None if mask_fn is None or inputs is None else row_mask_of(mask_fn, inputs, _size(inputs))
        yield batch
    collector.row_mask = None  # checks that the last batch's mask fitted it


def _size(inputs: Any) -> Optional[int]:
    try:
        return batches.batch_len(inputs)
    except TypeError:
        return None


def _choose(target: nn.Module, spectra: Spectra, trusted: TrustedSet, val_loader: Optional[Iterable[Any]],
            r: Resolved, projectors: list[Projector]) -> tuple[AlphaChoice, str]:
    """Phase 4 on ``val_loader``, or on training samples kept by the ranking pass."""
    if val_loader is not None:
        return choose(target, spectra, val_loader, r.sweep, projectors), "val_loader"
    chance = 1.0 / trusted.num_classes if trusted.num_classes else 0.0
    data, where = _training_data(trusted, r.settings, r.ranks)
    known = None if r.sweep.score_fn is not None else _measured(trusted, data, r.ranks)
    config = replace(r.sweep, memorised="auto", chance=chance, unchanged_score=known)
    return choose(target, spectra, data, config, projectors), where


def _measured(trusted: TrustedSet, data: SampleSet, ranks: Optional[Ranks]) -> Optional[float]:
    """The unchanged model's accuracy on ``data`` (training samples) from the ranking pass, summed
    over the ranks; None when that pass did not measure it (a custom loss) on some rank."""
    local = trusted.unchanged_sum(data)
    if ranks is None:
        return None if local is None or local[1] == 0 else local[0] / local[1]
    sums = ranks.all_reduce(torch.tensor([*(local or (0.0, 0)), float(local is None)], dtype=torch.float64))
    return None if float(sums[2]) > 0 or float(sums[1]) == 0 else float(sums[0]) / float(sums[1])


def _training_data(trusted: TrustedSet, s: Settings, ranks: Optional[Ranks]) -> tuple[SampleSet, str]:
    """The training samples alpha is chosen on without ``val_loader``: the never-trusted hold-out,
    or the seeded sample of the loader (without the trusted samples when the model does not fit
    its training labels, so that the sweep is not scored on the samples the Grams came from)."""
    if trusted.holdout is not None:
        return trusted.holdout, f"hold-out of {len(trusted.holdout)} training samples (seed {s.seed}, never trusted)"
    ref = trusted.reference
    if ref is None or not len(ref):
        raise ValueError("no training samples were kept for choosing alpha; pass val_loader or alpha")
    count = (lambda n: n) if ranks is None else (lambda n: sum(ranks.all_gather_ints(n)))
    where = f"{count(len(ref))} training samples (seed {s.seed})"
    if trusted.fit is not None and trusted.fit < MEMORISED_SCORE:
        keep = (~torch.isin(ref.indices, trusted.indices)).nonzero().squeeze(1)
        if count(int(keep.numel())) == 0:
            raise ValueError(
                f"every training sample is trusted ({len(trusted)}) and the model does not fit its training labels "
                f"({100 * trusted.fit:.1f}% agree), so no untrusted training sample is left to choose alpha on: "
                "pass val_loader=, alpha=, or a smaller n_trusted")
        ref = ref.subset(keep)
        where = f"{count(len(ref))} training samples, not trusted (seed {s.seed})"
    return ref, where


def project(
    model: nn.Module, loader: Iterable[Any], *,
    val_loader: Optional[Iterable[Any]] = None, alpha: Optional[float] = None, alphas: Optional[Sequence[float]] = None,
    n_trusted: Optional[Union[int, float]] = None, class_balanced: Optional[bool] = None, trusted: Any = "loss",
    layers: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip: Optional[Union[Selector, Iterable[Selector]]] = None, skip_head: bool = False,
    inplace: bool = False, progress: bool = True, holdout: Optional[float] = None, max_holdout: int = 250,
    seed: int = 0, batch_size: Optional[int] = None, eig_dtype: Optional[torch.dtype] = None, solver: str = "auto",
    backend: Optional[str] = None, loss_fn: Optional[PerSample] = None, score_fn: Optional[PerSample] = None,
    row_mask: Optional[RowMaskFn] = attention_mask_rows, batch_fn: Optional[batches.Splitter] = None,
    input_key: Optional[Union[str, Sequence[str]]] = None, label_key: Optional[str] = None, dry_run: bool = False,
    process_group: Optional[ProcessGroup] = None, distributed: Optional[bool] = None,
    mode: str = "sap", location: str = "pre", rounds: int = 1,
) -> SAPResult:
    """Correct a classifier trained on noisy labels with Scaled Activation Projection: every Linear,
    ConvNd and MultiheadAttention weight ``W`` (``[out, K]`` per group) becomes ``W V diag(lambda) V^T``,
    ``(e, V)`` the eigenpairs of the Gram of its inputs on the trusted samples, ``lambda = alpha r /
    ((alpha - 1) r + 1)``, ``r = e / sum e``; biases stay. The public phases composed (``select_trusted``,
    ``collect``, ``Statistics.decompose``, ``choose_alpha``, ``apply``); README has the argument table.

    Args:
        model: logits ``[B, C]``, one logit ``[B]``/``[B, 1]`` (labels 0/1), ``.logits``, or anything
            with ``loss_fn``/``score_fn``; any device and float dtype; DP/DDP/compile wrappers peeled.
        loader: the (noisy) training set, ``(inputs, labels)`` batches (or via ``batch_fn``/keys).
        val_loader: samples never trained on (noisy labels fine): the reliable choice of alpha.
            Without it, a seeded sample of up to ``max_holdout`` training samples: if the model
            fits them, alpha by the plateau rule (with a warning), else by their accuracy.
        alpha / alphas: one alpha (no sweep; ``math.inf``: unchanged) / the grid (default half-decades
            ``1 .. 1e6``; for ``mode="gpm"`` energy shares).
        n_trusted: a count, a fraction, or None (1000, or a quarter of smaller data, with a notice).
        class_balanced: the best ``n_trusted / C`` per class; None: True for class labels.
        trusted: ranking ``"loss"``, ``"curvature"`` (the published scripts') or ``"random"``; the
            positions of samples known clean (ints as a tensor, NumPy array, range or list, or a bool
            mask with one entry per sample; dataset indices: a shuffling DataLoader is read in index
            order; never held out); or a loader of clean samples.
        layers, skip, skip_head: names, glob patterns or types to include / exclude (no match is an
            error); ``skip_head`` leaves the layer producing the logits alone.
        inplace: modify ``model`` itself (restored if anything fails); else a deep copy.
        holdout, max_holdout, seed: ``holdout=None`` uses the seeded sample above; a fraction sets
            that share of ``loader`` aside instead, never trusted.
        batch_size, eig_dtype, backend, progress: activation-pass batch, eigendecomposition dtype
            (default: ``sap.options.precision``), kernel backend, tqdm bars.
        solver: ``"eigh"``, ``"solve"`` (one alpha: a float64 Cholesky solve per layer, no spectrum)
            or ``"auto"`` (``"solve"`` when ``alpha`` is given and the variant allows it).
        loss_fn, score_fn: per-sample loss (ranking) and score (alpha), ``(output, labels) -> [B]``.
        row_mask: ``inputs -> [B, T]`` real tokens (default: ``attention_mask``); padding rows stay out.
        batch_fn, input_key, label_key: how a batch becomes ``(inputs, labels)``.
        dry_run: replaced by ``sap_kernels.plan`` (raises a TypeError saying so).
        process_group, distributed: under ``torchrun`` each rank passes its shard and all end with the
            single-process weights on the concatenated shards; ``distributed=False``: this process alone.
        mode, location, rounds: the variant (``"sap"``, ``"sgp"``, ``"gpm"``), the side (``"pre"``,
            ``"post"``, ``"all"``) and repeated rounds (alpha x10 each, composed), ``sap.projection.scaling``.
    Returns:
        ``SAPResult``: ``.model``, ``.alpha``, ``.scores``, ``.layers``, ``.skipped``, ``.rule``,
        ``.warnings``, ``.notices``, ...
    """
    _check_inputs(dry_run, model, loader, val_loader)
    strategy, given = _trusted_arg(trusted)
    s = settings(alpha=alpha, alphas=alphas, n_trusted=n_trusted, class_balanced=class_balanced, strategy=strategy,
                 solver=solver, eig_dtype=eig_dtype, batch_size=batch_size, holdout=holdout, max_holdout=max_holdout,
                 seed=seed, backend=backend, inplace=inplace, progress=progress, skip_head=skip_head, mode=mode,
                 location=location, rounds=rounds)
    _check_sweep(s, val_loader, loss_fn, score_fn)
    r = _resolve(s, given, val_loader, layers, skip, loss_fn, score_fn, row_mask,
                 BatchFormat(batch_fn, input_key, label_key), process_group, distributed)
    returned, target = _working_model(model, s, layers, skip)
    with eval_modes(target):
        return _run(returned, target, loader, val_loader, r)


def _trusted_arg(trusted: Any) -> tuple[str, Optional[Union[torch.Tensor, Iterable[Any]]]]:
    """``trusted=`` as ``(ranking strategy, given)``: given is None, a tensor of clean positions, or a
    loader of clean samples."""
    if isinstance(trusted, str):
        return trusted, None
    positions = _positions(trusted)
    if positions is not None:
        return "loss", positions
    if hasattr(trusted, "__iter__") and not isinstance(trusted, (bytes, dict)):
        check_loader(trusted, "trusted")
        return "loss", trusted
    raise TypeError("trusted must be 'loss', 'curvature', 'random', a sequence of clean sample positions or a "
                    f"loader of clean samples; got {trusted!r}")


def _positions(trusted: Any) -> Optional[torch.Tensor]:
    """``trusted=`` as clean positions when it is positions: a tensor, a NumPy array, a range, or a
    list/tuple of integers (Python or NumPy) or of bools (a mask, one entry per sample); else None."""
    if isinstance(trusted, torch.Tensor):
        return trusted
    if isinstance(trusted, np.ndarray):
        if trusted.dtype.kind not in "biu":
            raise TypeError(f"trusted: a NumPy array of positions must hold integers or bools, got {trusted.dtype}")
        return torch.from_numpy(np.ascontiguousarray(trusted))
    if isinstance(trusted, range):
        return torch.tensor(list(trusted), dtype=torch.long)
    if not isinstance(trusted, (list, tuple)) or any(isinstance(i, (torch.Tensor, np.ndarray)) for i in trusted):
        return None
    if not trusted or all(isinstance(i, numbers.Integral) and not isinstance(i, (bool, np.bool_)) for i in trusted):
        return torch.tensor([int(i) for i in trusted], dtype=torch.long)
    if all(isinstance(i, (bool, np.bool_)) for i in trusted):
        return torch.tensor([bool(i) for i in trusted], dtype=torch.bool)
    if all(isinstance(i, numbers.Integral) for i in trusted):
        raise TypeError("trusted: a list of positions mixes bools and integers; pass integer positions or a bool mask")
    return None


def _working_model(model: nn.Module, s: Settings, layers: Selection, skip: Selection) -> tuple[nn.Module, nn.Module]:
    """``(returned, projected)``: the model or its copy, checked to have something to project."""
    check_not_sharded(model)
    returned, target, _ = working_copy(model, s.inplace)
    disc = discover(target, layers, skip)
    if not disc.units:
        raise nothing_to_project(disc)
    return returned, target


def _rounds(target: nn.Module, trusted: TrustedSet, spectra: Spectra, projectors: list[Projector], alpha: float,
            r: Resolved) -> None:
    """Round 0 written as a composed projection, then rounds ``1 .. rounds - 1`` (``projection.rounds``)."""
    s, ranks = r.settings, r.ranks
    chain = first_round(projectors, spectra.spectra, alpha, s.mode)
    write_all(list(chain), alpha, ranks)
    samples: Union[TrustedSet, Iterable[Any]] = trusted if r.clean is None else r.clean
    again = replace(r.collect, batches=r.batches if r.clean is not None else BatchFormat(), location="pre")

    try:
        run_rounds(s.rounds, chain, alpha, s.mode, s.eig_dtype, lambda: collect_with(target, samples, again),
                   lambda ps, a: write_all(ps, a, ranks))
    except BaseException:
        for p in chain:
            p.restore()
        raise


def _check_inputs(dry_run: object, model: object, loader: Iterable[Any],
                  val_loader: Optional[Iterable[Any]]) -> None:
    """``project``'s checks of what it was given to work on, before its options are checked."""
    if dry_run is not False:
        raise TypeError("project(dry_run=True) was replaced by sap_kernels.plan(model, loader, ...), "
                        "which returns a Plan")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_loader(loader, "loader")
    if val_loader is not None:
        check_loader(val_loader, "val_loader")


def _check_sweep(s: Settings, val_loader: Optional[Iterable[Any]], loss_fn: Optional[PerSample],
                 score_fn: Optional[PerSample]) -> None:
    """What choosing alpha needs, once the options are checked: a score, and data to score on."""
    if s.sweeping and loss_fn is not None and score_fn is None:
        raise ValueError("loss_fn= was given without score_fn=: choosing alpha needs a per-sample score "
                         "(output, labels) -> [B] (or pass alpha=)")
    if s.sweeping and val_loader is None and s.holdout == 0:
        raise ValueError("choosing alpha needs validation data: pass val_loader, alpha, or holdout=None / > 0")


def _run(returned: nn.Module, target: nn.Module, loader: Iterable[Any], val_loader: Optional[Iterable[Any]],
         r: Resolved) -> SAPResult:
    s, ranks, proj = r.settings, r.ranks, r.projection
    clock, timings = time.perf_counter(), {}
    trusted, stats = _trusted_and_statistics(target, loader, r)
    timings["trusted+activations"] = time.perf_counter() - clock
    clock = time.perf_counter()
    choice, validation = None, "none (alpha given)"
    way = route(s)
    if way in ("solve", "eigh"):
        assert s.alpha is not None
        projectors = projectors_from_statistics(target, stats, s.alpha, way, proj.backend, proj.eig_dtype, ranks)
        source: Union[Spectra, Statistics] = stats
        chosen = s.alpha
    else:
        source = stats.decompose(eig_dtype=proj.eig_dtype, progress=s.progress, release=True,
                                 process_group=r.parallel.process_group, distributed=r.parallel.distributed)
        if way == "sweep":
            timings["decompose"] = time.perf_counter() - clock
            clock = time.perf_counter()
        projectors = projectors_from_spectra(target, source, proj.backend, proj.mode, proj.location)
        if way == "sweep":
            choice, validation = _choose(target, source, trusted, val_loader, r, projectors)
            timings["sweep"] = time.perf_counter() - clock
            chosen = choice.alpha
        else:
            assert s.alpha is not None
            chosen = s.alpha
    if s.rounds > 1 and isinstance(source, Spectra):
        _rounds(target, trusted, source, projectors, chosen, r)
    else:
        write_all(projectors, chosen, ranks)
    return SAPResult(
        model=returned, alpha=chosen, scores={} if choice is None else dict(choice.scores),
        trusted_indices=stats.trusted_indices.clone(), layers=_reports(source, projectors), skipped=stats.skipped,
        validation=validation, n_samples=trusted.n_seen, timings=timings,
        holdout_indices=None if trusted.holdout is None else trusted.holdout.indices,
        rule="given" if choice is None else choice.rule, warnings=[] if choice is None else choice.warnings,
        notices=list(trusted.notices) + _rounds_notice(s.rounds, choice is not None and not math.isinf(chosen)),
        mode=s.mode, location=s.location, rounds=s.rounds,
    )


def _rounds_notice(rounds: int, swept: bool) -> list[str]:
    """Rounds after a sweep: the sweep scored one round, the model holds them all."""
    if rounds <= 1 or not swept:
        return []
    return [f"alpha was chosen on the first round's sweep (its scores are one round's); the model holds all {rounds} "
            "rounds at that alpha (alpha x10 each), which no score here measures"]
