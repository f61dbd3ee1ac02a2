"""``gram``: ``X^T X`` of activations whose rows are all leading dims."""
from __future__ import annotations

from typing import Optional

import torch

from ._checks import accumulator, check_precision
from .dispatch import resolve


def gram(
    x: torch.Tensor,
    *,
    out: Optional[torch.Tensor] = None,
    backend: Optional[str] = None,
    precision: str = "ieee",
) -> torch.Tensor:
    """Gram matrix of the rows of ``x``, added into ``out`` when given.

    Args:
        x: ``[..., K]`` float activations (fp32/fp16/bf16/fp64); every leading dim is a row, as a
            Linear layer sees tokens.
        out: optional ``[K, K]`` float32 accumulator (float64 allowed) on ``x.device``; updated in
            place (``out += X^T X``) and returned.
        backend: ``"torch"``, ``"triton"`` or ``"cuda"``; default chosen by device (see
            ``sap_kernels.ops.dispatch``).
        precision: dot precision, ``"ieee"`` (default, full fp32 products), ``"tf32"`` or
            ``"bf16"`` (operands rounded, fp32 accumulation); see ``docs/backends.md``.
    Returns:
        ``[K, K]`` float32 (float64 for float64 input), symmetric.

    Example:
        >>> x = torch.randn(5, 7, 3)
        >>> torch.allclose(gram(x), x.reshape(-1, 3).T @ x.reshape(-1, 3), atol=1e-5)
        True
    """
    if x.dim() < 1:
        raise ValueError("gram: x must have at least one dim (the feature dim K)")
    check_precision(precision)
    k = x.shape[-1]
    acc = accumulator(x, (k, k), out, "gram")
    rows = x.reshape(-1, k)
    if rows.shape[0]:
        resolve("gram", x.device, backend)(rows, acc, precision=precision)
    return acc
