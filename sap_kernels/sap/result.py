"""What ``project`` returns: the corrected model and a report."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import nn

from ..file_sets import FileSet, write_text
from ..report import save_report
from ..report.data import report_data
from .data import batches
from .issues.finding import label_issues_of
from .issues.label_issues import LabelIssues
from .issues.neighbours import DEFAULT_NEIGHBOURS
from .issues.rules import DEFAULT_RULE, Rule
from .runtime.distributed import ProcessGroup, is_writer, resolve_ranks
from .runtime.wrappers import unwrap


@dataclass
class LayerReport:
    """One projected layer.

    name: the module name, or for attention weights ``"<block>.in_proj_weight"`` (self-attention,
        packed), ``"<block>.in_proj_weight[q|k|v]"`` (distinct inputs), ``"<block>.q_proj_weight"``
        etc., ``"<block>.out_proj"``.
    eigenvalues: ``[groups, K]`` float64 on CPU, each row in descending order (the input Gram's
        energies, whatever the mode; zeros beyond the rows seen when ``method == "rows"``); None
        when ``method == "solve"`` or when only the output side was decomposed (``location="post"``).
    tied: other modules sharing this weight (their inputs are in the same Gram).
    method: ``"gram"`` (eigendecomposition of the ``K x K`` Gram), ``"rows"`` (dual
        decomposition of the ``rows x rows`` inner products, used when ``rows <= K``) or
        ``"solve"`` (one alpha, Cholesky solve with the Gram, no spectrum).
    """

    name: str
    kind: str
    K: int
    groups: int
    rows: int
    eigenvalues: Optional[torch.Tensor]
    method: str = "gram"
    tied: tuple[str, ...] = ()

    def energy_rank(self, fraction: float = 0.99) -> Optional[int]:
        """Directions needed to hold ``fraction`` of the energy (largest over groups); None
        without a spectrum."""
        if self.eigenvalues is None:
            return None
        e = self.eigenvalues.clamp_min(0).double()
        total = e.sum(1, keepdim=True).clamp_min(1e-300)
        return int(((e.cumsum(1) / total) < fraction).sum(1).add(1).clamp_max(self.K).max())


@dataclass
class SAPResult:
    """Outcome of ``sap_kernels.project``.

    Attributes:
        model: the corrected model (the caller's own object when ``inplace=True``).
        alpha: chosen alpha; ``math.inf`` means the unchanged model scored best.
        scores: alpha -> validation accuracy in [0, 1]; key ``math.inf`` is the unchanged model.
            Empty when ``alpha`` was given.
        trusted_indices: ``[n_trusted]`` int64, ascending positions of the trusted samples: dataset
            indices for a ``DataLoader`` over a map-style dataset (a shuffling one is read in index
            order, ``sap.data.order``), else the order the loader yielded them (0, 1, ...); given
            ``trusted=<positions>`` come back as given.
        layers: one ``LayerReport`` per projected layer.
        skipped: ``(module name, reason)`` for every parametrised module that was not projected.
        validation: where the alpha scores came from.
        holdout_indices: positions (in the same order) held out for choosing alpha (when no
            ``val_loader``), else None; never one of the given clean positions.
        timings: seconds per phase.
        rule: how alpha was chosen, in words ("given" when ``alpha`` was passed).
        warnings: what the user should know about this result (e.g. alpha chosen on memorised data).
        notices: what the method decided on its own (a smaller trusted set on small data, ...).
        mode, location, rounds: the variant that was applied (``project``'s arguments).
    """

    model: nn.Module
    alpha: float
    scores: dict[float, float]
    trusted_indices: torch.Tensor
    layers: list[LayerReport]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    validation: str = ""
    holdout_indices: Optional[torch.Tensor] = None
    n_samples: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    rule: str = ""
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    mode: str = "sap"
    location: str = "pre"
    rounds: int = 1

    def summary(self) -> str:
        """A readable multi-line report."""
        alpha = "unchanged (inf)" if math.isinf(self.alpha) else f"{self.alpha:.4g}"
        lines = [
            f"SAP: alpha = {alpha}; {len(self.trusted_indices)} trusted of {self.n_samples} samples; "
            f"{len(self.layers)} layers projected; validation: {self.validation}"
            + (f"; rule: {self.rule}" if self.rule else ""),
        ]
        lines += [f"  WARNING: {w}" for w in self.warnings]
        lines += [f"  note: {n}" for n in self.notices]
        if self.scores:
            lines.append("  alpha        val acc")
            for a in sorted(self.scores, key=lambda v: (math.isinf(v), v)):
                mark = "  <- chosen" if a == self.alpha else ""
                name = "unchanged" if math.isinf(a) else f"{a:.4g}"
                lines.append(f"  {name:<12} {100 * self.scores[a]:6.2f}%{mark}")
        w = max([len(r.name) for r in self.layers] + [5])
        kw = max([len(r.kind) for r in self.layers] + [8])
        lines.append(f"  {'layer':<{w}}  {'kind':<{kw}} {'K':>6} {'groups':>6} {'rows':>10} {'rank99':>6} method")
        for r in self.layers:
            rank = r.energy_rank()
            rank_text = "-" if rank is None else str(rank)
            tied = f" (tied: {', '.join(r.tied)})" if r.tied else ""
            lines.append(f"  {r.name:<{w}}  {r.kind:<{kw}} {r.K:>6} {r.groups:>6} {r.rows:>10} {rank_text:>6} "
                         f"{r.method}{tied}")
        if self.skipped:
            lines.append("  not projected:")
            lines += [f"    {n}: {why}" for n, why in self.skipped]
        if self.timings:
            lines.append("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def save_report(self, directory: Union[str, "os.PathLike[str]"], issues: Optional[LabelIssues] = None,
                    samples: Optional[Iterable[Any]] = None, **split: Any) -> str:
        """Write ``index.html`` (alpha sweep and per-layer spectra as PNG figures, layer and skip
        tables, timings) and ``report.json`` into ``directory``; returns the page's path. Needs
        matplotlib. Under torch.distributed only rank 0 writes. ``issues=`` (``label_issues``)
        adds the label-issues section, ``samples=`` (the training loader; ``batch_fn``/
        ``input_key``/``label_key`` as for ``project``) its grid of the top flagged images
        (``sap_kernels.report.save_report``)."""

        if not is_writer():
            return os.path.join(os.fspath(directory), "index.html")
        return save_report(self, directory, issues, samples, **split)

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write the corrected model's weights to ``path`` (safetensors; tied weights once, as
        ``safetensors.torch.save_model`` does) and the report's data to ``path + ".json"``.

        Load them back with ``safetensors.torch.load_model(model, path)``. Under torch.distributed
        only rank 0 writes (every rank holds the same weights). The two files are written as a set
        (``sap_kernels.file_sets``): a failure leaves the old pair, and is an ``OSError`` naming ``path``.
        """
        from safetensors.torch import save_model

        if not is_writer():
            return
        inner, _ = unwrap(self.model)
        target, text = os.fspath(path), json.dumps(report_data(self), indent=1)
        with FileSet() as files:  # both files or neither: the old pair stays on any failure
            files.write(target, lambda tmp: save_model(inner, tmp))
            files.write(target + ".json", lambda tmp: write_text(tmp, text))

    def label_issues(
        self, train_loader: Iterable[Any], *, rule: Rule = DEFAULT_RULE, class_names: Optional[Sequence[str]] = None,
        batch_fn: Optional[batches.Splitter] = None, input_key: Optional[Union[str, Sequence[str]]] = None,
        label_key: Optional[str] = None, progress: bool = True, process_group: Optional[ProcessGroup] = None,
        distributed: Optional[bool] = None, neighbours: int = DEFAULT_NEIGHBOURS,
    ) -> LabelIssues:
        """Which training labels the corrected model calls wrong: one no-grad pass of ``self.model``
        over ``train_loader`` (the loader ``project`` was given; a shuffling DataLoader is read in
        dataset order, so positions are dataset indices), then ``rule`` (``sap.issues.rules``): by
        default each sample's ``neighbours`` nearest samples in the corrected model's feature space
        vote with their labels, its ``[N, C]`` probabilities one vote more. ``batch_fn``/``input_key``/
        ``label_key`` as for ``project``; under torch.distributed each rank passes its shard and every
        rank gets every sample.
        """
        split = batches.make_splitter(batch_fn, input_key, label_key)
        return label_issues_of(self.model, train_loader, rule=rule, alpha=self.alpha, split=split,
                               ranks=resolve_ranks(process_group, distributed), expected=self.n_samples or None,
                               class_names=class_names, progress=progress, neighbours=neighbours)
