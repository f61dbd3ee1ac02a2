"""Row masks as a user's callable returns them (bool, Hugging Face's int64 0/1 ``attention_mask``,
0/1 floats) and trusted positions (tensors, NumPy arrays, ranges, bool masks, with a hold-out and a
shuffling loader): a correct result or an error naming the argument."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels

B, T, V, E, C = 4, 5, 11, 6, 3


class TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.mix = nn.Linear(E, E)
        self.head = nn.Linear(E, C)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.mix(self.emb(input_ids)))
        m = attention_mask.to(h.dtype).unsqueeze(-1)
        return self.head((h * m).sum(1) / m.sum(1))


def _batches(n_batches: int = 3) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(0, V, (B, T), generator=g)
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        mask = (torch.arange(T)[None] < lengths[:, None]).long()  # int64, as Hugging Face gives it
        out.append(({"input_ids": ids, "attention_mask": mask}, torch.randint(0, C, (B,), generator=g)))
    return out


def _project(row_mask, **kw):
    torch.manual_seed(0)
    model = TokenNet().double()
    kw.setdefault("alpha", 10.0)
    return sap_kernels.project(model, _batches(), n_trusted=8, class_balanced=False, progress=False,
                               row_mask=row_mask, **kw)


def _weights(res) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in res.model.state_dict().items()}


@pytest.mark.parametrize("solver", ["solve", "eigh"])
def test_int64_mask_is_a_mask_not_indices(solver):
    ref = _weights(_project(lambda x: x["attention_mask"].bool(), solver=solver))
    for fn in (lambda x: x["attention_mask"], lambda x: x["attention_mask"].double(),
               lambda x: x["attention_mask"].to(torch.uint8), sap_kernels.sap.data.loaders.attention_mask_rows):
        got = _weights(_project(fn, solver=solver))
        for k in ref:
            assert torch.equal(ref[k], got[k]), k
    unmasked = _weights(_project(None, solver=solver))
    assert not torch.equal(ref["mix.weight"], unmasked["mix.weight"])  # the mask does leave rows out


def test_default_mask_on_the_fused_and_sweep_routes():
    ref = _weights(_project(lambda x: x["attention_mask"].bool(), alpha=None, alphas=[10.0, 100.0]))
    got = _weights(_project(lambda x: x["attention_mask"], alpha=None, alphas=[10.0, 100.0]))
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


@pytest.mark.parametrize("fn, error, words", [
    (lambda x: x["attention_mask"] * 2, ValueError, "other than 0 and 1"),
    (lambda x: x["attention_mask"].double() * 0.5, ValueError, "other than 0 and 1"),
    (lambda x: x["attention_mask"].tolist(), TypeError, "row_mask must return"),
    (lambda x: "mask", TypeError, "row_mask must return"),
    (lambda x: torch.ones(B, T + 1, dtype=torch.bool), ValueError, "[4, 6]"),
    (lambda x: torch.ones(B + 1, T, dtype=torch.bool), ValueError, "[5, 5]"),
    (lambda x: torch.ones(B, dtype=torch.bool), ValueError, "[B, T]"),
    (lambda x: x["attention_mask"].to_sparse(), TypeError, "dense"),
])
@pytest.mark.parametrize("alpha", [10.0, None])
def test_bad_masks_are_named(fn, error, words, alpha):
    with pytest.raises(error, match="row_mask") as info:
        _project(fn, alpha=alpha, alphas=None if alpha else [10.0])
    assert words in str(info.value)


def test_wrong_token_length_names_both_shapes():
    with pytest.raises(ValueError, match="row_mask") as info:
        _project(lambda x: torch.ones(B, T + 1, dtype=torch.bool))
    assert "[4, 6]" in str(info.value) and "[4, 5]" in str(info.value)


# --- trusted positions ---------------------------------------------------------------------------

N = 48


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (N,), generator=g)
    return TensorDataset(x, y)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def _run(trusted, loader=None, **kw):
    kw.setdefault("alpha", 10.0)
    loader = loader if loader is not None else DataLoader(_data(), batch_size=8)
    return sap_kernels.project(_mlp(), loader, trusted=trusted, progress=False, **kw)


GIVEN = [3, 7, 8, 20, 33, 40, 41, 47]


@pytest.mark.parametrize("form", [
    lambda p: torch.tensor(p), lambda p: np.array(p), lambda p: np.array(p, dtype=np.int32),
    lambda p: [np.int64(i) for i in p], lambda p: tuple(p), lambda p: list(p),
    lambda p: np.isin(np.arange(N), p), lambda p: torch.from_numpy(np.isin(np.arange(N), p)),
    lambda p: [bool(b) for b in np.isin(np.arange(N), p)],
])
def test_position_forms_are_positions(form):
    res = _run(form(GIVEN))
    assert res.trusted_indices.tolist() == GIVEN
    ref = _run(torch.tensor(GIVEN))
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, res.model.state_dict()[k])


def test_range_is_positions():
    assert _run(range(4, 12)).trusted_indices.tolist() == list(range(4, 12))


@pytest.mark.parametrize("bad, error, words", [
    (np.isin(np.arange(N + 1), GIVEN), ValueError, "bool mask has 49 entries"),
    (np.zeros(N, dtype=bool), ValueError, "marks no sample"),
    (np.array([1.0, 2.0]), TypeError, "integers or bools"),
    ([], TypeError, "non-empty"),
    ([True, 2], TypeError, "mixes bools and integers"),
    ([N + 3], ValueError, "beyond"),
])
def test_bad_positions_are_named(bad, error, words):
    with pytest.raises(error, match="indices|trusted") as info:
        _run(bad)
    assert words in str(info.value)


@pytest.mark.parametrize("holdout", [0.3, 0.6, 0.9])
def test_given_positions_are_never_held_out(holdout):
    res = _run(GIVEN, alpha=None, alphas=[10.0], holdout=holdout)
    assert res.trusted_indices.tolist() == GIVEN
    assert res.holdout_indices is not None and len(res.holdout_indices)
    assert not set(res.holdout_indices.tolist()) & set(GIVEN)


def test_shuffling_loader_reads_positions_as_dataset_indices():
    plain = _run(GIVEN)
    torch.manual_seed(5)
    shuffled = _run(GIVEN, loader=DataLoader(_data(), batch_size=8, shuffle=True))
    assert shuffled.trusted_indices.tolist() == GIVEN
    for k, v in plain.model.state_dict().items():
        assert torch.allclose(v, shuffled.model.state_dict()[k], rtol=0, atol=1e-12)


def test_ranked_selection_on_a_shuffling_loader_returns_dataset_indices():
    plain = _run("loss", n_trusted=8, class_balanced=False)
    torch.manual_seed(5)
    shuffled = _run("loss", n_trusted=8, class_balanced=False, loader=DataLoader(_data(), batch_size=8, shuffle=True))
    assert shuffled.trusted_indices.tolist() == plain.trusted_indices.tolist()


def test_positions_into_a_subset_sampler_are_refused():
    loader = DataLoader(_data(), batch_size=8, sampler=torch.utils.data.SubsetRandomSampler(range(0, N, 2)))
    with pytest.raises(ValueError, match="shuffle=False"):
        _run([0, 2, 4], loader=loader)


# --- the variant in the result and its report ----------------------------------------------------


@pytest.mark.parametrize("mode, location, rounds, method, spectrum", [
    ("sap", "pre", 1, "solve", False), ("gpm", "pre", 1, "gram", True), ("sgp", "all", 1, "gram", True),
    ("sap", "post", 1, "gram", False), ("sap", "pre", 2, "gram", True), ("sap", "all", 1, "gram", True),
])
def test_variant_and_method_are_reported(mode, location, rounds, method, spectrum, tmp_path):
    from sap_kernels.report.data import read_json, report_data

    alpha = 0.9 if mode == "gpm" else 10.0
    res = _run("loss", n_trusted=40, class_balanced=False, alpha=alpha, mode=mode, location=location, rounds=rounds)
    assert (res.mode, res.location, res.rounds) == (mode, location, rounds)
    for layer in res.layers:
        assert layer.method == method
        assert (layer.eigenvalues is not None) == spectrum
    data = report_data(res)
    assert data["variant"] == {"mode": mode, "location": location, "rounds": rounds}
    assert all((la["energies"] is not None) == spectrum for la in data["layers"])
    import json
    (tmp_path / "report.json").write_text(json.dumps(data))
    assert read_json(tmp_path)["variant"]["mode"] == mode
    del data["variant"]  # an older report.json
    (tmp_path / "report.json").write_text(json.dumps(data))
    assert "variant" not in read_json(tmp_path)
