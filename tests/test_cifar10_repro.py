"""End-to-end smoke run of ``python/cifar10.py`` at its tiny scale (a few hundred images of the shared
CIFAR-10 copy, one label set, one seed, every arm): records appended, a rerun resumes, and the
summary prints; and the GPU script in its tiny mode. About 30-60 s each on 2 cores."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sap_kernels.datasets import shared_cifar10_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_cifar10_dir()


@pytest.fixture
def cifar10_script(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "python"))
    threads = torch.get_num_threads()
    import cifar10
    yield cifar10
    torch.set_num_threads(threads)


@pytest.mark.skipif(not (SHARED / "cifar10-jpg.tar.gz").is_file(),
                    reason=f"the shared CIFAR-10 copy is absent ({SHARED})")
def test_tiny_run_writes_every_arm_resumes_and_summarizes(tmp_path, cifar10_script, capsys):
    pytest.importorskip("cleanlab", reason="the cleanlab arms need cleanlab")
    out = tmp_path / "tiny.jsonl"
    argv = ["--scale", "tiny", "--label-sets", "sym25", "--seeds", "0", "--out", str(out), "--threads", "2",
            "--device", "cpu"]
    assert cifar10_script.main(argv) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    arms = {r["arm"] for r in records}
    assert arms == set(cifar10_script.ARMS)
    issues = next(r for r in records if r["arm"] == "package_issues")
    assert issues["detect_trainings"] == 0 and 0.0 <= issues["auroc"] <= 1.0 and "rule" in issues
    for r in records:
        assert r["seconds"] >= 0 and r["config_id"] == records[0]["config_id"]
        if "test_acc" in r:
            assert 0.0 <= r["test_acc"] <= 1.0
    vanilla = next(r for r in records if r["arm"] == "vanilla")
    assert 0.0 <= vanilla["train_acc_noisy"] <= 1.0 and abs(vanilla["noise_rate"] - 0.25) < 0.01
    detect = next(r for r in records if r["arm"] == "cleanlab_cv")
    assert detect["folds"] == 2 and 0.0 <= detect["auroc"] <= 1.0
    assert cifar10_script.main(argv) == 0  # every arm is in the file: nothing runs again
    assert len(out.read_text().splitlines()) == len(records)
    capsys.readouterr()
    assert cifar10_script.main(["--summarize", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| sym25 | sap_plain |" in text and "(b) K-fold CV + cleanlab" in text
    rules = next(r for r in records if r["arm"] == "package_rules")
    assert [c["alpha"] for c in rules["curve"]][0] == float("inf") and len(rules["curve"]) == 14
    assert set(rules["curve"][1]["rules"]) == {"neighbours", "argmax", "confident_learning", "prune_by_noise_rate"}
    assert "| sym25 | corrected (detection alpha) | neighbours |" in text


@pytest.mark.skipif(not (SHARED / "cifar10-jpg.tar.gz").is_file(),
                    reason=f"the shared CIFAR-10 copy is absent ({SHARED})")
def test_the_gpu_script_runs_in_its_tiny_mode_on_cpu(tmp_path):
    """``benchmarks/cifar10_gpu.sh --tiny``: the GPU call's arms, end to end on a few hundred images."""
    import subprocess

    out = tmp_path / "gpu_tiny.jsonl"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "cifar10_gpu.sh"), "--tiny", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    arms = {json.loads(line)["arm"] for line in out.read_text().splitlines()}
    assert arms == {"vanilla", "sap_plain", "sap_val", "package_issues", "retrain_clean"}
    assert "| sym25 | vanilla |" in proc.stdout and "total" in proc.stdout
