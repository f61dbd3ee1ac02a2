"""The ``sap-kernels`` command line (typer): help of every command, ``project`` on entry points
written into a temporary directory against ``sap_kernels.project`` itself (exact weights), its
errors, ``--report`` and ``report DIR``. The demo itself is not run here (a minute of training)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

typer_testing = pytest.importorskip("typer.testing")

import sap_kernels  # noqa: E402
from sap_kernels.cli.app import app, main  # noqa: E402
from sap_kernels.cli.common import spread_variadic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = ["1", "10", "100", "1000"]

ENTRY = '''
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 3 * 3, 4))


def loaders():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(96, 1, 8, 8, generator=g), torch.randint(0, 4, (96,), generator=g)
    xv, yv = torch.randn(40, 1, 8, 8, generator=g), torch.randint(0, 4, (40,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=32), DataLoader(TensorDataset(xv, yv), batch_size=20)


def not_a_model():
    return 3


def one_loader():
    return loaders()[0]
'''

PROJECT_OPTIONS = ["--model", "--data", "--weights", "--alpha", "--alphas", "--n-trusted", "--class-balanced",
                   "--no-class-balanced", "--trusted", "--layers", "--skip", "--skip-head", "--label-key",
                   "--input-key", "--threads", "--seed", "--out", "--report", "--quiet"]
DEMO_OPTIONS = ["--noise-rate", "--noise-type", "--seed", "--n-trusted", "--class-balanced", "--no-class-balanced",
                "--epochs", "--alphas", "--threads", "--report"]


def invoke(*args: str) -> typer_testing.Result:
    return typer_testing.CliRunner().invoke(app, list(args), prog_name="sap-kernels")


@pytest.fixture(scope="module")
def entry(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("entry") / "entry_points.py"
    path.write_text(ENTRY)
    return path


@pytest.fixture(scope="module")
def entry_module(entry):
    spec = importlib.util.spec_from_file_location("cli_test_entry_points", entry)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def project_run(entry, tmp_path_factory):
    """One ``project`` run with a report: (result, output directory)."""
    out = tmp_path_factory.mktemp("out")
    result = invoke("project", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders",
                    "--alphas", *ALPHAS, "--n-trusted", "48", "--skip", "2",
                    "--out", str(out / "w" / "fixed.safetensors"), "--report", str(out / "report"), "--quiet")
    return result, out


def test_help_of_every_command_lists_every_option():
    top = invoke("--help")
    assert top.exit_code == 0 and top.output.startswith("Usage: sap-kernels [OPTIONS] COMMAND")
    assert all(name in top.output for name in ("project", "report", "demo"))
    for command, options in (("project", PROJECT_OPTIONS), ("demo", DEMO_OPTIONS), ("report", ["DIR"])):
        res = invoke(command, "--help")
        assert res.exit_code == 0, res.output
        assert res.output.startswith(f"Usage: sap-kernels {command} ")
        missing = [o for o in options if not re.search(rf"{re.escape(o)}\b", res.output)]
        assert not missing, f"{command} --help lacks {missing}:\n{res.output}"
        for entry in _option_entries(res.output):
            assert "[default:" in entry or "[required]" in entry or entry.startswith("-h, --help"), entry
    project_help = " ".join(invoke("project", "--help").output.split())
    assert "[default: loss]" in project_help and "[default: 0]" in project_help  # --trusted, --seed


def _option_entries(help_text: str) -> list[str]:
    """Each option's entry in a help page, its wrapped lines joined."""
    options = help_text.split("\nOptions:\n", 1)[1]
    return [" ".join(e.split()) for e in re.split(r"\n(?=  -)", "\n" + options) if e.strip()]


def test_python_dash_m_help_in_a_subprocess():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "sap_kernels", "--help"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: sap-kernels [OPTIONS] COMMAND")
    assert "project" in proc.stdout and "demo" in proc.stdout and "report" in proc.stdout


def test_main_returns_the_exit_status(capsys):
    assert main(["--help"]) == 0
    assert main([]) == 2  # no command: the help, status 2 as click does
    assert main(["project", "--alpha", "1"]) == 2  # --model, --data, --out missing
    assert "Missing option" in capsys.readouterr().err


def test_variadic_options_are_spread():
    assert spread_variadic(["--alphas", "1", "2", "--seed", "3"], {"--alphas"}) == \
        ["--alphas", "1", "--alphas", "2", "--seed", "3"]
    assert spread_variadic(["--alphas", "-1e3", "--", "x"], {"--alphas"}) == ["--alphas", "-1e3", "--", "x"]
    assert spread_variadic(["--alphas", "--seed", "3"], {"--alphas"}) == ["--alphas", "--seed", "3"]
    assert spread_variadic(["--alphas"], {"--alphas"}) == ["--alphas"]


def test_project_writes_exactly_projects_weights(project_run, entry_module):
    result, out = project_run
    assert result.exit_code == 0, result.output
    assert result.output == ""  # --quiet
    path = out / "w" / "fixed.safetensors"
    model = entry_module.build_model()
    from safetensors.torch import load_model

    load_model(model, str(path))
    train, val = entry_module.loaders()
    expected = sap_kernels.project(entry_module.build_model(), train, val_loader=val,
                                   alphas=[float(a) for a in ALPHAS], n_trusted=48, skip=["2"], progress=False)
    got, want = model.state_dict(), expected.model.state_dict()
    assert got.keys() == want.keys()
    assert max(float((got[k] - want[k]).abs().max()) for k in got) == 0.0
    assert expected.alpha == 100.0  # a finite alpha: the weights compared are projected ones
    assert not torch.equal(got["0.weight"], entry_module.build_model().state_dict()["0.weight"])
    saved = json.loads(Path(str(path) + ".json").read_text())
    assert saved["alpha"] == expected.alpha and saved["validation"] == "val_loader"
    assert [layer["name"] for layer in saved["layers"]] == ["0", "5"]  # "2" skipped


