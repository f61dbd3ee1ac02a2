"""Triton ``conv_gram``: implicit-im2col Gram ``out[g] += P_g^T P_g`` straight from a conv input.

``P_g`` (never built) has one row per (sample ``n``, output position ``o``) and one column per
(channel ``c`` of group ``g``, kernel offset ``q``), in ``weight.flatten(1)`` order; its entry is
``x[n, g*C_g + c, o*stride - pad_lo + q*dilation]``, zero outside the input. Grid
``(tiles, splits, groups)``: program ``(t, s, g)`` owns upper-triangle tile ``t = (i, j)`` of group
``g`` and a contiguous range of rows. Column addresses and offsets are computed once per
program; every block of ``BLOCK_M`` rows decodes ``(n, o)``, loads the two operand tiles with a
mask for the padding, and accumulates ``dot(P[:, i]^T, P[:, j])`` in fp32. Splits are reduced
deterministically as in ``gram``. 1d and 2d convolutions run as 3d ones with unit leading dims;
input strides are taken as they are, so channels_last inputs need no copy.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import triton
import triton.language as tl

from ..spec import ConvGeometry, Precision
from . import _common as C


@triton.jit
def _columns(b, offs_k, k_size, g, c_per_group, stride_xc, stride_xd, stride_xh, stride_xw,
             KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
             DD: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr, BLOCK_K: tl.constexpr):
    """Column block ``b``: mask, kernel displacement per dim and address offset of each column
    ``k -> (channel, kd, kh, kw)``."""
    k = b * BLOCK_K + offs_k
    kmask = k < k_size
    c = g * c_per_group + k // (KD * KH * KW)
    q = k % (KD * KH * KW)
    d = (q // (KH * KW)) * DD
    h = ((q // KW) % KH) * DH
    w = (q % KW) * DW
    coff = c.to(tl.int64) * stride_xc + d * stride_xd + h * stride_xh + w * stride_xw
    return kmask, d, h, w, coff


@triton.jit
def _load_patches(x_ptr, roff, bd, bh, bw, rmask, kmask, d, h, w, coff, in_d, in_h, in_w):
    """``[BLOCK_M, BLOCK_K]`` patch entries for rows with receptive-field corners ``(bd, bh, bw)``
    and the given columns; zero where the position falls in the padding."""
    pd = bd[:, None] + d[None, :]
    ph = bh[:, None] + h[None, :]
    pw = bw[:, None] + w[None, :]
    mask = (rmask[:, None] & kmask[None, :] & (pd >= 0) & (pd < in_d)
            & (ph >= 0) & (ph < in_h) & (pw >= 0) & (pw < in_w))
    return tl.load(x_ptr + roff[:, None] + coff[None, :], mask=mask, other=0.0)


@triton.jit
def _conv_gram_kernel(
    x_ptr, tiles_ptr, dst_ptr,
    m_size, k_size, rows_per_split, n_tiles, splits, c_per_group,
    in_d, in_h, in_w, out_d, out_h, out_w,
    stride_xn, stride_xc, stride_xd, stride_xh, stride_xw,
    stride_dg, stride_dr, stride_dc,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PD: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
    DD: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr,
    CAST: tl.constexpr, PRECISION: tl.constexpr, INTERPRET: tl.constexpr,
    ACC_FP64: tl.constexpr, SPLIT: tl.constexpr,
):
    t = tl.program_id(0)
    s = tl.program_id(1)
    g = tl.program_id(2)
    bi = tl.load(tiles_ptr + 2 * t)
    bj = tl.load(tiles_ptr + 2 * t + 1)
    offs_k = tl.arange(0, BLOCK_K)

    # Columns of tiles i and j -> (channel, kernel offset): address offsets and displacements.
    kmask_i, di, hi, wi, coff_i = _columns(bi, offs_k, k_size, g, c_per_group, stride_xc, stride_xd,
                                           stride_xh, stride_xw, KD, KH, KW, DD, DH, DW, BLOCK_K)
    kmask_j, dj, hj, wj, coff_j = _columns(bj, offs_k, k_size, g, c_per_group, stride_xc, stride_xd,
                                           stride_xh, stride_xw, KD, KH, KW, DD, DH, DW, BLOCK_K)

    start = s * rows_per_split
    end = tl.minimum(start + rows_per_split, m_size)
    if ACC_FP64:
        acc = tl.zeros((BLOCK_K, BLOCK_K), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_K, BLOCK_K), dtype=tl.float32)
    for m0 in range(start, end, BLOCK_M):
        # Row m -> (n, od, oh, ow) -> top-left-front corner of its receptive field.
        rm = m0 + tl.arange(0, BLOCK_M)
        rmask = rm < end
        ow = rm % out_w
        r = rm // out_w
        oh = r % out_h
        r = r // out_h
        od = r % out_d
        n = r // out_d
        bd = od * SD - PD
        bh = oh * SH - PH
        bw = ow * SW - PW
        roff = n.to(tl.int64) * stride_xn + bd * stride_xd + bh * stride_xh + bw * stride_xw

        a = _load_patches(x_ptr, roff, bd, bh, bw, rmask, kmask_i, di, hi, wi, coff_i, in_d, in_h, in_w)
        b = _load_patches(x_ptr, roff, bd, bh, bw, rmask, kmask_j, dj, hj, wj, coff_j, in_d, in_h, in_w)
        a = C.prep_operand(a, CAST, INTERPRET)
        b = C.prep_operand(b, CAST, INTERPRET)
        acc = tl.dot(tl.trans(a), b, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    if SPLIT:
        local = offs_k[:, None] * BLOCK_K + offs_k[None, :]
        slot = dst_ptr + ((g.to(tl.int64) * splits + s) * n_tiles + t) * BLOCK_K * BLOCK_K
        tl.store(slot + local, acc.to(dst_ptr.dtype.element_ty))
    else:
        C.store_tile(dst_ptr + g * stride_dg, acc.to(dst_ptr.dtype.element_ty), bi, bj, k_size,
                     stride_dr, stride_dc, BLOCK_K)


def _as_3d(x: torch.Tensor, geom: ConvGeometry) -> tuple[torch.Tensor, dict[str, Any]]:
    """View ``x`` as ``[N, C, D, H, W]`` (unit leading spatial dims for 1d/2d) and the geometry
    padded the same way; strides are kept, so no data moves."""
    lead = 3 - geom.nd
    x5 = x
    for _ in range(lead):
        x5 = x5.unsqueeze(2)

    def pad3(v: tuple[int, ...], fill: int) -> tuple[int, ...]:
        return (fill,) * lead + tuple(v)

    return x5, dict(
        kernel=pad3(geom.kernel_size, 1), stride=pad3(geom.stride, 1), pad=pad3(geom.pad_lo, 0),
        dilation=pad3(geom.dilation, 1), inp=pad3(geom.in_spatial, 1), outp=pad3(geom.out_spatial, 1),
    )


def conv_gram_triton_launch(
    x: torch.Tensor,
    geom: ConvGeometry,
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
    """``out[g] += P_g^T P_g`` with the Triton kernels.

    Args:
        x: ``[N, C, *spatial]`` (1 to 3 spatial dims) fp32/fp16/bf16/fp64, any strides
            (contiguous and channels_last alike).
        geom: the convolution's geometry (``sap_kernels.ops.conv_geometry``).
        out: ``[G, K_g, K_g]`` fp32 (or fp64) contiguous accumulator on ``x.device``.
        precision: ``"ieee"``, ``"tf32"`` or ``"bf16"`` (see ``_common.dot_mode``).
        block_k, block_m, splits, num_warps, num_stages: override the tiling and launch
            configuration (tests use them to reach every path, ``benchmarks/tune_triton.py``
            to search for faster ones).
        launch: wraps each kernel before launch (``torch.library.wrap_triton`` in a ``triton_op``).
    """
    C.check_precision(precision)
    k = geom.k_per_group
    m = x.shape[0] * geom.rows_per_sample
    if m == 0 or k == 0:
        return
    x5, g3 = _as_3d(x, geom)
    groups = geom.groups
    plan = C.plan_gram(m, k, groups, x, out, precision, C.default_config(k, x.device, cuda_stages=2),
                       block_k=block_k, block_m=block_m, splits=splits, num_warps=num_warps,
                       num_stages=num_stages)
    bk, tiles, n_tiles, n_split, rps = plan.block_k, plan.tiles, plan.n_tiles, plan.splits, plan.rows_per_split
    (kd, kh, kw), (sd, sh, sw) = g3["kernel"], g3["stride"]
    (pd, ph, pw), (dd, dh, dw) = g3["pad"], g3["dilation"]
    common = dict(KD=kd, KH=kh, KW=kw, SD=sd, SH=sh, SW=sw, PD=pd, PH=ph, PW=pw, DD=dd, DH=dh, DW=dw,
                  **plan.kernel_options(x.dtype))
    sizes = (*g3["inp"], *g3["outp"])
    xs = x5.stride()
    if n_split == 1:
        launch(_conv_gram_kernel)[(n_tiles, 1, groups)](
            x5, tiles, out, m, k, rps, n_tiles, 1, geom.channels_per_group, *sizes, *xs,
            out.stride(0), out.stride(1), out.stride(2), SPLIT=False, **common,
        )
        return
    ws = torch.empty((groups, n_split, n_tiles, bk, bk), dtype=out.dtype, device=x.device)
    launch(_conv_gram_kernel)[(n_tiles, n_split, groups)](
        x5, tiles, ws, m, k, rps, n_tiles, n_split, geom.channels_per_group, *sizes, *xs,
        0, 0, 0, SPLIT=True, **common,
    )
    C.reduce_splits(ws, tiles, out, bk, launch)


def conv_gram_triton(
    x: torch.Tensor, geom: ConvGeometry, out: torch.Tensor, *, precision: Precision = "ieee"
) -> None:
    """Backend entry of ``sap_kernels.ops.conv_gram``: ``out [G, K_g, K_g] += P_g^T P_g``."""
    conv_gram_triton_launch(x, geom, out, precision)
