"""Repeated rounds (``project(..., rounds=R)``): project, collect again on the projected model,
project again with ten times the alpha, the projections composed as the published code composes
them (input side).

Per target the composed projection ``M`` (``[groups, K, K]``, float64) starts as round 0's
``P_0``. Round ``k >= 1`` collects the Gram ``G`` of the layer's inputs in the model as projected
so far, takes the spectrum of ``M^T G M`` (the published code's rows are the inputs times ``M``),
``P_k`` from it at ``alpha_0 * 10^k``, ``M <- M P_k``, and the weight becomes ``W_0 M^T``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from ..layers.targets import Target
from ..options.configs import ROUND_FACTOR
from ..spectra.eigenpairs import decompose
from ..spectra.statistics import Statistics
from ..spectra.streams import StreamStats
from .projectors import Projector
from .scaling import importance

# Each round multiplies the previous round's alpha by ROUND_FACTOR (the published scripts' schedule;
# options.configs, which bounds ``rounds`` by it).


def _matrix(vecs: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``V diag(lambda) V^T`` ``[groups, K, K]`` in float64 (``V`` full ``[g, K, K]`` or dual ``[g, K, m]``)."""
    v = vecs.double()
    return (v * lam.double()[:, None, :]) @ v.transpose(-1, -2)


def _gram(s: StreamStats) -> torch.Tensor:
    """The stream's Gram ``[groups, K, K]`` in float64, true scale (kept rows multiplied out)."""
    if s.gram is not None:
        g = s.gram.double()
    else:
        assert s.kept is not None
        r = s.kept.double()
        g = r.transpose(-1, -2) @ r
    return g * 4.0 ** s.exp


class RoundProjector(Projector):
    """Writes ``W_0 M^T`` for a target's composed projection ``M`` (set by ``compose``)."""

    def __init__(self, base: Projector, first: torch.Tensor):  # keeps base's snapshot and original
        self.target, self.access, self.saved = base.target, base.access, base.saved
        self.original, self.shape = base.original, base.shape
        self.m = first  # [groups, K, K] float64

    def compose(self, p: torch.Tensor) -> None:
        self.m = self.m @ p

    def weight(self, alpha: float) -> torch.Tensor:
        w = self.original.reshape(self.shape).double()
        return w @ self.m.transpose(-1, -2)


def first_round(projectors: list[Projector], spectra: dict[str, Any], alpha: float, mode: str) -> list[RoundProjector]:
    """Round 0 as composed projections (the same weights ``projectors`` write at ``alpha``)."""
    out = []
    for p in projectors:
        s = spectra[p.target.stream]
        out.append(RoundProjector(p, _matrix(s.eigvecs, importance(s.eigvals.double(), alpha, mode))))
    return out


def next_round(rounds: list[RoundProjector], stats: Statistics, alpha: float, mode: str,
               eig_dtype: Optional[torch.dtype]) -> None:
    """Compose one more round from ``stats`` (collected on the model as projected so far)."""
    by_name = {t.name: t for t in stats.targets}
    for r in rounds:
        t: Optional[Target] = by_name.get(r.target.name)
        if t is None:
            continue  # the layer saw no input this round: its projection stays
        g = r.m.transpose(-1, -2) @ _gram(stats.streams[t.stream]) @ r.m
        spec = decompose(g, eig_dtype or torch.float64)
        r.compose(_matrix(spec.eigvecs, importance(spec.eigvals, alpha, mode)))


def run_rounds(count: int, rounds: list[RoundProjector], alpha: float, mode: str, eig_dtype: Optional[torch.dtype],
               collect_stats: Callable[[], Statistics], write: Callable[[list[Projector], float], None]) -> None:
    """Rounds ``1 .. count - 1`` on ``rounds`` (round 0 already written); ``alpha`` is round 0's."""
    if math.isinf(alpha):
        return
    for k in range(1, count):
        next_round(rounds, collect_stats(), alpha * ROUND_FACTOR ** k, mode, eig_dtype)
        write(list(rounds), 1.0)  # RoundProjector ignores alpha: M holds every round

