"""Array-level ops: one public function each; the kernel ops dispatch to a backend per call.

- ``gram(x)``: ``[K, K]`` Gram of rows ``x [..., K]``.
- ``conv_gram(x, kernel_size, ...)``: ``[groups, K_g, K_g]`` implicit-im2col Gram of a conv input.
- ``conv_patches(x, kernel_size, ...)``: the ``[groups, rows, K_g]`` patch rows themselves.
- ``conv_geometry(shape, kernel_size, ...)``: validated conv arguments, ``rows_per_sample``, ``K_g``.
- ``sap_scales(eigvals, alpha)``: SAP importance ``lambda``.
- ``scaled_projection(weight, eigvals, eigvecs, alpha)``: ``W V diag(lambda) V^T``.
- ``gram_projection(weight, gram, alpha)``: the same for one alpha from the Gram itself (one
  float64 Cholesky solve, no eigendecomposition).

``gram``, ``conv_gram`` and ``scaled_projection`` take ``backend=`` and ``precision=``; see
``docs/backends.md`` for how a backend is chosen and verified.
"""
from ..kernels.spec import Backend, ConvGeometry, Request
from .conv_gram import conv_gram
from .dispatch import BACKENDS, BackendUnavailable, available_backends, backend_reasons
from .geometry import conv_geometry
from .gram import gram
from .gram_projection import gram_projection
from .patches import conv_patches
from .projection import scaled_projection
from .scales import sap_scales

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "ConvGeometry",
    "Request",
    "available_backends",
    "backend_reasons",
    "conv_geometry",
    "conv_gram",
    "conv_patches",
    "gram",
    "gram_projection",
    "sap_scales",
    "scaled_projection",
]
