"""Triton ``gram``: ``out += X^T X`` for tall-skinny ``X [M, K]``, upper-triangle tiles only.

Grid ``(tiles, splits)``. Program ``(t, s)`` owns the block pair ``(i, j)``, ``i <= j``, of the
``t``-th upper-triangle tile and the ``s``-th contiguous range of rows; it walks those rows in
blocks of ``BLOCK_M`` and accumulates ``dot(X[:, i]^T, X[:, j])`` in fp32 (fp64 for fp64 input).
With one split the tile and its mirror image are added into ``out`` directly; otherwise each
program writes a private workspace slot and a second kernel adds the slots in a fixed order, so
the result is the same bits on every run (no float atomics). Work: about half of ``M K^2`` MACs.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ..spec import Precision
from . import _common as C


@triton.jit
def _gram_kernel(
    x_ptr, tiles_ptr, dst_ptr,
    m_size, k_size, rows_per_split, n_tiles,
    stride_xm, stride_xk, stride_dr, stride_dc,
    BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr,
    CAST: tl.constexpr, PRECISION: tl.constexpr, INTERPRET: tl.constexpr,
    ACC_FP64: tl.constexpr, SPLIT: tl.constexpr,
):
    t = tl.program_id(0)
    s = tl.program_id(1)
    bi = tl.load(tiles_ptr + 2 * t)
    bj = tl.load(tiles_ptr + 2 * t + 1)
    offs_k = tl.arange(0, BLOCK_K)
    ci = bi * BLOCK_K + offs_k
    cj = bj * BLOCK_K + offs_k
    mask_i = ci < k_size
    mask_j = cj < k_size
    col_i = ci.to(tl.int64) * stride_xk
    col_j = cj.to(tl.int64) * stride_xk
    start = s * rows_per_split
    end = tl.minimum(start + rows_per_split, m_size)
    if ACC_FP64:
        acc = tl.zeros((BLOCK_K, BLOCK_K), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_K, BLOCK_K), dtype=tl.float32)
    for m0 in range(start, end, BLOCK_M):
        rm = m0 + tl.arange(0, BLOCK_M)
        row = rm.to(tl.int64) * stride_xm
        rmask = rm < end
        a = tl.load(x_ptr + row[:, None] + col_i[None, :], mask=rmask[:, None] & mask_i[None, :], other=0.0)
        b = tl.load(x_ptr + row[:, None] + col_j[None, :], mask=rmask[:, None] & mask_j[None, :], other=0.0)
        a = C.prep_operand(a, CAST, INTERPRET)
        b = C.prep_operand(b, CAST, INTERPRET)
        acc = tl.dot(tl.trans(a), b, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    if SPLIT:
        local = offs_k[:, None] * BLOCK_K + offs_k[None, :]
        slot = dst_ptr + (s.to(tl.int64) * n_tiles + t) * BLOCK_K * BLOCK_K
        tl.store(slot + local, acc.to(dst_ptr.dtype.element_ty))
    else:
        C.store_tile(dst_ptr, acc.to(dst_ptr.dtype.element_ty), bi, bj, k_size, stride_dr, stride_dc, BLOCK_K)


def gram_triton_launch(
    x: torch.Tensor,
    out: torch.Tensor,
    precision: str = "ieee",
    *,
    block_k: Optional[int] = None,
    block_m: Optional[int] = None,
    splits: Optional[int] = None,
    num_warps: Optional[int] = None,
    num_stages: Optional[int] = None,
    launch: C.Launch = C.identity_launch,
) -> None:
    """``out += x^T x`` with the Triton kernels.

    Args:
        x: ``[M, K]`` fp32/fp16/bf16/fp64 rows, any strides.
        out: ``[K, K]`` fp32 (or fp64) contiguous accumulator on ``x.device``, updated in place.
        precision: ``"ieee"`` (full fp32 dot), ``"tf32"`` or ``"bf16"`` (operands rounded).
        block_k, block_m, splits, num_warps, num_stages: override the tiling and launch
            configuration (tests use them to reach every path, ``benchmarks/tune_triton.py``
            to search for faster ones).
        launch: wraps each kernel before launch (``torch.library.wrap_triton`` inside a
            ``triton_op``; identity otherwise).
    """
    C.check_precision(precision)
    m, k = x.shape
    if m == 0 or k == 0:
        return
    plan = C.plan_gram(m, k, 1, x, out, precision, C.default_config(k, x.device, cuda_stages=3),
                       block_k=block_k, block_m=block_m, splits=splits, num_warps=num_warps,
                       num_stages=num_stages)
    bk, tiles, n_tiles, n_split = plan.block_k, plan.tiles, plan.n_tiles, plan.splits
    common = plan.kernel_options(x.dtype)
    if n_split == 1:
        launch(_gram_kernel)[(n_tiles, 1)](
            x, tiles, out, m, k, plan.rows_per_split, n_tiles,
            x.stride(0), x.stride(1), out.stride(0), out.stride(1), SPLIT=False, **common,
        )
        return
    ws = torch.empty((1, n_split, n_tiles, bk, bk), dtype=out.dtype, device=x.device)
    launch(_gram_kernel)[(n_tiles, n_split)](
        x, tiles, ws, m, k, plan.rows_per_split, n_tiles,
        x.stride(0), x.stride(1), 0, 0, SPLIT=True, **common,
    )
    C.reduce_splits(ws, tiles, out.unsqueeze(0), bk, launch)


def gram_triton(x: torch.Tensor, out: torch.Tensor, *, precision: Precision = "ieee") -> None:
    """Backend entry of ``sap_kernels.ops.gram``: ``out [K, K] += x [M, K]^T x``."""
    gram_triton_launch(x, out, precision)
