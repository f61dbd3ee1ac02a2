"""Phase 2's result: per-stream Grams (or kept rows) and the targets they belong to, savable.

``Statistics`` is plain data: tensors plus a table naming every target by its module path, so it
can be saved (``save``: safetensors, no pickle), loaded in another process without the data or
the model (``load``), decomposed (``decompose``) and applied to any model whose projected weights
have the recorded shapes (``sap_kernels.apply``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

import torch

from ..layers.targets import StreamSpec, Target

if TYPE_CHECKING:
    from ..runtime.distributed import ProcessGroup
    from .decomposition import Spectra

FORMAT = "sap_kernels.statistics"
FORMAT_VERSION = 1


@dataclass
class StreamStats:
    """One stream's data. Activations were divided by ``2^exp`` before accumulating (exact).

    gram: ``[groups, K, K]`` float32/float64, or None while the stream holds rows.
    kept: ``[groups, m, K]`` rows (``m <= K``), or None once the Gram took over.
    rows: rows seen per group.
    """

    spec: StreamSpec
    rows: int
    gram: Optional[torch.Tensor] = None
    kept: Optional[torch.Tensor] = None
    exp: int = 0

    def meta(self) -> dict[str, Any]:
        s = self.spec
        data = self.gram if self.gram is not None else self.kept
        return {"key": s.key, "groups": s.groups, "k": s.k, "kind": s.kind, "rows": self.rows, "exp": self.exp,
                "storage": "gram" if self.gram is not None else "rows",
                "dtype": str(data.dtype) if data is not None else None}


@dataclass
class Statistics:
    """Per-stream statistics of the trusted samples, and the targets projected with them.

    streams: stream key -> ``StreamStats``.
    targets: the weights to project (each names its stream).
    skipped: ``(name, reason)`` for every parametrised module or target not projected.
    head: the classifier head's name when ``skip_head`` found it, else None.
    trusted_indices: ``[n]`` int64 positions of the samples in the loader's order (may be empty).
    notices: what earlier phases decided on their own, in words.
    """

    streams: dict[str, StreamStats]
    targets: list[Target]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    head: Optional[str] = None
    n_samples: int = 0
    trusted_indices: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    notices: list[str] = field(default_factory=list)

    def fingerprint(self) -> dict[str, list[int]]:
        """``"path.param"`` -> shape of every projected weight (checked by ``apply``)."""
        return {f"{t.path}.{t.param}".lstrip("."): list(t.shape) for t in self.targets}

    def decompose(self, *, eig_dtype: Optional[torch.dtype] = None, progress: bool = False,
                  release: bool = False, process_group: Optional["ProcessGroup"] = None,
                  distributed: Optional[bool] = None) -> "Spectra":
        """Eigendecompose every stream (see ``sap_kernels.sap.spectra.decompose_statistics``).

        Under torch.distributed (every rank holding the same statistics, as ``collect`` leaves
        them) the streams are split over the ranks by longest-processing-time on their cost and
        every spectrum is broadcast, so N ranks decompose about N times faster.
        """
        from ..runtime.distributed import resolve_ranks
        from .decomposition import decompose_statistics

        return decompose_statistics(self, eig_dtype=eig_dtype, progress=progress, release=release,
                                    ranks=resolve_ranks(process_group, distributed))

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write a safetensors file: every Gram/rows tensor plus a JSON table in its metadata.
        Under torch.distributed only rank 0 writes (every rank holds the same statistics)."""
        from ..runtime.distributed import is_writer
        from . import storage

        if is_writer():
            storage.save_statistics(self, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike[str]]) -> "Statistics":
        """Read a file written by ``save`` (no pickle: a tampered file is refused, not executed)."""
        from . import storage

        return storage.load_statistics(path)

    def __repr__(self) -> str:
        return (f"Statistics({len(self.targets)} targets, {len(self.streams)} streams, "
                f"{int(self.trusted_indices.numel())} samples, {len(self.skipped)} skipped)")


def meta_json(stats: Statistics) -> str:
    from ... import __version__

    return json.dumps({
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
        "streams": [s.meta() for s in stats.streams.values()],
        "targets": [t.to_json() for t in stats.targets],
        "skipped": [list(x) for x in stats.skipped], "head": stats.head, "n_samples": stats.n_samples,
        "notices": stats.notices, "fingerprint": stats.fingerprint(),
    })

