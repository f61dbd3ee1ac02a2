"""``conv_patches``: a convolution's im2col patch rows, materialised, in weight column order."""
from __future__ import annotations

from typing import Optional

import torch

from ..kernels.spec import IntOrTuple, Padding
from ..kernels.torch.patches import conv_patches_torch
from ._checks import float_tensor
from .dispatch import requested_backend
from .geometry import conv_geometry


def conv_patches(
    x: torch.Tensor,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """The rows ``P_g`` whose Gram ``conv_gram`` computes, as one tensor.

    Row ``n * rows_per_sample + o`` is sample ``n`` at output position ``o`` (row-major over the
    output dims); column ``c * P + p`` is input channel ``c`` of the group at kernel offset ``p``
    (row-major over the kernel dims, ``P = prod(kernel_size)``): the order of
    ``weight[g].flatten(1)`` and of ``conv_gram``'s columns. Zero padding as ``F.unfold``.
    ``rows_per_sample`` is ``conv_geometry(x.shape, ...).rows_per_sample``.

    Memory: the whole ``[groups, N * rows_per_sample, K_g]`` result (``prod(kernel_size)`` times
    the input) plus a padded channels-last copy of ``x``; ``conv_gram`` needs neither.

    Args:
        x: ``[N, C, *spatial]`` with 1 to 3 spatial dims, real float dtype, any device.
        kernel_size, stride, padding, dilation, groups: as for ``conv_gram``.
        dtype: dtype of the result (a float dtype); default ``x.dtype``.
    Returns:
        ``[groups, N * rows_per_sample, K_g]`` contiguous, ``K_g = C / groups * prod(kernel_size)``.

    Example:
        >>> x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
        >>> p = conv_patches(x, 3, padding=1)
        >>> u = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 27)
        >>> torch.equal(p[0], u)
        True
    """
    requested_backend()
    x = float_tensor(x, "x", "conv_patches")
    if dtype is None:
        dtype = x.dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"conv_patches: dtype must be a float torch.dtype or None, got {dtype!r}")
    geom = conv_geometry(x.shape, kernel_size, stride, padding, dilation, groups)
    with torch.no_grad():
        return conv_patches_torch(x, geom, dtype)
