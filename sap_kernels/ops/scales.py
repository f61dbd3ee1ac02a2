"""``sap_scales``: the SAP importance of each eigen-direction."""
from __future__ import annotations

import torch

from ..kernels.torch.projection import sap_lambda
from ._checks import check_alpha, check_finite, float_tensor
from .dispatch import requested_backend

__all__ = ["check_alpha", "sap_scales"]


def sap_scales(eigvals: torch.Tensor, alpha: float) -> torch.Tensor:
    """``lambda_i = alpha r_i / ((alpha - 1) r_i + 1)`` with ``r_i = e_i / sum_j e_j``.

    Args:
        eigvals: ``[..., K]`` finite float eigenvalues of a Gram (energies ``s_i^2``); small
            negative values from rounding are treated as 0. The normalisation runs over the
            last dim.
        alpha: a real number ``> 0``; ``inf`` gives all ones. A layer with zero total energy
            gets all zeros.
    Returns:
        ``[..., K]``, same dtype as ``eigvals``, each entry in ``[0, 1]``.
    Raises:
        TypeError: ``eigvals`` not a real float tensor, or ``alpha`` not a real number.
        ValueError: NaN/inf in ``eigvals`` (a NaN would otherwise zero every scale and an inf
            give NaN), ``alpha <= 0`` or NaN.

    Example:
        >>> sap_scales(torch.tensor([3.0, 1.0, 0.0]), alpha=1.0)
        tensor([0.7500, 0.2500, 0.0000])
    """
    requested_backend()
    a = check_alpha(alpha)
    eigvals = float_tensor(eigvals, "eigvals", "sap_scales")
    check_finite(eigvals, "eigvals", "sap_scales")
    return sap_lambda(eigvals, a)
