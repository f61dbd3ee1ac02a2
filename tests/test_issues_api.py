"""Label issues (phase 6): the pass's probabilities against a float64 reference, positions in the
dataset's order (shuffling, distributed and drop_last loaders), the LabelIssues object (ranking,
summary, printing, files, pandas), binary and dict-batch models, and errors that leave the model as
it was."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import sap_kernels
from sap_kernels import LabelIssues
from sap_kernels.sap.data.order import in_dataset_order
from sap_kernels.sap.issues.rules import flag


class Net(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(3 * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.bn(self.conv(x))).flatten(1)))


def _data(n: int = 53, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 4, 4, generator=g), torch.randint(0, classes, (n,), generator=g)


def _model(classes: int = 5) -> nn.Module:
    torch.manual_seed(1)
    m = Net(classes)
    m.bn.running_mean.uniform_(-0.5, 0.5)
    return m.train()  # the pass must run it in eval mode and give its mode back


def _reference(m: nn.Module, x: torch.Tensor, features: bool = False) -> torch.Tensor:
    """Softmax of the eval-mode logits (or the head's inputs), in float64, one sample at a time."""
    inner = Net(m.head.out_features).double()
    inner.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in m.state_dict().items()})
    inner.eval()
    if features:
        inner.head = nn.Identity()  # type: ignore[assignment]
    with torch.no_grad():
        rows = [inner(x[i:i + 1].double()) for i in range(len(x))]
    return torch.cat(rows) if features else torch.softmax(torch.cat(rows), 1)


def _vote_reference(feats: torch.Tensor, y: torch.Tensor, probs: torch.Tensor, k: int) -> torch.Tensor:
    """``(k * votes + probs) / (k + 1)`` by brute force in float64: each sample's k most cosine-similar
    other samples' labels."""
    unit = feats / feats.norm(dim=1, keepdim=True)
    c = probs.shape[1]
    out = torch.zeros(len(y), c, dtype=torch.float64)
    for i in range(len(y)):
        sim = unit @ unit[i]
        sim[i] = -math.inf
        for j in torch.argsort(sim, descending=True)[:k].tolist():
            out[i, int(y[j])] += 1.0 / k
    return (k * out + probs) / (k + 1)


def _issues(m: nn.Module, loader, **kw) -> LabelIssues:
    res = sap_kernels.project(m, loader, alpha=100.0, n_trusted=20, progress=False)
    return res.label_issues(loader, progress=False, **kw)


def test_probabilities_match_a_float64_reference_and_the_model_is_untouched():
    x, y = _data()
    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    loader = DataLoader(TensorDataset(x, y), batch_size=7)
    res = sap_kernels.project(m, loader, alpha=100.0, n_trusted=20, progress=False)
    li = res.label_issues(loader, progress=False)
    assert m.training and all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    ref = _reference(res.model, x)
    assert float((li.probabilities.double() - ref).abs().max()) < 1e-5
    assert torch.equal(li.positions, torch.arange(len(y)))
    assert torch.equal(li.given_labels, y)
    # The default rule: each sample's 20 nearest others in the head's input space vote, the model once more.
    dist = _vote_reference(_reference(res.model, x, features=True), y, ref, 20)
    given = dist.gather(1, y.view(-1, 1)).view(-1)
    assert li.rule == "neighbours"
    assert float((li.label_quality.double() - given).abs().max()) < 1e-5
    assert torch.equal(li.predicted_labels, dist.argmax(1))
    assert torch.equal(li.is_issue, dist.max(1).values > given + 1e-9)
    assert li.alpha == 100.0 and len(li) == len(y)
    alone = res.label_issues(loader, progress=False, rule="argmax")
    assert torch.equal(alone.predicted_labels, alone.probabilities.argmax(1))
    assert torch.allclose(alone.label_quality, alone.probabilities[torch.arange(len(y)), y])
    assert torch.equal(alone.is_issue, flag(y, alone.probabilities, "argmax"))


def test_a_shuffling_loader_gives_dataset_positions():
    x, y = _data()
    m = _model()
    plain = _issues(m, DataLoader(TensorDataset(x, y), batch_size=7))
    shuffled_loader = DataLoader(TensorDataset(x, y), batch_size=7, shuffle=True,
                                 generator=torch.Generator().manual_seed(3))
    res = sap_kernels.project(m, DataLoader(TensorDataset(x, y), batch_size=7), alpha=100.0, n_trusted=20,
                              progress=False)
    got = res.label_issues(shuffled_loader, progress=False)
    want = res.label_issues(DataLoader(TensorDataset(x, y), batch_size=7), progress=False)
    assert torch.equal(got.positions, want.positions) and torch.equal(got.given_labels, y)
    assert torch.allclose(got.probabilities, want.probabilities, atol=1e-6)
    assert got.notices and "index order" in got.notices[0] and not plain.notices


