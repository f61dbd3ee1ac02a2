"""The CUDA C++ kernels in ``csrc/``: they compile (wherever nvcc is), and on a GPU they match a
float64 reference.

Compile checks need only ``nvcc`` (no GPU): each ``.cu`` file is compiled once per module for sm_90
with warnings as errors and register spills reported, and the torch glue (``bindings.cpp``) is
syntax-checked with the host compiler against torch's headers. The correctness tests need a CUDA
device and either build path of the kernels (the extension, ``SAP_KERNELS_BUILD_CUDA=1 pip install
-e . --no-build-isolation``, or CuPy; ``SAP_KERNELS_CUDA_LOADER`` picks one); they are marked
``gpu`` and skip otherwise. The CUDA backend is experimental until they have passed on a GPU.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Optional

import pytest
import torch

from sap_kernels.ops import dispatch
from sap_kernels.ops.conv_gram import conv_gram
from sap_kernels.ops.gram import gram
from sap_kernels.ops.projection import scaled_projection

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
CU_FILES = sorted(p.name for p in CSRC.glob("*.cu"))
CPP_FILES = sorted(p.name for p in CSRC.glob("*.cpp"))
ARCH = "sm_90"  # H100/H200, the GPUs this package is measured on
COMPILE_TIMEOUT_S = 300


# ---------------------------------------------------------------------------------------------
# Toolchain discovery


def _find_nvcc() -> Optional[str]:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    return shutil.which("nvcc")


def _cuda_include_dir(nvcc: str) -> Optional[Path]:
    """The toolkit's include directory (for the host compiler; nvcc finds it by itself)."""
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), str(Path(nvcc).resolve().parents[1]),
             "/usr/local/cuda"]
    for root in roots:
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    return None


def _torch_include_paths() -> list[str]:
    from torch.utils import cpp_extension

    try:
        return list(cpp_extension.include_paths(device_type="cuda"))
    except TypeError:  # older torch: include_paths(cuda=True)
        return list(cpp_extension.include_paths(cuda=True))


def _torch_cxx_std() -> str:
    """The C++ standard the installed torch's headers need (recent torch requires C++20)."""
    from torch.utils import cpp_extension

    header = Path(cpp_extension.include_paths()[0]) / "ATen" / "ATen.h"
    text = header.read_text(errors="replace") if header.is_file() else ""
    return "c++20" if "C++20 or later" in text else "c++17"


NVCC = _find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")


