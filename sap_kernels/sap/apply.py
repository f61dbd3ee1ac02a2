"""Phase 5, ``apply``: write the projection at one alpha into a model, from spectra or statistics.

Every target is checked against the model first (module path, weight shape: the statistics'
fingerprint); every projected weight is computed and checked finite before the first is written;
if anything fails while writing, what was written is restored. ``inplace=False`` projects a copy.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from ..ops.scales import check_alpha
from .params import WeightAccess, weight_access
from .spectra import Spectra, decompose_stream, stream_names
from .spectrum import Spectrum
from .statistics import Statistics, StreamStats
from .targets import Target
from .weights import EigenProjector, Projector, SolveProjector
from .wrappers import working_copy

SOLVERS = ("auto", "eigh", "solve")


def check_solver(solver: object) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be 'auto', 'eigh' or 'solve', got {solver!r}")
    return str(solver)


def strict_alpha(alpha: object, name: str = "alpha") -> float:
    """A positive real number (``math.inf`` allowed); bools and strings are refused by name."""
    if isinstance(alpha, (bool, str, bytes)) or not isinstance(alpha, (int, float)) and not hasattr(alpha, "__float__"):
        raise TypeError(f"{name} must be a positive number, got {alpha!r}")
    try:
        return check_alpha(alpha)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("alpha", name, 1)) from None


def _access(model: nn.Module, t: Target) -> WeightAccess:
    try:
        module = t.module(model)
    except AttributeError:
        raise ValueError(f"the model has no module {t.path!r} (target {t.name!r}): these statistics belong to "
                         "another model") from None
    param = getattr(module, t.param, None)
    if not isinstance(param, torch.Tensor) or tuple(param.shape) != tuple(t.shape):
        got = list(param.shape) if isinstance(param, torch.Tensor) else type(param).__name__
        raise ValueError(f"{t.name!r}: the model's {t.param} has shape {got} but the statistics were collected for "
                         f"{list(t.shape)}: these statistics belong to another model")
    access, why = weight_access(module, t.param, t.rows)
    if access is None:
        raise ValueError(f"{t.name!r} cannot be written: {why}")
    return access


def _solve_gram(s: StreamStats) -> Optional[torch.Tensor]:
    """The Gram for the fixed-alpha Cholesky route, or None where the dual route is cheaper: ``m``
    kept rows cost about ``m^2 K + 9 m^3`` that way against ``m K^2 + K^3 / 3`` through a Gram
    (the dual route wins for few rows of a wide layer, e.g. a 25,088-wide classifier)."""
    if s.gram is not None:
        return s.gram
    if s.kept is None:
        return None
    m, k = s.kept.shape[-2], s.kept.shape[-1]
    if m * k * k + k ** 3 / 3 >= m * m * k + 9 * m ** 3:
        return None
    r = s.kept.to(torch.float64)
    return r.transpose(-1, -2) @ r


def projectors_from_spectra(model: nn.Module, spectra: Spectra, backend: Optional[str] = None) -> list[Projector]:
    return [EigenProjector(t, _access(model, t), spectra.spectra[t.stream], backend) for t in spectra.targets]


def projectors_from_statistics(model: nn.Module, stats: Statistics, alpha: float, solver: str = "auto",
                               backend: Optional[str] = None,
                               eig_dtype: Optional[torch.dtype] = None) -> list[Projector]:
    """Fixed-alpha projectors: the Cholesky route per Gram (``solver != "eigh"``), else spectra."""
    out: list[Projector] = []
    spectra: dict[str, Spectrum] = {}
    for t in stats.targets:
        s = stats.streams[t.stream]
        gram = _solve_gram(s) if solver != "eigh" and not math.isinf(alpha) else None
        if gram is not None:
            from .spectra import check_finite

            check_finite(gram, "Gram", stream_names(stats.targets, t.stream))
            out.append(SolveProjector(t, _access(model, t), gram, alpha))
            continue
        if t.stream not in spectra:
            spectra[t.stream] = decompose_stream(s, stream_names(stats.targets, t.stream), eig_dtype)
        out.append(EigenProjector(t, _access(model, t), spectra[t.stream], backend))
    return out


def write_all(projectors: list[Projector], alpha: float) -> None:
    """Every projection at ``alpha`` computed first, then written; restored on any failure."""
    new = [p.projected(alpha) for p in projectors]
    done: list[Projector] = []
    try:
        for p, w in zip(projectors, new):
            done.append(p)
            p.access.write(w)
    except BaseException:
        for p in done:
            p.restore()
        raise


def apply(
    model: nn.Module,
    source: Union[Spectra, Statistics],
    alpha: float,
    *,
    inplace: bool = False,
    solver: str = "auto",
    backend: Optional[str] = None,
) -> nn.Module:
    """Project ``model``'s weights at ``alpha`` with ``source`` (from ``decompose`` or ``collect``).

    Args:
        model: the model the statistics were collected on (or another instance of it: module
            paths and weight shapes must match, else a ValueError naming the first mismatch).
        source: ``Spectra`` (any alpha, eigenvectors) or ``Statistics`` (one alpha: a float64
            Cholesky solve per Gram unless ``solver="eigh"``; kept rows use the dual route).
        alpha: ``> 0``; ``math.inf`` leaves the weights as they are.
        inplace: write into ``model`` itself; else into a deep copy, returned.
        solver: ``"auto"``/``"solve"`` or ``"eigh"`` (only for ``Statistics``).
        backend: kernel backend for ``ops.scaled_projection``.
    Returns:
        the projected model (``model`` itself when ``inplace``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    a = strict_alpha(alpha)
    solver = check_solver(solver)
    if not isinstance(source, (Spectra, Statistics)):
        raise TypeError(f"source must be Spectra or Statistics, got {type(source).__name__}")
    returned, target, _ = working_copy(model, inplace)
    if isinstance(source, Spectra):
        projectors = projectors_from_spectra(target, source, backend)
    else:
        projectors = projectors_from_statistics(target, source, a, solver, backend)
    write_all(projectors, a)
    return returned
