"""Static checks: ``mypy --strict`` on the package (the files and settings in pyproject.toml's
``[tool.mypy]``: the kernel layer, the method layer, the public API, the command line and the
demo), ``ruff check`` on the whole repository (``[tool.ruff]``), and no function in the package
longer than ``MAX_FUNCTION_LINES``. mypy, types-tqdm and ruff come with the ``dev`` extra; each
check skips where its tool is not installed. About 25 s cold, a few seconds with mypy's cache."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Union

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What `mypy` with no arguments must check strictly (pyproject.toml [tool.mypy] files).
MYPY_FILES = ["sap_kernels/ops", "sap_kernels/kernels", "sap_kernels/sap", "sap_kernels/__init__.py",
              "sap_kernels/__main__.py"]
MAX_FUNCTION_LINES = 80

Function = Union[ast.FunctionDef, ast.AsyncFunctionDef]


def test_mypy_strict_on_the_package(tmp_path_factory):
    pytest.importorskip("mypy", reason="mypy is not installed")
    cache = tmp_path_factory.getbasetemp().parent / "sap_kernels_mypy_cache"
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # files and strictness: pyproject.toml
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_mypy_configuration_covers_the_public_api():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    with open(ROOT / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)["tool"]["mypy"]
    assert config.get("strict") is True
    assert set(MYPY_FILES) <= set(config["files"])


def test_ruff_on_the_repository():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    proc = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]


class _Functions(ast.NodeVisitor):
    """``(qualified name, node)`` of every function and method in a module, nested ones included."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[str, Function]] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: Function) -> None:
        self.found.append((".".join([*self.scope, node.name]), node))
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef


def test_no_function_in_the_package_is_too_long():
    """From the ``def`` line to the end of the body (docstring included): split a longer function
    into well-named smaller ones."""
    long = []
    for path in sorted((ROOT / "sap_kernels").rglob("*.py")):
        functions = _Functions()
        functions.visit(ast.parse(path.read_text(), filename=str(path)))
        for name, node in functions.found:
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {name} ({lines} lines)")
    assert not long, f"functions longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
