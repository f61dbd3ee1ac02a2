"""The alpha grid: what an alpha may be, the default grids, and when the sweep searches
coarse-to-fine (``alpha.search``).

The swept parameter is ``alpha`` for ``mode="sap"``/``"sgp"`` (a positive number, ``math.inf``:
unchanged) and, for ``mode="gpm"``, the share of energy kept, in (0, 1].
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from ...ops.scales import check_alpha

# The share of energy GPM keeps, swept by default (the published code's one value is 0.99).
GPM_SHARES = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9999)


def strict_alpha(alpha: object, name: str = "alpha") -> float:
    """A positive real number (``math.inf`` allowed); bools and strings are refused by name."""
    if isinstance(alpha, (bool, str, bytes)) or not isinstance(alpha, (int, float)) and not hasattr(alpha, "__float__"):
        raise TypeError(f"{name} must be a positive number, got {alpha!r}")
    try:
        return check_alpha(alpha)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("alpha", name, 1)) from None


def check_alphas(alphas: object) -> list[float]:
    """``alphas=``: a non-empty sequence of positive numbers, sorted and deduplicated."""
    if isinstance(alphas, (str, bytes)) or not hasattr(alphas, "__iter__"):
        raise TypeError(f"alphas must be a sequence of positive numbers (e.g. [10, 100, 1000]), got {alphas!r}")
    grid = [strict_alpha(a, "alphas entry") for a in alphas]
    if not grid:
        raise ValueError("alphas is empty: give at least one alpha, or alpha=")
    return sorted(set(grid))


def check_param(mode: str, value: float, name: str = "alpha") -> float:
    """GPM's parameter is an energy share in (0, 1] (``inf`` keeps everything)."""
    if mode == "gpm" and not math.isinf(value) and not 0 < value <= 1:
        raise ValueError(f"mode='gpm' takes {name} as the share of energy kept, in (0, 1]; got {value!r}")
    return value


def default_alphas() -> list[float]:
    """Half-decade log grid ``1, 3.16, 10, ..., 1e6`` (13 alphas; small models favour small alphas,
    the paper's CIFAR models ~3e4). Measured on the alpha study (python/README.md): the
    quarter-decade grid (25 alphas, twice the sweep) chose as well within a point of the gap."""
    return [10 ** (e / 2) for e in range(0, 13)]


def default_grid(mode: str) -> list[float]:
    return list(GPM_SHARES) if mode == "gpm" else default_alphas()


def grid_for(mode: str, alphas: Sequence[float]) -> list[float]:
    return [check_param(mode, a, "alphas entry") for a in alphas]


def refines(alphas: Optional[Sequence[float]], mode: str) -> bool:
    """Whether the sweep searches coarse-to-fine: over the default grid of ``"sap"``/``"sgp"``
    (log-spaced alphas), never over a grid the caller gave or ``"gpm"``'s energy shares."""
    return alphas is None and mode != "gpm"
