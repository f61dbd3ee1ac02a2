"""Per-layer weight projection, shared by the alpha sweep and the final write."""
from __future__ import annotations

import torch

from .. import ops
from .layers import LayerSpec
from .spectrum import Spectrum


def grouped_weight(spec: LayerSpec) -> torch.Tensor:
    """The weight as ``[groups, out/groups, K_g]`` (a view for contiguous weights)."""
    w = spec.module.weight
    return w.detach().reshape(spec.groups, w.shape[0] // spec.groups, spec.k)


class LayerProjector:
    """Projects one layer's weight for any alpha, computing ``T = W V`` once.

    Memory: one extra copy of the weight (``T``) in the decomposition dtype.
    """

    def __init__(self, spec: LayerSpec, spectrum: Spectrum, backend=None):
        self.spec = spec
        self.spectrum = spectrum
        self.backend = backend
        self.original = spec.module.weight.detach().clone()
        w = grouped_weight(spec).to(spectrum.eigvecs.dtype)
        self.wv = w @ spectrum.eigvecs  # [groups, out_g, K_g]

    def weight(self, alpha: float) -> torch.Tensor:
        """The projected weight, shaped and typed like the module's weight."""
        if alpha == float("inf"):
            return self.original
        w = self.original.reshape(self.wv.shape)
        s = self.spectrum
        new = ops.scaled_projection(
            w.to(s.eigvecs.dtype), s.eigvals, s.eigvecs, alpha, wv=self.wv, backend=self.backend
        )
        return new.reshape(self.original.shape).to(self.original.dtype)

    @torch.no_grad()
    def write(self, alpha: float) -> None:
        """Set the module's weight to its projection at ``alpha`` (``inf`` restores the original)."""
        self.spec.module.weight.copy_(self.weight(alpha))

    @torch.no_grad()
    def restore(self) -> None:
        self.spec.module.weight.copy_(self.original)
