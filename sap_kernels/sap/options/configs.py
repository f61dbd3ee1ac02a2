"""``project()``'s arguments, checked all at once before any work, each error naming its argument."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from ...ops.dispatch import requested_backend
from ..alpha.search import refines
from ..alpha.sweep import check_alphas
from ..projection.scaling import check_location, check_mode, check_param, default_grid, grid_for
from ..projection.write import check_solver, strict_alpha
from ..trusted.rankers import RANKERS
from ..trusted.selection import check_count, check_n_trusted
from . import precision


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _fraction(value: Any, name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be None or a fraction in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Settings:
    """Validated ``project`` options (see its docstring)."""

    alpha: Optional[float]
    grid: Optional[list[float]]
    n_trusted: Optional[Union[int, float]]
    class_balanced: Optional[bool]
    strategy: str
    solver: str
    eig_dtype: Optional[torch.dtype]
    batch_size: Optional[int]
    holdout: Optional[float]
    max_holdout: int
    seed: int
    backend: Optional[str]
    inplace: bool
    progress: bool
    skip_head: bool
    mode: str = "sap"
    location: str = "pre"
    rounds: int = 1
    refine: bool = False  # coarse-to-fine over the default grid (``sap.search``)

    @property
    def sweeping(self) -> bool:
        return self.alpha is None

    @property
    def solve(self) -> bool:
        """The fixed-alpha Cholesky route (``solver="auto"`` with ``alpha``, or ``"solve"``)."""
        return (self.alpha is not None and self.solver != "eigh" and not math.isinf(self.alpha)
                and self.mode == "sap" and self.location == "pre" and self.rounds == 1)


def settings(*, alpha: Any, alphas: Any, n_trusted: Any, class_balanced: Any, strategy: Any, solver: Any,
             eig_dtype: Any, batch_size: Any, holdout: Any, max_holdout: Any, seed: Any, backend: Any,
             inplace: Any, progress: Any, skip_head: Any, mode: Any = "sap", location: Any = "pre",
             rounds: Any = 1) -> Settings:
    """Every option checked; the first bad one raises a TypeError/ValueError naming it."""
    if alpha is not None and alphas is not None:
        raise ValueError("give alpha (one value, no sweep) or alphas (a grid to search), not both")
    mode, location = check_mode(mode), check_location(location)
    a = None if alpha is None else check_param(mode, strict_alpha(alpha))
    grid = None if a is not None else (default_grid(mode) if alphas is None else grid_for(mode, check_alphas(alphas)))
    solver = check_solver(solver)
    if solver == "solve" and a is None:
        raise ValueError("solver='solve' needs one fixed alpha (pass alpha=...); an alpha sweep uses 'eigh'")
    if strategy not in RANKERS:
        raise ValueError(f"trusted must be one of {sorted(RANKERS)}, a sequence of clean positions or a loader of "
                         f"clean samples; got {strategy!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    requested_backend(backend)  # validates backend= and $SAP_KERNELS_BACKEND on every path
    if check_count(rounds, "rounds") > 1 and location != "pre":
        raise ValueError(f"rounds={rounds} composes input-side projections; it needs location='pre', not {location!r}")
    return Settings(
        alpha=a, grid=grid, n_trusted=check_n_trusted(n_trusted),
        class_balanced=None if class_balanced is None else _flag(class_balanced, "class_balanced"),
        strategy=strategy, solver=solver, eig_dtype=precision.check_eig_dtype(eig_dtype),
        batch_size=None if batch_size is None else check_count(batch_size, "batch_size"),
        holdout=_fraction(holdout, "holdout"), max_holdout=check_count(max_holdout, "max_holdout"),
        seed=int(seed), backend=backend, inplace=_flag(inplace, "inplace"), progress=_flag(progress, "progress"),
        skip_head=_flag(skip_head, "skip_head"), mode=mode, location=location, rounds=check_count(rounds, "rounds"),
        refine=a is None and refines(alphas, mode),
    )
