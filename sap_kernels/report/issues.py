"""The report's label-issues section: its JSON data, and the inputs of the top flagged samples.

``report.json`` gains ``label_issues`` (absent in reports without it): ``n_samples``,
``n_issues``, ``rule``, ``alpha`` (null: unchanged model), ``class_names`` (C names, the
numbers where none were given), ``notices``, ``pair_counts`` (``[C][C]`` flagged samples per
given row, predicted column), ``top_pairs`` (``[given, predicted, count]``, most frequent
first), ``top`` (the ``TOP_ROWS`` least likely labels: ``[position, given, predicted,
label_quality, is_issue]``, class indices) and ``grid`` (``{"file": name or null, "positions":
[...], "why": text}``: the grid of the top flagged samples' inputs, or why there is none) and
``labels`` (position -> ``[given, predicted]`` for the grid's samples, for its titles).

The inputs are not part of ``LabelIssues``: they are read again from the training loader
(``samples=``) in dataset order (``sap.data.order``), only for the positions drawn, and kept
beside ``report.json`` in ``GRID_FILE`` so that ``render_report`` can draw the grid again.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch

from ..file_sets import FileSet, write_file
from ..sap.data import batches
from ..sap.data.order import in_dataset_order
from ..sap.issues.label_issues import LabelIssues

TOP_ROWS = 20
GRID_SAMPLES = 24
GRID_FILE = "label_issues_samples.safetensors"


@dataclass(frozen=True)
class Samples:
    """The top flagged samples' inputs: ``images [k, C, H, W]`` (C 1 or 3) for ``positions``,
    or None with ``why`` saying why no grid is drawn."""

    positions: list[int]
    images: Optional[torch.Tensor]
    why: str


def _image_like(x: Any) -> str:
    """Empty when ``x`` is a batch of images ``[B, C, H, W]`` with C in {1, 3}, else why not."""
    if not isinstance(x, torch.Tensor):
        return f"the inputs are {type(x).__name__} batches, not image tensors [B, C, H, W]"
    if x.dim() != 4 or x.shape[1] not in (1, 3) or not (x.is_floating_point() or x.dtype == torch.uint8):
        return f"the inputs have shape {list(x.shape[1:])} per sample ({x.dtype}), not an image [C, H, W] with C 1 or 3"
    return ""


def fetch_samples(issues: LabelIssues, loader: Iterable[Any], split: batches.Splitter = batches.split_batch,
                  k: int = GRID_SAMPLES) -> Samples:
    """The inputs of the ``k`` flagged samples most likely wrong, read from ``loader`` in dataset
    order (the reading stops once all are found)."""
    wanted = [int(p) for p in issues.issues()[:k]]
    if not wanted:
        return Samples([], None, "no label was flagged")
    source = in_dataset_order(loader)
    found: dict[int, torch.Tensor] = {}
    seen = 0
    for b, batch in enumerate(source.batches):
        inputs, labels = split(batch)
        why = _image_like(inputs)
        if why:
            return Samples(wanted, None, why)
        n = int(inputs.shape[0])
        pos = (source.indices[seen:seen + n] if source.indices is not None else torch.arange(seen, seen + n)).tolist()
        seen += n
        for i, p in enumerate(pos):
            if p in wanted and p not in found:
                found[p] = inputs[i].detach().cpu()
        if len(found) == len(wanted):
            break
    kept = [p for p in wanted if p in found]
    if not kept:
        return Samples(wanted, None, "none of the flagged positions was found in the samples loader")
    why = "" if len(kept) == len(wanted) else f"{len(wanted) - len(kept)} flagged positions were not in the loader"
    return Samples(kept, torch.stack([found[p] for p in kept]).float(), why)


def issues_data(issues: LabelIssues, samples: Optional[Samples]) -> dict[str, Any]:
    """The ``label_issues`` entry of ``report.json`` (see the module docstring)."""
    c = issues.num_classes
    order = torch.argsort(issues.label_quality.double(), stable=True)[:TOP_ROWS].tolist()
    top = [[int(issues.positions[i]), int(issues.given_labels[i]), int(issues.predicted_labels[i]),
            float(issues.label_quality[i]), bool(issues.is_issue[i])] for i in order]
    if samples is None:
        grid: dict[str, Any] = {"file": None, "positions": [], "why": "no samples loader was given (samples=)"}
    else:
        grid = {"file": GRID_FILE if samples.images is not None else None, "positions": samples.positions,
                "why": samples.why}
    return {
        "n_samples": len(issues), "n_issues": issues.n_issues, "rule": issues.rule,
        "alpha": None if math.isinf(issues.alpha) else float(issues.alpha),
        "class_names": [issues.name(i) for i in range(c)], "notices": list(issues.notices),
        "pair_counts": issues.pair_counts().tolist(), "top_pairs": [list(t) for t in issues.summary()],
        "top": top, "grid": grid,
        "labels": {str(int(issues.positions[i])): [int(issues.given_labels[i]), int(issues.predicted_labels[i])]
                   for i in _grid_rows(issues, samples)},
    }


def _grid_rows(issues: LabelIssues, samples: Optional[Samples]) -> list[int]:
    """Row indices in ``issues`` of the grid's positions."""
    if samples is None or not samples.positions:
        return []
    where = {int(p): i for i, p in enumerate(issues.positions.tolist())}
    return [where[p] for p in samples.positions if p in where]


def save_samples(samples: Samples, directory: str, files: Optional[FileSet] = None) -> None:
    """``GRID_FILE`` in ``directory`` (as part of ``files``, or on its own), when there are images."""
    if samples.images is None:
        return
    from safetensors.torch import save_file

    body = {"images": samples.images.contiguous(), "positions": torch.tensor(samples.positions, dtype=torch.int64)}
    write_file(os.path.join(directory, GRID_FILE), lambda tmp: save_file(body, tmp), files)


def load_samples(directory: str, section: dict[str, Any]) -> Optional[torch.Tensor]:
    """The grid's images saved beside ``report.json``, or None (no grid, or the file is gone)."""
    name = section.get("grid", {}).get("file")
    path = os.path.join(directory, name) if name else ""
    if not name or not os.path.isfile(path):
        return None
    from safetensors.torch import load_file

    try:
        images: torch.Tensor = load_file(path)["images"]
    except Exception as exc:  # safetensors' own error types for a damaged file
        raise ValueError(f"{path} is not a label-issues sample file ({exc})") from None
    return images
