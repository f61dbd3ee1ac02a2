"""Argument checks shared by the public ops: every bad input is a TypeError or ValueError that
names the op and the argument."""
from __future__ import annotations

import numbers
from typing import Optional, Sequence

import torch

from ..kernels.spec import PRECISIONS, Precision, accumulator_dtype, projection_dtype

__all__ = [
    "PRECISIONS", "accumulator", "accumulator_dtype", "all_finite", "check_finite", "check_precision", "float_tensor",
    "overlaps", "projection_dtype", "same_device", "weight_shape",
]


def float_tensor(t: object, name: str, op: str) -> torch.Tensor:
    """``t`` if it is a tensor of a real float dtype; a TypeError naming ``name`` otherwise."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided or t.is_nested:  # sparse, sparse-compressed, nested, mkldnn
        layout = "nested" if t.is_nested else str(t.layout)
        raise TypeError(f"{op}: {name} must be a dense (strided) tensor, got layout {layout}; pass t.to_dense()")
    if not t.is_floating_point():  # integers, bool and complex alike
        raise TypeError(f"{op}: {name} must be a real float tensor, got {t.dtype}")
    return t


def same_device(op: str, **tensors: Optional[torch.Tensor]) -> torch.device:
    """The one device all given tensors are on; a ValueError listing them otherwise."""
    given = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(given.values())) > 1:
        where = ", ".join(f"{name} on {dev}" for name, dev in given.items())
        raise ValueError(f"{op}: tensors must be on one device, got {where}")
    return next(iter(given.values()))


def all_finite(t: torch.Tensor) -> bool:
    """Whether ``t`` holds no NaN and no inf (True when empty or not a float tensor).

    One min/max reduction, through which NaN propagates: on the CPU about 25x faster than
    ``isfinite(t).all()``, which first writes a bool tensor the size of ``t`` (a 4608 x 4608
    float32 eigenbasis: 4 ms against 117 ms on a 2-core VM), and the package checks every
    eigenbasis and projected weight.
    """
    if t.numel() == 0 or not (t.is_floating_point() or t.is_complex()):
        return True
    if t.is_complex():
        return all_finite(torch.view_as_real(t))
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_finite(t: torch.Tensor, name: str, op: str) -> None:
    """A ValueError when ``t`` holds NaN or inf (one reduction over ``t``)."""
    if not all_finite(t):
        raise ValueError(f"{op}: {name} holds NaN or inf")


def _byte_span(t: torch.Tensor) -> tuple[int, int]:
    """``[first, last)`` byte addresses spanned by the elements of a non-empty ``t`` (torch
    strides are never negative)."""
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()


def overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` may share memory: same device and intersecting byte ranges
    (views of one storage and separate wrappers of one buffer alike)."""
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    a0, a1 = _byte_span(a)
    b0, b1 = _byte_span(b)
    return a0 < b1 and b0 < a1


def accumulator(x: torch.Tensor, shape: Sequence[int], out: Optional[torch.Tensor], op: str) -> torch.Tensor:
    """``out`` validated against activations ``x``, or a new zero accumulator.

    ``out`` must be a ``shape`` float32/float64 (float64 for float64 ``x``) contiguous tensor on
    ``x.device`` that does not overlap ``x`` (the kernels read ``x`` while adding into ``out``).
    The default accumulator is float32 (float64 for float64 ``x``).
    """
    shape = tuple(shape)
    if out is None:
        return torch.zeros(shape, dtype=accumulator_dtype(x.dtype), device=x.device)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{op}: out must be a torch.Tensor or None, got {type(out).__name__}")
    if out.layout != torch.strided or out.is_nested:
        raise TypeError(f"{op}: out must be a dense (strided) tensor, got layout {out.layout}")
    if tuple(out.shape) != shape:
        raise ValueError(f"{op}: out has shape {list(out.shape)}, expected {list(shape)}")
    if out.dtype not in (torch.float32, torch.float64) or (x.dtype == torch.float64 and out.dtype != x.dtype):
        raise TypeError(f"{op}: out must be float32 or float64 (float64 for float64 input), got {out.dtype}")
    if out.device != x.device:
        raise ValueError(f"{op}: out is on {out.device} but the input is on {x.device}")
    if not out.is_contiguous():
        raise ValueError(f"{op}: out must be contiguous")
    if overlaps(out, x):
        raise ValueError(f"{op}: out overlaps the input x in memory; pass a separate accumulator")
    return out


def check_precision(precision: object) -> Precision:
    """``precision`` as one of ``"ieee"`` (full fp32 products), ``"tf32"`` or ``"bf16"``
    (operands may be rounded to TF32 / bf16); a ValueError otherwise."""
    for p in PRECISIONS:
        if isinstance(precision, str) and precision == p:
            return p
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def check_alpha(alpha: object) -> float:
    """One alpha as a float: a real number ``> 0``, ``inf`` meaning the identity."""
    if isinstance(alpha, torch.Tensor) and alpha.numel() == 1 and not alpha.is_complex():
        alpha = alpha.item()
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a positive number, got {alpha!r}")
    a = float(alpha)
    if a != a or a <= 0:
        raise ValueError(f"alpha must be > 0 (inf keeps the layer unchanged), got {alpha!r}")
    return a


def weight_shape(weight: torch.Tensor) -> tuple[tuple[int, ...], int]:
    """``(leading dims, K)`` of a flattened weight ``[..., out, K]``; a ValueError otherwise."""
    if weight.dim() < 2:
        raise ValueError(f"weight must be [..., out, K], got shape {list(weight.shape)}")
    return tuple(weight.shape[:-2]), weight.shape[-1]
