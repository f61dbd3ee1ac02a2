"""Torch backend of ``gram``: chunked rows, accumulation in ``out``'s dtype, block-triangular GEMM."""
from __future__ import annotations

import torch

from ..spec import Precision
from .chunking import chunk_bytes, rows_per_chunk
from .syrk import syrk_


def gram_torch(x: torch.Tensor, out: torch.Tensor, *, precision: Precision = "ieee") -> None:
    """``out += x^T x``, accumulated in ``out.dtype``.

    Args:
        x: ``[M, K]`` activations, any real float dtype, any strides.
        out: ``[K, K]`` float32/float64 contiguous accumulator on ``x.device``.
        precision: met by construction: products are formed in ``out.dtype`` at torch's matmul
            precision, which ``not_supported_reasons`` checks allows full fp32 products.
    """
    chunk_bytes()  # validates $SAP_KERNELS_CHUNK_MB on every call, not only on chunked ones
    m, k = x.shape
    if x.dtype == out.dtype and x.is_contiguous():
        step = max(m, 1)  # no conversion needed: one pass, no extra memory
    else:
        step = rows_per_chunk(k * out.element_size())
    for start in range(0, m, step):
        chunk = x[start : start + step].to(out.dtype).contiguous()
        syrk_(out, chunk)
