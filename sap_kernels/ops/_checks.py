"""Argument checks shared by the public ops."""
from __future__ import annotations

from typing import Optional, Sequence

import torch


def accumulator_dtype(x: torch.Tensor) -> torch.dtype:
    """fp64 inputs accumulate in fp64; every other float dtype in fp32."""
    if not x.is_floating_point():
        raise TypeError(f"activations must be a float tensor, got {x.dtype}")
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def accumulator(
    x: torch.Tensor, shape: Sequence[int], out: Optional[torch.Tensor], op: str
) -> torch.Tensor:
    """``out`` validated (shape, dtype, device, contiguity), or a new zero accumulator."""
    dtype = accumulator_dtype(x)
    shape = tuple(shape)
    if out is None:
        return torch.zeros(shape, dtype=dtype, device=x.device)
    if tuple(out.shape) != shape:
        raise ValueError(f"{op}: out has shape {list(out.shape)}, expected {list(shape)}")
    if out.dtype not in (torch.float32, torch.float64) or (dtype == torch.float64 and out.dtype != dtype):
        raise TypeError(f"{op}: out must be float32 (or float64 for float64 input), got {out.dtype}")
    if out.device != x.device:
        raise ValueError(f"{op}: out is on {out.device} but the input is on {x.device}")
    if not out.is_contiguous():
        raise ValueError(f"{op}: out must be contiguous")
    return out


PRECISIONS = ("ieee", "tf32", "bf16")


def check_precision(precision: str) -> str:
    """Validate a dot precision: ``"ieee"`` (full fp32 products), ``"tf32"`` or ``"bf16"``
    (operands rounded to TF32 / bf16, fp32 accumulation; honoured by the Triton backend, best
    effort elsewhere)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def weight_shape(weight: torch.Tensor) -> tuple[tuple[int, ...], int]:
    """``(leading dims, K)`` of a flattened weight ``[..., out, K]``; a ValueError otherwise."""
    if weight.dim() < 2:
        raise ValueError(f"weight must be [..., out, K], got shape {list(weight.shape)}")
    return tuple(weight.shape[:-2]), weight.shape[-1]


def projection_dtype(weight: torch.Tensor, eigvecs: torch.Tensor) -> torch.dtype:
    """Dtype a projection is computed in: at least fp32, fp64 when weight or eigvecs are fp64."""
    return torch.promote_types(torch.promote_types(weight.dtype, eigvecs.dtype), torch.float32)
