"""Phase 5, ``apply``: write the projection at one alpha into a model, from spectra or statistics.

The projectors themselves (what each target's weight becomes at an alpha) are in ``projectors``.

Every target is checked against the model first (module path, weight shape: the statistics'
fingerprint); every projected weight is computed and checked finite before the first is written;
if anything fails while writing, what was written is restored. ``inplace=False`` projects a copy.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from ... import ops
from ..layers.targets import Target
from ..layers.weight_access import WeightAccess, weight_access
from ..options.choices import check_location, check_mode, check_solver
from ..options.configs import ProjectionConfig
from ..options.grid import check_param, strict_alpha
from ..runtime.distributed import Ranks, agreed, lpt_assignment
from ..runtime.wrappers import working_copy
from ..spectra.decomposition import Spectra, check_finite, decompose_stream, stream_names
from ..spectra.eigenpairs import Spectrum
from ..spectra.statistics import Statistics
from ..spectra.streams import StreamStats
from .projectors import EigenProjector, GeneralProjector, Projector, SolveProjector

# torch's linear-algebra failure (a RuntimeError; torch.linalg does not export it to type checkers)
_LINALG_ERROR: type[Exception] = getattr(torch.linalg, "LinAlgError", RuntimeError)


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


def _bias_access(model: nn.Module, t: Target) -> Optional[WeightAccess]:
    if t.bias is None or t.rows is not None:
        return None
    access, why = weight_access(t.module(model), t.bias)
    if access is None:
        raise ValueError(f"{t.name!r}: its bias cannot be written ({why})")
    return access


def _post_spectrum(spectra: dict[str, Spectrum], t: Target, location: str) -> Optional[Spectrum]:
    if location == "pre":
        return None
    if t.post is None or t.post not in spectra:
        if t.kind.startswith("MHA"):
            return None  # attention blocks keep their input side (modes.py)
        raise ValueError(f"{t.name!r}: location={location!r} needs the layer's output statistics; collect them "
                         f"with collect(..., location={location!r}) (or project(..., location={location!r}))")
    return spectra[t.post]


def projector_for(model: nn.Module, t: Target, spectra: dict[str, Spectrum], mode: str = "sap",
                  location: str = "pre", backend: Optional[str] = None) -> Projector:
    """The projector of one target: the fused SAP kernel for the default (``sap``, input side),
    else the general one (any mode, either or both sides)."""
    if mode == "sap" and location == "pre":
        return EigenProjector(t, _access(model, t), spectra[t.stream], backend)
    pre = spectra[t.stream] if location != "post" or t.kind.startswith("MHA") else None
    post = _post_spectrum(spectra, t, location)
    return GeneralProjector(t, _access(model, t), pre, post, mode, _bias_access(model, t) if post is not None else None)


def projectors_from_spectra(model: nn.Module, spectra: Spectra, backend: Optional[str] = None, mode: str = "sap",
                            location: str = "pre") -> list[Projector]:
    return [projector_for(model, t, spectra.spectra, mode, location, backend) for t in spectra.targets]


def projectors_from_statistics(model: nn.Module, stats: Statistics, alpha: float, solver: str = "auto",
                               backend: Optional[str] = None, eig_dtype: Optional[torch.dtype] = None,
                               ranks: Optional[Ranks] = None) -> list[Projector]:
    """Fixed-alpha projectors: the Cholesky route per Gram (``solver != "eigh"``), else spectra.
    With ``ranks`` the solves are split over the ranks (longest-processing-time on ``g K^3``) and
    each projected block is broadcast from the rank that solved it."""
    grams = {t.name: _solve_gram(stats.streams[t.stream]) if solver != "eigh" and not math.isinf(alpha) else None
             for t in stats.targets}
    owners = _solve_owners(stats, grams, 1 if ranks is None else ranks.size)
    solved = agreed(ranks, "the fixed-alpha solves", lambda: _split_solves(model, stats, grams, alpha, owners, ranks))
    out: list[Projector] = []
    spectra: dict[str, Spectrum] = {}
    for t in stats.targets:
        s = stats.streams[t.stream]
        gram = grams[t.name]
        if gram is not None:
            mine = solved.get(t.name)
            result = mine if ranks is None else _share(model, mine, t, ranks, owners[t.name])
            out.append(SolveProjector(t, _access(model, t), gram, alpha, result))
            continue
        if t.stream not in spectra:
            spectra[t.stream] = decompose_stream(s, stream_names(stats.targets, t.stream), eig_dtype)
        out.append(EigenProjector(t, _access(model, t), spectra[t.stream], backend))
    return out


def _solve_owners(stats: Statistics, grams: dict[str, Optional[torch.Tensor]], size: int) -> dict[str, int]:
    names = [t.name for t in stats.targets if grams[t.name] is not None]
    costs = [float(t.groups * t.k ** 3) for t in stats.targets if grams[t.name] is not None]
    return dict(zip(names, lpt_assignment(costs, size)))


def _split_solves(model: nn.Module, stats: Statistics, grams: dict[str, Optional[torch.Tensor]], alpha: float,
                  owners: dict[str, int], ranks: Optional[Ranks]) -> dict[str, torch.Tensor]:
    """This rank's share (``owners``: target name -> rank) of the projected blocks
    ``[groups, out_g, K]`` (all of them alone)."""
    out = {}
    for t in stats.targets:
        gram = grams[t.name]
        if gram is None or (ranks is not None and owners[t.name] != ranks.rank):
            continue
        check_finite(gram, "Gram", stream_names(stats.targets, t.stream))
        w = _access(model, t).read()
        try:
            out[t.name] = ops.gram_projection(w.reshape(t.groups, w.shape[0] // t.groups, t.k), gram, alpha)
        except (ValueError, _LINALG_ERROR) as exc:
            where = "" if stats.source is None else f" in statistics file {stats.source!r}"
            raise ValueError(f"layer {t.name!r} (stream {t.stream!r}{where}): the fixed-alpha Cholesky solve failed: "
                             f"the Gram is not positive semi-definite (statistics altered or corrupt?); {exc}"
                             ) from None
    return out


def _share(model: nn.Module, mine: Optional[torch.Tensor], t: Target, ranks: Ranks, owner: int) -> torch.Tensor:
    """The projected block of ``t`` from ``owner``, the rank that solved it (``mine`` there)."""
    w = _access(model, t).read()  # the result has the weight's shape, dtype and device
    like = mine if mine is not None else torch.empty(t.groups, w.shape[0] // t.groups, t.k, dtype=w.dtype,
                                                     device=w.device)
    return ranks.broadcast(like, owner)


def write_all(projectors: list[Projector], alpha: float, ranks: Optional[Ranks] = None) -> None:
    """Every projection at ``alpha`` computed first (agreed over the ranks), then written; any
    failure, on this rank or another, restores what was written."""
    new = agreed(ranks, "computing the projected weights", lambda: [p.prepare(alpha) for p in projectors])
    done: list[Projector] = []

    def write() -> None:
        for p, values in zip(projectors, new):
            done.append(p)
            p.commit(values)

    try:
        agreed(ranks, "writing the weights", write)
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
    mode: str = "sap",
    location: str = "pre",
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
        mode, location: the projection variant and side (``sap_kernels.sap.projection.scaling``); ``"gpm"``
            takes ``alpha`` as the share of energy kept. The Cholesky route serves ``sap`` on the
            input side; the rest decompose.
    Returns:
        the projected model (``model`` itself when ``inplace``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    mode, location = check_mode(mode), check_location(location)
    a = check_param(mode, strict_alpha(alpha))
    config = ProjectionConfig(mode=mode, location=location, solver=check_solver(solver), backend=backend)
    if not isinstance(source, (Spectra, Statistics)):
        raise TypeError(f"source must be Spectra or Statistics, got {type(source).__name__}")
    returned, target, _ = working_copy(model, inplace)
    write_all(projectors_of(target, source, a, config), a)
    return returned


def projectors_of(model: nn.Module, source: Union[Spectra, Statistics], alpha: float,
                  config: ProjectionConfig) -> list[Projector]:
    """What ``apply`` writes: from spectra any variant; from statistics the fixed-alpha route of
    ``sap`` on the input side (``projectors_from_statistics``), any other variant decomposed first."""
    if isinstance(source, Statistics) and (config.mode != "sap" or config.location != "pre"):
        source = source.decompose(eig_dtype=config.eig_dtype)
    if isinstance(source, Spectra):
        return projectors_from_spectra(model, source, config.backend, config.mode, config.location)
    return projectors_from_statistics(model, source, alpha, config.solver, config.backend, config.eig_dtype)
