"""``find_label_issues``: correct the model with SAP, then ask it which training labels are wrong."""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

from torch import nn

from .alpha.rules import steepest_alpha
from .issues.label_issues import LabelIssues
from .issues.rules import DEFAULT_RULE, Rule
from .pipeline import project
from .result import SAPResult

# project()'s rule text when it keeps a memorised model for want of a plateau (alpha.choice).
NO_PLATEAU = "kept: no plateau"
_SPLIT_KEYS = ("batch_fn", "input_key", "label_key", "process_group", "distributed", "progress")
# find_label_issues' own keywords, passed to the scoring pass and not to project.
_SCORING_KEYS = ("neighbours",)


def detection_alpha(res: SAPResult) -> float:
    """The alpha to score labels with: the result's, except where the plain call kept a memorised
    model for want of a plateau. There the unchanged model flags nothing (it fits every label),
    while the model projected where its agreement with the training labels falls fastest
    (``steepest_alpha``, the middle of the release of the memorised labels) finds them best: on the
    CIFAR-10 CPU cells (seed 0) the neighbours' F1 was 0.543 / 0.248 / 0.403 there (sym25, aggre,
    random1) against 0.499 / 0.248 / 0.165 at the plateau rule's pick and 0.477 / 0.183 / 0.354 for
    4-fold cross-validated cleanlab (python/README.md)."""
    if not (math.isinf(res.alpha) and res.rule.startswith(NO_PLATEAU)):
        return res.alpha
    return steepest_alpha(res.scores)


def find_label_issues(model: nn.Module, train_loader: Iterable[Any], *, rule: Rule = DEFAULT_RULE,
                      class_names: Optional[Sequence[str]] = None, **project_options: Any) -> LabelIssues:
    """Run ``sap_kernels.project(model, train_loader, **project_options)`` and score every training
    sample with the corrected model (``SAPResult.label_issues``): no cross-validation, no retraining.

    Args:
        model: the classifier trained on ``train_loader``'s labels; never changed (unless
            ``inplace=True`` is among the options, as for ``project``).
        train_loader: the training batches; a shuffling DataLoader is read in dataset order for the
            scoring pass, so ``LabelIssues.positions`` are dataset indices.
        rule: the flagging rule (``sap.issues.rules``; default: the neighbours' vote).
        class_names: names of the classes, for printing and the report.
        project_options: any keyword of ``project`` (``val_loader``, ``alpha``, ``batch_fn``, ...), and
            ``neighbours`` (``k`` of the default rule, ``SAPResult.label_issues``).
    Returns:
        ``LabelIssues``. Where the plain call keeps a memorised model for want of a plateau
        (``detection_alpha``), the labels are scored where its training-label agreement falls fastest
        instead, with a notice.
    """
    return project_and_find(model, train_loader, rule=rule, class_names=class_names, **project_options)[1]


def project_and_find(model: nn.Module, train_loader: Iterable[Any], *, rule: Rule = DEFAULT_RULE,
                     class_names: Optional[Sequence[str]] = None, **project_options: Any
                     ) -> tuple[SAPResult, LabelIssues]:
    """``find_label_issues`` that also returns the ``project`` result (for a report): ``(result,
    issues)``; ``issues.alpha`` is the alpha the labels were scored at, which differs from
    ``result.alpha`` where the plain call kept the model (``detection_alpha``)."""
    scoring = {k: project_options.pop(k) for k in _SCORING_KEYS if k in project_options}
    res = project(model, train_loader, **project_options)
    split = {k: project_options[k] for k in _SPLIT_KEYS if k in project_options} | scoring
    issues = res.label_issues(train_loader, rule=rule, class_names=class_names, **split)
    alpha = detection_alpha(res)
    if alpha == res.alpha or math.isinf(alpha):
        return res, issues
    # The plain call kept the model (alpha inf), so even with inplace=True it is unchanged: score a copy.
    options = {k: v for k, v in project_options.items() if k not in ("alphas", "val_loader", "inplace")}
    scored = project(model, train_loader, **(options | {"alpha": alpha}))
    found = scored.label_issues(train_loader, rule=rule, class_names=class_names, **split)
    found.notices.append(f"the plain call kept the model (no plateau of training-label agreement); the labels "
                         f"were scored by the model projected where that agreement falls fastest, alpha {alpha:.4g}")
    return res, found
