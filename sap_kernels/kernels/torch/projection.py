"""Torch backend of ``scaled_projection`` and the SAP scales it applies."""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..spec import Precision, projection_dtype


def sap_lambda(eigvals: torch.Tensor, alpha: float) -> torch.Tensor:
    """``lambda_i = alpha r_i / ((alpha - 1) r_i + 1)``, ``r_i = max(e_i, 0) / sum_j max(e_j, 0)``.

    Args:
        eigvals: ``[..., K]`` finite float eigenvalues (the caller checks finiteness).
        alpha: ``> 0``; ``inf`` gives all ones.
    Returns:
        ``[..., K]`` in ``eigvals``' dtype, each in ``[0, 1]``; all zeros where the total is 0.
    """
    if math.isinf(alpha):
        return torch.ones_like(eigvals)
    e = eigvals.clamp_min(0)
    total = e.sum(dim=-1, keepdim=True)
    alive = total > 0
    r = torch.where(alive, e / torch.where(alive, total, torch.ones_like(total)), torch.zeros_like(e))
    return alpha * r / ((alpha - 1.0) * r + 1.0)


def scaled_projection_torch(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    wv: Optional[torch.Tensor],
    *,
    precision: Precision = "ieee",
) -> torch.Tensor:
    """``W V diag(lambda(e, alpha)) V^T`` in the projection dtype (at least float32).

    Args:
        weight: ``[..., out, K]``; eigvals: ``[..., K]``; eigvecs: ``[..., K, K]`` (columns are
            eigenvectors); wv: optional precomputed ``weight @ eigvecs`` ``[..., out, K]``.
        precision: met by construction (products in the compute dtype at torch's precision).
    Returns:
        ``[..., out, K]`` in ``projection_dtype(weight.dtype, eigvecs.dtype)`` (the op casts back).
    """
    cdt = projection_dtype(weight.dtype, eigvecs.dtype)
    lam = sap_lambda(eigvals.to(cdt), alpha)
    v = eigvecs.to(cdt)
    out_features, k = weight.shape[-2], weight.shape[-1]
    if wv is None and out_features > k:
        # Forming P = V diag(lam) V^T (K^3) is cheaper than two out x K x K products.
        return weight.to(cdt) @ ((v * lam.unsqueeze(-2)) @ v.transpose(-1, -2))
    t = weight.to(cdt) @ v if wv is None else wv.to(cdt)
    return (t * lam.unsqueeze(-2)) @ v.transpose(-1, -2)
