"""Finding the CUDA kernels: the compiled extension ``sap_kernels._C``, else CuPy + NVRTC.

Both build paths expose the same functions (``CudaKernels``). Which one is used:
``$SAP_KERNELS_CUDA_LOADER`` = ``auto`` (default: the extension when it imports, else CuPy),
``extension`` or ``cupy``. Loading happens once, on first need; a failure is remembered as the
reason the backend cannot run, never raised into ``import sap_kernels``.
"""
from __future__ import annotations

import importlib
import os
import threading
from types import ModuleType
from typing import Optional, Protocol, Sequence, Union

import torch

ENV_VAR = "SAP_KERNELS_CUDA_LOADER"
LOADERS = ("auto", "extension", "cupy")
FUNCTIONS = ("gram_", "conv_gram_", "scaled_projection", "plan_splits", "constants")
BUILD_HINT = (
    "build the extension with `SAP_KERNELS_BUILD_CUDA=1 pip install -e . --no-build-isolation` (needs nvcc "
    "and a CUDA build of torch; CUDA_HOME pointing at the toolkit if nvcc is not in $CUDA_HOME/bin), or "
    "`pip install cupy-cuda13x` (cupy-cuda12x for CUDA 12) to compile the same kernels at run time with "
    "NVRTC, no compiler needed (see docs/cuda.md)"
)


class CudaKernels(Protocol):
    """What either build path provides (``csrc/bindings.cpp`` and ``_cupy.py`` alike)."""

    def gram_(self, x: torch.Tensor, out: torch.Tensor) -> None: ...

    def conv_gram_(self, x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                   pad_lo: Sequence[int], pad_hi: Sequence[int], dilation: Sequence[int], groups: int,
                   out: torch.Tensor) -> None: ...

    def scaled_projection(self, weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor,
                          alpha: float, wv: Optional[torch.Tensor]) -> torch.Tensor: ...

    def plan_splits(self, rows: int, tiles: int, acc_bytes: int) -> tuple[int, int]: ...

    def constants(self) -> dict[str, int]: ...


def loader_choice() -> str:
    """``$SAP_KERNELS_CUDA_LOADER`` validated (a ValueError naming it otherwise)."""
    raw = os.environ.get(ENV_VAR, "").strip() or "auto"
    if raw not in LOADERS:
        raise ValueError(f"${ENV_VAR}={raw!r} is not one of {LOADERS}")
    return raw


def load_extension() -> ModuleType:
    """Import ``sap_kernels._C``, or raise ImportError saying why and how to build it."""
    try:
        module = importlib.import_module("sap_kernels._C")
    except ImportError as exc:  # absent (never built) or built against another torch
        raise ImportError(f"the CUDA extension sap_kernels._C is not available ({exc})") from exc
    except OSError as exc:  # a shared library the extension links against is missing
        raise ImportError(f"the CUDA extension sap_kernels._C failed to load ({exc})") from exc
    missing = [name for name in FUNCTIONS if not hasattr(module, name)]
    if missing:
        raise ImportError(f"sap_kernels._C lacks {', '.join(missing)}: it is stale, rebuild it")
    return module


def load_cupy() -> ModuleType:
    """The CuPy build path (imports CuPy; kernels compile later, per device, on first launch)."""
    from . import _cupy

    _cupy.runtime()
    return _cupy


_lock = threading.Lock()
_state: dict[str, Union[ModuleType, str]] = {}


def kernels() -> Union[ModuleType, str]:
    """The loaded build path (a module with ``FUNCTIONS``), or why neither could load."""
    choice = loader_choice()
    with _lock:
        if choice not in _state:
            _state[choice] = _load(choice)
        return _state[choice]


def _load(choice: str) -> Union[ModuleType, str]:
    errors = []
    for name, load in (("extension", load_extension), ("cupy", load_cupy)):
        if choice not in ("auto", name):
            continue
        try:
            return load()
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    return f"no CUDA kernels could be loaded ({'; '.join(errors)}); {BUILD_HINT}"


def reset() -> None:
    """Forget what was loaded (tests)."""
    with _lock:
        _state.clear()
