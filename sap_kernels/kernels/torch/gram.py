"""Torch backend of ``gram``: chunked rows, fp32 (or fp64) accumulation, block-triangular GEMM."""
from __future__ import annotations

import torch

from ...ops.dispatch import register
from .chunking import rows_per_chunk
from .syrk import syrk_


@register("gram", "torch")
def gram_torch(x: torch.Tensor, out: torch.Tensor, *, precision: str = "ieee") -> None:
    """``out += x^T x``.

    Args:
        x: ``[M, K]`` activations, any float dtype.
        out: ``[K, K]`` float32/float64 accumulator on ``x.device``.
        precision: accepted for the shared backend signature; this backend always multiplies at
            torch's own matmul precision (full fp32 on CPU; on CUDA whatever
            ``torch.backends.cuda.matmul`` allows), so ``"tf32"``/``"bf16"`` are best effort.
    """
    m, k = x.shape
    if x.dtype == out.dtype and x.is_contiguous():
        step = m  # no conversion needed: one pass, no extra memory
    else:
        step = rows_per_chunk(k * out.element_size())
    for start in range(0, m, step):
        chunk = x[start : start + step].to(out.dtype).contiguous()
        syrk_(out, chunk)