def test_project_prints_the_summary_and_the_files(entry, tmp_path):
    out = tmp_path / "fixed.safetensors"
    result = invoke("project", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders",
                    "--alpha", "100", "--trusted", "random", "--no-class-balanced", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "SAP: alpha = 100" in result.output and f"corrected weights in {out}" in result.output
    assert out.is_file() and Path(str(out) + ".json").is_file()


def test_weights_option_loads_a_state_dict_first(entry, entry_module, tmp_path):
    from safetensors.torch import save_model

    other = entry_module.build_model()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    save_model(other, str(tmp_path / "in.safetensors"))
    out = tmp_path / "fixed.safetensors"
    result = invoke("project", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--alpha", "10",
                    "--weights", str(tmp_path / "in.safetensors"), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    train, val = entry_module.loaders()
    want = sap_kernels.project(other, train, alpha=10.0, progress=False).model.state_dict()
    from safetensors.torch import load_file

    got = load_file(str(out))
    assert all(torch.equal(got[k], want[k]) for k in want)


def _error(result: typer_testing.Result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sap-kernels project: error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_alpha_and_alphas_together_is_an_error(entry, tmp_path):
    line = _error(invoke("project", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders",
                         "--alpha", "10", "--alphas", "1", "10", "--out", str(tmp_path / "x.safetensors")))
    assert "--alpha and --alphas" in line
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("spec, words", [
    ("no_such_module_xyz:build", ["--model", "no_such_module_xyz", "cannot import"]),
    ("{entry}:missing", ["--model", "has no attribute 'missing'"]),
    ("{entry}:not_a_model", ["--model", "not_a_model", "not a torch.nn.Module"]),
    ("{entry}", ["--model", "expected 'package.module:function'"]),
    ("{dir}/nowhere.py:build", ["--model", "no such file"]),
])
def test_bad_model_entry_point_is_an_error(entry, tmp_path, spec, words):
    spec = spec.format(entry=entry, dir=tmp_path)
    line = _error(invoke("project", "--model", spec, "--data", f"{entry}:loaders", "--out",
                         str(tmp_path / "x.safetensors")))
    assert all(w in line for w in words), line


def test_bad_data_and_project_errors_are_one_line(entry, tmp_path):
    out = str(tmp_path / "x.safetensors")
    line = _error(invoke("project", "--model", f"{entry}:build_model", "--data", f"{entry}:one_loader", "--out", out))
    assert "(train_loader, val_loader)" in line
    line = _error(invoke("project", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--out", out,
                         "--layers", "no_such_layer", "--alpha", "10"))
    assert "no_such_layer" in line  # project()'s ValueError
    line = _error(invoke("project", "--model", f"{entry}:build_model", "--data", f"{entry}:loaders", "--out", out,
                         "--n-trusted", "1.5"))
    assert "--n-trusted" in line


def test_report_option_writes_the_page_and_report_renders_it_again(project_run):
    result, out = project_run
    assert result.exit_code == 0, result.output
    report = out / "report"
    page = report / "index.html"
    assert page.is_file() and (report / "report.json").is_file()
    page.unlink()
    again = invoke("report", str(report))
    assert again.exit_code == 0, again.output
    assert again.output.strip() == str(page) and page.is_file()
    missing = invoke("report", str(out / "nowhere"))
    assert missing.exit_code == 2 and "report.json" in missing.output
    assert missing.output.startswith("sap-kernels report: error: ") and len(missing.output.splitlines()) == 1


def test_demo_options_reach_the_experiment_and_report_writes_the_page(entry_module, tmp_path, monkeypatch):
    """``demo`` without its minute of training: ``run_experiment`` is replaced by a stub that
    records the configuration and returns a result holding a real (small) SAP run."""
    from sap_kernels.demo import cli as demo_cli
    from sap_kernels.demo.experiment import ExperimentResult

    train, val = entry_module.loaders()
    sap = sap_kernels.project(entry_module.build_model(), train, val_loader=val, alphas=[1.0, 100.0], progress=False)
    seen = {}

    def fake_run_experiment(config, progress=False):
        seen["config"] = config
        acc = {"vanilla": 0.8, "sap": 0.9, "sap_default": 0.85, "retrain": 1.0}
        return ExperimentResult(config, acc, sap.alpha, dict(sap.scores), 0.25, {"sap": 0.1}, sap_result=sap)

    monkeypatch.setattr(demo_cli, "run_experiment", fake_run_experiment)
    threads = torch.get_num_threads()
    try:
        result = invoke("demo", "--noise-rate", "0.4", "--noise-type", "asymmetric", "--seed", "3", "--n-trusted",
                        "100", "--no-class-balanced", "--epochs", "2", "--alphas", "1", "10", "--threads", "1",
                        "--report", str(tmp_path / "report"))
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    c = seen["config"]
    assert (c.noise_rate, c.noise_type, c.seed, c.n_trusted, c.class_balanced) == (0.4, "asymmetric", 3, 100, False)
    assert c.train.epochs == 2 and c.alphas == (1.0, 10.0)
    assert (tmp_path / "report" / "index.html").is_file()
    assert f"report of the SAP run with validation data: {tmp_path / 'report' / 'index.html'}" in result.output
    bad = invoke("demo", "--noise-type", "pairwise")
    assert bad.exit_code == 2 and "pairwise" in bad.output
