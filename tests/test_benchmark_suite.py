"""The pytest-benchmark suite of the ops (``benchmarks/ops``): outside the default test run, and
every benchmark in it runs (once, timing off) and checks its op against the reference it times."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_default_run_does_not_collect_the_benchmarks():
    paths = re.findall(r"^testpaths\s*=\s*(.*)$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert paths == ['["tests"]']
    assert not list((ROOT / "tests").rglob("*bench*/test_*.py"))


def test_every_op_benchmark_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/ops", "-v", "-p", "no:cacheprovider", "--benchmark-disable",
         f"--benchmark-storage={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    passed = set(re.findall(r"test_ops\.py::(\S+) PASSED", proc.stdout))
    ops = {"test_gram[torch]", "test_conv_gram[torch]", "test_scaled_projection[torch]", "test_gram_projection"}
    references = {"test_gram_matmul", "test_conv_gram_unfold_matmul", "test_scaled_projection_matmul",
                  "test_gram_projection_eigh_matmul"}
    assert ops | references <= passed, passed
