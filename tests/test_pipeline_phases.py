"""The method as phases: each usable alone, ``project`` their composition, statistics on disk."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from models import PROJECTED, MixedNet
from reference import reference_project
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels

ROOT = Path(__file__).resolve().parents[1]


def loader(x, y, bs=16):
    return DataLoader(TensorDataset(x, y), batch_size=bs)


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    return MixedNet(), torch.randn(80, 3, 9, 11), torch.randint(0, 7, (80,))


def _weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_phases_compose_to_project(data):
    model, x, y = data
    trusted = sap_kernels.select_trusted(model, loader(x, y), n_trusted=50, progress=False)
    assert len(trusted) == 50 and trusted.n_seen == 80 and trusted.strategy == "loss"
    stats = sap_kernels.collect(model, trusted, progress=False)
    assert {t.name for t in stats.targets} == set(PROJECTED)
    spectra = stats.decompose()
    for alpha in (3.0, 300.0):
        a = sap_kernels.apply(model, spectra, alpha)
        b = sap_kernels.project(model, loader(x, y), alpha=alpha, n_trusted=50, solver="eigh", progress=False)
        for (n, p), (_, q) in zip(a.named_parameters(), b.model.named_parameters()):
            assert torch.equal(p, q), n
    choice = sap_kernels.choose_alpha(model, spectra, loader(x, y), alphas=[1.0, 10.0, 100.0], progress=False)
    assert set(choice.scores) == {1.0, 10.0, 100.0, math.inf} and choice.alpha in choice.scores
    full = sap_kernels.project(model, loader(x, y), n_trusted=50, alphas=[1.0, 10.0, 100.0],
                               val_loader=loader(x, y), progress=False)
    assert full.scores == choice.scores and full.alpha == choice.alpha


def test_statistics_from_a_clean_loader_match_the_float64_reference(data):
    model, x, y = data
    stats = sap_kernels.collect(model, loader(x, y), progress=False)  # every sample trusted
    out = sap_kernels.apply(model, stats, 1e3)
    ref = reference_project(model, x, 1e3, PROJECTED)
    mods = dict(out.named_modules())
    for n in PROJECTED:
        err = (mods[n].weight.double() - ref[n]).norm() / ref[n].norm()
        assert err < 1e-4, n


def test_saved_statistics_apply_in_a_fresh_process_exactly(data, tmp_path):
    model, x, y = data
    torch.save(model.state_dict(), tmp_path / "model.pt")
    trusted = sap_kernels.select_trusted(model, loader(x, y), n_trusted=60, progress=False)
    sap_kernels.collect(model, trusted, progress=False).save(tmp_path / "stats.safetensors")
    alphas = [10.0, 1e3, 1e5]
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        import sap_kernels
        from models import MixedNet
        model = MixedNet()
        model.load_state_dict(torch.load({str(tmp_path / 'model.pt')!r}))
        stats = sap_kernels.Statistics.load({str(tmp_path / 'stats.safetensors')!r})
        for a in {alphas!r}:
            out = sap_kernels.apply(model, stats, a)
            torch.save(out.state_dict(), {str(tmp_path)!r} + f"/applied_{{a:g}}.pt")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    for a in alphas:
        want = sap_kernels.project(model, loader(x, y), alpha=a, n_trusted=60, progress=False).model.state_dict()
        got = torch.load(tmp_path / f"applied_{a:g}.pt")
        assert max(float((got[k] - v).abs().max()) for k, v in want.items()) == 0.0


def test_statistics_refuse_another_model_and_a_tampered_file(data, tmp_path):
    model, x, y = data
    stats = sap_kernels.collect(model, loader(x, y), progress=False)
    path = tmp_path / "s.safetensors"
    stats.save(path)
    other = MixedNet(num_classes=5)
    with pytest.raises(ValueError, match=r"'head'.*shape \[5, 4\].*\[7, 4\].*another model"):
        sap_kernels.apply(other, sap_kernels.Statistics.load(path), 10.0)
    with pytest.raises(ValueError, match="no module"):
        sap_kernels.apply(nn.Sequential(nn.Linear(2, 2)), stats, 10.0)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"]["sap_kernels"] = header["__metadata__"]["sap_kernels"].replace('"format_version": 1',
                                                                                          '"format_version": 99')
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    (tmp_path / "bad.safetensors").write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n:])
    with pytest.raises(ValueError, match="format version 99"):
        sap_kernels.Statistics.load(tmp_path / "bad.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 8 + b"not json at all")
    with pytest.raises(ValueError, match="not a valid sap_kernels statistics file"):
        sap_kernels.Statistics.load(tmp_path / "garbage.safetensors")
    (tmp_path / "pickle.safetensors").write_bytes(b"\x80\x04K\x01.")  # a pickle, never unpickled
    with pytest.raises(ValueError):
        sap_kernels.Statistics.load(tmp_path / "pickle.safetensors")


def test_plan_reports_the_trusted_count_project_will_use(data):
    model, x, y = data
    p = sap_kernels.plan(model, loader(x, y))
    assert p.n_trusted == 20 and any("too few" in n for n in p.notices)
    assert sap_kernels.plan(model, loader(x, y), n_trusted=30).n_trusted == 30


def test_project_dry_run_points_to_plan(data):
    model, x, y = data
    with pytest.raises(TypeError, match="sap_kernels.plan"):
        sap_kernels.project(model, loader(x, y), dry_run=True)


def test_readme_first_call_on_a_500_sample_loader():
    """The README's five-minute snippet, as written, on a loader of 500 samples."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4))
    x, y = torch.randn(600, 3, 4), torch.randint(0, 4, (600,))
    train_loader = DataLoader(TensorDataset(x[:500], y[:500]), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[500:], y[500:]), batch_size=64)

    res = sap_kernels.project(model, train_loader, val_loader=val_loader)
    assert res.model is not model and res.alpha in res.scores
    assert len(res.trusted_indices) == 125 and any("125" in n for n in res.notices)
    assert "alpha" in repr(res)
    plain = sap_kernels.project(model, train_loader, progress=False)  # without validation data, too
    assert plain.rule and "training samples" in plain.validation


def test_trusted_by_given_positions_or_a_clean_loader(data):
    model, x, y = data
    given = [3, 10, 11, 40, 70, 79]
    res = sap_kernels.project(model, loader(x, y), trusted=given, alpha=100.0, progress=False)
    assert res.trusted_indices.tolist() == given
    by_hand = sap_kernels.collect(model, loader(x[given], y[given]), progress=False)
    want = sap_kernels.apply(model, by_hand, 100.0)
    for (n, p), (_, q) in zip(res.model.named_parameters(), want.named_parameters()):
        assert torch.equal(p, q), n
    clean = sap_kernels.project(model, loader(x, y), trusted=loader(x[given], y[given]), alpha=100.0,
                                progress=False)
    for (n, p), (_, q) in zip(clean.model.named_parameters(), want.named_parameters()):
        assert torch.equal(p, q), n
    swept = sap_kernels.project(model, loader(x, y), trusted=loader(x[given], y[given]), alphas=[1.0, 10.0],
                                progress=False)
    assert set(swept.scores) == {1.0, 10.0, math.inf}
