"""The rules that pick alpha from a sweep's scores.

On validation data the model never trained on (labels as noisy as training is fine), the pick is
the best score smoothed over +-half a decade of alpha, and the unchanged model whenever it scores
higher (``best_alpha``).

On data the model was trained on and fits (a hold-out of the training loader: the unchanged model
scores at least ``MEMORISED_SCORE`` there), scores cannot tell alphas apart: every alpha that
undoes memorisation *lowers* agreement with the noisy labels. There the curve of agreement
against alpha has a known shape: a plateau near 1 (memorisation intact), a descent (memorised
labels released), a second plateau (the clean structure kept) and a collapse (too strong a
projection). ``plateau_alpha`` picks the flattest point of the second plateau. Measured in
python/README.md ("Choosing alpha without unseen data").
"""
from __future__ import annotations

import math
from typing import Optional

# The unchanged model scoring this much on data drawn from its training set means it fits
# (memorised) that data, noisy labels included.
MEMORISED_SCORE = 0.98


# Half-width, in decades of alpha, of the window the validation scores are averaged over.
SMOOTHING_DECADES = 0.5


def smoothed_scores(scores: dict[float, float], decades: float = SMOOTHING_DECADES) -> dict[float, float]:
    """Each finite alpha's score averaged with every alpha within ``decades`` of it (log10).

    Accuracy on a few hundred noisily labelled samples moves by a few points between
    neighbouring alphas by chance, while the true curve is smooth in ``log(alpha)``; averaging
    over a window trades a little resolution for much less of that noise.
    """
    finite = sorted(a for a in scores if not math.isinf(a))
    logs = {a: math.log10(a) for a in finite}
    out = {}
    for a in finite:
        near = [scores[b] for b in finite if abs(logs[b] - logs[a]) <= decades + 1e-9]
        out[a] = sum(near) / len(near)
    return out


def best_alpha(scores: dict[float, float], decades: float = SMOOTHING_DECADES) -> float:
    """The alpha to keep: the best smoothed score (``smoothed_scores``), ties to the higher raw
    score then the larger alpha; the unchanged model (key ``inf``) instead when the pick's own
    score is below it, so the choice never scores below the unchanged model.

    Measured on digits (quarter-decade grid, 6 seeds, 25% and 40% noise), this pick closed
    0.72-0.76 of the vanilla -> clean-retrain gap where the raw arg-max closed 0.68-0.76.
    """
    pick = smoothed_argmax(scores, decades)
    if pick is None:
        return math.inf
    if math.inf in scores and scores[pick] < scores[math.inf]:
        return math.inf
    return pick


def smoothed_argmax(scores: dict[float, float], decades: float = SMOOTHING_DECADES) -> Optional[float]:
    """The alpha with the best smoothed score (ties: raw score, then the larger alpha), or None."""
    finite = [a for a in scores if not math.isinf(a)]
    if not finite:
        return None
    smooth = smoothed_scores(scores, decades)
    return max(finite, key=lambda a: (smooth[a], scores[a], a))


def _window_slope(scores: dict[float, float], finite: list[float], logs: list[float], i: int) -> Optional[float]:
    """Change of the score per decade between the alphas farthest from ``finite[i]`` within
    ``PLATEAU_DECADES`` either side (``finite`` sorted, ``logs`` their log10); None alone there."""
    near = [j for j, x in enumerate(logs) if abs(x - logs[i]) <= PLATEAU_DECADES + 1e-9]
    lo, hi = near[0], near[-1]
    if hi == lo:
        return None
    return abs(scores[finite[hi]] - scores[finite[lo]]) / (logs[hi] - logs[lo])


def plateau_alpha(scores: dict[float, float], chance: float = 0.0) -> float:
    """The alpha at the flattest point of the agreement curve below its memorised plateau.

    ``scores``: alpha -> agreement with the training labels (``math.inf``: the unchanged model).
    Candidates: alphas whose score lies at least ``PLATEAU_DROP`` below the unchanged model's
    (memorisation visibly undone) and above ``PLATEAU_FLOOR`` of the way from ``chance`` to it (the
    model has not collapsed). Among them, the one where the score changes least per decade between
    the alphas farthest from it within ``PLATEAU_DECADES`` either side; ties to the larger alpha
    (the milder projection). ``inf`` when no alpha qualifies.
    """
    finite = sorted(a for a in scores if not math.isinf(a))
    top = scores.get(math.inf, max(scores.values()))
    logs = [math.log10(a) for a in finite]
    best: Optional[tuple[float, float]] = None
    for i, a in enumerate(finite):
        s = scores[a]
        if not (s <= top - PLATEAU_DROP and s >= chance + PLATEAU_FLOOR * (top - chance)):
            continue
        slope = _window_slope(scores, finite, logs, i)
        if slope is None:
            continue
        if best is None or slope <= best[0] + 1e-12:
            best = (slope, a)
    return math.inf if best is None else best[1]


