"""Torch backend of ``conv_gram``: im2col one bounded chunk at a time, never the whole matrix.

The patch matrix is produced as a strided view (``F.pad`` + ``Tensor.unfold`` per spatial dim,
dilation by slicing the window), and only a chunk of it (a range of samples, and of the first
output dim when one sample alone is too large) is copied into a contiguous buffer and multiplied.
Peak extra memory: ``groups * K_g^2`` for the result plus one chunk (``$SAP_KERNELS_CHUNK_MB``,
at least one output row of one sample) plus the padded copy of one sample range.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...ops.dispatch import register
from ...ops.geometry import ConvGeometry
from .chunking import rows_per_chunk
from .syrk import batched_syrk_


def patch_view(x: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """Strided im2col view of ``x [n, C, *spatial]`` as ``[n, C, *out_spatial, *kernel_size]`` (no copy
    beyond the zero padding)."""
    nd = geom.nd
    pads: list[int] = []
    for lo, hi in zip(reversed(geom.pad_lo), reversed(geom.pad_hi)):
        pads += [lo, hi]
    v = F.pad(x, pads) if any(pads) else x
    for d in range(nd):
        span = geom.dilation[d] * (geom.kernel_size[d] - 1) + 1
        v = v.unfold(2 + d, span, geom.stride[d])
        if geom.dilation[d] > 1:
            v = v[..., :: geom.dilation[d]]
    return v


def patch_rows(view: torch.Tensor, geom: ConvGeometry, dtype: torch.dtype) -> torch.Tensor:
    """Copy a patch view ``[n, C, *o, *k]`` into contiguous group-major rows ``[G, rows, K_g]``."""
    nd = geom.nd
    n, c = view.shape[:2]
    o = view.shape[2 : 2 + nd]
    # [n, *o, C, *k] then split C = G * C_g.
    perm = (0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd))
    rows = n * math.prod(o)
    buf = torch.empty((rows, geom.groups, geom.k_per_group), dtype=dtype, device=view.device)
    buf.view(n, *o, c, *geom.kernel_size).copy_(view.permute(perm))
    return buf.transpose(0, 1)


@register("conv_gram", "torch")
def conv_gram_torch(x: torch.Tensor, geom: ConvGeometry, out: torch.Tensor, *, precision: str = "ieee") -> None:
    """``out[g] += P_g^T P_g`` with ``P_g`` group ``g``'s im2col rows of ``x``.

    Args:
        x: ``[N, C, *spatial]`` activations, any float dtype.
        geom: validated geometry of the convolution.
        out: ``[G, K_g, K_g]`` float32/float64 accumulator on ``x.device``.
        precision: accepted for the shared backend signature; this backend always multiplies at
            torch's own matmul precision (full fp32 on CPU; on CUDA whatever
            ``torch.backends.cuda.matmul`` allows), so ``"tf32"``/``"bf16"`` are best effort.
    """
    n_total = x.shape[0]
    k_total = geom.in_channels * math.prod(geom.kernel_size)
    budget_rows = rows_per_chunk(k_total * out.element_size())
    per_sample = geom.rows_per_sample
    o1 = geom.out_spatial[0]
    per_o1 = per_sample // o1
    samples = max(1, budget_rows // per_sample)
    o_step = o1 if samples > 1 or per_sample <= budget_rows else max(1, budget_rows // per_o1)
    for n0 in range(0, n_total, samples):
        view = patch_view(x[n0 : n0 + samples], geom)
        for a in range(0, o1, o_step):
            rows = patch_rows(view[:, :, a : a + o_step], geom, out.dtype)
            if geom.groups == 1:
                batched_syrk_(out, rows)
            else:
                # Group-major copy keeps each group's rows contiguous for the batched GEMM.
                batched_syrk_(out, rows.contiguous())
