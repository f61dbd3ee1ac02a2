"""Convolution geometry (re-exported from ``sap_kernels.kernels.spec``, its one definition).

``conv_geometry(input_shape, kernel_size, stride, padding, dilation, groups)`` validates ConvNd
arguments against ``[N, C, *spatial]`` and returns a ``ConvGeometry``; its ``rows_per_sample``
(patch rows per sample, i.e. output positions) and ``k_per_group`` (``K_g``) are what callers
sizing buffers need. Pure: it reads shapes only.
"""
from __future__ import annotations

from ..kernels.spec import ConvGeometry, IntOrTuple, Padding, conv_geometry

__all__ = ["ConvGeometry", "IntOrTuple", "Padding", "conv_geometry"]
