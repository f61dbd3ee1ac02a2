"""Triton ``scaled_projection``: ``W_hat = ((W V) * lambda) V^T`` with ``lambda`` computed in-kernel.

One batched kernel, ``C[b] = (A[b] * lambda[b]) @ B[b]`` with optional scaling, does all of it:

- ``T = W V`` (no scaling); given as ``wv`` it is reused across an alpha sweep, and then each
  alpha costs a single launch;
- ``W_hat = (T * lambda) V^T``: ``lambda_i = alpha r_i / ((alpha - 1) r_i + 1)`` with
  ``r_i = max(e_i, 0) / sum_j max(e_j, 0)`` (0 when the sum is 0); each program first sums the
  eigenvalues of its batch entry, then scales every loaded ``T`` block by its ``lambda`` block;
  ``alpha = inf`` skips the scaling (``lambda = 1``);
- when ``out > K`` and no ``wv`` is given, ``P = (V * lambda) V^T`` (``K^3``) then ``W P``
  (``out K^2``) is cheaper than two ``out K^2`` products, and is used instead.

``V^T`` is read through swapped strides, never copied.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import triton
import triton.language as tl

from ..spec import Precision, projection_dtype
from . import _common as C


@triton.jit
def _scaled_mm_kernel(
    a_ptr, b_ptr, c_ptr, e_ptr, alpha,
    rows, cols, inner,
    s_ab, s_ar, s_ai, s_bb, s_bi, s_bc, s_cb, s_cr, s_cc, s_eb, s_ek,
    SCALE: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_I: tl.constexpr,
    CAST: tl.constexpr, PRECISION: tl.constexpr, INTERPRET: tl.constexpr, ACC_FP64: tl.constexpr,
):
    """``c[b, r, c] = sum_i a[b, r, i] * lambda[b, i] * bm[b, i, c]`` (``lambda = 1`` unless SCALE)."""
    pr = tl.program_id(0)
    pc = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    offs_r = pr * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_c = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_i = tl.arange(0, BLOCK_I)
    rmask = offs_r < rows
    cmask = offs_c < cols
    a_base = a_ptr + b * s_ab + offs_r[:, None] * s_ar
    b_base = b_ptr + b * s_bb + offs_c[None, :] * s_bc
    if ACC_FP64:
        acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float64)
        total = tl.zeros((BLOCK_I,), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
        total = tl.zeros((BLOCK_I,), dtype=tl.float32)
    if SCALE:
        # Total energy of this batch entry (each program recomputes it: K loads, negligible).
        for i0 in range(0, inner, BLOCK_I):
            ii = i0 + offs_i
            e = tl.load(e_ptr + b * s_eb + ii * s_ek, mask=ii < inner, other=0.0)
            total += tl.maximum(e, 0.0)
    energy = tl.sum(total, axis=0)
    for i0 in range(0, inner, BLOCK_I):
        ii = i0 + offs_i
        imask = ii < inner
        a = tl.load(a_base + ii[None, :] * s_ai, mask=rmask[:, None] & imask[None, :], other=0.0)
        if SCALE:
            e = tl.maximum(tl.load(e_ptr + b * s_eb + ii * s_ek, mask=imask, other=0.0), 0.0)
            r = tl.where(energy > 0, e / tl.where(energy > 0, energy, 1.0), 0.0)
            lam = alpha * r / ((alpha - 1.0) * r + 1.0)
            a = a * lam[None, :]
        bm = tl.load(b_base + ii[:, None] * s_bi, mask=imask[:, None] & cmask[None, :], other=0.0)
        a = C.prep_operand(a, CAST, INTERPRET)
        bm = C.prep_operand(bm, CAST, INTERPRET)
        acc = tl.dot(a, bm, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    c_ptrs = c_ptr + b * s_cb + offs_r[:, None] * s_cr + offs_c[None, :] * s_cc
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=rmask[:, None] & cmask[None, :])


def _blocks(rows: int, cols: int, inner: int, device: torch.device) -> tuple[int, int, int]:
    def fit(n: int, cap: int) -> int:
        return max(16, min(cap, triton.next_power_of_2(n)))

    if device.type != "cuda":
        return fit(rows, 64), fit(cols, 64), fit(inner, 64)
    return fit(rows, 64), fit(cols, 64), fit(inner, 32)


def scaled_mm(
    a: torch.Tensor,
    bmat: torch.Tensor,
    eigvals: Optional[torch.Tensor],
    alpha: float,
    precision: str = "ieee",
    launch: C.Launch = C.identity_launch,
) -> torch.Tensor:
    """``(a * lambda(eigvals, alpha)) @ bmat`` batched; no scaling when ``eigvals`` is None or
    ``alpha`` is inf.

    Args:
        a: ``[B, R, I]``; bmat: ``[B, I, N]`` (any strides, e.g. a transposed view);
        eigvals: ``[B, I]`` or None; all in one float dtype (fp32 or fp64).
    Returns:
        ``[B, R, N]`` contiguous, ``a``'s dtype.
    """
    bsz, rows, inner = a.shape
    cols = bmat.shape[2]
    out = torch.empty((bsz, rows, cols), dtype=a.dtype, device=a.device)
    if out.numel() == 0:
        return out
    scale = eigvals is not None and not math.isinf(alpha)
    e = eigvals if (scale and eigvals is not None) else a.new_zeros((1, 1))
    br, bc, bi = _blocks(rows, cols, inner, a.device)
    cast, prec = C.dot_mode(a.dtype, precision)
    grid = (triton.cdiv(rows, br), triton.cdiv(cols, bc), bsz)
    launch(_scaled_mm_kernel)[grid](
        a, bmat, out, e, float(alpha) if scale else 1.0,
        rows, cols, inner,
        a.stride(0), a.stride(1), a.stride(2), bmat.stride(0), bmat.stride(1), bmat.stride(2),
        out.stride(0), out.stride(1), out.stride(2), e.stride(0), e.stride(1),
        SCALE=scale, BLOCK_R=br, BLOCK_C=bc, BLOCK_I=bi, CAST=cast, PRECISION=prec,
        INTERPRET=C.interpreted(), ACC_FP64=a.dtype == torch.float64,
        num_warps=4, num_stages=(3 if a.is_cuda else 1),
    )
    return out


def _batched(weight: torch.Tensor, eigvecs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight [..., out, K]`` and ``eigvecs [..., K, K]`` as ``[B, out, K]`` and ``[B, K, K]``
    in the projection dtype."""
    cdt = projection_dtype(weight.dtype, eigvecs.dtype)
    o, k = weight.shape[-2], weight.shape[-1]
    return weight.to(cdt).reshape(-1, o, k), eigvecs.to(cdt).reshape(-1, k, k)


