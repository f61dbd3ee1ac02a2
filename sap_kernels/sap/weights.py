"""Per-target weight projection, shared by the alpha sweep and the final write."""
from __future__ import annotations

import torch

from .. import ops
from .spectrum import Spectrum
from .targets import Target


class LayerProjector:
    """Projects one target's weight (or block of rows) for any alpha, computing ``T = W V`` once.

    With a full spectrum (``V [groups, K, K]``) the projection is ``ops.scaled_projection``; with a
    dual one (``V [groups, K, m]``, ``m`` rows seen, the rest of the directions having
    ``lambda = 0``) it is ``(W V) diag(lambda) V^T`` on the rank-``m`` part only.

    Memory: one extra copy of the weight block (the original) plus ``T`` ``[groups, out_g, K or m]``
    in the decomposition dtype.
    """

    def __init__(self, target: Target, spectrum: Spectrum, backend=None):
        self.target = target
        self.spectrum = spectrum
        self.backend = backend
        self.original = target.weight().clone()
        self.shape = (target.groups, self.original.shape[0] // target.groups, target.k)
        w = self.original.reshape(self.shape).to(spectrum.eigvecs.dtype)
        self.wv = w @ spectrum.eigvecs  # [groups, out_g, K] or [groups, out_g, m]

    def weight(self, alpha: float) -> torch.Tensor:
        """The projected weight block, shaped and typed like the original."""
        if alpha == float("inf"):
            return self.original
        s = self.spectrum
        if s.dual:
            lam = ops.sap_scales(s.eigvals, alpha)  # [groups, m]
            new = (self.wv * lam[:, None, :]) @ s.eigvecs.transpose(-1, -2)
        else:
            w = self.original.reshape(self.shape).to(s.eigvecs.dtype)
            new = ops.scaled_projection(w, s.eigvals, s.eigvecs, alpha, wv=self.wv, backend=self.backend)
        return new.reshape(self.original.shape).to(self.original.dtype)

    @torch.no_grad()
    def write(self, alpha: float) -> None:
        """Set the weight to its projection at ``alpha`` (``inf`` restores the original)."""
        self.target.weight().copy_(self.weight(alpha))

    @torch.no_grad()
    def restore(self) -> None:
        self.target.weight().copy_(self.original)
