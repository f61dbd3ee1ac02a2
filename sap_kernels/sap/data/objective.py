"""What a model's output and a batch's labels mean: per-sample losses and scores.

The one place that decides how samples are ranked (``losses``: lower is more trusted) and how a
candidate model is scored (``scores``: the alpha with the higher mean wins):

- logits ``[B, C]``, ``C >= 2``, integer labels: cross-entropy and top-1 accuracy;
- one logit per sample (``[B]`` or ``[B, 1]``) with labels 0/1: binary cross-entropy with logits
  and accuracy at threshold 0;
- anything else (token outputs, regression, multi-label): ``loss_fn(output, labels) -> [B]`` and
  ``score_fn(output, labels) -> [B]`` given by the user; without them, a named error.

Outputs may be a tensor, or carry the logits as ``.logits`` / ``["logits"]`` (Hugging Face);
``loss_fn``/``score_fn`` receive the output exactly as the model returned it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ...ops._checks import all_finite
from ..options.configs import PerSample

__all__ = ["Objective", "PerSample", "class_labels", "logits_of"]


def logits_of(output: Any) -> torch.Tensor:
    """The logits tensor in a model output (a tensor, ``.logits`` or ``["logits"]``)."""
    if isinstance(output, torch.Tensor):
        return output
    found = getattr(output, "logits", None)
    if found is None and isinstance(output, Mapping):
        found = output.get("logits")
    if isinstance(found, torch.Tensor):
        return found
    raise TypeError(
        f"the model returned a {type(output).__name__}, not logits: return a tensor [batch, classes] (or an "
        "object with .logits), or pass loss_fn= and score_fn= that take the model's output"
    )


def _binary_labels(labels: torch.Tensor, batch_index: int) -> torch.Tensor:
    ok = labels.dim() == 1 and not labels.is_complex() and bool(((labels == 0) | (labels == 1)).all())
    if not ok:
        raise ValueError(
            f"batch {batch_index}: the model outputs one logit per sample (a binary classifier), so labels must "
            f"be 0 or 1 of shape [B]; got {labels.dtype} labels of shape {list(labels.shape)}"
            + (f" with values {torch.unique(labels)[:5].tolist()}"
               if labels.numel() and not labels.is_complex() else "")
            + "; for another task pass loss_fn= and score_fn="
        )
    return labels.float()


def class_labels(labels: torch.Tensor, num_classes: int, batch_index: int) -> torch.Tensor:
    """Labels as int64 class indices in ``[0, num_classes)``, or a clear error."""
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.dim() != 1:
        raise ValueError(
            f"labels must be a 1-d tensor of integer class indices; batch {batch_index} has "
            f"{labels.dtype} labels of shape {list(labels.shape)}"
        )
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = torch.unique(labels[(labels < 0) | (labels >= num_classes)])[:5].tolist()
        raise ValueError(
            f"labels out of range: the model outputs {num_classes} classes (labels 0..{num_classes - 1}) "
            f"but batch {batch_index} has labels {bad}"
        )
    return labels


def _kind(logits: torch.Tensor, batch_index: int) -> str:
    if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        return "binary"
    if logits.dim() == 2 and logits.shape[1] >= 2:
        return "multiclass"
    raise ValueError(
        f"batch {batch_index}: the model returned output of shape {list(logits.shape)}; the default loss and "
        "score need logits [batch, classes] or one logit per sample [batch]; pass loss_fn= and score_fn= "
        "(per-sample loss and score, each returning [batch]) for anything else"
    )


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _checked(values: Any, n: int, what: str, batch_index: int, differentiable: bool = False) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.shape != (n,):
        shape = list(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"batch {batch_index}: {what} must return a tensor [batch] = [{n}], got {shape}")
    values = values if values.dtype == torch.float64 else values.float()  # float64 models keep float64
    out: torch.Tensor = values if differentiable else values.detach()
    if not all_finite(out.detach()):
        raise ValueError(f"batch {batch_index}: {what} gave non-finite values (NaN/Inf in the model's output?)")
    return out


@dataclass(frozen=True)
class Objective:
    """Per-sample loss (to rank trusted samples) and score (to choose alpha).

    loss_fn, score_fn: ``(output, labels) -> [B]``; None uses the default for the output's kind.
    """

    loss_fn: Optional[PerSample] = None
    score_fn: Optional[PerSample] = None

    def __post_init__(self) -> None:
        for name in ("loss_fn", "score_fn"):
            fn = getattr(self, name)
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable (output, labels) -> [batch], got {type(fn).__name__}")

    def losses(self, output: Any, labels: torch.Tensor, batch_index: int,
               differentiable: bool = False) -> torch.Tensor:
        """``[B]`` float32 losses on the output's device (``differentiable``: still attached to
        the graph, for a gradient with respect to the input)."""
        n = int(labels.shape[0])
        if self.loss_fn is not None:
            return _checked(self.loss_fn(output, labels), n, "loss_fn", batch_index, differentiable)
        logits = self._logits(output, n, batch_index)
        if _kind(logits, batch_index) == "binary":
            target = _binary_labels(labels.to(logits.device), batch_index)
            flat = logits.reshape(-1)
            loss = F.binary_cross_entropy_with_logits(_at_least_fp32(flat), target.to(_at_least_fp32(flat).dtype),
                                                      reduction="none")
        else:
            target = class_labels(labels.to(logits.device), int(logits.shape[1]), batch_index)
            loss = F.cross_entropy(_at_least_fp32(logits), target, reduction="none")
        return _checked(loss, n, "the loss (cross-entropy)", batch_index, differentiable)

    def scores(self, output: Any, labels: torch.Tensor, batch_index: int) -> torch.Tensor:
        """``[B]`` float32 scores (default: 1.0 for a correct prediction, else 0.0)."""
        n = int(labels.shape[0])
        if self.score_fn is not None:
            return _checked(self.score_fn(output, labels), n, "score_fn", batch_index)
        if self.loss_fn is not None:
            raise ValueError("loss_fn= was given without score_fn=: say how a candidate model is scored")
        logits = self._logits(output, n, batch_index)
        if _kind(logits, batch_index) == "binary":
            target = _binary_labels(labels.to(logits.device), batch_index)
            return ((logits.reshape(-1) > 0).float() == target).float()
        target = class_labels(labels.to(logits.device), int(logits.shape[1]), batch_index)
        return (logits.argmax(1) == target).float()

    def classes(self, output: Any, labels: torch.Tensor, batch_index: int) -> torch.Tensor:
        """``[B]`` int64 class of each sample (for class balancing)."""
        if self.loss_fn is None:
            logits = self._logits(output, int(labels.shape[0]), batch_index)
            if _kind(logits, batch_index) == "binary":
                return _binary_labels(labels, batch_index).long()
            return class_labels(labels, int(logits.shape[1]), batch_index)
        if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() or bool((labels < 0).any()):
            raise ValueError(
                f"class_balanced=True needs integer class labels [batch]; batch {batch_index} has {labels.dtype} "
                f"labels of shape {list(labels.shape)}"
            )
        return labels.long()

    def num_classes(self, output: Any, n: int, batch_index: int) -> Optional[int]:
        """Classes the default objective sees in the output (2 for one logit), None with ``loss_fn``."""
        if self.loss_fn is not None:
            return None
        logits = self._logits(output, n, batch_index)
        return 2 if _kind(logits, batch_index) == "binary" else int(logits.shape[1])

    @staticmethod
    def _logits(output: Any, n: int, batch_index: int) -> torch.Tensor:
        logits = logits_of(output)
        if logits.dim() == 0 or logits.shape[0] != n:
            raise ValueError(
                f"batch {batch_index}: the model returned output of shape {list(logits.shape)} for {n} labels; "
                "dim 0 of the output must be the sample dim"
            )
        return logits
