"""The ``"triton"`` backend: Triton kernels for CUDA tensors, and for CPU tensors when
``TRITON_INTERPRET=1`` was set before this package was imported (the interpreter, used by the
test-suite). Importing it fails, and dispatch reports why, when Triton is not installed."""
from __future__ import annotations

from ..spec import Backend, Request, common_kernel_reasons
from ._common import MAX_GRID_YZ, device_reason, interpreted
from .conv_gram import conv_gram_triton
from .gram import gram_triton
from .projection import scaled_projection_triton


def not_supported_reasons(request: Request) -> list[str]:
    """Device (CUDA, or CPU under the interpreter), the dtypes the kernels load, the accumulator
    (float32 input accumulates in float32: a float64 ``out`` for it is refused, not silently
    served in float32) and the grid limit on conv groups / projection batch."""
    reasons = []
    device = device_reason(request.device)
    if device is not None:
        reasons.append(device)
    reasons += common_kernel_reasons(request)
    if request.op != "gram" and request.batch > MAX_GRID_YZ:
        what = "groups" if request.op == "conv_gram" else "matrices per call"
        reasons.append(f"{request.batch} {what} exceed the grid limit of {MAX_GRID_YZ}")
    return reasons


BACKEND = Backend(
    name="triton",
    gram=gram_triton,
    conv_gram=conv_gram_triton,
    scaled_projection=scaled_projection_triton,
    not_supported_reasons=not_supported_reasons,
)

__all__ = ["BACKEND", "interpreted", "not_supported_reasons"]
