"""Defensive import of the compiled extension: a missing or broken build is an ``ImportError`` with
the build command, never a crash of ``import sap_kernels``."""
from __future__ import annotations

import importlib
from types import ModuleType

import torch

BUILD_HINT = (
    "build it with `SAP_KERNELS_BUILD_CUDA=1 pip install -e . --no-build-isolation` "
    "(or `SAP_KERNELS_BUILD_CUDA=1 python setup.py build_ext --inplace`); this needs nvcc and a "
    "CUDA build of torch, and CUDA_HOME pointing at the toolkit if nvcc is not in $CUDA_HOME/bin "
    "(see docs/cuda.md)"
)
OPS = ("gram_", "conv_gram_", "scaled_projection")


def load_extension() -> ModuleType:
    """Import ``sap_kernels._C`` (which registers ``torch.ops.sap_kernels.*``) or raise ``ImportError``."""
    try:
        module = importlib.import_module("sap_kernels._C")
    except ImportError as exc:
        # Absent (never built) or unloadable (built against another torch: undefined symbols).
        raise ImportError(f"the CUDA extension sap_kernels._C is not available ({exc}); {BUILD_HINT}") from exc
    except OSError as exc:  # a shared library the extension links against is missing
        raise ImportError(f"the CUDA extension sap_kernels._C failed to load ({exc}); rebuild it: {BUILD_HINT}") from exc
    missing = [name for name in OPS if not hasattr(torch.ops.sap_kernels, name)]
    if missing:
        raise ImportError(
            f"sap_kernels._C loaded but does not register torch.ops.sap_kernels.{', '.join(missing)}; "
            f"it is stale, rebuild it: {BUILD_HINT}"
        )
    return module
