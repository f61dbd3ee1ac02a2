"""Phase 3, ``Statistics.decompose``: one eigendecomposition per stream, serving every alpha.

A stream holding a Gram is decomposed as a ``[groups, K, K]`` symmetric eigenproblem; a stream
still holding its rows (``m <= K``) through the ``m x m`` dual problem. Dtypes follow the
precision policy (``sap_kernels.sap.options.precision``). A non-finite Gram or spectrum is an error naming
the layer: weights are never written from a non-finite decomposition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from ...ops._checks import all_finite
from ..layers.targets import Target
from ..options import precision
from ..runtime.distributed import Ranks, agreed, lpt_assignment
from .eigenpairs import Spectrum, decompose, decompose_rows
from .streams import StreamStats

# torch's linear-algebra failure (a RuntimeError; torch.linalg does not export it to type checkers)
_LINALG_ERROR: type[Exception] = getattr(torch.linalg, "LinAlgError", RuntimeError)


class NonFiniteStatistics(ValueError):
    """A layer's Gram or spectrum holds NaN/Inf (the activations overflowed, or the input was bad)."""


def stream_names(targets: list[Target], key: str) -> str:
    names = [t.name if t.stream == key else f"{t.name} (outputs)" for t in targets if key in (t.stream, t.post)]
    return ", ".join(repr(n) for n in names) or repr(key)


def check_finite(t: torch.Tensor, what: str, names: str) -> None:
    if not all_finite(t):
        raise NonFiniteStatistics(f"layer {names}: its {what} holds NaN/Inf; nothing was written")


def decompose_stream(s: StreamStats, names: str, eig_dtype: Optional[torch.dtype]) -> Spectrum:
    """The spectrum of one stream: dual from its rows while it holds rows, else from its Gram."""
    if s.kept is not None:
        check_finite(s.kept, "activation rows", names)
        spec = decompose_rows(s.kept, eig_dtype or precision.ROWS_DECOMPOSE_DTYPE)
    elif s.gram is not None:
        check_finite(s.gram, "Gram", names)
        try:
            spec = decompose(s.gram, precision.eig_dtype(s.spec.k, s.gram.dtype, eig_dtype))
        except (_LINALG_ERROR, np.linalg.LinAlgError) as exc:
            raise ValueError(f"layer {names}: the eigendecomposition of its Gram failed ({exc})") from None
    else:
        raise ValueError(f"layer {names}: no statistics (it was never called)")
    check_finite(spec.eigvals, "spectrum", names)
    check_finite(spec.eigvecs, "eigenvectors", names)
    spec.exp = s.exp
    return spec


@dataclass
class Spectra:
    """Per-stream spectra and the targets projected with them (phase 3's result).

    spectra: stream key -> ``Spectrum``. rows: stream key -> rows seen (for reports).
    """

    spectra: dict[str, Spectrum]
    targets: list[Target]
    rows: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    head: Optional[str] = None
    n_samples: int = 0
    trusted_indices: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    notices: list[str] = field(default_factory=list)

    def method(self, target: Target) -> str:
        return "rows" if self.spectra[target.stream].dual else "gram"

    def __repr__(self) -> str:
        return f"Spectra({len(self.targets)} targets, {len(self.spectra)} streams)"


def stream_cost(s: StreamStats) -> float:
    """Estimated work of decomposing a stream: ``g K^3`` for a Gram, ``g (m^2 K + m^3)`` for rows."""
    g, k = s.spec.groups, s.spec.k
    if s.kept is not None:
        m = s.kept.shape[1]
        return float(g * (m * m * k + m ** 3))
    return float(g * k ** 3)


def _placeholder(s: StreamStats, eig_dtype: Optional[torch.dtype]) -> Spectrum:
    """An empty spectrum of the shape and dtype ``decompose_stream`` gives ``s`` (to receive into)."""
    g, k = s.spec.groups, s.spec.k
    if s.kept is not None:
        m, dev = s.kept.shape[1], s.kept.device
        dtype = eig_dtype or precision.ROWS_DECOMPOSE_DTYPE
        return Spectrum(torch.empty(g, m, dtype=dtype, device=dev), torch.empty(g, k, m, dtype=dtype, device=dev),
                        dual=True, exp=s.exp)
    assert s.gram is not None
    dtype = precision.eig_dtype(k, s.gram.dtype, eig_dtype)
    dev = s.gram.device
    return Spectrum(torch.empty(g, k, dtype=dtype, device=dev), torch.empty(g, k, k, dtype=dtype, device=dev),
                    exp=s.exp)


def _decompose_split(streams: dict[str, StreamStats], targets: list[Target], keys: list[str],
                     eig_dtype: Optional[torch.dtype], ranks: Ranks, progress: bool) -> dict[str, Spectrum]:
    """Each rank decomposes the streams longest-processing-time gives it; spectra are broadcast."""
    owners = lpt_assignment([stream_cost(streams[k]) for k in keys], ranks.size)
    mine = [k for k, o in zip(keys, owners) if o == ranks.rank]

    def local() -> dict[str, Spectrum]:
        return {k: decompose_stream(streams[k], stream_names(targets, k), eig_dtype)
                for k in tqdm(mine, desc="SAP: decomposition", disable=not progress, leave=False)}

    done = agreed(ranks, "the decomposition", local)
    out = {}
    for k, owner in zip(keys, owners):
        spec = done.get(k) or _placeholder(streams[k], eig_dtype)
        out[k] = Spectrum(ranks.broadcast(spec.eigvals, owner), ranks.broadcast(spec.eigvecs, owner), spec.dual,
                          streams[k].exp)
    return out


def decompose_streams(streams: dict[str, StreamStats], targets: list[Target], *,
                      eig_dtype: Optional[torch.dtype] = None, progress: bool = False, release: bool = False,
                      ranks: Optional[Ranks] = None) -> tuple[dict[str, Spectrum], dict[str, int]]:
    """The spectrum and the row count of every stream a target uses (``release``: drop each Gram
    once decomposed; ``ranks``: split the streams over the ranks, every rank gets every spectrum)."""
    eig_dtype = precision.check_eig_dtype(eig_dtype)
    used = {k for t in targets for k in (t.stream, t.post) if k is not None}
    keys = [k for k in streams if k in used]
    if ranks is not None:
        spectra = _decompose_split(streams, targets, keys, eig_dtype, ranks, progress)
    else:
        spectra = {}
        for key in tqdm(keys, desc="SAP: decomposition", disable=not progress, leave=False):
            spectra[key] = decompose_stream(streams[key], stream_names(targets, key), eig_dtype)
            if release:
                streams[key].gram = streams[key].kept = None
    rows = {k: streams[k].rows for k in keys}
    if release:
        for k in keys:
            streams[k].gram = streams[k].kept = None
    return spectra, rows
