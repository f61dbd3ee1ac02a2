"""Phase 3, ``Statistics.decompose``: one eigendecomposition per stream, serving every alpha.

A stream holding a Gram is decomposed as a ``[groups, K, K]`` symmetric eigenproblem; a stream
still holding its rows (``m <= K``) through the ``m x m`` dual problem. Dtypes follow the
precision policy (``sap_kernels.sap.precision``). A non-finite Gram or spectrum is an error naming
the layer: weights are never written from a non-finite decomposition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import torch
from tqdm.auto import tqdm

from . import precision
from .spectrum import Spectrum, decompose, decompose_rows
from .targets import Target

if TYPE_CHECKING:
    from .statistics import Statistics, StreamStats


class NonFiniteStatistics(ValueError):
    """A layer's Gram or spectrum holds NaN/Inf (the activations overflowed, or the input was bad)."""


def stream_names(targets: list[Target], key: str) -> str:
    names = [t.name for t in targets if t.stream == key]
    return ", ".join(repr(n) for n in names) or repr(key)


def check_finite(t: torch.Tensor, what: str, names: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteStatistics(f"layer {names}: its {what} holds NaN/Inf; nothing was written")


def decompose_stream(s: "StreamStats", names: str, eig_dtype: Optional[torch.dtype]) -> Spectrum:
    """The spectrum of one stream: dual from its rows while it holds rows, else from its Gram."""
    if s.kept is not None:
        check_finite(s.kept, "activation rows", names)
        spec = decompose_rows(s.kept, eig_dtype or precision.ROWS_DECOMPOSE_DTYPE)
    elif s.gram is not None:
        check_finite(s.gram, "Gram", names)
        spec = decompose(s.gram, precision.eig_dtype(s.spec.k, s.gram.dtype, eig_dtype))
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


def decompose_statistics(stats: "Statistics", *, eig_dtype: Optional[torch.dtype] = None, progress: bool = False,
                         release: bool = False) -> Spectra:
    """Eigendecompose every stream of ``stats`` (``release``: drop each Gram once decomposed)."""
    eig_dtype = precision.check_eig_dtype(eig_dtype)
    spectra: dict[str, Spectrum] = {}
    keys = [k for k in stats.streams if any(t.stream == k for t in stats.targets)]
    for key in tqdm(keys, desc="SAP: decomposition", disable=not progress, leave=False):
        s = stats.streams[key]
        spectra[key] = decompose_stream(s, stream_names(stats.targets, key), eig_dtype)
        if release:
            s.gram = s.kept = None
    return Spectra(spectra, list(stats.targets), {k: stats.streams[k].rows for k in keys}, list(stats.skipped),
                   stats.head, stats.n_samples, stats.trusted_indices, list(stats.notices))
