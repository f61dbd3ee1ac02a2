"""The SAP method: trusted samples, streamed Grams, spectra, alpha choice, projection."""
from .capture import NonFiniteActivation
from .plan import DryRun, PlannedLayer
from .project import project
from .result import LayerReport, SAPResult

__all__ = ["DryRun", "LayerReport", "NonFiniteActivation", "PlannedLayer", "SAPResult", "project"]
