"""Which candidates become trusted: one deterministic rule on a table of (score, index, class).

Used as it is by one process and, on the table gathered from every rank, by several, so both
choose the same samples. Ties in score go to the lower index (the earlier sample).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..data.samples import lowest


@dataclass
class Candidates:
    """``scores`` ``[m]`` float, ``indices`` ``[m]`` int64 (distinct), ``classes`` ``[m]`` int64 or None."""

    scores: torch.Tensor
    indices: torch.Tensor
    classes: Optional[torch.Tensor] = None

    @classmethod
    def cat(cls, parts: list["Candidates"]) -> "Candidates":
        classes = None if any(p.classes is None for p in parts) else torch.cat([p.classes for p in parts])  # type: ignore[misc]
        return cls(torch.cat([p.scores for p in parts]), torch.cat([p.indices for p in parts]), classes)


def choose(c: Candidates, n: int, balanced: bool, num_classes: Optional[int], notices: list[str]) -> torch.Tensor:
    """The indices of the trusted samples (sorted).

    Unbalanced: the ``n`` lowest scores. Balanced: the lowest ``n / C`` of each class (the first
    ``n mod C`` classes one more); a class short of its share is filled with the lowest of the
    rest, and ``notices`` says so.
    """
    if not balanced or c.classes is None:
        return torch.sort(c.indices[lowest(c.scores, c.indices, n)]).values
    classes = num_classes or (int(c.classes.max()) + 1 if c.classes.numel() else 1)
    base, extra = divmod(n, classes)
    picked: list[torch.Tensor] = []
    short = []
    for k in range(classes):
        quota = base + (1 if k < extra else 0)
        mine = (c.classes == k).nonzero().squeeze(1)
        got = mine[lowest(c.scores[mine], c.indices[mine], quota)]
        if got.numel() < quota:
            short.append((k, quota, int(got.numel())))
        picked.append(got)
    chosen = torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long)
    missing = n - int(chosen.numel())
    if missing > 0:
        rest = torch.ones(c.indices.numel(), dtype=torch.bool)
        rest[chosen] = False
        left = rest.nonzero().squeeze(1)
        chosen = torch.cat([chosen, left[lowest(c.scores[left], c.indices[left], missing)]])
        notices.append("class-balanced selection: " + ", ".join(f"class {k} had {have} of its {quota}"
                                                                for k, quota, have in short)
                       + f"; the remaining {missing} trusted samples are the best ranked of the other classes")
    return torch.sort(c.indices[chosen]).values
