"""Per-target weight projection, shared by the alpha sweep and the final write.

A projector keeps its target's original weight and writes the projection for any alpha (``inf``
writes the original back). Projections are computed before anything is written and checked
finite, so a failure leaves the model as it was.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ... import ops
from ...ops._checks import all_finite
from ...ops.dispatch import requested_backend
from ...ops.projection import check_projection, projection_of_checked
from ..layers.targets import Target
from ..layers.weight_access import WeightAccess
from ..spectra.eigenpairs import Spectrum
from .scaling import importance


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
        if not all_finite(w):
            raise ValueError(f"layer {self.target.name!r}: the projected weight at alpha={alpha:g} is not finite; "
                             "nothing was written")
        return w.reshape(self.original.shape).to(self.original.dtype)

    def write(self, alpha: float) -> None:
        """Set the weight to its projection at ``alpha`` (``inf`` restores the original)."""
        if math.isinf(alpha):
            self.restore()
        else:
            self.commit(self.prepare(alpha))

    def prepare(self, alpha: float) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """What ``commit`` writes at ``alpha``: the weight block and (output side) the bias, checked."""
        return self.projected(alpha), None

    def commit(self, values: tuple[torch.Tensor, Optional[torch.Tensor]]) -> None:
        self.access.write(values[0])

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
        if not spectrum.dual:  # checked once here, not at every alpha of a sweep
            requested_backend(backend)
            check_projection(w, spectrum.eigvals, spectrum.eigvecs, 1.0, self.wv)

    def weight(self, alpha: float) -> torch.Tensor:
        s = self.spectrum
        if s.dual:
            lam = ops.sap_scales(s.eigvals, alpha)  # [groups, m]
            return (self.wv * lam[:, None, :]) @ s.eigvecs.transpose(-1, -2)
        w = self.original.reshape(self.shape).to(s.eigvecs.dtype)
        return projection_of_checked(w, s.eigvals, s.eigvecs, alpha, self.wv, self.backend, "ieee")


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


def _scale_right(w: torch.Tensor, s: Spectrum, param: float, mode: str) -> torch.Tensor:
    """``w V diag(lambda) V^T`` for ``w [groups, rows, K]`` (any spectrum, full or dual)."""
    lam = importance(s.eigvals, param, mode)  # [groups, K or m]
    return ((w @ s.eigvecs) * lam[:, None, :]) @ s.eigvecs.transpose(-1, -2)


class GeneralProjector(Projector):
    """Any ``mode`` on the input side (``pre``), the output side (``post``: the weight's rows and
    the bias, ``W <- P_out W``, ``b <- P_out b``) or both, from the spectra of the layer's input and
    output Grams. Computed in the decomposition dtype.

    Memory: the original weight (and bias) plus one projected block at a time.
    """

    def __init__(self, target: Target, access: WeightAccess, pre: Optional[Spectrum], post: Optional[Spectrum],
                 mode: str, bias: Optional[WeightAccess] = None):
        super().__init__(target, access)
        self.pre, self.post, self.mode, self.bias = pre, post, mode, bias
        self.bias_saved = None if bias is None else bias.snapshot()
        self.bias_original = None if bias is None else bias.read().clone()
        ref = pre if pre is not None else post
        self.dtype = ref.eigvecs.dtype if ref is not None else torch.float64

    def weight(self, alpha: float) -> torch.Tensor:
        w = self.original.reshape(self.shape).to(self.dtype)  # [groups, out_g, K]
        if self.pre is not None:
            w = _scale_right(w, self.pre, alpha, self.mode)
        if self.post is not None:  # P_out W = (W^T P_out)^T, P_out symmetric
            w = _scale_right(w.transpose(-1, -2), self.post, alpha, self.mode).transpose(-1, -2)
        return w

    def projected_bias(self, alpha: float) -> Optional[torch.Tensor]:
        if self.bias_original is None or self.post is None or math.isinf(alpha):
            return self.bias_original
        b = self.bias_original.reshape(self.target.groups, 1, -1).to(self.dtype)  # [groups, 1, out_g]
        new = _scale_right(b, self.post, alpha, self.mode).reshape(self.bias_original.shape)
        if not all_finite(new):
            raise ValueError(f"layer {self.target.name!r}: the projected bias at alpha={alpha:g} is not finite")
        return new.to(self.bias_original.dtype)

    def prepare(self, alpha: float) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        return self.projected(alpha), self.projected_bias(alpha) if self.post is not None else None

    def commit(self, values: tuple[torch.Tensor, Optional[torch.Tensor]]) -> None:
        super().commit(values)
        if self.bias is not None and values[1] is not None:
            self.bias.write(values[1])

    def restore(self) -> None:
        super().restore()
        if self.bias is not None and self.bias_saved is not None:
            self.bias.restore(self.bias_saved)
