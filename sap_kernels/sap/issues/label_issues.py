"""``LabelIssues``: which training labels the corrected model calls wrong, per sample."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from .files import PathLike, load_tables, save_tables

_TENSORS = ("positions", "given_labels", "predicted_labels", "label_quality", "is_issue", "probabilities")
TOP_ROWS = 10


@dataclass
class LabelIssues:
    """Per training sample, sorted by position.

    Attributes:
        positions: int64 ``[N]``: the sample's index in the dataset (``dataset[i]``); for a loader
            that is not a ``DataLoader`` over a map-style dataset, its position in the order the
            loader yields (``sap.data.order``).
        given_labels: int64 ``[N]``: the label the loader gave.
        predicted_labels: int64 ``[N]``: the likeliest class by what the rule judged labels by (the
            neighbours' vote with the corrected model's probabilities, or those alone).
        label_quality: float ``[N]`` in [0, 1]: the given label's share of that (``sap.issues.rules``;
            lower: more likely wrong).
        is_issue: bool ``[N]``: flagged by ``rule``.
        probabilities: float ``[N, C]``: the corrected model's class probabilities.
        rule: the flagging rule (``sap.issues.rules``).
        alpha: the alpha of the model that scored the samples (``math.inf``: unchanged).
        class_names: optional names of the ``C`` classes, for printing.
        notices: what the user should know (a shuffling loader read in index order, ...).
    """

    positions: torch.Tensor
    given_labels: torch.Tensor
    predicted_labels: torch.Tensor
    label_quality: torch.Tensor
    is_issue: torch.Tensor
    probabilities: torch.Tensor
    rule: str
    alpha: float = math.inf
    class_names: Optional[list[str]] = None
    notices: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.positions.numel())

    @property
    def num_classes(self) -> int:
        return int(self.probabilities.shape[1])

    @property
    def n_issues(self) -> int:
        return int(self.is_issue.sum())

    def ranked(self) -> torch.Tensor:
        """int64 ``[N]``: every position, most likely wrong first (ascending label quality; ties
        by position)."""
        order = torch.argsort(self.label_quality.double(), stable=True)
        return self.positions[order]

    def issues(self) -> torch.Tensor:
        """int64 ``[n_issues]``: the flagged positions, most likely wrong first."""
        order = torch.argsort(self.label_quality.double(), stable=True)
        return self.positions[order][self.is_issue[order]]

    def name(self, c: int) -> str:
        return self.class_names[c] if self.class_names and 0 <= c < len(self.class_names) else str(c)

    def summary(self) -> list[tuple[int, int, int]]:
        """``(given, predicted, count)`` over the flagged samples, most frequent pair first (ties by
        given, then predicted class)."""
        flagged = self.is_issue
        pairs = Counter(zip(self.given_labels[flagged].tolist(), self.predicted_labels[flagged].tolist()))
        return sorted(((g, p, n) for (g, p), n in pairs.items()), key=lambda t: (-t[2], t[0], t[1]))

    def pair_counts(self) -> torch.Tensor:
        """int64 ``[C, C]``: flagged samples per (given row, predicted column)."""
        c = self.num_classes
        flat = self.given_labels[self.is_issue] * c + self.predicted_labels[self.is_issue]
        return torch.bincount(flat, minlength=c * c).view(c, c)

    def _top_lines(self, rows: int) -> list[str]:
        order = torch.argsort(self.label_quality.double(), stable=True)[:rows]
        lines = [f"  {'position':>9} {'given':>12} {'predicted':>12} {'quality':>8} issue"]
        for i in order.tolist():
            lines.append(f"  {int(self.positions[i]):>9} {self.name(int(self.given_labels[i])):>12} "
                         f"{self.name(int(self.predicted_labels[i])):>12} {float(self.label_quality[i]):>8.4f} "
                         f"{'yes' if bool(self.is_issue[i]) else 'no'}")
        return lines

    def __str__(self) -> str:
        alpha = "unchanged (inf)" if math.isinf(self.alpha) else f"{self.alpha:.4g}"
        share = 100 * self.n_issues / max(1, len(self))
        lines = [f"LabelIssues: {self.n_issues} of {len(self)} labels flagged ({share:.1f} %), rule {self.rule}, "
                 f"scored by the corrected model (alpha {alpha})"]
        lines += [f"  note: {n}" for n in self.notices]
        pairs = self.summary()[:5]
        if pairs:
            lines.append("  most flagged given -> predicted: "
                         + ", ".join(f"{self.name(g)} -> {self.name(p)} ({n})" for g, p, n in pairs))
        lines.append(f"  least likely labels ({min(TOP_ROWS, len(self))} of {len(self)}):")
        return "\n".join(lines + self._top_lines(TOP_ROWS))

    __repr__ = __str__

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` indexed by position: given, predicted, label_quality, is_issue,
        and ``p_<class>`` columns (needs pandas: ``pip install 'sap_kernels[issues]'``)."""
        try:
            import pandas as pd  # optional extra
        except ImportError:
            raise ImportError("LabelIssues.to_pandas needs pandas: pip install 'sap_kernels[issues]'") from None
        data: dict[str, Any] = {"given": self.given_labels.numpy(), "predicted": self.predicted_labels.numpy(),
                                "label_quality": self.label_quality.numpy(), "is_issue": self.is_issue.numpy()}
        for c in range(self.num_classes):
            data[f"p_{self.name(c)}"] = self.probabilities[:, c].numpy()
        return pd.DataFrame(data, index=pd.Index(self.positions.numpy(), name="position"))

    def to_csv_rows(self) -> list[list[Any]]:
        """A header and one row per sample, most likely wrong first (what ``sap-kernels issues`` writes)."""
        order = torch.argsort(self.label_quality.double(), stable=True).tolist()
        rows: list[list[Any]] = [["position", "given", "predicted", "label_quality", "is_issue"]]
        for i in order:
            rows.append([int(self.positions[i]), self.name(int(self.given_labels[i])),
                         self.name(int(self.predicted_labels[i])), f"{float(self.label_quality[i]):.6g}",
                         int(bool(self.is_issue[i]))])
        return rows

    def save(self, path: PathLike) -> None:
        """Write to ``path`` (safetensors and a JSON header, no pickle; atomic)."""
        meta = {"rule": self.rule, "alpha": None if math.isinf(self.alpha) else self.alpha,
                "class_names": self.class_names, "notices": self.notices}
        save_tables(path, {k: getattr(self, k) for k in _TENSORS}, meta)

    @classmethod
    def load(cls, path: PathLike) -> "LabelIssues":
        """Read a file ``save`` wrote; a ValueError naming the file for anything else."""
        tensors, meta = load_tables(path)
        missing = [k for k in _TENSORS if k not in tensors]
        if missing:
            raise ValueError(f"{path!r}: label-issues file lacks {missing}")
        out = cls(**{k: tensors[k] for k in _TENSORS}, rule=str(meta.get("rule")),
                  alpha=math.inf if meta.get("alpha") is None else float(meta["alpha"]),
                  class_names=meta.get("class_names"), notices=list(meta.get("notices") or []))
        check_consistent(out, str(path))
        return out


def check_consistent(li: LabelIssues, where: str) -> None:
    """Shapes and dtypes agree (for a loaded file); a ValueError naming ``where`` otherwise."""
    n = len(li)
    shapes_ok = (all(getattr(li, k).shape == (n,) for k in _TENSORS[:-1]) and li.probabilities.dim() == 2
                 and li.probabilities.shape[0] == n)
    if not shapes_ok or li.is_issue.dtype != torch.bool or li.positions.dtype != torch.int64:
        raise ValueError(f"{where}: the label-issues tensors disagree in shape or dtype")


def build(positions: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, dist: torch.Tensor,
          is_issue: torch.Tensor, rule: str, alpha: float, class_names: Optional[Sequence[str]],
          notices: list[str]) -> LabelIssues:
    """A ``LabelIssues`` from the pass's table (``probs`` ``[N, C]``), what the rule judged by
    (``dist`` ``[N, C]``: quality and predicted class) and its flags (bool ``[N]``)."""
    quality = dist.gather(1, labels.view(-1, 1)).view(-1)
    names = list(class_names) if class_names is not None else None
    return LabelIssues(positions, labels, dist.argmax(1), quality, is_issue.bool(), probs, rule, alpha, names,
                       notices)
