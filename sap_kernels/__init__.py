"""sap_kernels: Scaled Activation Projection (SAP) with streaming Gram kernels.

``sap_kernels.project(model, loader, val_loader=...)`` repairs a classifier trained on noisy labels
in one shot. The same method as phases: ``select_trusted`` -> ``collect`` (``Statistics``, savable)
-> ``Statistics.decompose`` (``Spectra``) -> ``choose_alpha`` -> ``apply``; ``plan`` lists what would
be projected. ``sap_kernels.ops`` holds the array-level kernels it is built from.
"""
from . import ops
from .sap import (
    AlphaChoice,
    LayerReport,
    NonFiniteActivation,
    NonFiniteStatistics,
    Plan,
    PlannedLayer,
    SampleSet,
    SAPResult,
    Shared,
    Spectra,
    Statistics,
    TrustedSet,
    apply,
    choose_alpha,
    collect,
    plan,
    project,
    select_trusted,
)
from .sap.find_issues import find_label_issues
from .sap.issues.label_issues import LabelIssues
from .version import __version__

__all__ = [
    "AlphaChoice", "LabelIssues", "LayerReport", "NonFiniteActivation", "NonFiniteStatistics", "Plan", "PlannedLayer",
    "SAPResult", "SampleSet", "Shared", "Spectra", "Statistics", "TrustedSet", "apply", "choose_alpha",
    "collect", "find_label_issues", "ops", "plan", "project", "select_trusted", "__version__",
]
