"""``conv_gram``: Gram of a convolution's im2col patches, straight from its input."""
from __future__ import annotations

from typing import Optional

import torch

from ._checks import accumulator, check_precision
from .dispatch import resolve
from .geometry import IntOrTuple, Padding, conv_geometry


def conv_gram(
    x: torch.Tensor,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out: Optional[torch.Tensor] = None,
    backend: Optional[str] = None,
    precision: str = "ieee",
) -> torch.Tensor:
    """Per-group Gram ``P_g^T P_g`` of the patches a ConvNd with these arguments multiplies.

    Row ``m`` of ``P_g`` is one (sample, output position); column ``k`` is one (input channel of
    group ``g``, kernel offset), in the order of ``weight[g_out].flatten(1)``; entries outside the
    input are zero padding (``F.unfold`` semantics). No backend materialises all of ``P_g``.

    Args:
        x: ``[N, C, *spatial]`` with 1, 2 or 3 spatial dims (Conv1d/2d/3d), any float dtype.
        kernel_size, stride, dilation: int or tuple per spatial dim.
        padding: int, tuple, ``'same'`` or ``'valid'`` (zeros, as ``nn.ConvNd`` takes it).
        groups: divides ``C``; ``groups == C`` is depthwise.
        out: optional ``[groups, K_g, K_g]`` float32 accumulator (``K_g = C/groups*prod(kernel)``),
            updated in place and returned.
        backend: ``"torch"``, ``"triton"`` or ``"cuda"``; default by device.
        precision: dot precision, ``"ieee"`` (default), ``"tf32"`` or ``"bf16"``.
    Returns:
        ``[groups, K_g, K_g]`` float32 (float64 for float64 input).

    Example:
        >>> x = torch.randn(2, 3, 9, 9)
        >>> g = conv_gram(x, 3, padding=1)
        >>> p = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 27)
        >>> torch.allclose(g[0], p.T @ p, rtol=1e-4, atol=1e-3)
        True
    """
    check_precision(precision)
    geom = conv_geometry(x.shape, kernel_size, stride, padding, dilation, groups)
    acc = accumulator(x, (groups, geom.k_per_group, geom.k_per_group), out, "conv_gram")
    if x.shape[0] and geom.rows_per_sample:
        resolve("conv_gram", x.device, backend)(x, geom, acc, precision=precision)
    return acc
