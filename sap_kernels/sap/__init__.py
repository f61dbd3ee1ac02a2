"""The SAP method: trusted samples, streamed Grams, spectra, alpha choice, projection."""
from .capture import NonFiniteActivation
from .project import project
from .result import LayerReport, SAPResult

__all__ = ["LayerReport", "NonFiniteActivation", "SAPResult", "project"]
