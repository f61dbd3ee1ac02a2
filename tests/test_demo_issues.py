"""What the digits demo prints about label issues: precision/recall against the known flips
(counted by hand), the printed lines, and the report page's section, without the demo's minute
of training (``run_experiment`` is replaced by a stub holding a real small SAP run)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

typer_testing = pytest.importorskip("typer.testing")

import sap_kernels  # noqa: E402
from sap_kernels.cli.app import app  # noqa: E402
from sap_kernels.demo.experiment import ExperimentResult, issues_found  # noqa: E402
from sap_kernels.demo.report import format_issues  # noqa: E402


def _issues(given, predicted, flagged):
    n = len(given)
    probs = torch.full((n, 3), 0.1)
    probs[torch.arange(n), torch.tensor(predicted)] = 0.8
    return sap_kernels.LabelIssues(torch.arange(n), torch.tensor(given), torch.tensor(predicted),
                                   probs[torch.arange(n), torch.tensor(given)], torch.tensor(flagged), probs,
                                   "argmax")


def test_precision_recall_against_the_flips():
    issues = _issues([0, 1, 2, 0, 1], [1, 1, 0, 2, 1], [True, False, True, True, False])
    flipped = torch.tensor([True, True, False, True, False])
    found = issues_found(issues, flipped)
    assert (found.n_flagged, found.n_flipped) == (3, 3)
    assert found.precision == pytest.approx(2 / 3) and found.recall == pytest.approx(2 / 3)
    assert found.top_pairs == issues.summary()
    text = format_issues(found)
    assert "3 of 5 training labels flagged (60.0%); 3 were flipped" in text
    assert "precision 66.7%" in text and "recall 66.7%" in text and "0 -> 1 (1)" in text
    none = issues_found(_issues([0, 1], [0, 1], [False, False]), torch.tensor([False, True]))
    assert math.isnan(none.precision) and none.recall == 0.0 and "precision n/a" in format_issues(none)


def test_demo_prints_the_issues_and_reports_them(tmp_path, monkeypatch):
    from sap_kernels.demo import cli as demo_cli

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(80, 1, 8, 8, generator=g), torch.randint(0, 3, (80,), generator=g)
    train = DataLoader(TensorDataset(x, y), batch_size=20)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    sap = sap_kernels.project(model, train, alpha=10.0, progress=False)
    found = issues_found(sap.label_issues(train, progress=False), torch.rand(80, generator=g) < 0.25, train)

    def fake_run_experiment(config, progress=False):
        acc = {"vanilla": 0.8, "sap": 0.9, "sap_default": 0.85, "retrain": 1.0}
        return ExperimentResult(config, acc, sap.alpha, {}, 0.25, {"sap": 0.1, "label_issues": 0.01},
                                sap_result=sap, label_issues=found)

    monkeypatch.setattr(demo_cli, "run_experiment", fake_run_experiment)
    result = typer_testing.CliRunner().invoke(app, ["demo", "--report", str(tmp_path / "r")], prog_name="sap-kernels")
    assert result.exit_code == 0, result.output
    assert (f"label issues (res.label_issues: one forward pass, then the neighbours' vote): {found.n_flagged} of 80 "
            f"training labels flagged"
            in result.output)
    assert "precision" in result.output and "recall" in result.output and "label_issues 0.0s" in result.output
    section = json.loads((tmp_path / "r" / "report.json").read_text())["label_issues"]
    assert section["n_issues"] == found.n_flagged
    if found.n_flagged:
        assert (tmp_path / "r" / "label_issues_samples.png").is_file()
