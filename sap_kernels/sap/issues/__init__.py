"""Phase 6: which training labels are wrong, from the corrected model's own probabilities.

``order`` (reading a loader in dataset order) -> ``scoring`` (the pass: ``[N, C]`` probabilities)
-> ``rules`` (flagging) -> ``label_issues`` (``LabelIssues``, saved by ``files``); ``finding``
composes them.
"""
from .finding import label_issues_of
from .label_issues import LabelIssues
from .rules import DEFAULT_RULE, RULES

__all__ = ["DEFAULT_RULE", "LabelIssues", "RULES", "label_issues_of"]
