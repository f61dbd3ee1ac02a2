"""``project()``'s arguments, checked all at once before any work (``settings``, each error naming
its argument), and the frozen configurations the phases take (``TrustConfig``, ``CollectConfig``,
``SweepConfig``, ``ProjectionConfig``, with ``BatchFormat`` and ``Parallel`` inside them).

``project`` resolves its arguments once into these; each public phase function (``select_trusted``,
``collect``, ``choose_alpha``, ``apply``) builds the same object from its keywords and checks it as
it always did. The callables' types (``Splitter``, ``PerSample``, ``RowMaskFn``, ``Selector``) are
defined here so that every layer can name them.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
import torch.distributed

from ...ops.dispatch import requested_backend
from . import precision
from .choices import (
    STRATEGIES,
    check_count,
    check_flag,
    check_fraction,
    check_location,
    check_mode,
    check_n_trusted,
    check_solver,
)
from .grid import check_alphas, check_param, default_grid, grid_for, refines, strict_alpha

# batch -> (inputs, labels)
Splitter = Callable[[Any], tuple[Any, Any]]
# (output, labels) -> [B] per-sample loss or score
PerSample = Callable[[Any, torch.Tensor], torch.Tensor]
# inputs -> [B, T] bool, True at real tokens (None: every row)
RowMaskFn = Callable[[Any], Optional[torch.Tensor]]
# a module name, a glob pattern or a module type (``layers=``/``skip=``)
Selector = Union[str, type]
Selection = Optional[Union[Selector, Iterable[Selector]]]


@dataclass(frozen=True)
class BatchFormat:
    """How a loader batch becomes ``(inputs, labels)`` (``data.batches.make_splitter``)."""

    batch_fn: Optional[Splitter] = None
    input_key: Optional[Union[str, Sequence[str]]] = None
    label_key: Optional[str] = None


@dataclass(frozen=True)
class Parallel:
    """Where a phase runs: ``distributed=None`` on every rank of an initialised torch.distributed
    job with several processes, ``False`` this process alone, ``True`` the ranks or an error."""

    process_group: Optional[torch.distributed.ProcessGroup] = None
    distributed: Optional[bool] = None


@dataclass(frozen=True, kw_only=True)
class TrustConfig:
    """Phase 1 (``select_trusted``): which samples are trusted, and what else the pass keeps."""

    n_trusted: Optional[Union[int, float]] = None
    class_balanced: Optional[bool] = None
    strategy: str = "loss"
    holdout: float = 0.0
    max_holdout: int = 10_000
    reference: int = 0
    seed: int = 0
    loss_fn: Optional[PerSample] = None
    indices: Optional[Union[Sequence[int], torch.Tensor]] = None
    progress: bool = True
    batches: BatchFormat = field(default_factory=BatchFormat)
    parallel: Parallel = field(default_factory=Parallel)


@dataclass(frozen=True, kw_only=True)
class CollectConfig:
    """Phase 2 (``collect``): which layers' Grams, from which rows, on which backend."""

    row_mask: Optional[RowMaskFn]
    layers: Selection = None
    skip: Selection = None
    skip_head: bool = False
    batch_size: Optional[int] = None
    backend: Optional[str] = None
    progress: bool = True
    location: str = "pre"
    batches: BatchFormat = field(default_factory=BatchFormat)
    parallel: Parallel = field(default_factory=Parallel)


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """Phase 4 (``choose_alpha``): the grid, how it is searched and scored, and the rule's inputs.

    grid: sorted, checked alphas (``options.grid``); refine: coarse-to-fine (``alpha.search``);
    memorised: True, False or ``"auto"`` (``alpha.rules``); unchanged_score: the unchanged model's
    mean score on the data when already measured (None: scored by the sweep).
    """

    grid: tuple[float, ...]
    refine: bool
    memorised: Union[bool, str] = False
    chance: float = 0.0
    score_fn: Optional[PerSample] = None
    unchanged_score: Optional[float] = None
    backend: Optional[str] = None
    progress: bool = True
    mode: str = "sap"
    location: str = "pre"
    batches: BatchFormat = field(default_factory=BatchFormat)
    parallel: Parallel = field(default_factory=Parallel)


@dataclass(frozen=True, kw_only=True)
class ProjectionConfig:
    """Phase 5 (``apply``): the variant and side (``projection.scaling``), the fixed-alpha solver
    and the dtype of any decomposition it needs."""

    mode: str = "sap"
    location: str = "pre"
    solver: str = "auto"
    backend: Optional[str] = None
    eig_dtype: Optional[torch.dtype] = None


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
    refine: bool = False  # coarse-to-fine over the default grid (``sap.alpha.search``)

    @property
    def sweeping(self) -> bool:
        return self.alpha is None

    @property
    def solve(self) -> bool:
        """The fixed-alpha Cholesky route (``solver="auto"`` with ``alpha``, or ``"solve"``)."""
        return (self.alpha is not None and self.solver != "eigh" and not math.isinf(self.alpha)
                and self.mode == "sap" and self.location == "pre" and self.rounds == 1)


ROUND_FACTOR = 10.0  # alpha grows by this factor each round (``projection.rounds``)


def check_rounds(rounds: int, params: list[float]) -> None:
    """A ValueError when round ``rounds - 1``'s alpha (``alpha * ROUND_FACTOR ** (rounds - 1)``,
    for the largest finite alpha of ``params``) would overflow a float."""
    finite = [float(p) for p in params if math.isfinite(float(p)) and float(p) > 0]
    top = max(finite, default=1.0)
    limit = 1 + int((math.log10(sys.float_info.max) - math.log10(top)) // math.log10(ROUND_FACTOR))
    if rounds > limit:
        raise ValueError(f"rounds={rounds} is too many: alpha grows x{ROUND_FACTOR:g} per round, so from alpha "
                         f"{top:g} it overflows a float after {limit} rounds; pass rounds <= {limit}")


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
    if strategy not in STRATEGIES:
        raise ValueError(f"trusted must be one of {sorted(STRATEGIES)}, a sequence of clean positions or a loader of "
                         f"clean samples; got {strategy!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {int(seed)}")
    requested_backend(backend)  # validates backend= and $SAP_KERNELS_BACKEND on every path
    if check_count(rounds, "rounds") > 1 and location != "pre":
        raise ValueError(f"rounds={rounds} composes input-side projections; it needs location='pre', not {location!r}")
    check_rounds(int(rounds), [a] if a is not None else list(grid or ()))
    if solver == "solve" and (mode != "sap" or location != "pre" or int(rounds) > 1):
        raise ValueError(f"solver='solve' is the one-alpha Cholesky route of mode='sap', location='pre', rounds=1; "
                         f"mode={mode!r}, location={location!r}, rounds={int(rounds)} needs the spectra: pass "
                         "solver='eigh' or 'auto'")
    return Settings(
        alpha=a, grid=grid, n_trusted=check_n_trusted(n_trusted),
        class_balanced=None if class_balanced is None else check_flag(class_balanced, "class_balanced"),
        strategy=strategy, solver=solver, eig_dtype=precision.check_eig_dtype(eig_dtype),
        batch_size=None if batch_size is None else check_count(batch_size, "batch_size"),
        holdout=check_fraction(holdout, "holdout"), max_holdout=check_count(max_holdout, "max_holdout"),
        seed=int(seed), backend=backend, inplace=check_flag(inplace, "inplace"),
        progress=check_flag(progress, "progress"), skip_head=check_flag(skip_head, "skip_head"), mode=mode,
        location=location, rounds=check_count(rounds, "rounds"),
        refine=a is None and refines(alphas, mode),
    )
