"""``scaled_projection``: ``W V diag(lambda) V^T``, the SAP weight update."""
from __future__ import annotations

from typing import Final, Optional

import torch

from ..kernels.spec import Precision, Request, projection_dtype
from ._checks import check_alpha, check_finite, check_precision, float_tensor, same_device, weight_shape
from .dispatch import requested_backend, select

OP: Final = "scaled_projection"


def check_projection(
    weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, alpha: float, wv: Optional[torch.Tensor]
) -> float:
    """The argument checks of ``scaled_projection`` that every entry point shares (the kernels
    trust their arguments): tensor types, alpha, shapes, one device, finite eigenpairs.

    Returns:
        ``alpha`` as a float.
    """
    float_tensor(weight, "weight", OP)
    float_tensor(eigvals, "eigvals", OP)
    float_tensor(eigvecs, "eigvecs", OP)
    if wv is not None:
        float_tensor(wv, "wv", OP)
    a = check_alpha(alpha)
    lead, k = weight_shape(weight)
    if tuple(eigvals.shape) != (*lead, k) or tuple(eigvecs.shape) != (*lead, k, k):
        raise ValueError(
            f"shapes do not match: weight {list(weight.shape)}, eigvals {list(eigvals.shape)} "
            f"(expected {[*lead, k]}), eigvecs {list(eigvecs.shape)} (expected {[*lead, k, k]})"
        )
    if wv is not None and tuple(wv.shape) != tuple(weight.shape):
        raise ValueError(f"wv has shape {list(wv.shape)}, expected {list(weight.shape)}")
    same_device(OP, weight=weight, eigvals=eigvals, eigvecs=eigvecs, wv=wv)
    # A NaN eigenvalue would silently zero the whole weight (its total is not > 0), an inf one
    # would give NaN: refuse both, and non-finite eigenvectors with them.
    check_finite(eigvals, "eigvals", OP)
    check_finite(eigvecs, "eigvecs", OP)
    return a


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
        weight: ``[..., out, K]`` real float (a Linear weight, or a conv weight flattened per
            group); integer weights are refused (the result would be truncated).
        eigvals: ``[..., K]`` finite float Gram eigenvalues (any order, matching ``eigvecs``).
        eigvecs: ``[..., K, K]`` finite float, column ``i`` the eigenvector of ``eigvals[..., i]``.
        alpha: a real number ``> 0``; ``inf`` returns ``weight`` unchanged (up to rounding).
        wv: optional ``weight @ eigvecs`` ``[..., out, K]`` (float), computed once and reused
            across an alpha sweep (then each alpha costs one GEMM).
        backend: ``"torch"``, ``"triton"`` or ``"cuda"``; default chosen per call.
        precision: ``"ieee"`` (default), ``"tf32"`` or ``"bf16"`` (see ``gram``).
    Returns:
        ``[..., out, K]`` with ``weight``'s dtype; computed in float32, or float64 when
        ``weight`` or ``eigvecs`` is float64. Not differentiable.
    Raises:
        TypeError: a non-float tensor, a non-numeric alpha.
        ValueError: mismatched shapes or devices, NaN/inf eigenpairs, ``alpha <= 0``.
        BackendUnavailable: no backend (or not the forced one) can run the call exactly.

    Example:
        >>> w, g = torch.randn(4, 6), torch.randn(50, 6)
        >>> e, v = torch.linalg.eigh(g.T @ g)
        >>> torch.allclose(scaled_projection(w, e, v, float("inf")), w, atol=1e-5)
        True
    """
    requested_backend(backend)
    a = check_projection(weight, eigvals, eigvecs, alpha, wv)
    return projection_of_checked(weight, eigvals, eigvecs, a, wv, backend, check_precision(precision))


def projection_of_checked(weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, alpha: float,
                          wv: Optional[torch.Tensor], backend: Optional[str], prec: Precision) -> torch.Tensor:
    """``scaled_projection`` without its argument checks, for a caller that ran
    ``check_projection`` once on the tensors it passes again for every alpha (an alpha sweep:
    the finiteness check of a 4608-wide eigenbasis is a pass over 85 MB)."""
    a = check_alpha(alpha)
    if weight.numel() == 0:
        return weight.detach().clone()
    cdt = projection_dtype(weight.dtype, eigvecs.dtype)
    request = Request(OP, weight.device, weight.dtype, cdt, prec, tuple(weight.shape))
    impl = select(request, backend)
    with torch.no_grad():
        return impl.scaled_projection(weight, eigvals, eigvecs, a, wv, precision=prec).to(weight.dtype)
