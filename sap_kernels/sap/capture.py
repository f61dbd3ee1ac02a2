"""Pass 2: hooks that stream each unit's input activations into per-stream accumulators.

A stream keeps its raw rows while it has seen no more rows than its width ``K`` (at most
``K^2`` values per group: the size of the Gram it would otherwise hold), and switches to a
streamed ``[groups, K, K]`` fp32 Gram (``ops.gram``/``ops.conv_gram`` adding into it) as soon as
the rows outnumber ``K``. A layer wider than the data (torchvision VGG's 25,088-wide classifier
at a few hundred samples) is then decomposed through its rows (``spectrum.decompose_rows``), in
time and memory that scale with ``min(rows, K)``; the Gram of such a layer is never formed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..kernels.torch.conv_gram import patch_rows, patch_view, to_weight_order
from .targets import StreamSpec


class NonFiniteActivation(ValueError):
    """A layer received NaN or Inf inputs; its Gram (and so its projection) would be meaningless."""


# Layers this narrow accumulate in float64: their Gram costs little (M * K^2 with small K) and
# narrow late layers (classifier heads, token MLPs) are where an fp32 Gram's rounding, amplified
# by a large alpha, measurably moved the projection (README "Precision").
FP64_MAX_K = 256


@dataclass
class Accumulator:
    """What one stream has gathered.

    rows_kept: ``[groups, m, K]`` raw rows (float32, float64 for a float64 model) while
        ``m <= K``; None once the Gram took over.
    gram: ``[groups, K, K]`` float32 (float64 for narrow layers or float64 models), or None.
    rows: number of rows seen (patch rows for convs), per group.
    """

    spec: StreamSpec
    rows_kept: list = field(default_factory=list)
    gram: Optional[torch.Tensor] = None
    rows: int = 0

    def clone(self) -> "Accumulator":
        return Accumulator(self.spec, [r.clone() for r in self.rows_kept],
                           None if self.gram is None else self.gram.clone(), self.rows)

    def kept(self) -> Optional[torch.Tensor]:
        """The rows ``[groups, m, K]`` when the stream is still in row mode, else None."""
        if self.gram is not None or not self.rows_kept:
            return None
        if len(self.rows_kept) > 1:
            self.rows_kept = [torch.cat(self.rows_kept, dim=1)]
        return self.rows_kept[0]


def conv_input(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, object]:
    """A conv's input batched and padded as the conv sees it, and the padding left to apply."""
    if x.dim() == len(module.kernel_size) + 1:  # unbatched conv input [C, *spatial]
        x = x.unsqueeze(0)
    if module.padding_mode != "zeros":
        # nn.ConvNd pads with the mode first and then convolves without padding.
        return F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode), 0
    return x, module.padding


