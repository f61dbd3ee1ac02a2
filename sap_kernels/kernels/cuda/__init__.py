"""The ``"cuda"`` backend: hand-written CUDA C++ kernels from ``csrc/``. EXPERIMENTAL.

**Experimental: these kernels have never run on a GPU** (they compile with nvcc and NVRTC and
their host code is tested on CPU; ``tests/test_cuda_build.py -m gpu`` has not been run). Hence
the backend is never chosen automatically: only ``backend="cuda"`` or ``SAP_KERNELS_BACKEND=cuda``
runs it, and then only after its first-use check against the torch backend passed.

Two build paths give the same functions (``_loader.CudaKernels``): the compiled extension
``sap_kernels._C`` (``SAP_KERNELS_BUILD_CUDA=1``), or, without a compiler, CuPy compiling the same
``.cu`` files with NVRTC (``pip install cupy-cuda13x``). See ``docs/cuda.md``.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..spec import Backend, ConvGeometry, Precision, Request, common_kernel_reasons
from . import _loader
from .sources import header_constants

EXPERIMENTAL = True
MAX_GRID_YZ = header_constants()["kMaxGridYZ"]
TILE = header_constants()["kTile"]


def _kernels() -> _loader.CudaKernels:
    loaded = _loader.kernels()
    if isinstance(loaded, str):
        raise RuntimeError(loaded)
    return loaded


def gram_cuda(x: torch.Tensor, out: torch.Tensor, *, precision: Precision = "ieee") -> None:
    """``out += x^T x`` for ``x [M, K]`` (fp32/fp16/bf16/fp64, any strides) into ``out [K, K]``.
    Every ``precision`` is met: products are IEEE fp32 FMAs (fp64 for fp64 data)."""
    _kernels().gram_(x, out)


def conv_gram_cuda(x: torch.Tensor, geom: ConvGeometry, out: torch.Tensor, *, precision: Precision = "ieee") -> None:
    """``out[g] += P_g^T P_g`` from ``x [N, C, *spatial]`` (any strides, channels_last included)."""
    _kernels().conv_gram_(x, list(geom.kernel_size), list(geom.stride), list(geom.pad_lo), list(geom.pad_hi),
                          list(geom.dilation), geom.groups, out)


def scaled_projection_cuda(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    wv: Optional[torch.Tensor],
    *,
    precision: Precision = "ieee",
) -> torch.Tensor:
    """``((W V) * lambda) V^T`` in float32 (float64 if ``weight`` or ``eigvecs`` is float64)."""
    return _kernels().scaled_projection(weight, eigvals, eigvecs, float(alpha), wv)


def not_supported_reasons(request: Request) -> list[str]:
    """CUDA tensors only; a build path must load; the kernels' dtypes and accumulators; grid
    limits (groups / projection batch and output rows)."""
    reasons = []
    if request.device.type != "cuda":
        reasons.append(f"the CUDA kernels run only on CUDA tensors, got device type {request.device.type!r}")
    loaded = _loader.kernels()
    if isinstance(loaded, str):
        reasons.append(loaded)
    reasons += common_kernel_reasons(request)
    if request.batch > MAX_GRID_YZ:
        what = "groups" if request.op == "conv_gram" else "matrices per call"
        reasons.append(f"{request.batch} {what} exceed the grid limit of {MAX_GRID_YZ}")
    if request.op == "scaled_projection" and -(-request.shape[-2] // TILE) > MAX_GRID_YZ:
        reasons.append(f"{request.shape[-2]} output rows exceed the grid limit of {MAX_GRID_YZ * TILE}")
    return reasons


BACKEND = Backend(
    name="cuda",
    gram=gram_cuda,
    conv_gram=conv_gram_cuda,
    scaled_projection=scaled_projection_cuda,
    not_supported_reasons=not_supported_reasons,
    experimental=EXPERIMENTAL,
)

__all__ = ["BACKEND", "EXPERIMENTAL", "not_supported_reasons"]
