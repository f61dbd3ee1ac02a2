"""Pass 2: forward pre-hooks that stream each layer's input activations into its Gram.

Nothing but the ``[groups, K_g, K_g]`` fp32 Gram per layer outlives a forward call: the hook
hands the activation batch to ``ops.gram``/``ops.conv_gram``, which add into the accumulator.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .layers import LayerSpec


class NonFiniteActivation(ValueError):
    """A layer received NaN or Inf inputs; its Gram (and so its projection) would be meaningless."""


# Layers this narrow accumulate in float64: their Gram costs little (M * K^2 with small K) and
# narrow late layers (classifier heads, token MLPs) are where an fp32 Gram's rounding, amplified
# by a large alpha, measurably moved the projection (README "Precision").
FP64_MAX_K = 256


class GramCollector:
    """Context manager: while active, every call of a spec's module adds its input to its Gram.

    A module called several times per forward pass accumulates every call. Hooks are removed on
    exit, exceptions included.

    Attributes:
        grams: name -> ``[groups, K_g, K_g]`` float32 (float64 for a float64 model) accumulator.
        rows: name -> number of activation rows (patch rows for convs) accumulated.
    """

    def __init__(
        self,
        specs: list[LayerSpec],
        *,
        check_finite: bool = True,
        backend: Optional[str] = None,
        fp64_max_k: int = FP64_MAX_K,
    ):
        self.specs = specs
        self.fp64_max_k = fp64_max_k
        self.check_finite = check_finite
        self.backend = backend
        self.grams: dict[str, torch.Tensor] = {}
        self.rows: dict[str, int] = {s.name: 0 for s in specs}
        self._handles: list = []

    def __enter__(self) -> "GramCollector":
        try:
            for spec in self.specs:
                self._handles.append(spec.module.register_forward_pre_hook(self._hook_for(spec)))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook_for(self, spec: LayerSpec):
        def hook(module: nn.Module, args: tuple) -> None:
            if not args or not isinstance(args[0], torch.Tensor):
                raise TypeError(f"layer {spec.name!r} was called without a tensor input")
            with torch.no_grad():
                self.add(spec, args[0].detach())

        return hook

    def add(self, spec: LayerSpec, x: torch.Tensor) -> None:
        """Add one call's input ``x`` of layer ``spec`` to its Gram."""
        if self.check_finite and not bool(torch.isfinite(x).all()):
            raise NonFiniteActivation(f"layer {spec.name!r} ({spec.kind}) received non-finite (NaN/Inf) input activations")
        out = self.grams.get(spec.name)
        if out is None:
            wide = x.dtype != torch.float64 and spec.k > self.fp64_max_k
            dtype = torch.float32 if wide else torch.float64
            out = torch.zeros(spec.groups, spec.k, spec.k, dtype=dtype, device=x.device)
            self.grams[spec.name] = out
        # float64 accumulation runs on the torch backend unless a backend was forced.
        backend = self.backend if (self.backend or out.dtype == torch.float32) else "torch"
        m = spec.module
        if spec.is_conv:
            nd = len(m.kernel_size)
            if x.dim() == nd + 1:  # unbatched conv input [C, *spatial]
                x = x.unsqueeze(0)
            padding = m.padding
            if m.padding_mode != "zeros":
                # nn.ConvNd pads with the mode first and then convolves without padding.
                x = F.pad(x, m._reversed_padding_repeated_twice, mode=m.padding_mode)
                padding = 0
            ops.conv_gram(
                x, m.kernel_size, stride=m.stride, padding=padding, dilation=m.dilation,
                groups=m.groups, out=out, backend=backend,
            )
            geom = ops.conv_geometry(x.shape, m.kernel_size, m.stride, padding, m.dilation, m.groups)
            self.rows[spec.name] += x.shape[0] * geom.rows_per_sample
        else:
            ops.gram(x, out=out[0], backend=backend)
            self.rows[spec.name] += x.numel() // max(1, x.shape[-1])
