"""Eigendecomposition of the accumulated Grams."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Spectrum:
    """Per-group eigenpairs of one layer's Gram.

    eigvals: ``[groups, K_g]`` (ascending, as ``torch.linalg.eigh`` returns them).
    eigvecs: ``[groups, K_g, K_g]``, column ``i`` pairs with ``eigvals[:, i]``.
    Both in the decomposition dtype, on the Gram's device.
    """

    eigvals: torch.Tensor
    eigvecs: torch.Tensor


def decompose(gram: torch.Tensor, dtype: torch.dtype) -> Spectrum:
    """Symmetric eigendecomposition of ``gram [groups, K, K]`` in ``dtype``.

    The Gram is symmetrised first (``(G + G^T) / 2``) so that rounding in its two triangles
    cannot make the decomposition depend on which triangle LAPACK reads.
    """
    g = gram.to(dtype)
    g = (g + g.transpose(-1, -2)) * 0.5
    vals, vecs = torch.linalg.eigh(g)
    return Spectrum(vals, vecs)
