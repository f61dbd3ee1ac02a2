"""``scaled_projection``: ``W V diag(lambda) V^T``, the SAP weight update."""
from __future__ import annotations

from typing import Optional

import torch

from ._checks import check_precision, weight_shape
from .dispatch import resolve
from .scales import check_alpha


def check_projection(
    weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, alpha: float, wv: Optional[torch.Tensor]
) -> None:
    """The argument checks of ``scaled_projection`` that every entry point shares (the kernels
    trust their arguments): alpha, and the shapes of ``eigvals``, ``eigvecs`` and ``wv``."""
    check_alpha(alpha)
    lead, k = weight_shape(weight)
    if tuple(eigvals.shape) != (*lead, k) or tuple(eigvecs.shape) != (*lead, k, k):
        raise ValueError(
            f"shapes do not match: weight {list(weight.shape)}, eigvals {list(eigvals.shape)} "
            f"(expected {[*lead, k]}), eigvecs {list(eigvecs.shape)} (expected {[*lead, k, k]})"
        )
    if wv is not None and tuple(wv.shape) != tuple(weight.shape):
        raise ValueError(f"wv has shape {list(wv.shape)}, expected {list(weight.shape)}")


def scaled_projection(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    *,
    wv: Optional[torch.Tensor] = None,
    backend: Optional[str] = None,
    precision: str = "ieee",
) -> torch.Tensor:
    """Project a flattened weight onto the scaled activation basis.

    Args:
        weight: ``[..., out, K]`` (a Linear weight, or a conv weight flattened per group).
        eigvals: ``[..., K]`` Gram eigenvalues (any order, matching ``eigvecs``' columns).
        eigvecs: ``[..., K, K]``, column ``i`` the eigenvector of ``eigvals[..., i]``.
        alpha: ``> 0``; ``inf`` returns ``weight`` unchanged (up to rounding).
        wv: optional ``weight @ eigvecs`` ``[..., out, K]``, computed once and reused across an
            alpha sweep (then each alpha costs one GEMM).
        backend: ``"torch"``, ``"triton"`` or ``"cuda"``; default by device.
        precision: dot precision, ``"ieee"`` (default), ``"tf32"`` or ``"bf16"``.
    Returns:
        ``[..., out, K]`` with ``weight``'s dtype; computed in at least float32.

    Example:
        >>> w, g = torch.randn(4, 6), torch.randn(50, 6)
        >>> e, v = torch.linalg.eigh(g.T @ g)
        >>> torch.allclose(scaled_projection(w, e, v, float("inf")), w, atol=1e-5)
        True
    """
    check_projection(weight, eigvals, eigvecs, alpha, wv)
    check_precision(precision)
    if len({weight.device, eigvals.device, eigvecs.device}) != 1:
        raise ValueError("weight, eigvals and eigvecs must be on one device")
    fn = resolve("scaled_projection", weight.device, backend)
    return fn(weight, eigvals, eigvecs, float(alpha), wv, precision=precision).to(weight.dtype)
