"""The ``"torch"`` backend: plain PyTorch on any device. The CPU path of the package, the
fallback everywhere else, and the reference the other backends are verified against."""
from __future__ import annotations

import torch

from ..spec import Backend, Request
from .conv_gram import conv_gram_torch
from .gram import gram_torch
from .patches import conv_patches_torch
from .projection import sap_lambda, scaled_projection_torch


def _tf32_allowed() -> bool:
    """Whether CUDA fp32 matmuls may round operands to TF32 (torch's global setting)."""
    return bool(torch.backends.cuda.matmul.allow_tf32)


def not_supported_reasons(request: Request) -> list[str]:
    """The torch backend runs any real float dtype on any device and accumulates in ``out``'s
    dtype; the one request it cannot honour is ``precision="ieee"`` for fp32 products on CUDA
    while torch is allowed to use TF32 there."""
    reasons = []
    if not request.dtype.is_floating_point or request.dtype.is_complex:
        reasons.append(f"dtype {request.dtype} is not a real float dtype")
    fp32_math = request.out_dtype == torch.float32
    if request.device.type == "cuda" and request.precision == "ieee" and fp32_math and _tf32_allowed():
        reasons.append(
            "precision='ieee' needs full fp32 products, but torch.backends.cuda.matmul.allow_tf32 is True"
        )
    return reasons


BACKEND = Backend(
    name="torch",
    gram=gram_torch,
    conv_gram=conv_gram_torch,
    scaled_projection=scaled_projection_torch,
    not_supported_reasons=not_supported_reasons,
    reference=True,
)

__all__ = ["BACKEND", "conv_gram_torch", "conv_patches_torch", "gram_torch", "not_supported_reasons",
           "sap_lambda", "scaled_projection_torch"]
