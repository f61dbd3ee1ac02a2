"""Phase 6: which training labels are wrong, from the corrected model's own probabilities.

``order`` (reading a loader in dataset order) -> ``scoring`` (the pass: ``[N, C]`` probabilities)
-> ``rules`` (flagging) -> ``label_issues`` (``LabelIssues``, saved by ``files``); ``finding``
composes them. ``SAPResult.label_issues`` and ``find_issues.find_label_issues`` are its entry points.
"""
