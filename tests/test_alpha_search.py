"""Coarse-to-fine alpha search (``sap.alpha.search``) against scoring the whole grid, on score curves
of known shape, and through ``choose_alpha``."""
from __future__ import annotations

import math

import pytest

from sap_kernels.sap.alpha.rules import best_alpha, plateau_alpha, smoothed_argmax
from sap_kernels.sap.alpha.search import around, coarse, coarse_to_fine, completed
from sap_kernels.sap.options.grid import default_alphas

GRID = default_alphas()


def _scorer(curve, calls):
    def score(alphas, unchanged):
        calls.append(list(alphas))
        out = {a: curve(a) for a in alphas}
        if unchanged:
            out[math.inf] = curve(math.inf)
        return out
    return score


def _best_rule(scores):
    return lambda sc: smoothed_argmax(sc, 0.5) or math.inf


def test_coarse_grid_and_neighbours():
    assert coarse(GRID) == [10.0**e for e in range(7)] or all(
        math.isclose(a, b) for a, b in zip(coarse(GRID), [10.0**e for e in range(7)]))
    assert coarse([1, 2, 3, 4]) == [1, 3, 4]
    assert around(GRID, GRID[0]) == GRID[:3] and around(GRID, GRID[5]) == GRID[3:8]


@pytest.mark.parametrize("peak", [e / 2 for e in range(13)])
def test_a_single_peak_is_found_where_the_whole_grid_finds_it(peak):
    def curve(a):  # accuracy peaking at 10**peak, the unchanged model below every alpha near it
        return 0.5 if math.isinf(a) else 0.9 - 0.05 * abs(math.log10(a) - peak)

    calls = []
    scores = coarse_to_fine(GRID, _scorer(curve, calls), _best_rule)
    full = {a: curve(a) for a in [math.inf, *GRID]}
    assert best_alpha(completed(GRID, scores)) == best_alpha(full)
    assert sum(len(c) for c in calls) <= 10 and len(scores) == sum(len(c) for c in calls) + 1


def test_plateau_rule_coarse_to_fine_matches_the_whole_grid():
    def curve(a):  # memorised (1.0) above 1e4, a plateau at 0.8 over 10..3162, collapse below
        if math.isinf(a):
            return 1.0
        e = math.log10(a)
        return 1.0 if e >= 4 else 0.8 - 0.002 * abs(e - 2.5) if e >= 1 else 0.3

    def rule(scores):
        return lambda sc: plateau_alpha(sc, 0.1)

    scores = coarse_to_fine(GRID, _scorer(curve, []), rule)
    full = {a: curve(a) for a in [math.inf, *GRID]}
    assert plateau_alpha(completed(GRID, scores), 0.1) == plateau_alpha(full, 0.1)
    assert len(scores) <= 11


def test_a_bump_between_decades_is_found():
    bumps = {316.22776601683796: 0.75}  # a half-decade the decades alone would miss

    def curve(a):
        if math.isinf(a):
            return 0.6
        return bumps.get(a, 0.7 if 100 <= a <= 1e4 else 0.62)

    scores = coarse_to_fine(GRID, _scorer(curve, []), _best_rule)
    full = {a: curve(a) for a in [math.inf, *GRID]}
    assert best_alpha(completed(GRID, scores)) == best_alpha(full)


def test_no_coarse_candidate_scores_the_rest_of_the_grid():
    def rule(scores):
        return lambda sc: math.inf

    calls = []
    scores = coarse_to_fine(GRID, _scorer(lambda a: 0.5, calls), rule)
    assert sorted(a for a in scores if not math.isinf(a)) == sorted(GRID)
    assert calls[1] and not set(calls[0]) & set(calls[1])


def test_completion_interpolates_in_log_alpha():
    done = completed([1.0, 10.0, 100.0], {1.0: 0.2, 100.0: 0.6, math.inf: 0.9})
    assert done[10.0] == pytest.approx(0.4) and done[math.inf] == 0.9


def test_short_grids_are_scored_in_full():
    scores = coarse_to_fine([1.0, 10.0, 100.0], _scorer(lambda a: 0.5, []), _best_rule)
    assert set(scores) == {1.0, 10.0, 100.0, math.inf}
