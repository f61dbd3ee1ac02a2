"""Property-based: the file writers (``sap_kernels.file_sets.FileSet``, ``SAPResult.save``, the
report) under I/O failures injected at the k-th call of ``os.replace``, ``os.link``, ``os.chmod``,
``open``, ``tempfile.mkstemp`` or safetensors' ``save_file``: every case leaves on disk exactly the
old set of files or exactly the new one, never a mix, no temporary file, and a failure is an
``OSError`` naming the user's path; files written get the user's umask."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import sap_kernels
from sap_kernels import file_sets
from sap_kernels.file_sets import FileSet

FAST = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Faults:
    """Patches the I/O functions the writers use; the ``k``-th call of any of ``names`` (counted
    together, from 0) raises ``OSError(ENOSPC)``, every other call runs as usual."""

    TARGETS: dict[str, tuple[Any, str]] = {
        "replace": (os, "replace"), "link": (os, "link"), "chmod": (os, "chmod"),
        "mkstemp": (tempfile, "mkstemp"), "open": (file_sets, "open"),
        "save_file": (safetensors.torch, "save_file"),
    }

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: list[str], k: int) -> None:
        self.calls, self.k, self.fired = 0, k, False
        for name in names:
            owner, attr = self.TARGETS[name]
            original = getattr(owner, attr) if hasattr(owner, attr) else open
            monkeypatch.setattr(owner, attr, self._wrap(original), raising=False)

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls - 1 == self.k:
                self.fired = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return original(*args, **kwargs)
        return call


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fault_names() -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(sorted(Faults.TARGETS)), min_size=1, max_size=3, unique=True)


def check_outcome(folder: Path, old: dict[str, bytes], new: dict[str, bytes], error: Any, path: str) -> None:
    """The folder holds the old set or the new one; a failure is an OSError naming ``path``."""
    now = snapshot(folder)
    if error is None:
        assert now == new
        for name in new:
            assert (os.stat(folder / name).st_mode & 0o777) == 0o666 & ~umask()
    else:
        assert isinstance(error, OSError) and path in str(error), repr(error)
        assert now == old, (sorted(now), sorted(old))


# --- FileSet on its own --------------------------------------------------------------------------


@FAST
@given(names=st.lists(st.sampled_from(["a.bin", "b.json", "c.png", "index.html"]), min_size=1, max_size=4,
                      unique=True),
       had_old=st.lists(st.booleans(), min_size=4, max_size=4), faults=fault_names(), k=st.integers(0, 14))
def test_a_file_set_is_all_old_or_all_new(tmp_path_factory, monkeypatch, names, had_old, faults, k):
    folder = tmp_path_factory.mktemp("set")
    for name, old in zip(names, had_old):
        if old:
            (folder / name).write_bytes(b"old " + name.encode())
    old = snapshot(folder)
    new = {name: b"new contents of " + name.encode() * 3 for name in names}
    error = None
    with monkeypatch.context() as m:
        Faults(m, faults, k)
        try:
            with FileSet() as files:
                for name in names:
                    files.write(folder / name, lambda tmp, n=name: file_sets.write_text(tmp, new[n].decode()))
        except Exception as exc:  # noqa: BLE001 - what it is is the point of the check
            error = exc
    check_outcome(folder, old, new, error, str(folder))


def test_without_hard_links_the_old_files_are_copied(tmp_path, monkeypatch):
    (tmp_path / "a").write_text("old a")
    (tmp_path / "b").write_text("old b")

    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    real_replace = os.replace
    seen: list[str] = []

    def fail_second(src: str, dst: str) -> None:
        seen.append(dst)
        if len(seen) == 2:
            raise OSError(errno.EIO, "input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_second)
    with pytest.raises(OSError, match="cannot write .*b'"):
        with FileSet() as files:
            files.write(tmp_path / "a", lambda tmp: file_sets.write_text(tmp, "new a"))
            files.write(tmp_path / "b", lambda tmp: file_sets.write_text(tmp, "new b"))
    monkeypatch.undo()
    assert snapshot(tmp_path) == {"a": b"old a", "b": b"old b"}


def test_an_error_in_the_writer_itself_passes_unchanged(tmp_path):
    def broken(tmp: str) -> None:
        raise KeyError("not an I/O error")

    with pytest.raises(KeyError):
        with FileSet() as files:
            files.write(tmp_path / "x", broken)
    assert snapshot(tmp_path) == {}


def test_a_serialiser_error_names_the_path_with_its_errno(tmp_path):
    class SafetensorError(Exception):
        pass

    SafetensorError.__module__ = "safetensors._safetensors_rust"  # where safetensors defines its own

    def full(tmp: str) -> None:
        raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28) at "/x/t"')

    target = str(tmp_path / "w.safetensors")
    with pytest.raises(OSError) as info:
        file_sets.write_file(target, full)
    assert info.value.errno == errno.ENOSPC and target in str(info.value)
    assert snapshot(tmp_path) == {}


# --- SAPResult.save ------------------------------------------------------------------------------


def _result(seed: int) -> sap_kernels.SAPResult:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(48, 4, generator=g), torch.randint(0, 3, (48,), generator=g)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]
    return sap_kernels.project(model, batches, val_loader=batches, alphas=[1.0, 100.0], progress=False)


@pytest.fixture(scope="module")
def results() -> tuple[sap_kernels.SAPResult, sap_kernels.SAPResult]:
    return _result(0), _result(1)


def _saved(result: sap_kernels.SAPResult, folder: Path) -> dict[str, bytes]:
    result.save(folder / "w.safetensors")
    return snapshot(folder)


@FAST
@given(faults=fault_names(), k=st.integers(0, 10), first=st.booleans())
def test_result_save_leaves_the_old_pair_or_the_new(tmp_path_factory, monkeypatch, results, faults, k, first):
    old_result, new_result = results
    new = _saved(new_result, tmp_path_factory.mktemp("reference"))
    folder = tmp_path_factory.mktemp("save")
    old = {} if first else _saved(old_result, folder)
    target = str(folder / "w.safetensors")
    error = None
    with monkeypatch.context() as m:
        Faults(m, faults, k)
        try:
            new_result.save(target)
        except Exception as exc:  # noqa: BLE001
            error = exc
    check_outcome(folder, old, new, error, target)


def test_result_save_into_a_missing_folder_names_the_path(tmp_path, results):
    target = str(tmp_path / "no" / "w.safetensors")
    with pytest.raises(OSError, match="no/w.safetensors"):
        results[0].save(target)


# --- the report ----------------------------------------------------------------------------------
# The figures are stood in for by small files written the same way (into the report's FileSet):
# what is checked here is the set, not the drawing (tests/test_report.py draws them).


def _stand_in(name: str) -> Callable[..., Any]:
    def figure(data: dict[str, Any], path: str, files: Any = None) -> str:
        body = f"{name} at alpha {data['alpha']}"
        return file_sets.write_file(path, lambda tmp: file_sets.write_text(tmp, body), files)
    return figure


def _stand_in_issues(name: str) -> Callable[..., Any]:
    def figure(section: dict[str, Any], *rest: Any) -> str:
        path, files = rest[-2:]
        body = f"{name} of {section['n_issues']} issues"
        return file_sets.write_file(path, lambda tmp: file_sets.write_text(tmp, body), files)
    return figure


@pytest.fixture()
def quick_figures(monkeypatch):
    from sap_kernels.report import issue_plots, plots

    monkeypatch.setattr(plots, "sweep_figure", _stand_in("sweep"))
    monkeypatch.setattr(plots, "spectra_figure", _stand_in("spectra"))
    monkeypatch.setattr(issue_plots, "pairs_figure", _stand_in_issues("pairs"))
    monkeypatch.setattr(issue_plots, "samples_figure", _stand_in_issues("samples"))


@pytest.fixture()
def reports(results, tmp_path_factory, quick_figures) -> tuple[Path, Path]:
    """The old and the new report (the cases copy the old one)."""
    old, new = tmp_path_factory.mktemp("old_report"), tmp_path_factory.mktemp("new_report")
    results[0].save_report(old)
    results[1].save_report(new)
    return old, new


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(faults=st.lists(st.sampled_from(["replace", "link", "open", "mkstemp", "chmod"]), min_size=1, max_size=2,
                       unique=True), k=st.integers(0, 14), first=st.booleans())
def test_a_report_is_written_as_a_set(tmp_path_factory, monkeypatch, results, reports, faults, k, first):
    old_dir, new_dir = reports
    folder = tmp_path_factory.mktemp("report") / "rep"
    if first:
        folder.mkdir()
    else:
        shutil.copytree(old_dir, folder)
    old, new = snapshot(folder), snapshot(new_dir)
    assert sorted(new) == ["alpha_sweep.png", "index.html", "report.json", "spectra.png"]
    error = None
    with monkeypatch.context() as m:
        Faults(m, faults, k)
        try:
            results[1].save_report(folder)
        except Exception as exc:  # noqa: BLE001
            error = exc
    check_outcome(folder, old, new, error, str(folder))


def test_index_html_is_renamed_last(tmp_path, monkeypatch, results, quick_figures):
    order: list[str] = []
    real_replace = os.replace

    def record(src: str, dst: str) -> None:
        order.append(os.path.basename(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", record)
    results[1].save_report(tmp_path)
    assert order[-1] == "index.html" and set(order) == {"alpha_sweep.png", "spectra.png", "report.json",
                                                         "index.html"}


def _image_run(seed: int) -> tuple[sap_kernels.SAPResult, Any, list[Any]]:
    """A result on 1x4x4 images, its label issues (argmax: a random model flags many) and the batches."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 1, 4, 4, generator=g), torch.randint(0, 3, (32,), generator=g)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 32, 16)]
    res = sap_kernels.project(model, batches, val_loader=batches, alphas=[1.0, 100.0], progress=False)
    return res, res.label_issues(batches, rule="argmax", progress=False), batches


@pytest.fixture(scope="module")
def image_runs() -> tuple[Any, Any]:
    return _image_run(0), _image_run(1)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(faults=st.lists(st.sampled_from(["replace", "link", "open", "save_file"]), min_size=1, max_size=2,
                       unique=True), k=st.integers(0, 16))
def test_a_report_with_label_issues_is_written_as_a_set(tmp_path_factory, monkeypatch, quick_figures, image_runs,
                                                        faults, k):
    (old_res, old_issues, old_batches), (new_res, new_issues, new_batches) = image_runs
    folder, reference = tmp_path_factory.mktemp("issues") / "rep", tmp_path_factory.mktemp("reference")
    old_res.save_report(folder, issues=old_issues, samples=old_batches)
    new_res.save_report(reference, issues=new_issues, samples=new_batches)
    old, new = snapshot(folder), snapshot(reference)
    assert {"label_issues_samples.safetensors", "label_issues_pairs.png", "label_issues_samples.png"} <= set(new)
    error = None
    with monkeypatch.context() as m:
        Faults(m, faults, k)
        try:
            new_res.save_report(folder, issues=new_issues, samples=new_batches)
        except Exception as exc:  # noqa: BLE001
            error = exc
    check_outcome(folder, old, new, error, str(folder))
