"""Projection variants: how each eigen-direction of a Gram is scaled (``mode``), and which side of a
weight is projected (``location``). Their legal values and the swept grid are in ``options``.

``mode`` (``e`` the energies of a layer's Gram, ``r = e / sum e``, ``s = sqrt(e)`` the singular
values of its activations; the swept parameter is ``alpha``, for ``"gpm"`` an energy share):

- ``"sap"`` (default): ``lambda = alpha r / ((alpha - 1) r + 1)``;
- ``"sgp"``: ``lambda = alpha s / ((alpha - 1) s + max s)`` (scaled gradient projection, on
  singular values, as the published code offers it);
- ``"gpm"``: ``lambda = 1`` on the fewest largest directions holding a share ``alpha`` in (0, 1]
  of the energy (``r_1 + ... + r_j < alpha`` for all but the last kept), ``0`` elsewhere.

``location``: ``"pre"`` (default) projects the input side ``W <- W P_in`` with the Gram of the
layer's inputs; ``"post"`` the output side ``W <- P_out W`` (and the bias ``b <- P_out b``) with the
Gram of its outputs; ``"all"`` both, ``W <- P_out W P_in``. Output sides are taken for Linear and
Conv layers; attention blocks keep their input side.
"""
from __future__ import annotations

import math

import torch

from ... import ops


def importance(eigvals: torch.Tensor, param: float, mode: str = "sap") -> torch.Tensor:
    """``lambda [..., K]`` for eigenvalues ``[..., K]`` (any order; negatives from rounding count
    as 0), in ``eigvals``' dtype; ``param = inf`` gives all ones."""
    if math.isinf(param):
        return torch.ones_like(eigvals)
    if mode == "sap":
        return ops.sap_scales(eigvals, param)
    e = eigvals.clamp_min(0)
    if mode == "sgp":
        s = e.sqrt()
        top = s.amax(-1, keepdim=True)
        safe = torch.where(top > 0, top, torch.ones_like(top))
        lam = param * s / ((param - 1.0) * s + safe)
        return torch.where(top > 0, lam, torch.zeros_like(lam))
    return _gpm(e, param)


def _gpm(e: torch.Tensor, share: float) -> torch.Tensor:
    order = torch.argsort(e, dim=-1, descending=True)
    sorted_e = torch.gather(e, -1, order)
    total = sorted_e.sum(-1, keepdim=True)
    ratio = sorted_e / torch.where(total > 0, total, torch.ones_like(total))
    kept = (torch.cumsum(ratio, -1) < share).sum(-1, keepdim=True) + 1  # the published count
    rank = torch.arange(e.shape[-1], device=e.device).expand_as(e)
    keep_sorted = (rank < kept) & (total > 0)
    lam = torch.zeros_like(e)
    return lam.scatter(-1, order, keep_sorted.to(e.dtype))


