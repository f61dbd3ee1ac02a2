"""``find_label_issues``: correct the model with SAP, then ask it which training labels are wrong."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from torch import nn

from .issues.label_issues import LabelIssues
from .issues.rules import DEFAULT_RULE, Rule
from .pipeline import project


def find_label_issues(model: nn.Module, train_loader: Iterable[Any], *, rule: Rule = DEFAULT_RULE,
                      class_names: Optional[Sequence[str]] = None, **project_options: Any) -> LabelIssues:
    """Run ``sap_kernels.project(model, train_loader, **project_options)`` and score every training
    sample with the corrected model (``SAPResult.label_issues``): no cross-validation, no retraining.

    Args:
        model: the classifier trained on ``train_loader``'s labels; never changed (unless
            ``inplace=True`` is among the options, as for ``project``).
        train_loader: the training batches; a shuffling DataLoader is read in dataset order for the
            scoring pass, so ``LabelIssues.positions`` are dataset indices.
        rule: the flagging rule (``sap.issues.rules``).
        class_names: names of the classes, for printing and the report.
        project_options: any keyword of ``project`` (``val_loader``, ``alpha``, ``batch_fn``, ...).
    Returns:
        ``LabelIssues``; ``.result`` is not kept: call ``project`` and ``res.label_issues`` to have both.
    """
    res = project(model, train_loader, **project_options)
    keys = ("batch_fn", "input_key", "label_key", "process_group", "distributed", "progress")
    return res.label_issues(train_loader, rule=rule, class_names=class_names,
                            **{k: project_options[k] for k in keys if k in project_options})
