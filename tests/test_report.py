"""The report page and the saved result: files written, figures drawn, the page renders in a
headless Chromium with every image loaded (where Chromium is installed), weights load back."""
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

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 3))
    x, y = torch.randn(120, 2, 5, 5), torch.randint(0, 3, (120,))
    return sap_kernels.project(model, DataLoader(TensorDataset(x, y), batch_size=16), progress=False,
                               val_loader=DataLoader(TensorDataset(x[:40], y[:40]), batch_size=16))


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_files_and_contents(result, tmp_path):
    page = result.save_report(tmp_path / "r")
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"index.html", "report.json", "alpha_sweep.png", "spectra.png"} <= files
    html = open(page).read()
    assert '<img src="alpha_sweep.png"' in html and '<img src="spectra.png"' in html
    assert all(layer.name in html for layer in result.layers)
    data = json.load(open(tmp_path / "r" / "report.json"))
    assert data["alpha"] == (None if result.alpha == float("inf") else result.alpha)
    assert len(data["scores"]) == len(result.scores) and len(data["layers"]) == len(result.layers)
    for png in ("alpha_sweep.png", "spectra.png"):
        assert (tmp_path / "r" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "r" / "spectra.png").unlink()
    render_report(tmp_path / "r")  # drawn again from report.json alone
    assert (tmp_path / "r" / "spectra.png").exists()
    with pytest.raises(FileNotFoundError, match="not a SAP report directory"):
        render_report(tmp_path)


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium_with_every_image(result, tmp_path):
    page = result.save_report(tmp_path)
    proc = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'data-images="2/2"' in proc.stdout, proc.stdout[-3000:]


def test_saved_weights_load_back(result, tmp_path):
    from safetensors.torch import load_model

    result.save(tmp_path / "model.safetensors")
    fresh = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 3))
    load_model(fresh, tmp_path / "model.safetensors")
    for (n, p), (_, q) in zip(fresh.named_parameters(), result.model.named_parameters()):
        assert torch.equal(p, q), n
    meta = json.load(open(str(tmp_path / "model.safetensors") + ".json"))
    assert meta["rule"] == result.rule
