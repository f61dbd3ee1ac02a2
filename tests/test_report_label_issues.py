"""The report's label-issues section: files, report.json's ``label_issues``, the page (and in
headless Chromium where installed, every image loaded), the grid of flagged images read from a
shuffling loader at the right positions, no grid for non-image inputs, drawing again from
report.json, old reports without the section, atomic writes and their errors."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels
from sap_kernels.report import render_report
from sap_kernels.report.issues import GRID_FILE, fetch_samples

pytest.importorskip("matplotlib")

NAMES = ["cat", "dog", "owl"]


def _image_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 6 * 6, 3))


@pytest.fixture(scope="module")
def run():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(90, 1, 6, 6, generator=g), torch.randint(0, 3, (90,), generator=g)
    x[:, 0, 0, 0] = torch.arange(90, dtype=torch.float32)  # each image carries its dataset index
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    res = sap_kernels.project(_image_model(), train, alpha=10.0, progress=False)
    issues = res.label_issues(train, class_names=NAMES, progress=False)
    assert issues.n_issues > 0
    return res, issues, train, x


@pytest.fixture(scope="module")
def saved(run, tmp_path_factory):
    res, issues, train, _ = run
    directory = tmp_path_factory.mktemp("report")
    return directory, res.save_report(directory, issues=issues, samples=train)


def test_section_files_json_and_page(run, saved):
    _, issues, _, _ = run
    tmp_path, page = saved
    files = {p.name for p in tmp_path.iterdir()}
    assert {"index.html", "report.json", "label_issues_pairs.png", "label_issues_samples.png", GRID_FILE} <= files
    assert not [f for f in files if f.startswith(".tmp-")]
    section = json.loads((tmp_path / "report.json").read_text())["label_issues"]
    assert section["n_issues"] == issues.n_issues and section["n_samples"] == len(issues)
    assert section["pair_counts"] == issues.pair_counts().tolist()
    assert section["top_pairs"] == [list(t) for t in issues.summary()]
    assert section["class_names"] == NAMES and section["rule"] == issues.rule
    ranked = issues.ranked().tolist()
    assert [row[0] for row in section["top"]] == ranked[:len(section["top"])]
    assert section["grid"]["positions"] == issues.issues()[:24].tolist()
    html = open(page).read()
    assert "<h2>Label issues</h2>" in html and f"{issues.n_issues} of {len(issues)} labels flagged" in html
    assert '<img src="label_issues_pairs.png"' in html and '<img src="label_issues_samples.png"' in html
    for png in ("label_issues_pairs.png", "label_issues_samples.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_holds_the_flagged_positions_inputs_from_a_shuffling_loader(run):
    _, issues, train, x = run
    samples = fetch_samples(issues, train, k=5)
    assert samples.positions == issues.issues()[:5].tolist() and samples.why == ""
    assert torch.equal(samples.images, x[samples.positions])


def test_redraw_from_report_json_and_the_saved_samples(saved, tmp_path):
    shutil.copytree(saved[0], tmp_path, dirs_exist_ok=True)  # the shared report stays as it was
    for name in ("index.html", "label_issues_pairs.png", "label_issues_samples.png"):
        (tmp_path / name).unlink()
    render_report(tmp_path)
    html = (tmp_path / "index.html").read_text()
    assert (tmp_path / "label_issues_samples.png").exists() and (tmp_path / "label_issues_pairs.png").exists()
    assert "<h2>Label issues</h2>" in html
    (tmp_path / GRID_FILE).unlink()  # without the samples file the page is still drawn, without the grid
    (tmp_path / "label_issues_samples.png").unlink()
    render_report(tmp_path)
    assert not (tmp_path / "label_issues_samples.png").exists() and "<h2>Label issues</h2>" in (
        tmp_path / "index.html").read_text()


def test_old_report_without_the_section_is_drawn_as_before(run, tmp_path):
    res, _, _, _ = run
    res.save_report(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert "label_issues" not in data
    render_report(tmp_path)
    assert "Label issues" not in (tmp_path / "index.html").read_text()
    assert not (tmp_path / "label_issues_pairs.png").exists()


def test_no_grid_for_inputs_that_are_not_images_and_without_samples(tmp_path):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 5, generator=g), torch.randint(0, 2, (60,), generator=g)
    train = DataLoader(TensorDataset(x, y), batch_size=20)
    torch.manual_seed(0)
    res = sap_kernels.project(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)), train, alpha=3.0,
                              progress=False)
    issues = res.label_issues(train, rule="argmax", progress=False)
    if issues.n_issues == 0:
        pytest.skip("nothing flagged on this draw")
    res.save_report(tmp_path / "a", issues=issues, samples=train)
    section = json.loads((tmp_path / "a" / "report.json").read_text())["label_issues"]
    assert section["grid"]["file"] is None and "not an image" in section["grid"]["why"]
    assert "No grid of samples: the inputs have shape [5]" in (tmp_path / "a" / "index.html").read_text()
    assert not (tmp_path / "a" / "label_issues_samples.png").exists()
    res.save_report(tmp_path / "b", issues=issues)
    assert "no samples loader was given" in (tmp_path / "b" / "index.html").read_text()
    with pytest.raises(ValueError, match="issues="):
        res.save_report(tmp_path / "c", samples=train)


def test_unwritable_directory_is_an_oserror_naming_it(run, tmp_path):
    res, issues, _, _ = run
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="file"):
        res.save_report(blocker / "report", issues=issues)
    with pytest.raises(OSError, match="not a directory"):
        res.save_report(blocker, issues=issues)


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_section_renders_in_headless_chromium_with_every_image(run, tmp_path):
    res, issues, train, _ = run
    page = res.save_report(tmp_path, issues=issues, samples=train)
    proc = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = 1 + int((tmp_path / "alpha_sweep.png").exists()) + int((tmp_path / "spectra.png").exists()) + 1
    assert f'data-images="{shown}/{shown}"' in proc.stdout, proc.stdout[-3000:]
