"""``mypy --strict`` on the kernel layer (the per-op Protocols every backend implements) and
``ruff check`` on its files, where those tools are installed (they are not in the ``dev`` extra:
install them with ``pip install mypy ruff``). About 20 s cold, under 1 s with mypy's cache."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL_LAYER = ["sap_kernels/ops", "sap_kernels/kernels", "setup.py", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
    if p.name.startswith(("test_triton_", "test_cuda_", "test_ops_", "test_op_", "test_dispatch", "test_verify",
                          "test_conv_patches", "test_shift_gram", "test_gram_projection", "test_static_"))
)]


def test_mypy_strict_on_the_kernel_layer(tmp_path_factory):
    pytest.importorskip("mypy", reason="mypy is not installed")
    cache = tmp_path_factory.getbasetemp().parent / "sap_kernels_mypy_cache"
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # files and strictness: pyproject.toml
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_ruff_on_the_kernel_layer():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    proc = subprocess.run([ruff, "check", *KERNEL_LAYER], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]
