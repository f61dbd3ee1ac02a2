"""The SAP method as phases: select_trusted -> collect -> decompose -> choose_alpha -> apply.

``project`` composes them; ``plan`` lists what would be projected.
"""
from .alpha import AlphaChoice, choose_alpha
from .apply import apply
from .batches import Shared
from .capture import NonFiniteActivation
from .collect import collect
from .plan import Plan, PlannedLayer, plan
from .project import project
from .result import LayerReport, SAPResult
from .samples import SampleSet
from .spectra import NonFiniteStatistics, Spectra
from .statistics import Statistics
from .trusted import TrustedSet, select_trusted

__all__ = [
    "AlphaChoice", "LayerReport", "NonFiniteActivation", "NonFiniteStatistics", "Plan", "PlannedLayer",
    "SAPResult", "SampleSet", "Shared", "Spectra", "Statistics", "TrustedSet", "apply", "choose_alpha",
    "collect", "plan", "project", "select_trusted",
]
