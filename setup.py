"""Build script: pure Python by default; the CUDA C++ kernels in ``csrc/`` are built only on request.

Set ``SAP_KERNELS_BUILD_CUDA=1`` (and have ``nvcc`` plus a CUDA build of torch) to compile the
``sap_kernels._C`` extension (pybind11 functions; the op schemas live in Python). Without it the
package installs as pure Python; the ``"cuda"`` backend can then still run the same kernels by
compiling ``csrc/*.cu`` at run time with NVRTC through CuPy, so every build copies the sources
into the package (``sap_kernels/kernels/cuda/csrc``). See ``docs/cuda.md``.
"""
import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

CUDA_SOURCES = ("gram_kernels.cu", "projection_kernels.cu", "sap_kernels.h", "tile_common.cuh")


class BuildPyWithCudaSources(build_py):
    """Also place the ``.cu`` sources and headers in the built package, for the CuPy path."""

    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "sap_kernels", "kernels", "cuda", "csrc")
        os.makedirs(dest, exist_ok=True)
        for name in CUDA_SOURCES:
            shutil.copy2(os.path.join("csrc", name), os.path.join(dest, name))


def _cuda_extensions():
    if os.environ.get("SAP_KERNELS_BUILD_CUDA", "0") != "1":
        return [], {}
    sources = sorted(glob.glob("csrc/*.cu") + glob.glob("csrc/*.cpp"))
    if not sources:
        return [], {}
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    archs = os.environ.get("SAP_KERNELS_CUDA_ARCHS", "90")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs.split(";") if a]
    ext = CUDAExtension(
        name="sap_kernels._C",
        sources=sources,
        # No -std flag: BuildExtension adds the standard the installed torch's headers need
        # (C++20 for recent torch, whose ATen headers reject C++17).
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", *gencode]},
    )
    return [ext], {"build_ext": BuildExtension}


ext_modules, cmdclass = _cuda_extensions()
cmdclass["build_py"] = BuildPyWithCudaSources
setup(ext_modules=ext_modules, cmdclass=cmdclass)
