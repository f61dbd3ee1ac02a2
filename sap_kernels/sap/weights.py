"""Per-target weight projection, shared by the alpha sweep and the final write.

A projector keeps its target's original weight and writes the projection for any alpha (``inf``
writes the original back). Projections are computed before anything is written and checked
finite, so a failure leaves the model as it was.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .. import ops
from .params import WeightAccess
from .spectrum import Spectrum
from .targets import Target


class Projector:
    """Keeps a target's original weight; subclasses say what its projection at ``alpha`` is."""

    def __init__(self, target: Target, access: WeightAccess):
        self.target, self.access = target, access
        self.saved = access.snapshot()
        self.original = access.read().clone()
        self.shape = (target.groups, self.original.shape[0] // target.groups, target.k)

    def weight(self, alpha: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def projected(self, alpha: float) -> torch.Tensor:
        """The weight block at ``alpha``, shaped and typed like the original, checked finite."""
        if math.isinf(alpha):
            return self.original
        w = self.weight(alpha)
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"layer {self.target.name!r}: the projected weight at alpha={alpha:g} is not finite; "
                             "nothing was written")
        return w.reshape(self.original.shape).to(self.original.dtype)

    def write(self, alpha: float) -> None:
        """Set the weight to its projection at ``alpha`` (``inf`` restores the original)."""
        if math.isinf(alpha):
            self.restore()
        else:
            self.access.write(self.projected(alpha))

    def restore(self) -> None:
        self.access.restore(self.saved)


class EigenProjector(Projector):
    """Any alpha from one spectrum, computing ``T = W V`` once.

    With a full spectrum (``V [groups, K, K]``) the projection is ``ops.scaled_projection``; with a
    dual one (``V [groups, K, m]``, the other directions having ``lambda = 0``) it is
    ``(W V) diag(lambda) V^T`` on the rank-``m`` part only.
    """

    def __init__(self, target: Target, access: WeightAccess, spectrum: Spectrum, backend: str | None = None):
        super().__init__(target, access)
        self.spectrum, self.backend = spectrum, backend
        w = self.original.reshape(self.shape).to(spectrum.eigvecs.dtype)
        self.wv = w @ spectrum.eigvecs  # [groups, out_g, K] or [groups, out_g, m]

    def weight(self, alpha: float) -> torch.Tensor:
        s = self.spectrum
        if s.dual:
            lam = ops.sap_scales(s.eigvals, alpha)  # [groups, m]
            return (self.wv * lam[:, None, :]) @ s.eigvecs.transpose(-1, -2)
        w = self.original.reshape(self.shape).to(s.eigvecs.dtype)
        return ops.scaled_projection(w, s.eigvals, s.eigvecs, alpha, wv=self.wv, backend=self.backend)


class SolveProjector(Projector):
    """One fixed alpha straight from the Gram ``[groups, K, K]`` (``ops.gram_projection``: a
    float64 Cholesky solve, no eigenvectors), computed at construction."""

    def __init__(self, target: Target, access: WeightAccess, gram: Optional[torch.Tensor], alpha: float,
                 result: Optional[torch.Tensor] = None):
        """``result``: the projected block ``[groups, out_g, K]`` when already computed (by another
        rank); else it is solved here from ``gram``."""
        super().__init__(target, access)
        self.alpha = alpha
        if result is None:
            assert gram is not None
            result = ops.gram_projection(self.original.reshape(self.shape), gram, alpha)
        self.result = result

    def weight(self, alpha: float) -> torch.Tensor:
        if alpha != self.alpha:
            raise ValueError(f"this projector was built for alpha = {self.alpha}, not {alpha}")
        return self.result
