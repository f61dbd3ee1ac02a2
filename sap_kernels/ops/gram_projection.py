"""``gram_projection``: the SAP weight update for one alpha, straight from the Gram.

With ``G = V diag(e) V^T``, ``S = trace(G) = sum(e)`` and ``r = e / S``,

    lambda = alpha r / ((alpha - 1) r + 1) = alpha e / ((alpha - 1) e + S),

so ``V diag(lambda) V^T = alpha G M^{-1}`` with ``M = (alpha - 1) G + S I``, a rational function
of ``G`` that needs no eigenvectors. ``M``'s eigenvalues ``(alpha - 1) e + S`` lie between
``min(alpha, 1) S`` and ``max(alpha, 1) S`` for every ``alpha > 0``, so ``M`` is symmetric
positive definite with condition number at most ``max(alpha, 1 / alpha)``: one float64 Cholesky
factorisation (``K^3 / 3`` multiply-adds) and two triangular solves replace the eigendecomposition
(about ``9 K^3`` for a full symmetric ``eigh``). For a sweep over many alphas one
eigendecomposition serves every alpha, so this route is for a fixed alpha.
"""
from __future__ import annotations

import math

import torch

from ._checks import check_alpha, check_finite, float_tensor, same_device, weight_shape
from .dispatch import requested_backend

OP = "gram_projection"


def gram_projection(weight: torch.Tensor, gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """``W V diag(lambda) V^T`` for the eigenpairs ``(e, V)`` of ``gram``, without computing them.

    Args:
        weight: ``[..., out, K]`` real float (a Linear weight, or a conv weight flattened per
            group); any device, ``gram``'s.
        gram: ``[..., K, K]`` finite real float, symmetric positive semi-definite (``A^T A``); only the
            symmetric part is used.
        alpha: a real number ``> 0``; ``inf`` returns ``weight`` unchanged.
    Returns:
        ``[..., out, K]`` with ``weight``'s dtype, computed in float64 (``M``'s condition number
        reaches ``alpha``, past what float32 resolves). A batch entry whose Gram has zero trace
        (no activation energy) gets a zero weight, as ``lambda = 0`` there. Not differentiable.
    Raises:
        TypeError: non-float tensors or alpha. ValueError: mismatched shapes or devices, NaN/inf
        in ``gram``, an indefinite ``gram``, ``alpha <= 0``, an unknown ``$SAP_KERNELS_BACKEND``
        (validated here too, though this op has one implementation and ignores a valid one).

    Example:
        >>> from sap_kernels.ops import sap_scales
        >>> a, w = torch.randn(50, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
        >>> e, v = torch.linalg.eigh(a.T @ a)
        >>> lam = sap_scales(e, 100.0)
        >>> torch.allclose(gram_projection(w, a.T @ a, 100.0), w @ v @ torch.diag(lam) @ v.T)
        True
    """
    requested_backend()  # one implementation (torch.linalg, any device); the name is still checked
    float_tensor(weight, "weight", OP)
    float_tensor(gram, "gram", OP)
    a = check_alpha(alpha)
    lead, k = weight_shape(weight)
    if tuple(gram.shape) != (*lead, k, k):
        raise ValueError(f"shapes do not match: weight {list(weight.shape)}, gram {list(gram.shape)} "
                         f"(expected {[*lead, k, k]})")
    same_device(OP, weight=weight, gram=gram)
    if math.isinf(a):
        return weight.detach().clone()
    check_finite(gram, "gram", OP)
    with torch.no_grad():
        return _solve(weight, gram, a)


def _solve(weight: torch.Tensor, gram: torch.Tensor, a: float) -> torch.Tensor:
    """The float64 Cholesky solve; ``weight [..., out, K]``, ``gram [..., K, K]`` validated."""
    g = gram.to(torch.float64)
    g = (g + g.transpose(-1, -2)) * 0.5
    trace = g.diagonal(dim1=-2, dim2=-1).sum(-1)  # [...]
    alive = trace > 0
    # Scale by the trace: r = e / S becomes the spectrum itself, M = (alpha - 1) G/S + I.
    g = g / torch.where(alive, trace, torch.ones_like(trace))[..., None, None]
    m = g * (a - 1.0)
    m.diagonal(dim1=-2, dim2=-1).add_(1.0)
    chol, info = torch.linalg.cholesky_ex(m)
    if bool((info != 0).any()):  # M is SPD for any PSD Gram; this is an indefinite input
        raise ValueError("gram_projection: gram is not positive semi-definite (it must be A^T A)")
    w = weight.to(torch.float64)
    # alpha G M^{-1} is symmetric, so W (alpha G M^{-1}) = alpha (M^{-1} (G W^T))^T.
    rhs = g @ w.transpose(-1, -2)  # [..., K, out]
    new = torch.cholesky_solve(rhs, chol).transpose(-1, -2) * a
    new = torch.where(alive[..., None, None], new, torch.zeros_like(new))
    return new.to(weight.dtype)
