"""The CUDA sources (``csrc/``) as the CuPy build path and its tests see them.

One list of kernel instantiations (``NAME_EXPRESSIONS``) that NVRTC compiles, the constants the
host code shares with ``csrc/sap_kernels.h`` (parsed from it, not copied), the NVRTC options and
the header search path. Needs neither CuPy nor a GPU.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

_HERE = Path(__file__).resolve().parent
# An installed wheel carries the sources in the package (setup.py copies them); a source tree or
# editable install reads them from the repository's csrc/.
_CANDIDATES = (_HERE / "csrc", _HERE.parents[2] / "csrc")
SOURCES = ("gram_kernels.cu", "projection_kernels.cu")
HEADERS = ("sap_kernels.h", "tile_common.cuh")


def _ns(kernel: str, *targs: str) -> str:
    return f"sap_cuda::detail::{kernel}<{', '.join(targs)}>"


_DATA = ("float", "__half", "__nv_bfloat16", "double")
# Every kernel instantiation a launcher can pick, per source file (the nvcc build instantiates
# the same set through the launchers' switches).
NAME_EXPRESSIONS: dict[str, tuple[str, ...]] = {
    "gram_kernels.cu": (
        *(_ns("gram_partials_kernel", t) for t in _DATA),
        *(_ns("conv_gram_partials_kernel", t) for t in _DATA),
        _ns("reduce_upper_kernel", "float", "float"),
        _ns("reduce_upper_kernel", "float", "double"),
        _ns("reduce_upper_kernel", "double", "double"),
    ),
    "projection_kernels.cu": (
        _ns("eig_total_kernel", "float"),
        _ns("eig_total_kernel", "double"),
        *(_ns("gemm_kernel", t, flag) for t in ("float", "double") for flag in ("true", "false")),
    ),
}


def csrc_dir() -> Path:
    """The directory holding the ``.cu`` sources and headers."""
    for path in _CANDIDATES:
        if all((path / name).is_file() for name in SOURCES + HEADERS):
            return path
    raise FileNotFoundError(f"the CUDA sources ({', '.join(SOURCES)}) are in none of {[str(p) for p in _CANDIDATES]}")


def read_source(name: str) -> str:
    """The text of ``csrc/<name>``."""
    return (csrc_dir() / name).read_text()


_CONSTANT = re.compile(r"^\s*constexpr\s+(?:int|int64_t)\s+(k\w+)\s*=\s*(\d+)\s*;", re.MULTILINE)


@lru_cache(maxsize=None)
def header_constants() -> dict[str, int]:
    """``{name: value}`` of every ``constexpr int``/``int64_t`` constant in ``sap_kernels.h``."""
    return {name: int(value) for name, value in _CONSTANT.findall(read_source("sap_kernels.h"))}


def cuda_include_dirs() -> list[str]:
    """Directories holding the toolkit headers the kernels include (``cuda_fp16.h``,
    ``cuda_bf16.h``): ``$CUDA_HOME``/``$CUDA_PATH``, the ``nvidia`` wheels torch installs, then
    ``/usr/local/cuda``. NVRTC itself has no search path."""
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    candidates = [Path(r) / "include" for r in roots if r]
    try:
        import nvidia  # namespace package of the CUDA wheels (nvidia-cuda-runtime and friends)

        for base in getattr(nvidia, "__path__", []):
            candidates += sorted(Path(base).glob("cu*/include")) + sorted(Path(base).glob("cuda_runtime/include"))
    except ImportError:
        pass
    candidates.append(Path("/usr/local/cuda/include"))
    found: list[str] = []
    for path in candidates:
        if (path / "cuda_fp16.h").is_file() and (path / "cuda_bf16.h").is_file() and str(path) not in found:
            found.append(str(path))
    return found[:1]


def nvrtc_options(arch: Optional[str] = None) -> tuple[str, ...]:
    """NVRTC options for the kernels: C++17, the source and toolkit include dirs, and
    ``--gpu-architecture=<arch>`` when given (CuPy adds the device's own otherwise)."""
    opts = ["-std=c++17", f"-I{csrc_dir()}", *(f"-I{d}" for d in cuda_include_dirs())]
    if arch is not None:
        opts.append(f"--gpu-architecture={arch}")
    return tuple(opts)


_GLOBAL = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(")


def global_kernels(name: str) -> set[str]:
    """Names of the ``__global__`` functions defined in ``csrc/<name>``."""
    return set(_GLOBAL.findall(read_source(name)))
