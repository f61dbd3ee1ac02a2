"""The benchmark script and the GPU check script, exercised on CPU: layer tables against
torchvision, the ``--smoke`` run end to end, and the GPU check script's syntax, the files it
runs, their command lines and the GPU test files' collection."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import bench_gram  # noqa: E402


def _conv_inputs(model: torch.nn.Module, size: int) -> list[tuple]:
    seen = []

    def hook(mod, inp, out):
        x = inp[0]
        seen.append(bench_gram.ConvShape(x.shape[1], x.shape[2], mod.kernel_size[0], mod.stride[0], mod.padding[0]))

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    return seen


def test_layer_tables_match_torchvision():
    tv = pytest.importorskip("torchvision")
    r50 = tv.models.resnet50(weights=None)
    assert sorted(map(repr, _conv_inputs(r50, 224))) == sorted(repr(s) for _, s in bench_gram.resnet50_imagenet())
    r18 = tv.models.resnet18(weights=None, num_classes=10)
    r18.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    r18.maxpool = torch.nn.Identity()
    assert sorted(map(repr, _conv_inputs(r18, 32))) == sorted(repr(s) for _, s in bench_gram.resnet18_cifar())


def test_smoke_run_writes_csv_where_told_and_nowhere_else(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gram.py"), "--smoke",
                          "--smoke-layers", "2", "--out", str(tmp_path / "table.csv")], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert list(cwd.iterdir()) == []
    with open(tmp_path / "table.csv") as f:
        header = f.readline()
        rows = list(csv.DictReader(f))
    assert header.startswith("# device:")
    assert {r["model"] for r in rows if r["kind"] == "conv_gram"} == {"resnet18-cifar", "resnet50-224"}
    methods = {r["method"] for r in rows}
    assert {"unfold+mm", "torch-backend", "triton", "two-torch.mm", "triton-fused"} <= methods
    for r in rows:
        assert float(r["median_ms"]) > 0
        assert float(r["rel_diff_vs_unfold_mm"]) < 1e-5, r
    assert "median_ms" in res.stdout


GPU_CHECK = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def _referenced(kind: str) -> list[str]:
    """Repository paths ``tests/*.py`` or ``benchmarks/*.py`` (``kind``) the GPU check script names."""
    with open(GPU_CHECK) as f:
        text = f.read()
    return sorted(set(re.findall(rf"\b({kind}/[\w./]+\.py)\b", text)))


def test_gpu_check_script_parses_and_everything_it_runs_exists():
    """The GPU check runs once per GPU session, unattended: a renamed test file, a script whose
    arguments changed or a test module that no longer imports would waste that session."""
    subprocess.run(["bash", "-n", GPU_CHECK], check=True)
    tests, scripts = _referenced("tests"), _referenced("benchmarks")
    assert {"tests/test_triton_gpu.py", "tests/test_cuda_build.py"} <= set(tests), tests
    assert {"benchmarks/bench_gram.py", "benchmarks/tune_triton.py", "benchmarks/project_gpu_check.py"} <= set(scripts)
    for path in tests + scripts + ["setup.py"]:
        assert os.path.isfile(os.path.join(ROOT, path)), f"gpu_check.sh refers to a missing {path}"


def test_gpu_check_scripts_accept_their_arguments():
    """Every Python script the GPU check runs imports and parses its command line (``--help``)."""
    for script in _referenced("benchmarks"):
        res = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], capture_output=True, text=True,
                             timeout=300, cwd=ROOT)
        assert res.returncode == 0 and "usage:" in res.stdout, f"{script}: {res.stderr[-2000:]}"
    with open(GPU_CHECK) as f:
        text = f.read()
    for flag in re.findall(r"bench_gram\.py ((?:--[\w-]+ ?)+)", text):
        for option in re.findall(r"--[\w-]+", flag):
            assert option in subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gram.py"),
                                             "--help"], capture_output=True, text=True, timeout=300).stdout


def test_gpu_check_test_files_collect():
    """The GPU test files import and collect here (their tests then skip without a GPU), and the
    ``gpu`` marker the script selects with is registered."""
    tests = _referenced("tests")
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu",
                          "-p", "no:cacheprovider", *tests], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    collected = [line for line in res.stdout.splitlines() if "::" in line]
    assert any(line.startswith("tests/test_cuda_build.py::") for line in collected)
    assert any(line.startswith("tests/test_triton_gpu.py::") for line in collected)


def test_tiling_search_smoke_run(tmp_path):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "tune_triton.py"), "--smoke",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "tune_triton.csv") as f:
        assert f.readline().startswith("# device:")
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}, rows
    # the second tiling of each shape agrees with the first (fp32 "tf32" under the interpreter)
    assert all(float(r["rel_diff"]) < 1e-5 for r in rows)
