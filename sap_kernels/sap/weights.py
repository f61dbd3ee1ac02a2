"""Per-target weight projection, shared by the alpha sweep and the final write."""
from __future__ import annotations

import torch

from .. import ops
from .spectrum import Spectrum
from .targets import Target


class _Projector:
    """Keeps a target's original weight; subclasses say what its projection at ``alpha`` is."""

    def __init__(self, target: Target):
        self.target = target
        self.original = target.weight().clone()
        self.shape = (target.groups, self.original.shape[0] // target.groups, target.k)

    def weight(self, alpha: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def write(self, alpha: float) -> None:
        """Set the weight to its projection at ``alpha`` (``inf`` restores the original)."""
        self.target.weight().copy_(self.weight(alpha))

    @torch.no_grad()
    def restore(self) -> None:
        self.target.weight().copy_(self.original)


class LayerProjector(_Projector):
    """Projects one target's weight (or block of rows) for any alpha, computing ``T = W V`` once.

    With a full spectrum (``V [groups, K, K]``) the projection is ``ops.scaled_projection``; with a
    dual one (``V [groups, K, m]``, ``m`` rows seen, the rest of the directions having
    ``lambda = 0``) it is ``(W V) diag(lambda) V^T`` on the rank-``m`` part only.

    Memory: one extra copy of the weight block (the original) plus ``T`` ``[groups, out_g, K or m]``
    in the decomposition dtype.
    """

    def __init__(self, target: Target, spectrum: Spectrum, backend=None):
        super().__init__(target)
        self.spectrum = spectrum
        self.backend = backend
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


class GramSolveProjector(_Projector):
    """Projects one target's weight at one fixed alpha straight from its Gram
    ``[groups, K, K]`` (``ops.gram_projection``: a float64 Cholesky solve, no eigenvectors).

    The projected weight is computed here, before anything is written, so a failure leaves the
    model as it was. Memory: the original and the projected weight block.
    """

    def __init__(self, target: Target, gram: torch.Tensor, alpha: float):
        super().__init__(target)
        self.alpha = alpha
        w = self.original.reshape(self.shape)
        self.projected = ops.gram_projection(w, gram, alpha).reshape(self.original.shape)

    def weight(self, alpha: float) -> torch.Tensor:
        if alpha == float("inf"):
            return self.original
        if alpha != self.alpha:
            raise ValueError(f"this projector was built for alpha = {self.alpha}, not {alpha}")
        return self.projected
