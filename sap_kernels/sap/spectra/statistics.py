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
from typing import Optional, Union

import torch

from ...version import __version__
from ..layers.targets import Target
from ..runtime.distributed import ProcessGroup, is_writer, resolve_ranks
from . import storage
from .decomposition import Spectra, decompose_streams
from .streams import StreamStats


@dataclass
class Statistics:
    """Per-stream statistics of the trusted samples, and the targets projected with them.

    streams: stream key -> ``StreamStats``.
    targets: the weights to project (each names its stream).
    skipped: ``(name, reason)`` for every parametrised module or target not projected.
    head: the classifier head's name when ``skip_head`` found it, else None.
    trusted_indices: ``[n]`` int64 positions of the samples in the loader's order (may be empty).
    notices: what earlier phases decided on their own, in words.
    source: the file they were loaded from (``load``), else None.
    """

    streams: dict[str, StreamStats]
    targets: list[Target]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    head: Optional[str] = None
    n_samples: int = 0
    trusted_indices: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    notices: list[str] = field(default_factory=list)
    source: Optional[str] = None  # the file ``load`` read them from, named in errors

    def fingerprint(self) -> dict[str, list[int]]:
        """``"path.param"`` -> shape of every projected weight (checked by ``apply``)."""
        return {f"{t.path}.{t.param}".lstrip("."): list(t.shape) for t in self.targets}

    def decompose(self, *, eig_dtype: Optional[torch.dtype] = None, progress: bool = False,
                  release: bool = False, process_group: Optional[ProcessGroup] = None,
                  distributed: Optional[bool] = None) -> Spectra:
        """Eigendecompose every stream (``sap_kernels.sap.spectra.decomposition``; ``release``: drop
        each Gram once decomposed).

        Under torch.distributed (every rank holding the same statistics, as ``collect`` leaves
        them) the streams are split over the ranks by longest-processing-time on their cost and
        every spectrum is broadcast, so N ranks decompose about N times faster.
        """
        try:
            spectra, rows = decompose_streams(self.streams, self.targets, eig_dtype=eig_dtype, progress=progress,
                                              release=release, ranks=resolve_ranks(process_group, distributed))
        except ValueError as exc:
            if self.source is None:
                raise
            raise ValueError(f"{exc} (statistics file {self.source!r})") from None
        return Spectra(spectra, list(self.targets), rows, list(self.skipped),
                       self.head, self.n_samples, self.trusted_indices, list(self.notices))

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write a safetensors file: every Gram/rows tensor plus a JSON table in its metadata
        (``spectra.storage``). Under torch.distributed only rank 0 writes (every rank holds the same
        statistics). Statistics whose Grams were dropped (``decompose(release=True)``) cannot be
        saved: a ValueError names the streams, before anything is written."""
        released = [k for k, s in self.streams.items() if s.gram is None and s.kept is None and s.rows > 0]
        if released:
            raise ValueError(f"cannot save statistics to {os.fspath(path)!r}: streams {released[:5]} hold no Gram or "
                             "rows any more (decompose(release=True) dropped them); save before decomposing with "
                             "release=True, or decompose with release=False")
        if is_writer():
            storage.save_file(path, self.streams, self.trusted_indices, meta_json(self))

    @classmethod
    def load(cls, path: Union[str, os.PathLike[str]]) -> "Statistics":
        """Read a file written by ``save`` (no pickle: a tampered file is refused, not executed)."""
        tensors, meta = storage.read_file(path)
        try:
            streams = {m["key"]: storage.stream_of(m, tensors) for m in meta["streams"]}
            targets = [Target.from_json(t) for t in meta["targets"]]
            missing = [t.name for t in targets if t.stream not in streams]
            if missing:
                raise ValueError(f"statistics file: targets {missing} name streams it does not hold")
            return cls(streams, targets, [tuple(x) for x in meta["skipped"]], meta["head"],
                       int(meta["n_samples"]), tensors.get("trusted_indices", torch.zeros(0, dtype=torch.long)),
                       list(meta["notices"]), os.fspath(path))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{os.fspath(path)!r}: malformed statistics table ({type(exc).__name__}: {exc})") from None

    def __repr__(self) -> str:
        return (f"Statistics({len(self.targets)} targets, {len(self.streams)} streams, "
                f"{int(self.trusted_indices.numel())} samples, {len(self.skipped)} skipped)")


def meta_json(stats: Statistics) -> str:
    return json.dumps({
        "format": storage.FORMAT, "format_version": storage.FORMAT_VERSION, "package_version": __version__,
        "streams": [s.meta() for s in stats.streams.values()],
        "targets": [t.to_json() for t in stats.targets],
        "skipped": [list(x) for x in stats.skipped], "head": stats.head, "n_samples": stats.n_samples,
        "notices": stats.notices, "fingerprint": stats.fingerprint(),
    })

