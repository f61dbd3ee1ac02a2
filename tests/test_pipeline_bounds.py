"""Bounds and refusals checked before any work: rounds whose alpha would overflow, seeds beyond
int64, solver='solve' where only spectra serve, ``plan`` on loaders starting with empty batches."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import sap_kernels


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def _batches(sizes=(8, 8)):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)) for n in sizes]


@pytest.mark.parametrize("kw, words", [
    (dict(alpha=10.0, rounds=10**6), "rounds=1000000 is too many"),
    (dict(rounds=400), "rounds=400 is too many"),
    (dict(alpha=10.0, seed=2**70), "seed must be in [0, 2**63)"),
    (dict(alpha=10.0, seed=-1), "seed must be in [0, 2**63)"),
    (dict(alpha=0.9, mode="gpm", solver="solve"), "solver='solve'"),
    (dict(alpha=10.0, rounds=2, solver="solve"), "solver='solve'"),
    (dict(alpha=10.0, location="all", solver="solve"), "solver='solve'"),
])
def test_named_errors_up_front(kw, words):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        sap_kernels.project(model, _batches(), progress=False, **kw)
    assert words in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_rounds_at_the_bound_are_accepted():
    from sap_kernels.sap.options.configs import check_rounds

    check_rounds(300, [1e6])
    with pytest.raises(ValueError, match="rounds <= 303"):
        check_rounds(304, [1e6])


def test_plan_skips_empty_first_batches():
    want = sap_kernels.plan(_model(), _batches((8, 8)), progress=False)
    got = sap_kernels.plan(_model(), _batches((0, 0, 8, 8)), progress=False)
    assert [la.rows_per_sample for la in got.layers] == [la.rows_per_sample for la in want.layers]
    assert got.layers[0].rows_per_sample == 1


def test_plan_on_only_empty_batches_is_named():
    with pytest.raises(ValueError, match="no samples .*2 batches were all empty"):
        sap_kernels.plan(_model(), _batches((0, 0)), progress=False)


def _stats_file(tmp_path, corrupt: bool):
    model = _model()
    stats = sap_kernels.collect(model, _batches((64,)), progress=False)
    if corrupt:
        for s in stats.streams.values():
            assert s.gram is not None
            s.gram[0] = -torch.eye(s.gram.shape[-1], dtype=s.gram.dtype)
    path = str(tmp_path / "stats.safetensors")
    stats.save(path)
    return model, path


def test_indefinite_gram_from_a_file_names_layer_and_file(tmp_path):
    model, path = _stats_file(tmp_path, corrupt=True)
    stats = sap_kernels.Statistics.load(path)
    with pytest.raises(ValueError, match="layer '0'.*stats.safetensors.*positive semi-definite"):
        sap_kernels.apply(model, stats, 10.0)


def test_eigendecomposition_failure_names_the_layer(monkeypatch):
    from sap_kernels.sap.spectra import decomposition

    def fail(*a, **k):
        raise torch.linalg.LinAlgError("did not converge")

    monkeypatch.setattr(decomposition, "decompose", fail)
    stats = sap_kernels.collect(_model(), _batches((64,)), progress=False)
    with pytest.raises(ValueError, match="layer .*eigendecomposition of its Gram failed"):
        stats.decompose()


def test_save_after_release_is_refused_at_save_time(tmp_path):
    stats = sap_kernels.collect(_model(), _batches((64,)), progress=False)
    stats.decompose(release=True)
    path = tmp_path / "released.safetensors"
    with pytest.raises(ValueError, match="release=True"):
        stats.save(str(path))
    assert not path.exists()
    kept = sap_kernels.collect(_model(), _batches((64,)), progress=False)
    kept.decompose(release=False)
    kept.save(str(path))
    assert sap_kernels.Statistics.load(str(path)).source == str(path)
