"""The SAP method as phases: select_trusted -> collect -> decompose -> choose_alpha -> apply.

``project`` composes them; ``plan`` lists what would be projected.
"""
from .alpha.choice import AlphaChoice, choose_alpha
from .data.batches import Shared
from .data.samples import SampleSet
from .gram.collection import collect
from .gram.collector import NonFiniteActivation
from .pipeline import project
from .planning import Plan, PlannedLayer, plan
from .projection.write import apply
from .result import LayerReport, SAPResult
from .spectra.decomposition import NonFiniteStatistics, Spectra
from .spectra.statistics import Statistics
from .trusted.selection import TrustedSet, select_trusted

__all__ = [
    "AlphaChoice", "LayerReport", "NonFiniteActivation", "NonFiniteStatistics", "Plan", "PlannedLayer",
    "SAPResult", "SampleSet", "Shared", "Spectra", "Statistics", "TrustedSet", "apply", "choose_alpha",
    "collect", "plan", "project", "select_trusted",
]