def scaled_projection_triton_launch(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    wv: Optional[torch.Tensor] = None,
    precision: str = "ieee",
    launch: C.Launch = C.identity_launch,
) -> torch.Tensor:
    """``W V diag(lambda) V^T`` with the Triton kernel.

    Args:
        weight: ``[..., out, K]``; eigvals: ``[..., K]``; eigvecs: ``[..., K, K]`` (columns are
            eigenvectors); wv: optional ``weight @ eigvecs`` ``[..., out, K]``; any float dtypes.
        alpha: ``> 0`` or ``inf``.
        precision: ``"ieee"``, ``"tf32"`` or ``"bf16"``.
    Returns:
        ``[..., out, K]`` in the compute dtype (fp32, or fp64 when weight/eigvecs are fp64).
    """
    C.check_precision(precision)
    shape = weight.shape
    o, k = shape[-2], shape[-1]
    w, v = _batched(weight, eigvecs)
    e = eigvals.to(w.dtype).reshape(-1, k)
    vt = v.transpose(1, 2)
    if wv is None and o > k:
        p = scaled_mm(v, vt, e, alpha, precision, launch)  # [B, K, K] = V diag(lambda) V^T
        return scaled_mm(w, p, None, alpha, precision, launch).reshape(shape)
    t = scaled_mm(w, v, None, alpha, precision, launch) if wv is None else wv.to(w.dtype).reshape(-1, o, k)
    return scaled_mm(t, vt, e, alpha, precision, launch).reshape(shape)


def weight_times_eigvecs(
    weight: torch.Tensor, eigvecs: torch.Tensor, precision: str = "ieee", launch: C.Launch = C.identity_launch
) -> torch.Tensor:
    """``T = W V`` ``[..., out, K]`` (compute dtype), to pass as ``wv=`` across an alpha sweep."""
    C.check_precision(precision)
    w, v = _batched(weight, eigvecs)
    return scaled_mm(w, v, None, math.inf, precision, launch).reshape(weight.shape)


def scaled_projection_triton(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    wv: Optional[torch.Tensor],
    *,
    precision: Precision = "ieee",
) -> torch.Tensor:
    """Backend entry of ``sap_kernels.ops.scaled_projection`` (see the launcher)."""
    return scaled_projection_triton_launch(weight, eigvals, eigvecs, alpha, wv, precision)
