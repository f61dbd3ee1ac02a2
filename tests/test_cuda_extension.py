"""The compiled extension: it builds (nvcc, sm_90 only), it registers no operator, and loading it
before or after ``sap_kernels.ops.library`` (which owns the op schemas) works in both orders.

The build is cached under the system temp dir, keyed by the sources, ``setup.py`` and the torch
version, so only the first run pays for it (measured: about 3 minutes on 2 cores; ``MAX_JOBS``
defaults to 2 here). Nothing is run on a GPU: the module is only imported and its host-only
functions (split plan, constants) are called. Skips where nvcc or the CUDA headers are missing.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 900


def _cuda_home() -> Optional[str]:
    nvcc = None
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root and (Path(root) / "bin" / "nvcc").is_file():
            nvcc = Path(root) / "bin" / "nvcc"
    nvcc = nvcc or (Path(shutil.which("nvcc")) if shutil.which("nvcc") else None)
    if nvcc is None:
        return None
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), str(nvcc.resolve().parents[1]),
                 "/usr/local/cuda"):
        has_headers = root and (Path(root) / "include" / "cuda_runtime_api.h").is_file()
        if has_headers and (Path(root) / "bin" / "nvcc").exists():
            return root
    return None


def _cache_dir() -> Path:
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted((ROOT / "csrc").iterdir()) + [ROOT / "setup.py"]:
        h.update(path.name.encode() + path.read_bytes())
    return Path(tempfile.gettempdir()) / "sap_kernels_ext" / h.hexdigest()[:16]


@pytest.fixture(scope="module")
def extension() -> Path:
    """Path of the built ``_C`` shared library (built once per source version)."""
    home = _cuda_home()
    if home is None:
        pytest.skip("nvcc / CUDA toolkit headers not found (set CUDA_HOME)")
    out = _cache_dir()
    found = sorted(out.glob("lib/sap_kernels/_C*.so"))
    if found:
        return found[0]
    env = dict(os.environ, SAP_KERNELS_BUILD_CUDA="1", SAP_KERNELS_CUDA_ARCHS="90", CUDA_HOME=home,
               MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(out / "lib"), "--build-temp",
         str(out / "tmp")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, f"extension build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    (out / "build_seconds.txt").write_text(f"{time.monotonic() - start:.0f}\n")
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return sorted(out.glob("lib/sap_kernels/_C*.so"))[0]


LOAD_EXTENSION = """
    import importlib.util, sys
    import torch  # an extension links against torch's libraries: torch is imported first, always
    spec = importlib.util.spec_from_file_location("sap_kernels._C", {so!r})
    ext = importlib.util.module_from_spec(spec)
    sys.modules["sap_kernels._C"] = ext
    spec.loader.exec_module(ext)
"""
CHECK = """
    import torch
    from sap_kernels.kernels.cuda import _loader
    from sap_kernels.ops import dispatch
    assert _loader.kernels() is sys.modules["sap_kernels._C"], _loader.kernels()
    assert not isinstance(dispatch.load_backend("cuda"), str)
    schema = str(torch.ops.sap_kernels.gram_.default._schema)
    assert "precision" in schema and "backend" in schema, schema  # the Python-defined schema
    print("OK", schema)
"""


@pytest.mark.parametrize("order", ["extension_first", "library_first"])
def test_extension_and_library_load_in_either_order(extension, order):
    """Both orders used to fail: 'Tried to register an operator multiple times' when the library
    module came second, an abort of the process when the extension came second."""
    load = textwrap.dedent(LOAD_EXTENSION.format(so=str(extension)))
    library = "import sap_kernels.ops.library\n"
    body = load + library if order == "extension_first" else "import sys\n" + library + load
    code = body + textwrap.dedent(CHECK)
    env = dict(os.environ, SAP_KERNELS_CUDA_LOADER="extension")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "OK sap_kernels::gram_(" in proc.stdout


def _load(extension: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("sap_kernels._C", str(extension))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pybind_params(fn) -> list[str]:
    """Argument names from a pybind11 docstring's signature line ``name(a: T, b: U) -> R``."""
    first = fn.__doc__.splitlines()[0]
    inside = first[first.index("(") + 1 : first.rindex(")")]
    return [part.split(":")[0].strip() for part in re.split(r",\s*(?![^\[]*\])", inside) if part.strip()]


def test_both_build_paths_expose_the_same_functions(extension):
    """The extension and the CuPy path (``_cupy.py``): same function names and arguments, same
    constants and struct sizes, the same split plan on many shapes (host code, no GPU)."""
    from sap_kernels.kernels.cuda import _cupy, _loader

    ext = _load(extension)
    for name in _loader.FUNCTIONS:
        assert _pybind_params(getattr(ext, name)) == list(inspect.signature(getattr(_cupy, name)).parameters), name
    assert ext.constants() == _cupy.constants()
    for rows in (1, 15, 16, 17, 255, 256, 257, 4099, 69_696, 10**6, 10**9):
        for tiles in (1, 2, 3, 10, 136, 1000, 8256, 10**6):
            for acc in (4, 8):
                assert tuple(ext.plan_splits(rows, tiles, acc)) == _cupy.plan_splits(rows, tiles, acc), (rows, tiles)


def test_extension_rejects_bad_arguments_before_any_launch(extension):
    ext = _load(extension)
    with pytest.raises(RuntimeError, match="x must be a CUDA tensor"):
        ext.gram_(torch.randn(4, 3), torch.zeros(3, 3))
    with pytest.raises(RuntimeError, match="rows and tiles must be > 0"):
        ext.plan_splits(0, 1, 4)