def test_subset_and_distributed_samplers_give_their_dataset_indices():
    x, y = _data()
    ds = TensorDataset(x, y)
    sampler = DistributedSampler(ds, num_replicas=3, rank=1, shuffle=True, seed=4)
    order = in_dataset_order(DataLoader(ds, batch_size=4, sampler=sampler))
    drawn = torch.tensor(list(sampler))
    assert order.reordered and order.indices is not None
    assert torch.equal(order.indices, torch.unique(drawn))  # this rank's shard, ascending, each once
    assert torch.equal(torch.cat([b[1] for b in order.batches]), y[order.indices])
    sub = [5, 40, 2, 17]
    ordered = in_dataset_order(DataLoader(ds, batch_size=3, sampler=torch.utils.data.SubsetRandomSampler(sub)))
    assert ordered.indices is not None and ordered.indices.tolist() == sorted(sub)
    assert torch.equal(torch.cat([b[1] for b in ordered.batches]), y[sorted(sub)])
    plain = in_dataset_order([(x[:5], y[:5])])
    assert plain.indices is None and not plain.reordered


def test_drop_last_loader_scores_every_sample():
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=10, drop_last=True)
    li = _issues(_model(), loader)
    assert torch.equal(li.positions, torch.arange(len(y)))


def test_loader_of_another_length_and_labels_out_of_range_are_named_errors():
    x, y = _data()
    m = _model()
    res = sap_kernels.project(m, DataLoader(TensorDataset(x, y), batch_size=7), alpha=100.0, n_trusted=20,
                              progress=False)
    before = {k: v.clone() for k, v in res.model.state_dict().items()}
    with pytest.raises(ValueError, match="holds 40 samples but the model was corrected on 53"):
        res.label_issues(DataLoader(TensorDataset(x[:40], y[:40]), batch_size=7), progress=False)
    bad = y.clone()
    bad[30] = 9
    with pytest.raises(ValueError, match=r"labels out of range.*batch 4 has labels \[9\]"):
        res.label_issues(DataLoader(TensorDataset(x, bad), batch_size=7), progress=False)
    with pytest.raises(ValueError, match="rule must be one of"):
        res.label_issues(DataLoader(TensorDataset(x, y), batch_size=7), rule="vote", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="class_names has 2 names but the model outputs 5"):
        res.label_issues(DataLoader(TensorDataset(x, y), batch_size=7), class_names=["a", "b"], progress=False)
    assert all(torch.equal(v, res.model.state_dict()[k]) for k, v in before.items())


class Binary(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, ids: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(ids * scale))).squeeze(1)


def test_binary_model_with_dict_batches():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(41, 6, generator=g), torch.randint(0, 2, (41,), generator=g)
    batches = [{"ids": x[i:i + 8], "scale": torch.ones(len(x[i:i + 8]), 1), "label": y[i:i + 8]}
               for i in range(0, 41, 8)]
    torch.manual_seed(0)
    m = Binary()
    li = sap_kernels.find_label_issues(m, batches, alpha=10.0, n_trusted=12, label_key="label",
                                       progress=False, class_names=["neg", "pos"])
    with torch.no_grad():
        p = torch.sigmoid(sap_kernels.project(m, batches, alpha=10.0, n_trusted=12, label_key="label",
                                              progress=False).model(x, torch.ones(41, 1)))
    assert li.probabilities.shape == (41, 2)
    assert torch.allclose(li.probabilities[:, 1], p, atol=1e-6)
    assert torch.allclose(li.probabilities.sum(1), torch.ones(41))
    assert "neg" in str(li) or "pos" in str(li)


def test_find_label_issues_is_project_then_label_issues():
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=7)
    m = _model()
    got = sap_kernels.find_label_issues(m, loader, n_trusted=20, alphas=[1.0, 100.0], progress=False)
    res = sap_kernels.project(m, loader, n_trusted=20, alphas=[1.0, 100.0], progress=False)
    want = res.label_issues(loader, progress=False)
    assert got.alpha == want.alpha and torch.equal(got.probabilities, want.probabilities)
    assert torch.equal(got.is_issue, want.is_issue)


