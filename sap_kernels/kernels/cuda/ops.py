"""Registration of the CUDA kernels with ``sap_kernels.ops.dispatch`` (backend ``"cuda"``).

Each function follows the torch backend's contract (see ``sap_kernels.kernels.torch``) and calls
one ``torch.ops.sap_kernels`` op, which validates its arguments again in C++.

``precision``: the kernels multiply-add in IEEE fp32 (fp64 for fp64 data) with explicit FMAs, which
is what ``precision="ieee"`` asks for; any other value (e.g. ``"tf32"``) is accepted and served
at this full precision.
"""
from __future__ import annotations

from typing import Optional

import torch

from ...ops._checks import projection_dtype
from ...ops.dispatch import register
from ...ops.geometry import ConvGeometry


def needs_cuda_device(device: torch.device) -> Optional[str]:
    """``None`` for CUDA devices, else why the backend cannot run there."""
    if device.type != "cuda":
        return f"the CUDA kernels run only on CUDA tensors, got device type {device.type!r}"
    return None


def _check_precision(precision: Optional[str]) -> None:
    if precision is not None and not isinstance(precision, str):
        raise TypeError(f"precision must be a string such as 'ieee', got {precision!r}")


@register("gram", "cuda", needs_cuda_device)
def gram_cuda(x: torch.Tensor, out: torch.Tensor, precision: Optional[str] = None) -> None:
    """``out += x^T x`` for ``x [M, K]`` (fp32/fp16/bf16/fp64, any strides) into ``out [K, K]`` fp32/fp64."""
    _check_precision(precision)
    torch.ops.sap_kernels.gram_(x, out)


@register("conv_gram", "cuda", needs_cuda_device)
def conv_gram_cuda(x: torch.Tensor, geom: ConvGeometry, out: torch.Tensor, precision: Optional[str] = None) -> None:
    """``out[g] += P_g^T P_g`` from ``x [N, C, *spatial]`` (any strides, channels_last included)."""
    _check_precision(precision)
    torch.ops.sap_kernels.conv_gram_(
        x,
        list(geom.kernel_size),
        list(geom.stride),
        list(geom.pad_lo),
        list(geom.pad_hi),
        list(geom.dilation),
        geom.groups,
        out,
    )


@register("scaled_projection", "cuda", needs_cuda_device)
def scaled_projection_cuda(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    wv: Optional[torch.Tensor],
    precision: Optional[str] = None,
) -> torch.Tensor:
    """``((W V) * lambda) V^T`` in float32 (float64 if ``weight`` or ``eigvecs`` is float64)."""
    _check_precision(precision)
    return torch.ops.sap_kernels.scaled_projection(weight, eigvals, eigvecs, float(alpha), wv)


def _register_fakes() -> None:
    """Shape-only implementations so ``torch.compile`` can trace through the ops."""
    register_fake = getattr(torch.library, "register_fake", None)
    if register_fake is None:  # torch < 2.4
        return

    @register_fake("sap_kernels::gram_")
    def _gram_fake(x, out):
        return None

    @register_fake("sap_kernels::conv_gram_")
    def _conv_gram_fake(x, kernel_size, stride, pad_lo, pad_hi, dilation, groups, out):
        return None

    @register_fake("sap_kernels::scaled_projection")
    def _projection_fake(weight, eigvals, eigvecs, alpha, wv):
        return weight.new_empty(weight.shape, dtype=projection_dtype(weight, eigvecs))


_register_fakes()
