"""Phase 4, ``choose_alpha``: sweep alpha on data and pick one by the rules of ``alpha.rules``
(the best smoothed score on unseen data, the plateau rule on memorised training samples, and the
guards that keep the model where training samples cannot show a safe alpha)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import nn

from ..data import batches
from ..data.loaders import check_loader
from ..data.objective import Objective, PerSample
from ..data.samples import SampleSet
from ..options.choices import check_location, check_mode
from ..options.configs import BatchFormat, Parallel, SweepConfig
from ..options.grid import check_alphas, default_grid, grid_for, refines
from ..projection.projectors import Projector
from ..projection.write import projectors_from_spectra
from ..runtime.distributed import ProcessGroup, resolve_ranks
from ..runtime.guards import eval_modes
from ..runtime.wrappers import device_of, unwrap
from ..spectra.decomposition import Spectra
from .rules import (
    MEMORISED_SCORE,
    PLATEAU_MAX_SLOPE,
    SMOOTHING_DECADES,
    best_alpha,
    collapses_below,
    plateau_alpha,
    plateau_slope,
    smoothed_argmax,
    smoothed_scores,
)
from .search import Rule, Scorer, coarse_to_fine, completed
from .sweep import Validation, sweep


@dataclass
class AlphaChoice:
    """Outcome of ``choose_alpha``.

    alpha: the pick (``math.inf``: leave the model unchanged).
    scores: alpha -> mean score on the data (``math.inf``: the unchanged model).
    rule: how the pick was made, in words.
    memorised: the unchanged model fits the data (so the plateau rule was used).
    warnings: what a user should know about the choice, in words.
    """

    alpha: float
    scores: dict[float, float]
    rule: str
    memorised: bool = False
    warnings: list[str] = field(default_factory=list)

    def smoothed(self) -> dict[float, float]:
        return smoothed_scores(self.scores)


def _data(val_loader: Union[Iterable[Any], SampleSet], split: batches.Splitter) -> Iterable[tuple[Any, torch.Tensor]]:
    if isinstance(val_loader, SampleSet):
        return val_loader
    check_loader(val_loader, "val_loader")
    return Validation(val_loader, split)


def choose_alpha(
    model: nn.Module,
    spectra: Spectra,
    val_loader: Union[Iterable[Any], SampleSet],
    *,
    alphas: Optional[Sequence[float]] = None,
    memorised: Union[bool, str] = False,
    chance: float = 0.0,
    score_fn: Optional[PerSample] = None,
    batch_fn: Optional[batches.Splitter] = None,
    input_key: Optional[Union[str, list[str]]] = None,
    label_key: Optional[str] = None,
    backend: Optional[str] = None,
    progress: bool = True,
    process_group: Optional[ProcessGroup] = None,
    distributed: Optional[bool] = None,
    mode: str = "sap",
    location: str = "pre",
    refine: Optional[bool] = None,
    unchanged_score: Optional[float] = None,
    projectors: Optional[Sequence[Projector]] = None,
) -> AlphaChoice:
    """Phase 4: score the projection at every alpha of a grid on ``val_loader`` and pick one.

    Args:
        model: the model ``spectra`` were computed on (its weights are written for the sweep and
            restored; modes restored).
        spectra: from ``Statistics.decompose``.
        val_loader: batches ``(inputs, labels)`` (read like the training loader; a generator is
            cached on the host at its first pass), or a ``SampleSet``.
        alphas: the grid (default ``1, 10**0.5, ..., 1e6``).
        memorised: whether the data was drawn from the model's training set and may be fitted:
            ``"auto"`` decides by the unchanged model's score (``>= MEMORISED_SCORE``) and then
            picks by ``plateau_alpha``; False (a genuine hold-out) picks the best smoothed score.
        chance: the score of a constant prediction (``1 / classes`` for accuracy), for the
            plateau rule's collapse guard.
        score_fn: per-sample score ``(output, labels) -> [B]`` (default: accuracy).
        process_group, distributed: under torch.distributed each rank passes its own shard of the
            validation data and every score is summed over the ranks, so every rank picks the same.
        mode, location: the projection variant and side (``sap_kernels.sap.projection.scaling``); for ``"gpm"``
            the grid is of energy shares (default ``modes.GPM_SHARES``).
        refine: search coarse-to-fine (``sap.alpha.search``: 8-10 of the 13 default alphas scored) instead
            of scoring every alpha; None: for the default grid of ``"sap"``/``"sgp"`` only.
        unchanged_score: the unchanged model's mean score on this data (over every rank's shard)
            when already measured, e.g. by the ranking pass (``project`` passes it then): one
            forward pass over the data fewer; None: scored here.
        projectors: ``projection.write.projectors_from_spectra(model, spectra, ...)`` when the caller built
            them already (``project`` writes the pick with the same ones); None: built here.
    Returns:
        ``AlphaChoice``.
    """
    if memorised not in (True, False, "auto"):
        raise ValueError(f"memorised must be True, False or 'auto', got {memorised!r}")
    mode, location = check_mode(mode), check_location(location)
    grid = default_grid(mode) if alphas is None else grid_for(mode, check_alphas(alphas))
    config = SweepConfig(grid=tuple(grid), refine=refines(alphas, mode) if refine is None else refine,
                         memorised=memorised, chance=chance, score_fn=score_fn, unchanged_score=unchanged_score,
                         backend=backend, progress=progress, mode=mode, location=location,
                         batches=BatchFormat(batch_fn, input_key, label_key),
                         parallel=Parallel(process_group, distributed))
    return choose(model, spectra, val_loader, config, projectors)


def choose(model: nn.Module, spectra: Spectra, val_loader: Union[Iterable[Any], SampleSet], config: SweepConfig,
           projectors: Optional[Sequence[Projector]] = None) -> AlphaChoice:
    """``choose_alpha`` with its options as a ``SweepConfig`` (its grid, mode and location checked)."""
    fmt = config.batches
    data = _data(val_loader, batches.make_splitter(fmt.batch_fn, fmt.input_key, fmt.label_key))
    inner, _ = unwrap(model)
    with eval_modes(inner):
        if projectors is None:
            projectors = projectors_from_spectra(inner, spectra, config.backend, config.mode, config.location)
        objective = Objective(score_fn=config.score_fn)
        ranks = resolve_ranks(config.parallel.process_group, config.parallel.distributed)
        chosen, known, progress = projectors, config.unchanged_score, config.progress

        def score(alphas: Sequence[float], unchanged: bool) -> dict[float, float]:
            if unchanged and known is not None:  # measured already: not scored again
                return {**sweep(inner, chosen, alphas, data, device_of(inner), objective, progress, ranks, False),
                        math.inf: float(known)}
            return sweep(inner, chosen, alphas, data, device_of(inner), objective, progress, ranks, unchanged)

        return search_and_pick(list(config.grid), score, config.refine, config.memorised, config.chance)


def search_and_pick(grid: Sequence[float], score: Scorer, refine: bool, memorised: Union[bool, str] = False,
                    chance: float = 0.0) -> AlphaChoice:
    """Score alphas of ``grid`` with ``score`` (every one, or coarse-to-fine when ``refine``;
    ``sap.alpha.search``) and pick one by the rule the unchanged model's score calls for: the one decision
    of ``choose_alpha``, apart from how a score is obtained (``python/alpha_study_report.py``
    replays it on recorded curves)."""

    def fits(scores: dict[float, float]) -> bool:
        return memorised is True or (memorised == "auto" and scores[math.inf] >= MEMORISED_SCORE)

    def rule(scores: dict[float, float]) -> Rule:
        if fits(scores):
            return lambda sc: plateau_alpha(sc, chance)
        return _best_or_inf

    scores = coarse_to_fine(grid, score, rule) if refine else score(grid, True)
    seen = completed(grid, scores)  # the whole grid's scores when every alpha was scored
    how = " (coarse-to-fine: the decades, then the alphas around the best)" if refine else ""
    if memorised == "auto" and not fits(scores):
        return _kept_unfitted(scores, how)  # the sweep is still scored: the report shows the curve
    if not fits(scores):
        return AlphaChoice(best_alpha(seen), scores, "best validation score, smoothed over +-0.5 decade" + how)
    pick = plateau_alpha(seen, chance)
    slope = 0.0 if math.isinf(pick) else plateau_slope(seen, pick, chance)
    bounded = math.isinf(pick) or collapses_below(seen, pick, chance)
    if memorised == "auto" and (slope > PLATEAU_MAX_SLOPE or not bounded):
        return _kept_no_plateau(scores, pick, slope, bounded, how)
    warning = (
        f"the unchanged model scores {100 * scores[math.inf]:.1f}% on these samples from its training data: it has "
        "memorised their labels, so they cannot show which alpha generalises best; alpha was chosen by the "
        "plateau rule instead (a plateau of agreement with the training labels). Pass val_loader= with "
        "samples the model never trained on (noisy labels are fine) for a measured choice."
    )
    return AlphaChoice(pick, scores, "plateau of training-label agreement (the data is memorised)" + how, True,
                       [warning])


def _kept_unfitted(scores: dict[float, float], how: str) -> AlphaChoice:
    """Training samples the model does not fit: they cannot show which alpha generalises (every
    alpha that releases memorised labels scores lower on them, and a model that memorised none
    scores about as well at any mild alpha), so the model is kept."""
    warning = (
        f"the model fits only {100 * scores[math.inf]:.1f}% of these samples from its training data: it has not "
        "memorised its labels, which is what SAP undoes, and training samples cannot show which alpha would "
        "generalise; the model was left unchanged. Pass val_loader= with samples the model never trained on "
        "(noisy labels are fine) to measure whether a projection helps."
    )
    return AlphaChoice(math.inf, scores, "kept: the model does not fit its training labels" + how, False, [warning])


def _kept_no_plateau(scores: dict[float, float], pick: float, slope: float, bounded: bool, how: str) -> AlphaChoice:
    """A memorised model whose agreement curve has no flat stretch below its memorised plateau (too
    steep at its flattest point, or no collapse below it): no alpha is supported by the curve, so
    the model is kept."""
    warning = (
        f"the model has memorised its training labels, but its agreement with them falls from memorised to "
        f"collapsed without a plateau (at the flattest point, alpha {pick:.4g}, it still changes by "
        f"{100 * slope:.0f}% of the range per decade{'' if bounded else ', and no steeper collapse follows below it'}"
        "): its generalising structure is too weak for training "
        "samples to show a safe alpha, so the model was left unchanged. Pass val_loader= with samples the model "
        "never trained on (noisy labels are fine) for a measured choice."
    )
    return AlphaChoice(math.inf, scores, "kept: no plateau of training-label agreement" + how, True, [warning])


def _best_or_inf(scores: dict[float, float]) -> float:
    """The coarse step's pick under the validation rule: the best smoothed score, even below the
    unchanged model (the alphas around it may still beat it); inf only with no alpha."""
    pick = smoothed_argmax(scores, SMOOTHING_DECADES)
    return math.inf if pick is None else pick
