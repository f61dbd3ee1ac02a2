"""Which alphas the sweep scores: every alpha of a grid, or coarse-to-fine on the default grid.

Every alpha scored costs a forward pass over the validation data and a write of every projected
weight; on a CNN the sweep costs more than collecting and decomposing together. Both rules that
pick alpha (``best_alpha``, ``plateau_alpha``) are local: a candidate's own score and its
neighbours' within half a decade decide. So the default half-decade grid is searched in steps:
every other alpha (the decades ``1, 10, ..., 1e6``), then the rule applied to the whole grid with
the unscored alphas filled in between their scored neighbours (linear in ``log alpha``); the alphas
up to two places either side of its pick (the neighbours, whose own smoothed scores or slopes are
compared with the pick's) are scored where not yet, and the rule runs again, until everything
around its pick is measured: 8 to 10 alphas scored instead of 13. When the rule finds no candidate
at all, the rest of the grid is scored and the rule runs on all of it. Measured against scoring
the whole grid in python/README.md ("Coarse-to-fine alpha search").
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Sequence

# score(alphas, unchanged) -> {alpha: score}, with the unchanged model's score (key inf) when asked.
Scorer = Callable[[Sequence[float], bool], dict[float, float]]
# rule(scores over the whole grid) -> the pick (inf: none).
Rule = Callable[[dict[float, float]], float]


def coarse(grid: Sequence[float]) -> list[float]:
    """Every other alpha of a sorted grid, both ends included."""
    picks = list(grid[::2])
    if picks[-1] != grid[-1]:
        picks.append(grid[-1])
    return picks


def around(grid: Sequence[float], alpha: float, steps: int = 2) -> list[float]:
    """The grid's alphas at most ``steps`` places from ``alpha``, itself included."""
    i = list(grid).index(alpha)
    return list(grid[max(0, i - steps) : i + steps + 1])


def completed(grid: Sequence[float], scores: dict[float, float]) -> dict[float, float]:
    """``scores`` with every unscored alpha of the sorted ``grid`` filled in linearly in
    ``log10(alpha)`` between its nearest scored neighbours (the grid's ends must be scored)."""
    known = sorted(a for a in scores if not math.isinf(a))
    out = dict(scores)
    for a in grid:
        if a in out:
            continue
        i = bisect.bisect_left(known, a)
        lo, hi = known[i - 1], known[i]
        t = (math.log10(a) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        out[a] = (1 - t) * scores[lo] + t * scores[hi]
    return out


def coarse_to_fine(grid: Sequence[float], score: Scorer, rule: Callable[[dict[float, float]], Rule]) -> dict[
        float, float]:
    """The measured scores. ``rule(scores)`` gives the rule for data scoring so (it may depend on
    the unchanged model's score, which is scored first). The rule sees the grid ``completed`` from
    the scores it has; the alphas around its pick are scored, and again, until they all were, so
    the rule on ``completed(grid, scores)`` picks a measured alpha with measured neighbours."""
    grid = sorted(grid)
    if len(grid) < 5:
        return score(grid, True)
    scores = score(coarse(grid), True)
    while True:
        pick = rule(scores)(completed(grid, scores))
        if math.isinf(pick):
            scores.update(score([a for a in grid if a not in scores], False))
            return scores
        need = [a for a in around(grid, pick) if a not in scores]
        if not need:
            return scores
        scores.update(score(need, False))
