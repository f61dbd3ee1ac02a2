"""``gram``: ``X^T X`` of activations whose rows are all leading dims."""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..kernels.spec import Request
from ._checks import accumulator, check_precision, float_tensor
from .dispatch import requested_backend, select


def gram(
    x: torch.Tensor,
    *,
    out: Optional[torch.Tensor] = None,
    backend: Optional[str] = None,
    precision: str = "ieee",
) -> torch.Tensor:
    """Gram matrix of the rows of ``x``, added into ``out`` when given.

    Args:
        x: ``[..., K]`` real float activations (float32/float16/bfloat16/float64 on every
            backend); every leading dim is a row, as a Linear layer sees tokens. ``K = 0`` or no
            rows at all is allowed: nothing is added (``[0, 0]`` result for ``K = 0``).
        out: optional ``[K, K]`` contiguous float32 or float64 accumulator on ``x.device`` (float64
            for float64 ``x``), not overlapping ``x``; updated in place (``out += X^T X``) and
            returned. The sum is accumulated in ``out``'s dtype: a float64 ``out`` for float32
            ``x`` selects a backend that accumulates in float64.
        backend: ``"torch"``, ``"triton"`` or ``"cuda"``; default: chosen per call from what each
            backend supports (``docs/backends.md``).
        precision: the least accurate products accepted: ``"ieee"`` (default, full fp32
            products), ``"tf32"`` or ``"bf16"`` (operands may be rounded).
    Returns:
        ``out``, or a new ``[K, K]`` float32 (float64 for float64 ``x``) tensor. Not differentiable.
    Raises:
        TypeError: ``x`` or ``out`` is not a real float tensor of an accepted dtype.
        ValueError: a 0-d ``x``; ``out`` of the wrong shape, device, layout, or overlapping ``x``;
            an unknown backend or precision.
        BackendUnavailable: no backend (or not the forced one) can run the call exactly.

    Example:
        >>> x = torch.randn(10, 4)
        >>> torch.allclose(gram(x), x.T @ x, atol=1e-5)
        True
    """
    requested_backend(backend)
    x = float_tensor(x, "x", "gram")
    prec = check_precision(precision)
    if x.dim() == 0:
        raise ValueError("gram: x must be [..., K] (at least one dim), got a 0-d tensor")
    k = x.shape[-1]
    acc = accumulator(x, (k, k), out, "gram")
    rows = math.prod(x.shape[:-1])
    if rows == 0 or k == 0:
        return acc
    request = Request("gram", x.device, x.dtype, acc.dtype, prec, (rows, k))
    impl = select(request, backend)
    with torch.no_grad():
        impl.gram(x.reshape(rows, k), acc, precision=prec)
    return acc
