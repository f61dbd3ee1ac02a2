"""Build script: pure Python by default; the CUDA C++ kernels in ``csrc/`` are built only on request.

Set ``SAP_KERNELS_BUILD_CUDA=1`` (and have ``nvcc`` plus a CUDA build of torch) to compile the
``sap_kernels._C`` extension. Without it the package installs as pure Python and the torch and
Triton backends are used; ``sap_kernels.kernels.cuda`` then reports the extension as absent.
"""
import glob
import os

from setuptools import setup


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
setup(ext_modules=ext_modules, cmdclass=cmdclass)
