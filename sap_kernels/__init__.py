"""sap_kernels: Scaled Activation Projection (SAP) with streaming Gram kernels.

``sap_kernels.project(model, loader)`` repairs a classifier trained on noisy labels in one shot;
``sap_kernels.ops`` holds the array-level kernels it is built from.
"""
from . import ops
from .sap import DryRun, LayerReport, NonFiniteActivation, SAPResult, project

__version__ = "0.1.0"
__all__ = ["DryRun", "LayerReport", "NonFiniteActivation", "SAPResult", "ops", "project", "__version__"]
