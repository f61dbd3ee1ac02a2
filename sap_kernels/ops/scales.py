"""``sap_scales``: the SAP importance of each eigen-direction."""
from __future__ import annotations

import math

import torch


def check_alpha(alpha: float) -> float:
    """Validate one alpha (``> 0``; ``inf`` means the identity) and return it as a float."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a positive number, got {alpha!r}") from None
    if math.isnan(a) or a <= 0:
        raise ValueError(f"alpha must be > 0 (inf keeps the layer unchanged), got {alpha!r}")
    return a


def sap_scales(eigvals: torch.Tensor, alpha: float) -> torch.Tensor:
    """``lambda_i = alpha r_i / ((alpha - 1) r_i + 1)`` with ``r_i = e_i / sum_j e_j``.

    Args:
        eigvals: ``[..., K]`` float eigenvalues of a Gram (energies ``s_i^2``); small negative
            values from rounding are treated as 0. The normalisation runs over the last dim.
        alpha: ``> 0``; ``inf`` gives all ones. A layer with zero total energy gets all zeros.
    Returns:
        ``[..., K]``, same dtype as ``eigvals``, each entry in ``[0, 1]``.

    Example:
        >>> sap_scales(torch.tensor([3.0, 1.0, 0.0]), alpha=1.0)
        tensor([0.7500, 0.2500, 0.0000])
    """
    a = check_alpha(alpha)
    if not eigvals.is_floating_point():
        raise TypeError(f"eigvals must be a float tensor, got {eigvals.dtype}")
    if math.isinf(a):
        return torch.ones_like(eigvals)
    e = eigvals.clamp_min(0)
    total = e.sum(dim=-1, keepdim=True)
    r = torch.where(total > 0, e / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(e))
    return a * r / ((a - 1.0) * r + 1.0)
