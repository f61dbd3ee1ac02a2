"""Torch backend of ``conv_gram``: im2col one bounded chunk at a time, never the whole matrix.

The input is read channels-last (``[n, *spatial, C]``), so that each patch row is copied in
contiguous runs of ``C`` values: the im2col view comes from ``F.pad`` + ``Tensor.unfold`` per
spatial dim (dilation by slicing the window), and only a chunk of it (a range of samples, and of
the first output dim when one sample alone is too large) is copied into a buffer and multiplied.
Those rows are ordered ``(kernel offset, channel)``; the Gram is permuted once per call to the
``(channel, kernel offset)`` order of ``weight.flatten(1)`` (a ``K^2`` gather).

Stride-1 1-d/2-d convolutions with one group and enough channels take the shift route instead
(``shift_gram.py``): no patch matrix at all, one GEMM per kernel-offset shift over the padded
channels-last input, chunked over samples by the same memory budget.

Peak extra memory: one ``[G, K_g, K_g]`` Gram in the working order, one chunk of rows
(``$SAP_KERNELS_CHUNK_MB``, at least one output row of one sample) and the padded
channels-last copy of one range of samples.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..spec import ConvGeometry, Precision
from . import shift_gram
from .chunking import chunk_bytes, rows_per_chunk
from .syrk import batched_syrk_


def patch_view(x: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """Strided im2col view of ``x [n, C, *spatial]`` as ``[n, *out_spatial, *kernel_size, C]``.

    Only the channels-last, zero-padded copy of ``x`` is materialised.
    """
    nd = geom.nd
    pads = [0, 0]  # F.pad lists the last dim first: C is not padded
    for lo, hi in zip(reversed(geom.pad_lo), reversed(geom.pad_hi)):
        pads += [lo, hi]
    v = F.pad(x.movedim(1, -1), pads)  # [n, *padded, C], contiguous
    for d in range(nd):
        span = geom.dilation[d] * (geom.kernel_size[d] - 1) + 1
        v = v.unfold(1 + d, span, geom.stride[d])
        if geom.dilation[d] > 1:
            v = v[..., :: geom.dilation[d]]
    # v: [n, *o, C, *k] -> [n, *o, *k, C]
    return v.movedim(1 + nd, -1)


def patch_rows(view: torch.Tensor, geom: ConvGeometry, dtype: torch.dtype) -> torch.Tensor:
    """Copy a patch view ``[n, *o, *k, C]`` into group-major rows ``[G, rows, P * C_g]``
    (column order ``(kernel offset, channel)``, ``P = prod(kernel_size)``)."""
    nd = geom.nd
    n = view.shape[0]
    o = view.shape[1 : 1 + nd]
    p = math.prod(geom.kernel_size)
    g, cg = geom.groups, geom.channels_per_group
    rows = n * math.prod(o)
    buf = torch.empty((g, rows, p, cg), dtype=dtype, device=view.device)
    src = view.reshape(*view.shape[:-1], g, cg).movedim(-2, 0)  # [G, n, *o, *k, C_g]
    buf.view(g, n, *o, *geom.kernel_size, cg).copy_(src)
    return buf.view(g, rows, p * cg)


def to_weight_order(geom: ConvGeometry, device: torch.device) -> torch.Tensor:
    """Index ``[K_g]``: position ``c * P + p`` (weight order) takes working index ``p * C_g + c``."""
    p = math.prod(geom.kernel_size)
    cg = geom.channels_per_group
    return torch.arange(p * cg, device=device).view(p, cg).t().reshape(-1)


def conv_gram_torch(
    x: torch.Tensor, geom: ConvGeometry, out: torch.Tensor, *, precision: Precision = "ieee"
) -> None:
    """``out[g] += P_g^T P_g`` with ``P_g`` group ``g``'s im2col rows of ``x``.

    Args:
        x: ``[N, C, *spatial]`` activations, any float dtype.
        geom: validated geometry of the convolution.
        out: ``[G, K_g, K_g]`` float32/float64 accumulator on ``x.device``.
        precision: met by construction: products are formed in ``out.dtype`` at torch's matmul
            precision, which ``not_supported_reasons`` checks allows full fp32 products.
    """
    chunk_bytes()  # validates $SAP_KERNELS_CHUNK_MB on every call
    if shift_gram.preferred(geom):  # adds into out directly, in weight order
        samples = max(1, chunk_bytes() // (shift_gram.buffer_elements(geom) * out.element_size()))
        for n0 in range(0, x.shape[0], samples):
            shift_gram.shift_conv_gram_(out, x[n0 : n0 + samples], geom)
        return
    work = torch.zeros_like(out)
    _im2col_gram(x, geom, work)
    # Working index p * C_g + c -> weight index c * P + p, as one strided add (no index gather).
    p, cg = math.prod(geom.kernel_size), geom.channels_per_group
    out.view(-1, cg, p, cg, p).add_(work.view(-1, p, cg, p, cg).permute(0, 2, 1, 4, 3))


def _im2col_gram(x: torch.Tensor, geom: ConvGeometry, work: torch.Tensor) -> None:
    """``work[g] += P_g^T P_g`` (working order) from bounded chunks of materialised patch rows."""
    n_total = x.shape[0]
    k_total = geom.in_channels * math.prod(geom.kernel_size)
    budget_rows = rows_per_chunk(k_total * work.element_size())
    per_sample = geom.rows_per_sample
    o1 = geom.out_spatial[0]
    per_o1 = per_sample // o1
    samples = max(1, budget_rows // per_sample)
    o_step = o1 if samples > 1 or per_sample <= budget_rows else max(1, budget_rows // per_o1)
    for n0 in range(0, n_total, samples):
        view = patch_view(x[n0 : n0 + samples], geom)
        for a in range(0, o1, o_step):
            batched_syrk_(work, patch_rows(view[:, a : a + o_step], geom, work.dtype))
