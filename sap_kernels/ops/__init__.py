"""Array-level ops: one public function each, dispatched to a backend by device or by name.

- ``gram(x)``: ``[K, K]`` Gram of rows ``x [..., K]``.
- ``conv_gram(x, kernel_size, ...)``: ``[groups, K_g, K_g]`` implicit-im2col Gram of a conv input.
- ``sap_scales(eigvals, alpha)``: SAP importance ``lambda``.
- ``scaled_projection(weight, eigvals, eigvecs, alpha)``: ``W V diag(lambda) V^T``.
- ``gram_projection(weight, gram, alpha)``: the same for one alpha from the Gram itself (one
  float64 Cholesky solve, no eigendecomposition).
"""
from .conv_gram import conv_gram
from .dispatch import BACKENDS, BackendUnavailable, available_backends
from .geometry import ConvGeometry, conv_geometry
from .gram import gram
from .gram_projection import gram_projection
from .projection import scaled_projection
from .scales import sap_scales

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "ConvGeometry",
    "available_backends",
    "conv_geometry",
    "conv_gram",
    "gram",
    "gram_projection",
    "sap_scales",
    "scaled_projection",
]
