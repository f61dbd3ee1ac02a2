"""Torch backend of ``scaled_projection``."""
from __future__ import annotations

from typing import Optional

import torch

from ...ops._checks import projection_dtype
from ...ops.dispatch import register
from ...ops.scales import sap_scales


@register("scaled_projection", "torch")
def scaled_projection_torch(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    wv: Optional[torch.Tensor],
    *,
    precision: str = "ieee",
) -> torch.Tensor:
    """``W V diag(lambda(e, alpha)) V^T`` in the promoted dtype (at least float32).

    Args:
        weight: ``[..., out, K]``; eigvals: ``[..., K]``; eigvecs: ``[..., K, K]`` (columns are
        eigenvectors); wv: optional precomputed ``weight @ eigvecs`` ``[..., out, K]``.
        precision: accepted for the shared backend signature; this backend always multiplies at
            torch's own matmul precision (full fp32 on CPU; on CUDA whatever
            ``torch.backends.cuda.matmul`` allows), so ``"tf32"``/``"bf16"`` are best effort.
    Returns:
        ``[..., out, K]`` in the compute dtype (the caller casts back).
    """
    cdt = projection_dtype(weight, eigvecs)
    lam = sap_scales(eigvals.to(cdt), alpha)
    v = eigvecs.to(cdt)
    out_features, k = weight.shape[-2], weight.shape[-1]
    if wv is None and out_features > k:
        # Forming P = V diag(lam) V^T (K^3) is cheaper than two out x K x K products.
        return weight.to(cdt) @ ((v * lam.unsqueeze(-2)) @ v.transpose(-1, -2))
    t = weight.to(cdt) @ v if wv is None else wv.to(cdt)
    return (t * lam.unsqueeze(-2)) @ v.transpose(-1, -2)
