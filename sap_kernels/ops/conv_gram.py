"""``conv_gram``: Gram of a convolution's im2col patches, straight from its input."""
from __future__ import annotations

from typing import Optional

import torch

from ..kernels.spec import IntOrTuple, Padding, Request
from ._checks import accumulator, check_precision, float_tensor
from .dispatch import requested_backend, select
from .geometry import conv_geometry


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
    input are zero padding (``F.unfold`` semantics). No backend materialises all of ``P_g``
    (``conv_patches`` does, when the rows themselves are wanted).

    Args:
        x: ``[N, C, *spatial]`` with 1, 2 or 3 spatial dims (Conv1d/2d/3d), real float dtype.
        kernel_size, stride, dilation: int or tuple of ints per spatial dim (``3.0`` is a
            TypeError naming the argument).
        padding: int, tuple, ``'same'`` or ``'valid'`` (zeros, as ``nn.ConvNd`` takes it).
        groups: int dividing ``C``; ``groups == C`` is depthwise.
        out: optional ``[groups, K_g, K_g]`` contiguous float32/float64 accumulator
            (``K_g = C/groups * prod(kernel_size)``), not overlapping ``x``; updated in place and
            returned; the sum is accumulated in its dtype.
        backend: ``"torch"``, ``"triton"`` or ``"cuda"``; default chosen per call.
        precision: ``"ieee"`` (default), ``"tf32"`` or ``"bf16"`` (see ``gram``).
    Returns:
        ``[groups, K_g, K_g]`` float32 (float64 for float64 input); nothing is added for
        ``N = 0`` or ``C = 0``. Not differentiable.

    Example:
        >>> x = torch.randn(2, 3, 9, 9)
        >>> g = conv_gram(x, 3, padding=1)
        >>> p = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 27)
        >>> torch.allclose(g[0], p.T @ p, rtol=1e-4, atol=1e-3)
        True
    """
    requested_backend(backend)
    x = float_tensor(x, "x", "conv_gram")
    prec = check_precision(precision)
    geom = conv_geometry(x.shape, kernel_size, stride, padding, dilation, groups)
    k = geom.k_per_group
    acc = accumulator(x, (geom.groups, k, k), out, "conv_gram")
    if x.shape[0] == 0 or k == 0:
        return acc
    request = Request("conv_gram", x.device, x.dtype, acc.dtype, prec, tuple(x.shape), geom)
    impl = select(request, backend)
    with torch.no_grad():
        impl.conv_gram(x, geom, acc, precision=prec)
    return acc
