"""Symmetric rank-k update ``out += P^T P`` computing only the upper block triangle.

BLAS ``syrk`` is not exposed by torch; splitting the columns into blocks and multiplying each
block only against the columns at or before it does ``(nb + 1) / (2 nb)`` of the full GEMM work
with large, efficient GEMMs, and the missing lower blocks are mirrored from the computed ones.
"""
from __future__ import annotations

import torch

# Below this width a single GEMM is faster than the block loop (measured on CPU, see benchmarks).
MIN_BLOCKED_K = 384
BLOCK = 256


def syrk_(out: torch.Tensor, p: torch.Tensor) -> None:
    """``out += p^T p``.

    Args:
        out: ``[K, K]`` accumulator, same dtype and device as ``p`` (updated in place).
        p: ``[M, K]`` rows.
    """
    k = p.shape[1]
    if k < MIN_BLOCKED_K:
        out.addmm_(p.t(), p)
        return
    nb = max(2, min(8, -(-k // BLOCK)))
    edges = [round(i * k / nb) for i in range(nb + 1)]
    for a, b in zip(edges[:-1], edges[1:]):
        # Column block [a, b) against columns [0, b): the upper part plus the diagonal block.
        blk = p[:, :b].t().mm(p[:, a:b])  # [b, b - a]
        out[:b, a:b] += blk
        if a:
            out[a:b, :a] += blk[:a].t()


def batched_syrk_(out: torch.Tensor, p: torch.Tensor) -> None:
    """``out[g] += p[g]^T p[g]`` for ``out [G, K, K]`` and ``p [G, M, K]`` (one GEMM per group)."""
    if p.shape[0] == 1:
        syrk_(out[0], p[0])
    else:
        out.baddbmm_(p.transpose(1, 2), p)