# Chosen on the measurements in python/README.md ("Choosing alpha without unseen data"): over 15
# settings (digits CNN and MLP, breast cancer, wine; symmetric and asymmetric noise, 25 % / 40 %)
# every combination of drop 0.02/0.05, floor 0.1/0.2/0.3 and a window of a quarter or half a decade
# closed 46-56 % of the gap on average on a quarter-decade grid (the noisy-validation choice 47 %);
# these values closed 56 % (55 % on the default half-decade grid) and never fell below the
# unchanged model.
PLATEAU_DROP = 0.05
PLATEAU_FLOOR = 0.2
PLATEAU_DECADES = 0.5
# A plateau pick is trusted only where the curve is flat: its change per decade (over the window
# above) at most this share of the way from chance to the unchanged model's score. A model whose
# generalising structure is weak has no second plateau: agreement falls from memorised to
# collapsed in one descent, and its flattest point lies on that descent. Over the 72 runs of
# alpha_study.py (digits CNN and MLP, breast cancer, wine; 25 % / 40 %, symmetric / asymmetric) the
# picks changed by at most 0.21 per decade on the training curve; on the CIFAR-10 CPU cells the
# plain call's 250 held-back samples gave 0.35-0.84 (one pick at 0.40 cost 2 points), and a
# hold-out that small moves a slope by about 0.05; python/README.md, "The plain call's safety guards".
PLATEAU_MAX_SLOPE = 0.3


# A plateau is bounded below by a collapse: somewhere below the pick the curve falls again by at
# least COLLAPSE_MIN_SLOPE of the way per decade and at least as fast as at the pick (COLLAPSE_RATIO).
# A curve that falls from memorised to chance in one descent flattens towards chance instead, so its
# flattest candidate can sit on that descent's lower tail, above the floor, with nothing steeper
# below it (CIFAR-10 at CPU scale, seed 0: a pick 0.35 of the way per decade, 0.19 at most below it,
# cost 13 points of test accuracy). A stricter ratio (1.5) kept the model in 4 of the 72
# alpha_study.py runs where the pick gained 17-22 points (breast cancer, 40 % noise: 0.19 at the
# pick, 0.20 below it); python/README.md, "The plain call's safety guards".
COLLAPSE_RATIO = 1.0
COLLAPSE_MIN_SLOPE = 0.1


def collapses_below(scores: dict[float, float], alpha: float, chance: float = 0.0) -> bool:
    """Whether the agreement curve steepens again below ``alpha`` into a collapse (see
    ``COLLAPSE_RATIO``): the second plateau's lower bound, which a single descent lacks."""
    finite = sorted(a for a in scores if not math.isinf(a))
    logs = [math.log10(a) for a in finite]
    top = scores.get(math.inf, max(scores.values()))
    span = max(top - chance, 1e-12)
    at = (_window_slope(scores, finite, logs, finite.index(alpha)) or 0.0) / span
    below = [_window_slope(scores, finite, logs, i) for i, a in enumerate(finite) if a < alpha]
    steep = [s / span for s in below if s is not None]
    return any(s >= COLLAPSE_MIN_SLOPE and s >= COLLAPSE_RATIO * at for s in steep)


def steepest_alpha(scores: dict[float, float]) -> float:
    """The finite alpha where the agreement curve falls fastest (the window of ``plateau_alpha``;
    ties to the larger alpha): the middle of the release of the memorised labels. ``inf`` when no
    alpha has a window. Where a memorised model has no plateau, the corrected model there finds the
    wrong labels best (CIFAR-10 CPU cells, ``sap.find_issues.detection_alpha``)."""
    finite = sorted(a for a in scores if not math.isinf(a))
    logs = [math.log10(a) for a in finite]
    slopes = [(s, a) for i, a in enumerate(finite) if (s := _window_slope(scores, finite, logs, i)) is not None]
    return max(slopes)[1] if slopes else math.inf


def plateau_slope(scores: dict[float, float], alpha: float, chance: float = 0.0) -> float:
    """The agreement curve's change per decade at ``alpha`` over the window ``plateau_alpha``
    uses, as a share of the way from ``chance`` to the unchanged model's score (0: flat)."""
    finite = sorted(a for a in scores if not math.isinf(a))
    slope = _window_slope(scores, finite, [math.log10(a) for a in finite], finite.index(alpha))
    top = scores.get(math.inf, max(scores.values()))
    return (slope or 0.0) / max(top - chance, 1e-12)
