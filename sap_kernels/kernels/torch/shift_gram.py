"""Conv-input Gram of a stride-1 convolution from shifted channel products, without im2col.

For stride 1 the block of the Gram that pairs kernel offsets ``i`` and ``j`` is
``G_ij = sum over output positions o of x[o + i] x[o + j]^T`` (``[C, C]``, ``x`` zero-padded,
``x[q]`` the channel vector at position ``q``). It depends on ``i`` only through the window
``i + O`` of positions it sums over and otherwise on the shift ``d = j - i``. So

    G_ij = S_d - (the same sum over the interior positions outside window i),
    S_d  = sum over every position q of x[q] x[q + d]^T,

and the interior positions outside a window are a few rows and columns at the image border
(none for the centre offset of a 'same' convolution). A ``k x k`` kernel has ``k^2 (k^2 + 1) / 2``
offset pairs but only ``((2k - 1)^2 + 1) / 2`` distinct shifts up to transposition (13 against 45
for 3x3), and each ``S_d`` is one GEMM over the channels-last input itself: the input is read once
per shift instead of being copied into a 9x larger patch matrix.

Positions are flattened over (sample, row, column) of the zero-padded channels-last input, so a
2-d shift is a constant offset in rows of a ``[positions, C]`` matrix. For a position inside
window ``i`` the offset lands on its true partner; for one outside, it may run across a row or
sample boundary, but exactly those positions are subtracted again as border strips computed with
the same offset, so such terms cancel and the result is exact (zero guard rows at both ends keep
every offset inside the buffer).

Used by the torch backend for 1-d and 2-d convolutions with stride 1 and one group, when the
FLOP estimate says it is cheaper than im2col (``shift_cost``).
"""
from __future__ import annotations

import itertools
import math

import torch

from ..spec import ConvGeometry

# Below this many channels the [C, C] products are too small for BLAS to run well (measured: a
# 3-channel 3x3 conv on 32x32 inputs took 1.5x longer than im2col).
MIN_CHANNELS = 16
# Take the shift route when its multiply-adds are at most 1 / MIN_GAIN of im2col's. The im2col
# route also copies 9x the input and runs smaller GEMMs, so break-even lies below 1: measured on 2
# CPU threads (benchmarks/bench_shift_cpu.py), a 512-channel 3x3 'same' conv on 4x4 inputs (ratio
# 0.62) ran as fast either way, a 32-channel 'valid' one on 8x8 (ratio 0.57) 2.6x slower shifted.
MIN_GAIN = 0.6


def applicable(geom: ConvGeometry) -> bool:
    """Stride 1 in every dim, one group, 1-d or 2-d."""
    return geom.nd in (1, 2) and geom.groups == 1 and all(s == 1 for s in geom.stride)


def preferred(geom: ConvGeometry) -> bool:
    """Whether the torch backend should take the shift route for this convolution."""
    return (applicable(geom) and geom.in_channels >= MIN_CHANNELS
            and im2col_cost(geom) >= MIN_GAIN * shift_cost(geom))


def buffer_elements(geom: ConvGeometry) -> int:
    """Values of the padded buffer per sample (``C * height * width``)."""
    hp, wp = _layout(_as_2d(geom))
    return geom.in_channels * hp * wp


def _as_2d(geom: ConvGeometry) -> dict[str, tuple[int, ...]]:
    """The geometry with a unit leading dim for 1-d convolutions."""
    lead = 2 - geom.nd
    return dict(
        k=(1,) * lead + geom.kernel_size, dil=(1,) * lead + geom.dilation, lo=(0,) * lead + geom.pad_lo,
        hi=(0,) * lead + geom.pad_hi, inp=(1,) * lead + geom.in_spatial, out=(1,) * lead + geom.out_spatial,
    )


def _layout(g: dict[str, tuple[int, ...]]) -> tuple[int, int]:
    """Height and width of the zero-padded input."""
    return g["lo"][0] + g["inp"][0] + g["hi"][0], g["lo"][1] + g["inp"][1] + g["hi"][1]


def _missing(g: dict[str, tuple[int, ...]], axis: int) -> list[list[int]]:
    """Per kernel offset along ``axis``, the interior coordinates outside its window."""
    lo, size, length = g["lo"][axis], g["inp"][axis], g["out"][axis]
    starts = [a * g["dil"][axis] for a in range(g["k"][axis])]
    return [[r for r in range(lo, lo + size) if not s <= r < s + length] for s in starts]


