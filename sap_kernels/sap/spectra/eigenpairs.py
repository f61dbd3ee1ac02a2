"""Eigendecomposition of the accumulated Grams, or of the rows themselves when they are few.

``decompose`` handles a Gram ``[groups, K, K]``. ``decompose_rows`` handles a layer that saw
``m <= K`` rows ``R [groups, m, K]``: the eigenpairs of ``R R^T = U S^2 U^T`` (``m x m``, float64)
give the nonzero ones of ``R^T R`` as ``e = s^2`` and ``V = R^T U / s``; the other ``K - m``
directions have energy 0, hence ``lambda = 0``, so ``W V diag(lambda) V^T`` needs only
``V [K, m]``. Same result as the full decomposition; ``O(m^2 K)`` time, ``O(m K)`` memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .eigensolver import eigh


@dataclass
class Spectrum:
    """Per-group eigenpairs of one layer's Gram.

    eigvals: ``[groups, K_g]`` (ascending, as ``torch.linalg.eigh`` returns them).
    eigvecs: ``[groups, K_g, K_g]``, column ``i`` pairs with ``eigvals[:, i]``.
    Both in the decomposition dtype, on the Gram's device. With ``dual=True`` (from
    ``decompose_rows``) eigvecs is ``[groups, K, m]``: only directions of nonzero energy (a
    column of zeros with eigenvalue 0 where a group has fewer).
    """

    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    dual: bool = False  # eigvecs is [groups, K, m] (rank <= m), from decompose_rows
    exp: int = 0  # the activations were divided by 2^exp: true energies are eigvals * 4^exp

    def energies(self, k: int) -> torch.Tensor:
        """``[groups, k]`` float64 CPU energies (true scale), descending, zero-padded to ``k``."""
        e = self.eigvals.flip(-1).double().cpu() * 4.0 ** self.exp
        if e.shape[-1] < k:
            e = torch.cat([e, e.new_zeros(e.shape[0], k - e.shape[-1])], dim=-1)
        return e


def decompose(gram: torch.Tensor, dtype: torch.dtype) -> Spectrum:
    """Symmetric eigendecomposition of ``gram [groups, K, K]`` in ``dtype``.

    The Gram is symmetrised (so that rounding in its two triangles cannot make the result depend
    on which triangle LAPACK reads) and scaled by its largest diagonal entry (energies of O(1)
    keep the solver away from the subnormal range); eigenvalues are scaled back.
    """
    g = gram.to(dtype)
    g = (g + g.transpose(-1, -2)) * 0.5
    scale = g.diagonal(dim1=-2, dim2=-1).amax(-1).clamp_min(torch.finfo(dtype).tiny)  # [groups]
    vals, vecs = eigh(g / scale[:, None, None])
    return Spectrum(vals * scale[:, None], vecs)


def decompose_rows(rows: torch.Tensor, dtype: torch.dtype = torch.float64) -> Spectrum:
    """Dual eigendecomposition from the rows ``rows [groups, m, K]`` themselves (``m <= K``).

    Returns ``Spectrum(dual=True)`` with eigvals ``[groups, m]`` ascending and eigvecs
    ``[groups, K, m]``: ``V = R^T U / s`` for the eigenpairs ``(s^2, U)`` of ``R R^T``. Directions
    whose energy is at rounding level (``e <= m * eps * max(e)``) get eigenvalue 0 and a zero
    column: their exact eigenvector is undetermined, and with ``lambda ~ e / sum(e)`` they
    contribute below rounding either way.
    """
    r = rows.to(dtype)
    scale = r.abs().amax(dim=(-1, -2)).clamp_min(torch.finfo(dtype).tiny)  # [groups]
    rs = r / scale[:, None, None]
    inner = rs @ rs.transpose(-1, -2)  # [groups, m, m]
    inner = (inner + inner.transpose(-1, -2)) * 0.5
    vals, u = eigh(inner)
    m = rows.shape[-2]
    tol = vals.amax(-1, keepdim=True) * (max(m, 1) * torch.finfo(dtype).eps)
    good = vals > tol
    vals = torch.where(good, vals, torch.zeros_like(vals))
    s = vals.clamp_min(0).sqrt()
    inv = torch.where(good, 1.0 / torch.where(good, s, torch.ones_like(s)), torch.zeros_like(s))
    vecs = (rs.transpose(-1, -2) @ u) * inv[:, None, :]  # [groups, K, m]
    return Spectrum(vals * (scale * scale)[:, None], vecs, dual=True)
