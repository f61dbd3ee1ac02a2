"""``sap-kernels issues``: the CSV equals ``LabelIssues.to_csv_rows`` of the same call made in
Python, ``--issues-file`` loads back, ``--report`` writes the label-issues section and ``report DIR``
draws it again; every output is checked writable before the work (an entry point that would fail
is never reached); errors are one line, status 2 for what was given, 1 for results not written."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch

typer_testing = pytest.importorskip("typer.testing")

import sap_kernels  # noqa: E402
from sap_kernels.cli.app import app  # noqa: E402

ENTRY = '''
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def loaders():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(72, 1, 6, 6, generator=g), torch.randint(0, 3, (72,), generator=g)
    xv, yv = torch.randn(30, 1, 6, 6, generator=g), torch.randint(0, 3, (30,), generator=g)
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(2))
    return train, DataLoader(TensorDataset(xv, yv), batch_size=15)


def exploding_model():
    raise RuntimeError("the model entry point ran")
'''
ALPHAS = ["1", "10", "100"]


def invoke(*args: str) -> typer_testing.Result:
    return typer_testing.CliRunner().invoke(app, list(args), prog_name="sap-kernels")


@pytest.fixture(scope="module")
def entry(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("entry") / "issue_entry.py"
    path.write_text(ENTRY)
    return path


@pytest.fixture(scope="module")
def module(entry):
    spec = importlib.util.spec_from_file_location("cli_issues_entry", entry)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run(entry, tmp_path_factory):
    out = tmp_path_factory.mktemp("issues")
    result = invoke("issues", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--alphas", *ALPHAS,
                    "--n-trusted", "36", "--rule", "argmax", "--out", str(out / "csv" / "issues.csv"),
                    "--issues-file", str(out / "issues.safetensors"), "--report", str(out / "report"), "--quiet")
    return result, out


def test_help_lists_the_options():
    res = invoke("issues", "--help")
    assert res.exit_code == 0, res.output
    for option in ("--model", "--data", "--out", "--rule", "--issues-file", "--report", "--alpha", "--alphas",
                   "--n-trusted", "--weights", "--label-key", "--seed", "--quiet"):
        assert option in res.output, option
    assert "issues" in invoke("--help").output


def test_csv_equals_the_same_call_in_python(run, module):
    result, out = run
    assert result.exit_code == 0, result.output
    assert result.output == ""  # --quiet
    train, val = module.loaders()
    res = sap_kernels.project(module.build_model(), train, val_loader=val, alphas=[float(a) for a in ALPHAS],
                              n_trusted=36, progress=False)
    want = res.label_issues(train, rule="argmax", progress=False)
    with open(out / "csv" / "issues.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [[str(c) for c in row] for row in want.to_csv_rows()]
    assert len(rows) == 1 + 72 and rows[0][0] == "position"
    loaded = sap_kernels.LabelIssues.load(out / "issues.safetensors")
    assert torch.equal(loaded.is_issue, want.is_issue) and torch.equal(loaded.positions, torch.arange(72))


def test_report_holds_the_section_and_is_drawn_again(run):
    result, out = run
    assert result.exit_code == 0, result.output
    report = out / "report"
    data = json.loads((report / "report.json").read_text())
    assert data["label_issues"]["rule"] == "argmax" and data["label_issues"]["n_samples"] == 72
    (report / "index.html").unlink()
    again = invoke("report", str(report))
    assert again.exit_code == 0, again.output
    assert "<h2>Label issues</h2>" in (report / "index.html").read_text()


def test_prints_the_issues_without_quiet(entry, tmp_path):
    out = tmp_path / "i.csv"
    res = invoke("issues", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--alpha", "10",
                 "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "LabelIssues:" in res.output and f"labels flagged: {out}" in res.output


def _one_line(result: typer_testing.Result, status: int) -> str:
    assert result.exit_code == status, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sap-kernels issues: error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("option", ["--out", "--issues-file", "--report"])
def test_unwritable_output_fails_before_the_work(entry, tmp_path, option):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    paths = {"--out": str(tmp_path / "ok.csv"), "--issues-file": str(tmp_path / "ok.safetensors"),
             "--report": str(tmp_path / "rep")}
    paths[option] = str(blocker / "below") if option != "--report" else str(blocker)
    args = [a for k, v in paths.items() for a in (k, v)]
    line = _one_line(invoke("issues", "--model", f"{entry}:exploding_model", "--data", f"{entry}:loaders", *args), 2)
    assert option in line and "entry point ran" not in line
    assert not (tmp_path / "ok.csv").exists()


def test_errors_in_what_was_given_are_status_2(entry, tmp_path):
    out = str(tmp_path / "x.csv")
    line = _one_line(invoke("issues", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--out", out,
                            "--layers", "no_such_layer", "--alpha", "10"), 2)
    assert "no_such_layer" in line
    bad = invoke("issues", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--out", out,
                 "--rule", "vote")
    assert bad.exit_code == 2 and "vote" in bad.output


def test_results_that_cannot_be_written_are_status_1(entry, tmp_path, monkeypatch):
    from sap_kernels.cli import issues as issues_cli

    def refuse(issues, path):
        raise OSError(28, f"cannot write {path!r}: No space left on device")

    monkeypatch.setattr(issues_cli, "write_csv", refuse)
    line = _one_line(invoke("issues", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--alpha",
                            "10", "--out", str(tmp_path / "x.csv"), "--quiet"), 1)
    assert "x.csv" in line and "No space left" in line
