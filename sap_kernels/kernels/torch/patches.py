"""Materialised im2col patch rows in the column order of ``weight[g].flatten(1)``."""
from __future__ import annotations

import math

import torch

from ..spec import ConvGeometry
from .conv_gram import patch_view


def conv_patches_torch(x: torch.Tensor, geom: ConvGeometry, dtype: torch.dtype) -> torch.Tensor:
    """All patch rows of ``x``, one copy from the strided im2col view.

    Args:
        x: ``[N, C, *spatial]``, any float dtype.
        geom: the validated convolution.
        dtype: dtype of the result.
    Returns:
        ``[G, N * rows_per_sample, K_g]`` contiguous, ``dtype``, on ``x.device``; row
        ``n * rows_per_sample + o`` is sample ``n`` at output position ``o`` (row-major), column
        ``c * P + p`` is channel ``c`` of the group at kernel offset ``p`` (``P = prod(kernel)``).
    """
    nd, g, cg = geom.nd, geom.groups, geom.channels_per_group
    n = x.shape[0]
    view = patch_view(x, geom)  # [n, *o, *k, C]
    src = view.reshape(*view.shape[:-1], g, cg).movedim(-2, 0)  # [G, n, *o, *k, C_g]
    src = src.movedim(-1, 2 + nd)  # [G, n, *o, C_g, *k]: weight order
    rows = n * geom.rows_per_sample
    buf = torch.empty((g, rows, cg * math.prod(geom.kernel_size)), dtype=dtype, device=x.device)
    buf.view(g, n, *geom.out_spatial, cg, *geom.kernel_size).copy_(src)
    return buf