def as_rows(spec: StreamSpec, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Materialised rows ``[groups, m, K]`` of one call's input (only used while ``m <= K``)."""
    if spec.conv is None:
        return x.reshape(1, -1, spec.k).to(dtype)
    m = spec.conv
    x, padding = conv_input(m, x)
    geom = ops.conv_geometry(x.shape, m.kernel_size, m.stride, padding, m.dilation, m.groups)
    rows = patch_rows(patch_view(x, geom), geom, dtype)  # columns in (offset, channel) order
    return rows[:, :, to_weight_order(geom, x.device)]


def row_count(spec: StreamSpec, x: torch.Tensor) -> int:
    if spec.conv is None:
        return x.numel() // max(1, spec.k)
    m = spec.conv
    x_shape = x.shape if x.dim() == len(m.kernel_size) + 2 else (1, *x.shape)
    if m.padding_mode != "zeros":
        pads = m._reversed_padding_repeated_twice
        spatial = list(x_shape[2:])
        for d in range(len(spatial)):
            spatial[-1 - d] += pads[2 * d] + pads[2 * d + 1]
        x_shape, padding = (*x_shape[:2], *spatial), 0
    else:
        padding = m.padding
    geom = ops.conv_geometry(x_shape, m.kernel_size, m.stride, padding, m.dilation, m.groups)
    return x_shape[0] * geom.rows_per_sample


class GramCollector:
    """Context manager: while active, every call of a unit's module feeds its streams.

    A module called several times per forward pass accumulates every call. While active,
    torch's fused attention fast path is disabled (so that ``nn.MultiheadAttention`` and
    ``nn.TransformerEncoderLayer`` call their submodules and the hooks see every input). Hooks
    are removed and the fast-path setting restored on exit, exceptions included.

    Attributes:
        streams: key -> ``Accumulator``.
    """

    def __init__(
        self,
        units: list,
        *,
        check_finite: bool = True,
        backend: Optional[str] = None,
        fp64_max_k: int = FP64_MAX_K,
        keep_rows: bool = True,
    ):
        self.units = units
        self.specs = {s.key: s for u in units for s in u.streams()}
        self.fp64_max_k = fp64_max_k
        self.check_finite = check_finite
        self.backend = backend
        self.keep_rows = keep_rows
        self.streams: dict[str, Accumulator] = {}
        self._handles: list = []
        self._fastpath: Optional[bool] = None

    def __enter__(self) -> "GramCollector":
        try:
            self._fastpath = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
            for unit in self.units:
                self._handles.extend(unit.install(self))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for h in reversed(self._handles):
            h.remove()
        self._handles.clear()
        if self._fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self._fastpath)
            self._fastpath = None

    @staticmethod
    def is_activation(x) -> bool:
        return isinstance(x, torch.Tensor)

    def rows(self, key: str) -> int:
        acc = self.streams.get(key)
        return 0 if acc is None else acc.rows

    def copy_stream(self, src: str, dst: str) -> None:
        """Start stream ``dst`` as a copy of ``src`` (used when shared inputs stop being shared)."""
        if src in self.streams:
            acc = self.streams[src].clone()
            acc.spec = self.specs[dst]
            self.streams[dst] = acc

    def add(self, key: str, x: torch.Tensor) -> None:
        """Add one call's input ``x`` to stream ``key``."""
        with torch.no_grad():
            self._add(self.specs[key], x.detach())

    def _add(self, spec: StreamSpec, x: torch.Tensor) -> None:
        if x.is_nested:
            x = torch.cat([t.reshape(-1, spec.k) for t in x.unbind()])
        if self.check_finite and not bool(torch.isfinite(x).all()):
            what = spec.key if spec.key.split(":")[-1] not in ("q", "k", "v", "out") else f"attention stream {spec.key}"
            kind = f" ({type(spec.conv).__name__})" if spec.conv is not None else ""
            raise NonFiniteActivation(f"layer {what!r}{kind} received non-finite (NaN/Inf) input activations")
        acc = self.streams.get(spec.key)
        if acc is None:
            acc = self.streams[spec.key] = Accumulator(spec)
        m = row_count(spec, x)
        acc.rows += m
        if acc.gram is None and self.keep_rows and acc.rows <= spec.k:
            keep = torch.float64 if x.dtype == torch.float64 else torch.float32
            acc.rows_kept.append(as_rows(spec, x, keep))
            return
        if acc.gram is None:
            wide = x.dtype != torch.float64 and spec.k > self.fp64_max_k
            dtype = torch.float32 if wide else torch.float64
            acc.gram = torch.zeros(spec.groups, spec.k, spec.k, dtype=dtype, device=x.device)
            for r in acc.rows_kept:
                r = r.to(dtype)
                acc.gram.baddbmm_(r.transpose(1, 2), r)
            acc.rows_kept = []
        out = acc.gram
        # float64 accumulation runs on the torch backend unless a backend was forced.
        backend = self.backend if (self.backend or out.dtype == torch.float32) else "torch"
        if spec.conv is not None:
            m_ = spec.conv
            x, padding = conv_input(m_, x)
            ops.conv_gram(x, m_.kernel_size, stride=m_.stride, padding=padding, dilation=m_.dilation,
                          groups=m_.groups, out=out, backend=backend)
        else:
            ops.gram(x, out=out[0], backend=backend)