def shift_cost(geom: ConvGeometry) -> float:
    """Multiply-adds per sample of the shift route, divided by ``C^2``."""
    g = _as_2d(geom)
    hp, wp = _layout(g)
    kh, kw = g["k"]
    shifts = ((2 * kh - 1) * (2 * kw - 1) + 1) // 2
    rows = {r for miss in _missing(g, 0) for r in miss}
    cols = {c for miss in _missing(g, 1) for c in miss}
    signed = (2 * kh - 1) * (2 * kw - 1)
    return shifts * hp * wp + signed * (len(rows) * wp + len(cols) * hp + len(rows) * len(cols))


def im2col_cost(geom: ConvGeometry) -> float:
    """Multiply-adds per sample of the im2col route (one triangle of blocks), divided by ``C^2``."""
    p = math.prod(geom.kernel_size)
    return geom.rows_per_sample * p * (p + 1) / 2


def shift_conv_gram_(out: torch.Tensor, x: torch.Tensor, geom: ConvGeometry) -> None:
    """``out[0] += P^T P`` for the im2col rows ``P`` of ``x``.

    Args:
        out: ``[1, C * P, C * P]`` float32/float64 accumulator in the column order of
            ``weight.flatten(1)``: index ``c * P + p`` for channel ``c`` and kernel offset ``p``
            (row-major over the kernel dims).
        x: ``[n, C, *spatial]`` (1-d or 2-d), any float dtype; ``applicable(geom)`` must hold.
        geom: the convolution's geometry.
    """
    g = _as_2d(geom)
    if geom.nd == 1:
        x = x.unsqueeze(2)
    n, c = x.shape[0], x.shape[1]
    hp, wp = _layout(g)
    (kh, kw), (dh, dw) = g["k"], g["dil"]
    (top, left), (h, w) = g["lo"], g["inp"]
    guard = dh * (kh - 1) * wp + dw * (kw - 1)
    length = n * hp * wp
    # Zero-padded channels-last buffer [guard + n * hp * wp + guard, C], filled by one copy.
    flat = torch.zeros(guard + length + guard, c, dtype=out.dtype, device=x.device)
    flat[guard : guard + length].view(n, hp, wp, c)[:, top : top + h, left : left + w] = x.movedim(1, -1)
    plane = hp * wp * c

    def rows_at(offset: int, count: int, step: int) -> torch.Tensor:
        """``[n * count, C]``: per sample, ``count`` positions from ``offset`` every ``step``."""
        view = flat.as_strided((n, count, c), (plane, step * c, 1), (guard + offset) * c)
        return view.reshape(n * count, c)

    strip_sums: dict[tuple[str, tuple[int, ...], int], torch.Tensor] = {}

    def strip(kind: str, where: tuple[int, ...], d: int) -> torch.Tensor:
        """Sum of ``x[q] x[q + d]^T`` over one row, one column or one position of every sample."""
        key = (kind, where, d)
        if key not in strip_sums:
            if kind == "row":
                start, count, step = where[0] * wp, wp, 1
            elif kind == "col":
                start, count, step = where[0], hp, wp
            else:
                start, count, step = where[0] * wp + where[1], 1, 1
            strip_sums[key] = rows_at(start, count, step).t() @ rows_at(start + d, count, step)
        return strip_sums[key]

    # Offset pairs p <= q grouped by |shift| (in flat positions): one S per group, and the strip
    # sums of a group are dropped before the next, so memory stays at a few [C, C] matrices.
    offsets = list(itertools.product(range(kh), range(kw)))
    groups: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for (p, (a, b)), (q, (a2, b2)) in itertools.combinations_with_replacement(list(enumerate(offsets)), 2):
        d = (a2 - a) * dh * wp + (b2 - b) * dw
        groups.setdefault(abs(d), []).append((p, q, a, b, d))
    missing_rows, missing_cols = _missing(g, 0), _missing(g, 1)
    blocks = out[0].view(c, kh * kw, c, kh * kw)  # [c, p, c', q]: block (p, q) is [:, p, :, q]
    body = flat[guard : guard + length]
    for shift, pairs in groups.items():
        s_pos = body.t() @ flat[guard + shift : guard + shift + length]  # S_shift
        strip_sums.clear()
        for p, q, a, b, d in pairs:
            block = s_pos if d >= 0 else s_pos.t()  # S_{-d} = S_d^T
            miss_r, miss_c = missing_rows[a], missing_cols[b]
            if miss_r or miss_c:
                block = block.clone()
                for r in miss_r:
                    block -= strip("row", (r,), d)
                for col in miss_c:
                    block -= strip("col", (col,), d)
                for r in miss_r:  # positions in a missing row and column were taken off twice
                    for col in miss_c:
                        block += strip("pos", (r, col), d)
            blocks[:, p, :, q] += block
            if p != q:
                blocks[:, q, :, p] += block.t()