@pytest.fixture(scope="module")
def cu_builds(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Compile every ``csrc/*.cu`` once: ``nvcc -c -arch=sm_90``, warnings as errors."""
    if NVCC is None:
        pytest.skip("nvcc not found")
    out_dir = tmp_path_factory.mktemp("cuda_objs")
    includes = [f"-I{CSRC}", *(f"-I{p}" for p in _torch_include_paths())]
    results = {}
    for name in CU_FILES:
        cmd = [NVCC, "-c", f"-arch={ARCH}", "-O3", f"-std={_torch_cxx_std()}", "-Werror", "all-warnings",
               "-Xptxas", "-v", *includes, str(CSRC / name), "-o", str(out_dir / f"{name}.o")]
        results[name] = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    return results


@needs_nvcc
@pytest.mark.parametrize("name", CU_FILES)
def test_cu_file_compiles_for_sm90(cu_builds, name):
    proc = cu_builds[name]
    assert proc.returncode == 0, f"nvcc failed on {name}:\n{proc.stderr[-4000:]}"


@needs_nvcc
@pytest.mark.parametrize("name", CU_FILES)
def test_cu_kernels_do_not_spill_registers(cu_builds, name):
    proc = cu_builds[name]
    if proc.returncode:
        pytest.skip(f"{name} did not compile")
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", proc.stderr)]
    assert spills and not any(spills), f"register spills in {name}:\n{proc.stderr[-4000:]}"


@needs_nvcc
@pytest.mark.parametrize("name", CPP_FILES)
def test_torch_glue_compiles(tmp_path, name):
    """The .cpp glue against the installed torch's headers (syntax and types; no link)."""
    cuda_include = _cuda_include_dir(NVCC)
    if cuda_include is None:
        pytest.skip("CUDA toolkit headers (cuda_runtime_api.h) not found; set CUDA_HOME")
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no host C++ compiler")
    # -isystem keeps warnings from torch's own headers out of the -Werror check.
    includes = []
    for p in [*_torch_include_paths(), str(cuda_include), sysconfig.get_paths()["include"]]:
        includes += ["-isystem", p]
    cmd = [cxx, "-fsyntax-only", f"-std={_torch_cxx_std()}", "-Wall", "-Wextra", "-Werror", "-I", str(CSRC),
           *includes, str(CSRC / name)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    assert proc.returncode == 0, f"{cxx} failed on {name}:\n{proc.stderr[-4000:]}"


# ---------------------------------------------------------------------------------------------
# Loader behaviour (CPU)


def _extension_error() -> Optional[str]:
    try:
        import sap_kernels._C  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def test_missing_kernels_reason_says_how_to_get_them(monkeypatch):
    """With the extension forced (``SAP_KERNELS_CUDA_LOADER=extension``) and not built, the
    backend's reason names both ways to get the kernels: the build and CuPy."""
    from sap_kernels.kernels.cuda import _loader

    if _extension_error() is None:
        pytest.skip("the extension is built here")
    monkeypatch.setenv(_loader.ENV_VAR, "extension")
    _loader.reset()
    try:
        reason = dispatch.available_backends("gram", torch.device("cuda"))["cuda"]
    finally:
        _loader.reset()
    assert reason is not None and "SAP_KERNELS_BUILD_CUDA=1" in reason and "cupy-cuda13x" in reason
    monkeypatch.setenv(_loader.ENV_VAR, "nvcc")
    with pytest.raises(ValueError, match="SAP_KERNELS_CUDA_LOADER='nvcc'"):
        _loader.kernels()


# ---------------------------------------------------------------------------------------------
# Correctness on a GPU, against float64 references computed by the torch backend on the CPU


@pytest.fixture(scope="module")
def cuda_ext():
    """A CUDA device with either build path of the kernels (extension or CuPy)."""
    from sap_kernels.kernels.cuda import _loader

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    loaded = _loader.kernels()
    if isinstance(loaded, str):
        pytest.skip(loaded)
    return torch.device("cuda")


def _assert_close_to_ref(got: torch.Tensor, ref: torch.Tensor, abs_ref: torch.Tensor, rows: int, eps: float):
    """Elementwise bound for sums of ``rows`` products: error <= c * eps * sqrt(rows) * sum|products|.

    sqrt(rows) is the typical growth of rounding error in a long sum; any indexing or masking bug
    shows up as an O(1) relative error, far above this bound.
    """
    got = got.detach().double().cpu()
    bound = 8 * eps * math.sqrt(max(rows, 1)) * abs_ref + 1e-300
    excess = ((got - ref).abs() / bound).max().item()
    assert excess <= 1.0, f"max error is {excess:.3g} x the bound ({eps=}, {rows=})"


EPS = {torch.float32: 2.0**-24, torch.float16: 2.0**-24, torch.bfloat16: 2.0**-24, torch.float64: 2.0**-53}

GRAM_SHAPES = [(5, 5), (123, 273), (273, 123), (4100, 5), (50_000, 123), (2_000, 300)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("rows,k", GRAM_SHAPES)
def test_gram_matches_fp64(cuda_ext, rows, k, dtype):
    torch.manual_seed(rows * 7 + k)
    x = torch.randn(rows, k, device=cuda_ext).to(dtype)
    xd = x.double().cpu()
    got = gram(x, backend="cuda")
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    _assert_close_to_ref(got, xd.T @ xd, xd.abs().T @ xd.abs(), rows, EPS[dtype])


@pytest.mark.gpu
def test_gram_adds_into_out_and_reads_strided_rows(cuda_ext):
    torch.manual_seed(0)
    base = torch.randn(273, 1000, device=cuda_ext)
    x = base.t()  # [1000, 273] with row stride 1: no copy is made
    out = torch.randn(273, 273, device=cuda_ext)
    before = out.double().cpu()
    gram(x, out=out, backend="cuda")
    xd = x.double().cpu()
    _assert_close_to_ref(out, before + xd.T @ xd, before.abs() + xd.abs().T @ xd.abs(), 1000, EPS[torch.float32])


@pytest.mark.gpu
def test_gram_is_deterministic(cuda_ext):
    torch.manual_seed(1)
    x = torch.randn(50_000, 123, device=cuda_ext, dtype=torch.bfloat16)
    a, b = gram(x, backend="cuda"), gram(x, backend="cuda")
    assert torch.equal(a, b)


CONV_CASES = [
    # shape, kernel_size, stride, padding, dilation, groups
    ((2, 3, 9, 9), 3, 1, 1, 1, 1),
    ((3, 5, 17, 13), (3, 2), (2, 1), (1, 0), (1, 2), 1),
    ((2, 6, 11, 12), 3, 2, 2, 2, 3),
    ((2, 8, 10, 10), 3, 1, 1, 1, 8),  # depthwise
    ((2, 4, 9, 7), 4, 1, "same", 1, 2),  # pad_lo 1, pad_hi 2
    ((4, 5, 123), 5, 3, 2, 2, 1),  # Conv1d
    ((2, 3, 5, 6, 7), (2, 3, 3), (1, 2, 1), 1, 1, 1),  # Conv3d
    ((2, 32, 12, 12), 3, 1, 1, 1, 1),  # K = 288: several tiles per dim
    ((64, 4, 33, 33), 3, 1, 1, 1, 2),  # 69,696 rows: split-K
]


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if x.dim() == 5:
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x.transpose(1, 2).contiguous().transpose(1, 2)  # channels fastest for 1d too


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,groups", CONV_CASES)
def test_conv_gram_matches_fp64(cuda_ext, shape, kernel, stride, padding, dilation, groups, dtype, layout):
    torch.manual_seed(sum(shape))
    x = torch.randn(shape, device=cuda_ext).to(dtype)
    if layout == "channels_last":
        x = _channels_last(x)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    got = conv_gram(x, kernel, backend="cuda", **args)
    xd = x.double().cpu()
    ref = conv_gram(xd, kernel, backend="torch", **args)
    abs_ref = conv_gram(xd.abs(), kernel, backend="torch", **args)
    rows = shape[0] * math.prod(_out_spatial(x, kernel, **args))
    _assert_close_to_ref(got, ref, abs_ref, rows, EPS[dtype])


def _out_spatial(x, kernel, stride, padding, dilation, groups):
    from sap_kernels.ops.geometry import conv_geometry

    return conv_geometry(x.shape, kernel, stride, padding, dilation, groups).out_spatial


@pytest.mark.gpu
def test_conv_gram_is_deterministic_and_accumulates(cuda_ext):
    torch.manual_seed(2)
    x = torch.randn(64, 4, 33, 33, device=cuda_ext)
    a = conv_gram(x, 3, padding=1, backend="cuda")
    b = conv_gram(x, 3, padding=1, backend="cuda")
    assert torch.equal(a, b)
    twice = conv_gram(x, 3, padding=1, out=a.clone(), backend="cuda")
    torch.testing.assert_close(twice, 2 * a, rtol=1e-6, atol=0)


def _eig(k: int, batch=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(*batch, 3 * k + 7, k, generator=g, dtype=torch.float64)
    return torch.linalg.eigh(a.transpose(-1, -2) @ a)


PROJ_SHAPES = [((), 5, 5), ((), 123, 273), ((), 273, 123), ((3,), 7, 27)]


@pytest.mark.gpu
@pytest.mark.parametrize("use_wv", [False, True])
@pytest.mark.parametrize("alpha", [3.0, 1e4, math.inf])
@pytest.mark.parametrize("batch,out_features,k", PROJ_SHAPES)
def test_scaled_projection_matches_fp64(cuda_ext, batch, out_features, k, alpha, use_wv):
    e, v = _eig(k, batch, seed=out_features)
    w = torch.randn(*batch, out_features, k, dtype=torch.float64)
    ref = scaled_projection(w, e, v, alpha, backend="torch")
    wc, ec, vc = (t.float().to(cuda_ext) for t in (w, e, v))
    wv = wc @ vc if use_wv else None
    got = scaled_projection(wc, ec, vc, alpha, wv=wv, backend="cuda")
    assert got.dtype == torch.float32 and got.shape == w.shape
    # Two chained length-K sums of fp32 products, bounded by |W| |V| |V^T|.
    abs_ref = (w.abs() @ v.abs()) @ v.abs().transpose(-1, -2)
    _assert_close_to_ref(got, ref, abs_ref, 2 * k, 2.0**-24 * (4 if use_wv else 1))


@pytest.mark.gpu
def test_scaled_projection_edge_cases(cuda_ext):
    e, v = _eig(9)
    w = torch.randn(4, 9, dtype=torch.float64)
    wc, vc = w.float().to(cuda_ext), v.float().to(cuda_ext)
    # No energy at all: every lambda is 0.
    zero = scaled_projection(wc, torch.zeros(9, device=cuda_ext), vc, 10.0, backend="cuda")
    assert torch.equal(zero, torch.zeros_like(zero))
    # bf16 weight and negative rounding noise in the eigenvalues, as eigh produces.
    ec = e.float().to(cuda_ext)
    ec[0] = -1e-6
    got = scaled_projection(wc.bfloat16(), ec, vc, 5.0, backend="cuda")
    ref = scaled_projection(w.bfloat16().double(), ec.double().cpu(), v, 5.0, backend="torch")
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double().cpu(), ref.bfloat16().double(), rtol=1e-2, atol=1e-2)


@pytest.mark.gpu
def test_errors_are_clear(cuda_ext):
    from sap_kernels.kernels.cuda import _loader

    k = _loader.kernels()
    errors = (RuntimeError, ValueError, TypeError)  # C++ TORCH_CHECK / the CuPy path's checks
    x = torch.randn(8, 3, device=cuda_ext)
    with pytest.raises(errors, match="out is on"):
        k.gram_(x, torch.zeros(3, 3))
    with pytest.raises(errors, match="out has shape"):
        k.gram_(x, torch.zeros(4, 4, device=cuda_ext))
    with pytest.raises(errors, match="must be float32"):
        k.gram_(x.int(), torch.zeros(3, 3, device=cuda_ext))
    with pytest.raises(errors, match="groups=4"):
        k.conv_gram_(
            torch.randn(2, 6, 5, 5, device=cuda_ext), [3, 3], [1, 1], [0, 0], [0, 0], [1, 1], 4,
            torch.zeros(4, 1, 1, device=cuda_ext),
        )
