"""Pieces shared by the Triton kernels: precision handling, the upper-triangle tile table, the
row-split policy and the deterministic reduction of split partial tiles.

Split-row reduction. A tall-skinny Gram (few ``K`` tiles, millions of rows) has too few output
tiles to fill a GPU, so the rows are cut into ``splits`` contiguous ranges. Each program writes
its partial tile to its own slot of a workspace ``[splits, tiles, B, B]``, and a second kernel
sums the slots of a tile in the fixed order ``0..splits-1``. Nothing depends on which program
finishes first, so repeated runs give the same bits (float atomics would not).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import triton
import triton.language as tl

from ..spec import PRECISIONS, Precision

# Interpreter programs run one after another in Python: few, large programs are fastest there.
_INTERPRETER_TARGET_PROGRAMS = 4
# Upper bound on the split workspace, in bytes (it never grows with the batch size).
WORKSPACE_BYTES = 64 * 2**20


@triton.jit
def _probe_kernel(x_ptr):
    # Never launched: only its type tells whether @triton.jit ran under the interpreter.
    pass


def interpreted() -> bool:
    """True when this module's kernels were built by the Triton interpreter (TRITON_INTERPRET=1
    was set before import), which runs them on CPU tensors."""
    return type(_probe_kernel).__name__ == "InterpretedFunction"


def check_precision(precision: str) -> Precision:
    """``precision`` if it is one of ``PRECISIONS`` (the launchers are also called directly)."""
    for p in PRECISIONS:
        if precision == p:
            return p
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


# CUDA limits grid axes 1 and 2 to 65535 programs.
MAX_GRID_YZ = 65535


def device_reason(device: torch.device) -> Optional[str]:
    """None when the kernels can run on tensors of ``device``, else why not."""
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        if interpreted():
            return None
        return (
            "Triton kernels run on CPU tensors only in the interpreter: set TRITON_INTERPRET=1 "
            "before sap_kernels.kernels.triton is first imported"
        )
    return f"Triton kernels need CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), got {device.type}"


def dot_mode(dtype: torch.dtype, precision: str) -> tuple[int, str]:
    """``(CAST, INPUT_PRECISION)`` for the kernels' ``tl.dot``.

    CAST: 0 keeps the loaded operands' dtype (fp64 stays fp64; 16-bit operands go to the dot as
    they are: their products are exact in the fp32 accumulator); 1 converts operands to fp32;
    2 rounds them to bf16 first. Under the interpreter, which has no 16-bit arithmetic,
    16-bit operands are always widened to fp32 (same products, exact).
    """
    if dtype == torch.float64:
        return 0, "ieee"
    if precision == "bf16":
        return 2, "ieee"
    if dtype in (torch.float16, torch.bfloat16):
        return (1 if interpreted() else 0), "ieee"
    return 1, precision


@triton.jit
def prep_operand(a, CAST: tl.constexpr, INTERPRET: tl.constexpr):
    """Bring a loaded operand tile to the dtype its ``tl.dot`` runs in (see ``dot_mode``)."""
    if CAST == 1:
        a = a.to(tl.float32)
    elif CAST == 2:
        if INTERPRET:
            # The interpreter has no bf16 dot and truncates fp32 -> bf16; round to nearest even by
            # hand (as the GPU does) and keep the rounded values in fp32.
            bits = a.to(tl.float32).to(tl.uint32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            a = bits.to(tl.float32, bitcast=True)
        else:
            a = a.to(tl.bfloat16)
    return a


def upper_tiles(n_blocks: int, device: torch.device) -> torch.Tensor:
    """``[tiles, 2]`` int32 block coordinates ``(i, j)`` with ``i <= j``, row by row."""
    ii, jj = torch.triu_indices(n_blocks, n_blocks)
    return torch.stack([ii, jj], dim=1).to(device=device, dtype=torch.int32).contiguous()


def target_programs(device: torch.device) -> int:
    """How many programs keep the device busy (a few waves of the SM count)."""
    if device.type != "cuda":
        return _INTERPRETER_TARGET_PROGRAMS
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def choose_splits(
    rows: int, block_rows: int, programs_per_split: int, tile_bytes: int, device: torch.device,
    splits: Optional[int] = None,
) -> int:
    """Number of row ranges: enough programs to fill the device, never more than there are row
    blocks, and a workspace within ``WORKSPACE_BYTES``. ``splits`` forces a value (tests)."""
    row_blocks = max(1, triton.cdiv(rows, block_rows))
    if splits is None:
        splits = triton.cdiv(target_programs(device), max(1, programs_per_split))
        splits = min(splits, max(1, WORKSPACE_BYTES // max(1, programs_per_split * tile_bytes)))
    return int(max(1, min(splits, row_blocks)))


def rows_per_split(rows: int, block_rows: int, splits: int) -> int:
    """Rows of each split, a multiple of ``block_rows``."""
    return triton.cdiv(triton.cdiv(rows, splits), block_rows) * block_rows


@dataclass(frozen=True)
class GramPlan:
    """How one Gram launch is cut: tiling, launch configuration, tile table and row splits."""

    block_k: int
    block_m: int
    num_warps: int
    num_stages: int
    tiles: torch.Tensor  # [n_tiles, 2] int32 upper-triangle block coordinates
    splits: int
    rows_per_split: int
    cast: int
    precision: str

    @property
    def n_tiles(self) -> int:
        return int(self.tiles.shape[0])

    def kernel_options(self, x_dtype: torch.dtype) -> dict[str, Any]:
        """The constexprs and launch options both Gram kernels take from the plan."""
        return dict(
            BLOCK_K=self.block_k, BLOCK_M=self.block_m, CAST=self.cast, PRECISION=self.precision,
            INTERPRET=interpreted(), ACC_FP64=x_dtype == torch.float64, num_warps=self.num_warps,
            num_stages=self.num_stages,
        )


def default_config(k: int, device: torch.device, cuda_stages: int) -> tuple[int, int, int, int]:
    """``(BLOCK_K, BLOCK_M, num_warps, num_stages)`` for Gram width ``k`` (untuned on GPUs:
    ``benchmarks/tune_triton.py`` measures the alternatives)."""
    bk = 16 if k <= 16 else 32 if k <= 32 else 64
    if device.type != "cuda":
        return bk, 64, 4, 1
    return bk, (64 if bk <= 32 else 32), 4, cuda_stages


def plan_gram(
    rows: int, k: int, programs_per_tile: int, x: torch.Tensor, out: torch.Tensor, precision: str,
    config: tuple[int, int, int, int], *, block_k: Optional[int] = None, block_m: Optional[int] = None,
    splits: Optional[int] = None, num_warps: Optional[int] = None, num_stages: Optional[int] = None,
) -> GramPlan:
    """The launch plan of an ``out += X^T X`` over ``rows`` rows of width ``k``: ``config``
    (from ``default_config``) with any overrides applied, then the upper-triangle tiles and the
    split-row policy. ``programs_per_tile``: programs per tile and split (the conv Gram's groups).
    ``rows`` and ``k`` are positive (callers return early on empty input)."""
    bk, bm, warps, stages = config
    bk, bm = block_k or bk, block_m or bm
    warps, stages = num_warps or warps, num_stages or stages
    tiles = upper_tiles(triton.cdiv(k, bk), x.device)
    n_split = choose_splits(rows, bm, tiles.shape[0] * programs_per_tile, bk * bk * out.element_size(),
                            x.device, splits)
    rps = rows_per_split(rows, bm, n_split)
    cast, prec = dot_mode(x.dtype, precision)
    return GramPlan(bk, bm, warps, stages, tiles, triton.cdiv(rows, rps), rps, cast, prec)


@triton.jit
def store_tile(
    out_ptr, acc, bi, bj, k_size, stride_r, stride_c, BLOCK: tl.constexpr,
):
    """``out[tile(bi, bj)] += acc`` and, off the diagonal, ``out[tile(bj, bi)] += acc^T``.

    ``acc`` is ``[BLOCK, BLOCK]`` in the output dtype. A diagonal tile is symmetrised first so the
    whole result is exactly symmetric whatever order the dot summed in.
    """
    offs = tl.arange(0, BLOCK)
    ri = bi * BLOCK + offs
    rj = bj * BLOCK + offs
    if bi == bj:
        acc = 0.5 * (acc + tl.trans(acc))
    mask = (ri[:, None] < k_size) & (rj[None, :] < k_size)
    ptrs = out_ptr + ri[:, None] * stride_r + rj[None, :] * stride_c
    tl.store(ptrs, tl.load(ptrs, mask=mask) + acc, mask=mask)
    if bi != bj:
        mask_t = (rj[:, None] < k_size) & (ri[None, :] < k_size)
        ptrs_t = out_ptr + rj[:, None] * stride_r + ri[None, :] * stride_c
        tl.store(ptrs_t, tl.load(ptrs_t, mask=mask_t) + tl.trans(acc), mask=mask_t)


@triton.jit
def _reduce_splits_kernel(
    ws_ptr, tiles_ptr, out_ptr, k_size, splits, n_tiles,
    stride_og, stride_or, stride_oc,
    BLOCK: tl.constexpr,
):
    """One program per (tile, group): ``out[g, tile] += sum_s ws[g, s, tile]``, ``s`` ascending.

    ws: ``[G, splits, tiles, BLOCK, BLOCK]`` contiguous, in the output dtype.
    """
    t = tl.program_id(0)
    g = tl.program_id(1)
    bi = tl.load(tiles_ptr + 2 * t)
    bj = tl.load(tiles_ptr + 2 * t + 1)
    offs = tl.arange(0, BLOCK)
    local = offs[:, None] * BLOCK + offs[None, :]
    base = ws_ptr + (g.to(tl.int64) * splits * n_tiles + t) * BLOCK * BLOCK
    acc = tl.load(base + local)
    for s in range(1, splits):
        acc += tl.load(base + s * n_tiles * BLOCK * BLOCK + local)
    store_tile(out_ptr + g * stride_og, acc, bi, bj, k_size, stride_or, stride_oc, BLOCK)


def reduce_splits(ws: torch.Tensor, tiles: torch.Tensor, out: torch.Tensor, block: int, launch) -> None:
    """Add the split partial tiles ``ws [G, splits, tiles, B, B]`` into ``out [G, K, K]``.

    ``launch`` wraps a kernel for launching (``torch.library.wrap_triton`` or identity).
    """
    g, splits, n_tiles = ws.shape[:3]
    launch(_reduce_splits_kernel)[(n_tiles, g)](
        ws, tiles, out, out.shape[-1], splits, n_tiles,
        out.stride(0), out.stride(1), out.stride(2),
        BLOCK=block,
    )


# Wraps a kernel before launch: ``torch.library.wrap_triton`` inside a ``triton_op``, else identity.
Launch = Callable[[Any], Any]


def identity_launch(kernel: Any) -> Any:
    return kernel


__all__ = [
    "PRECISIONS", "check_precision", "choose_splits", "device_reason", "dot_mode", "interpreted",
    "prep_operand", "reduce_splits", "rows_per_split", "store_tile", "upper_tiles", "math",
]
