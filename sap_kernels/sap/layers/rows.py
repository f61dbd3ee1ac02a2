"""Pure row maths: what activation rows one call of a layer contributes, and how many.

A Linear's input ``[..., K]`` contributes every leading position as a row. A conv's input
``[N, C, *spatial]`` (or unbatched ``[C, *spatial]``) contributes its im2col patch rows, after
the module's own padding (``reflect``/``replicate``/``circular`` modes pad first, as ``nn.ConvNd``
does, then convolve without padding). Built on the public ops (``ops.conv_geometry``,
``ops.conv_patches``), never on a backend's internals.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import ops
from ...ops.geometry import Padding
from .targets import ConvSpec


def conv_input(conv: ConvSpec, x: torch.Tensor) -> tuple[torch.Tensor, Padding]:
    """The conv input batched and padded as the conv sees it, and the padding still to apply."""
    if x.dim() == conv.nd + 1:  # unbatched [C, *spatial]
        x = x.unsqueeze(0)
    if conv.padding_mode != "zeros":
        return F.pad(x, list(conv.mode_padding), mode=conv.padding_mode), 0
    return x, conv.padding


def _padded_shape(conv: ConvSpec, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Padding]:
    if len(shape) == conv.nd + 1:
        shape = (1, *shape)
    if conv.padding_mode == "zeros":
        return shape, conv.padding
    spatial = list(shape[2:])
    pads = conv.mode_padding
    for d in range(conv.nd):
        spatial[-1 - d] += pads[2 * d] + pads[2 * d + 1]
    return (*shape[:2], *spatial), 0


def conv_geometry(conv: ConvSpec, shape: tuple[int, ...]) -> ops.ConvGeometry:
    """The geometry of one call on an input of ``shape`` (batched or not, before mode padding)."""
    padded, padding = _padded_shape(conv, tuple(shape))
    return ops.conv_geometry(padded, conv.kernel_size, conv.stride, padding, conv.dilation, conv.groups)


def row_count(k: int, conv: ConvSpec | None, shape: tuple[int, ...]) -> int:
    """Rows (per group) one call with an input of ``shape`` contributes."""
    if conv is None:
        n = 1
        for s in shape:
            n *= int(s)
        return n // max(1, k)
    geom = conv_geometry(conv, shape)
    batch = shape[0] if len(shape) == conv.nd + 2 else 1
    return int(batch) * geom.rows_per_sample


def as_rows(k: int, conv: ConvSpec | None, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Materialised rows ``[groups, m, K]`` of one call's input (columns in weight order)."""
    if conv is None:
        return x.reshape(1, -1, k).to(dtype)
    x, padding = conv_input(conv, x)
    return ops.conv_patches(x, conv.kernel_size, stride=conv.stride, padding=padding, dilation=conv.dilation,
                            groups=conv.groups, dtype=dtype)
