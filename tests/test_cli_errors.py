"""The command line's errors: exit status 0 on success, 2 for usage errors and errors in what was
given (bad option values, an oversized --seed, entry points that do not resolve, a --label-key the
batches lack, a report.json with fields of the wrong type, an output that cannot be written,
checked before any work), 1 for failures after the work started (an error raised by the user's
own --model/--data callable, results that cannot be written, with the old files left whole);
each one line on stderr, ``sap-kernels <command>: error: ...``, the traceback only with --debug."""
from __future__ import annotations

import errno
import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import sap_kernels
from sap_kernels import file_sets
from sap_kernels.cli import common
from sap_kernels.cli.app import main
from sap_kernels.report.data import report_data

ENTRY = '''
import torch
from torch import nn


def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)]


def loaders():
    return _data(48, 1), _data(32, 2)


def dict_loaders():
    return [{"x": x, "y": y} for x, y in _data(48, 1)], None


def exploding_model():
    raise RuntimeError("the model entry point ran")


def exploding_data():
    raise ValueError("no data today")
'''

RAISES_ON_IMPORT = "raise OSError('the dataset server is down')\n"


@pytest.fixture(scope="module")
def entry(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("entry")
    (folder / "cli_errors_entry.py").write_text(ENTRY)
    (folder / "raises_on_import.py").write_text(RAISES_ON_IMPORT)
    return str(folder / "cli_errors_entry.py")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(list(args))
    return status, capsys.readouterr().err


def one_line(status: int, err: str, want: int, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == want, err
    assert len(lines) == 1 and lines[0].startswith(f"sap-kernels {command}: error: ".replace(" :", ":")), err
    assert "Traceback" not in err
    return lines[0]


def project_args(entry: str, out: Path, *more: str, model: str = "build_model", data: str = "loaders") -> list[str]:
    return ["project", "--model", f"{entry}:{model}", "--data", f"{entry}:{data}", "--out", str(out), "--quiet",
            *more]


# --- usage errors --------------------------------------------------------------------------------


def test_usage_errors_are_one_line(capsys):
    line = one_line(*run(capsys, "project", "--alpha", "1"), 2, "project")
    assert "--model" in line and "sap-kernels project -h" in line
    line = one_line(*run(capsys, "no_such_command"), 2, "")
    assert "no_such_command" in line
    line = one_line(*run(capsys, "project", "--alpha", "x", "--model", "a:b", "--data", "a:b", "--out", "o"), 2,
                    "project")
    assert "--alpha" in line


@pytest.mark.parametrize("seed", [str(2 ** 70), str(2 ** 63), "-1"])
@pytest.mark.parametrize("command", ["project", "issues"])
def test_a_seed_outside_what_project_takes_is_a_usage_error(entry, tmp_path, capsys, seed, command):
    args = project_args(entry, tmp_path / "x", "--seed", seed, model="exploding_model")
    args[0] = command
    line = one_line(*run(capsys, *args), 2, command)
    assert "--seed" in line and "2**63" in line and seed in line
    assert not (tmp_path / "x").exists()


def test_the_largest_seed_is_taken(entry, tmp_path, capsys):
    status, err = run(capsys, *project_args(entry, tmp_path / "w.safetensors", "--alpha", "10",
                                            "--seed", str(2 ** 63 - 1)))
    assert status == 0, err
    assert (tmp_path / "w.safetensors").is_file() and (tmp_path / "w.safetensors.json").is_file()


# --- what was given ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["project", "issues"])
def test_a_label_key_the_batches_lack_names_the_option(entry, tmp_path, capsys, command):
    args = project_args(entry, tmp_path / "x", "--label-key", "labels", "--alpha", "10", data="dict_loaders")
    args[0] = command
    line = one_line(*run(capsys, *args), 2, command)
    assert "--label-key 'labels'" in line and "'y'" in line


def test_an_entry_point_that_does_not_resolve_is_status_2_before_the_model_runs(entry, tmp_path, capsys):
    line = one_line(*run(capsys, *project_args(entry, tmp_path / "x", model="exploding_model", data="nothing")), 2,
                    "project")
    assert "--data" in line and "nothing" in line


def test_missing_weights_are_status_2_before_the_model_runs(entry, tmp_path, capsys):
    args = project_args(entry, tmp_path / "x", "--weights", str(tmp_path / "none.safetensors"),
                        model="exploding_model")
    line = one_line(*run(capsys, *args), 2, "project")
    assert "--weights" in line and "none.safetensors" in line


# --- the user's own callables --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["project", "issues"])
@pytest.mark.parametrize("which, kind, words", [
    ("model", "exploding_model", ["--model", "exploding_model", "RuntimeError", "the model entry point ran"]),
    ("data", "exploding_data", ["--data", "exploding_data", "ValueError", "no data today"]),
])
def test_errors_raised_by_the_users_callables_are_status_1(entry, tmp_path, capsys, command, which, kind, words):
    args = project_args(entry, tmp_path / "x", **{which: kind})
    args[0] = command
    line = one_line(*run(capsys, *args), 1, command)
    assert all(w in line for w in words), line


def test_a_module_raising_on_import_is_status_1(entry, tmp_path, capsys):
    other = os.path.join(os.path.dirname(entry), "raises_on_import.py")
    status, err = run(capsys, "project", "--model", f"{other}:build", "--data", f"{entry}:loaders", "--out",
                      str(tmp_path / "x"))
    line = one_line(status, err, 1, "project")
    assert "--model" in line and "OSError" in line and "the dataset server is down" in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_with_the_same_status(entry, tmp_path, capsys, where):
    args = project_args(entry, tmp_path / "x", model="exploding_model")
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    status, err = run(capsys, *args)
    assert status == 1 and "Traceback" in err and "the model entry point ran" in err
    status, err = run(capsys, "--debug", "report", str(tmp_path / "nowhere"))
    assert status == 2 and "Traceback" in err and "report.json" in err
    assert not common.debugging()  # the next call starts without it


# --- outputs -------------------------------------------------------------------------------------


class _OsWithFullDisk:
    """``os`` as the output checks see it, with every ``write`` failing: a full disk."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def write(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _ReadOnlyTempfile:
    """``tempfile`` as the output checks see it, in a folder where nothing can be created."""

    @staticmethod
    def mkstemp(**kwargs: Any) -> Any:
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS))


@pytest.mark.parametrize("failure, words", [("full", "No space left"), ("read-only", "Read-only file system")])
@pytest.mark.parametrize("command, option", [("project", "--out"), ("project", "--report"), ("issues", "--out"),
                                             ("issues", "--report")])
def test_an_output_that_cannot_be_written_fails_before_the_work(entry, tmp_path, capsys, monkeypatch, failure,
                                                                words, command, option):
    pytest.importorskip("matplotlib")
    args = project_args(entry, tmp_path / "out.x", "--report", str(tmp_path / "rep"), model="exploding_model")
    args[0] = command
    real = common.check_writable_dir if option == "--report" else common.check_writable_file

    def checked(path: str, opt: str) -> None:
        with pytest.MonkeyPatch.context() as m:
            if opt == option and failure == "full":
                m.setattr(common, "os", _OsWithFullDisk())
            elif opt == option:
                m.setattr(common, "tempfile", _ReadOnlyTempfile())
            real(path, opt)

    name = "check_writable_dir" if option == "--report" else "check_writable_file"
    module = importlib.import_module(f"sap_kernels.cli.{command}")
    monkeypatch.setattr(module, name, checked)
    line = one_line(*run(capsys, *args), 2, command)
    assert option in line and words in line and "entry point ran" not in line


def test_a_result_that_cannot_be_written_is_status_1_and_the_old_pair_stays(entry, tmp_path, capsys, monkeypatch):
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"old weights")
    Path(f"{out}.json").write_bytes(b"old json")

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(file_sets, "open", full_disk, raising=False)  # the JSON beside the weights
    line = one_line(*run(capsys, *project_args(entry, out, "--alpha", "10")), 1, "project")
    assert str(out) in line and "No space left" in line
    assert out.read_bytes() == b"old weights" and Path(f"{out}.json").read_bytes() == b"old json"
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors", "w.safetensors.json"]


# --- sap-kernels report DIR ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_json() -> dict[str, Any]:
    """A valid report.json of a result without figures (alpha given: no sweep, no spectra)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(48, 4), torch.randint(0, 3, (48,))
    res = sap_kernels.project(model, [(x, y)], alpha=10.0, progress=False)
    data: dict[str, Any] = json.loads(json.dumps(report_data(res)))
    return data


def _write_report(folder: Path, data: Any) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "report.json").write_text(json.dumps(data))
    return str(folder)


def _set(data: dict[str, Any], key: str, value: Any) -> Any:
    data = json.loads(json.dumps(data))
    if value is KeyError:
        del data[key]
    elif key == "layers.K":
        data["layers"][0]["K"] = value
    else:
        data[key] = value
    return data


@pytest.mark.parametrize("key, value, field", [
    ("alpha", "x", "'alpha'"), ("layers", 5, "'layers'"), ("n_samples", KeyError, "'n_samples'"),
    ("scores", {"1": 0.5}, "'scores'"), ("layers.K", "8", "'layers[0].K'"), ("timings", [], "'timings'"),
    ("warnings", [1], "'warnings[0]'"), ("skipped", [["a"]], "'skipped[0]'"),
    ("label_issues", {"n_samples": 3}, "'label_issues.n_issues'"),
])
def test_a_report_json_with_fields_of_the_wrong_type_is_status_2(report_json, tmp_path, capsys, key, value, field):
    pytest.importorskip("matplotlib")
    folder = _write_report(tmp_path / "rep", _set(report_json, key, value))
    line = one_line(*run(capsys, "report", folder), 2, "report")
    assert "report.json" in line and field in line, line


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", '{"format": "other"}'])
def test_a_report_json_that_is_not_a_report_is_status_2(tmp_path, capsys, text):
    (tmp_path / "report.json").write_text(text)
    line = one_line(*run(capsys, "report", str(tmp_path)), 2, "report")
    assert "report.json" in line


def test_report_draws_a_valid_report_and_a_failed_write_is_status_1(report_json, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    folder = _write_report(tmp_path / "rep", report_json)
    status, err = run(capsys, "report", folder)
    assert status == 0, err
    page = Path(folder) / "index.html"
    before = page.read_bytes()
    monkeypatch.setattr(file_sets, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")),
                        raising=False)
    line = one_line(*run(capsys, "report", folder), 1, "report")
    assert "index.html" in line and page.read_bytes() == before