def _made(quality, given, predicted, issue, classes=3) -> LabelIssues:
    q = torch.tensor(quality)
    probs = torch.full((len(q), classes), 0.0)
    return LabelIssues(torch.arange(10, 10 + len(q)), torch.tensor(given), torch.tensor(predicted), q,
                       torch.tensor(issue), probs, "argmax", 3.0, ["cat", "dog", "eel"])


def test_ranking_summary_and_printing():
    li = _made([0.5, 0.1, 0.9, 0.1, 0.05], [0, 1, 2, 1, 0], [1, 0, 2, 0, 2], [True, True, False, True, True])
    assert li.ranked().tolist() == [14, 11, 13, 10, 12]  # ties by position
    assert li.issues().tolist() == [14, 11, 13, 10]
    assert li.summary() == [(1, 0, 2), (0, 1, 1), (0, 2, 1)]
    counts = li.pair_counts()
    assert counts[1, 0] == 2 and counts[0, 1] == 1 and counts[0, 2] == 1 and int(counts.sum()) == 4
    text = str(li)
    assert "4 of 5 labels flagged" in text and "dog -> cat (2)" in text
    assert text.index("       14") < text.index("       11")  # the least likely label is listed first


def test_save_load_round_trip_and_refusals(tmp_path):
    li = _issues(_model(), DataLoader(TensorDataset(*_data()), batch_size=7), class_names=list("abcde"))
    path = tmp_path / "issues.safetensors"
    li.save(path)
    back = LabelIssues.load(path)
    for k in ("positions", "given_labels", "predicted_labels", "label_quality", "is_issue", "probabilities"):
        assert torch.equal(getattr(back, k), getattr(li, k)), k
    assert (back.rule, back.alpha, back.class_names) == (li.rule, li.alpha, li.class_names)
    stats = tmp_path / "stats.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(stats))
    with pytest.raises(ValueError, match="no sap_kernels label-issues table"):
        LabelIssues.load(stats)
    with pytest.raises(FileNotFoundError, match="no label-issues file"):
        LabelIssues.load(tmp_path / "missing.safetensors")
    with pytest.raises(OSError, match="cannot write"):
        li.save(tmp_path / "no" / "such" / "dir.safetensors")


def test_to_pandas():
    pd = pytest.importorskip("pandas", reason="pandas is in the dev extra")
    li = _made([0.5, 0.1], [0, 1], [1, 1], [True, False])
    df = li.to_pandas()
    assert isinstance(df, pd.DataFrame) and df.index.name == "position" and list(df.index) == [10, 11]
    assert list(df.columns[:4]) == ["given", "predicted", "label_quality", "is_issue"]
    assert "p_cat" in df.columns and bool(df.loc[10, "is_issue"])


def test_unchanged_alpha_is_recorded_as_infinite(tmp_path):
    li = _made([0.5], [0], [1], [True])
    li.alpha = math.inf
    li.save(tmp_path / "a.safetensors")
    assert math.isinf(LabelIssues.load(tmp_path / "a.safetensors").alpha)


@pytest.mark.parametrize("inplace", [False, True])
def test_find_label_issues_scores_at_the_steepest_alpha_when_the_plain_call_keeps_the_model(monkeypatch, inplace):
    """Where project keeps a memorised model for want of a plateau, the labels are scored at the
    steepest point of the agreement curve (the unchanged model would flag nothing), by a copy also
    with inplace=True (the kept model stays as it was)."""
    import dataclasses

    from sap_kernels.sap import find_issues

    grid = [10 ** (k / 2) for k in range(13)]
    curve = dict(zip(grid, [0.2, 0.2, 0.2, 0.2, 0.25, 0.3, 0.55, 0.96, 1.0, 1.0, 1.0, 1.0, 1.0])) | {math.inf: 1.0}
    real = find_issues.project
    calls = []

    def fake(model, loader, **kw):
        calls.append(kw)
        if "alpha" in kw:
            return real(model, loader, **kw)
        res = real(model, loader, **(kw | {"inplace": False}))  # a kept model: the caller's stays as it was
        return dataclasses.replace(res, alpha=math.inf, rule=find_issues.NO_PLATEAU, scores=curve)

    monkeypatch.setattr(find_issues, "project", fake)
    x, y = _data()
    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    li = sap_kernels.find_label_issues(m, DataLoader(TensorDataset(x, y), batch_size=7), n_trusted=20,
                                       progress=False, inplace=inplace)
    assert calls[1]["alpha"] == 1000.0 and li.alpha == 1000.0 and "inplace" not in calls[1]
    assert any("where that agreement falls fastest" in n for n in li.notices)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
