"""The neighbours' vote (``sap.issues.neighbours``): votes against a float64 brute force on random
features with odd sizes (several chunks), the head's input taken from the model (also through a
view of the logits), ties, and the fallback to the probabilities where no head output is the logits."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels
from sap_kernels.sap.issues import neighbours as nb
from sap_kernels.sap.issues.rules import flag


def _brute_votes(feats: torch.Tensor, y: torch.Tensor, c: int, k: int) -> torch.Tensor:
    unit = feats.double() / feats.double().norm(dim=1, keepdim=True)
    out = torch.zeros(len(y), c, dtype=torch.float64)
    for i in range(len(y)):
        sim = unit @ unit[i]
        sim[i] = -float("inf")
        for j in torch.argsort(sim, descending=True)[:k].tolist():
            out[i, int(y[j])] += 1.0 / k
    return out


@pytest.mark.parametrize("n,d,c,k", [(1037, 13, 7, 20), (61, 5, 3, 1), (40, 9, 4, 39), (2, 3, 2, 5)])
def test_votes_match_a_float64_brute_force(n: int, d: int, c: int, k: int) -> None:
    g = torch.Generator().manual_seed(n)
    feats = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 10  # norms differ: cosine, not dot
    y = torch.randint(0, c, (n,), generator=g)
    votes = nb.neighbour_votes(feats, y, c, k)
    assert votes.shape == (n, c) and votes.dtype == torch.float32
    assert float((votes.double() - _brute_votes(feats, y, c, min(k, n - 1))).abs().max()) < 1e-6


def test_a_single_sample_votes_for_its_own_label() -> None:
    votes = nb.neighbour_votes(torch.randn(1, 4), torch.tensor([2]), 3, 20)
    assert torch.equal(votes, torch.tensor([[0.0, 0.0, 1.0]]))


def test_ties_keep_the_given_label_and_the_model_is_one_vote() -> None:
    labels = torch.tensor([0, 1, 2])
    dist = torch.tensor([[0.5, 0.5, 0.0], [0.6, 0.4, 0.0], [0.2, 0.3, 0.5]])
    assert flag_list(labels, dist) == [False, True, False]
    votes = torch.tensor([[0.5, 0.5, 0.0]])
    probs = torch.tensor([[0.2, 0.8, 0.0]])
    combined = nb.combine(votes, probs, 4)  # (4 * votes + probs) / 5
    assert torch.allclose(combined, torch.tensor([[0.44, 0.56, 0.0]]))
    assert flag(torch.tensor([0]), probs, "neighbours", votes=votes, k=4).tolist() == [True]
    with pytest.raises(ValueError, match="neighbours"):
        flag(torch.tensor([0]), probs, "neighbours")


def flag_list(labels: torch.Tensor, dist: torch.Tensor) -> list[bool]:
    return [bool(v) for v in nb.flag_against(labels, dist)]


class Binary(nn.Module):
    """One logit per sample through a view (squeeze) of the head's output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x))).squeeze(1)


class Scaled(nn.Module):
    """Logits that no layer outputs (a temperature after the head)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x) / 2.0


def test_the_head_input_is_taken_through_a_view_of_the_logits() -> None:
    torch.manual_seed(0)
    m = Binary().eval()
    x = torch.randn(9, 6)
    with nb.head_inputs(m) as heads:
        out = m(x)
        feats = heads.take(out, 9)
    assert feats is not None
    assert torch.allclose(feats, torch.tanh(m.body(x)).detach())


def test_no_head_output_falls_back_to_the_probabilities_with_a_notice() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    m = Scaled()
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    res = sap_kernels.project(m, loader, alpha=10.0, n_trusted=10, progress=False)
    li = res.label_issues(loader, progress=False)
    assert li.rule == "argmax" and any("neighbours' features" in n for n in li.notices)
    assert torch.equal(li.is_issue, li.probabilities.argmax(1) != y)


def test_neighbours_must_be_a_positive_int() -> None:
    x, y = torch.randn(12, 6), torch.randint(0, 3, (12,))
    res = sap_kernels.project(Scaled(), DataLoader(TensorDataset(x, y), batch_size=4), alpha=10.0, progress=False)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="neighbours"):
            res.label_issues(DataLoader(TensorDataset(x, y), batch_size=4), progress=False, neighbours=bad)


def test_more_samples_than_the_exact_vote_takes_fall_back_with_a_notice(monkeypatch) -> None:
    monkeypatch.setattr(nb, "MAX_SAMPLES", 20)
    import sap_kernels.sap.issues.finding as finding
    import sap_kernels.sap.issues.scoring as scoring

    monkeypatch.setattr(finding, "MAX_SAMPLES", 20)
    monkeypatch.setattr(scoring, "MAX_SAMPLES", 20)
    torch.manual_seed(0)
    x, y = torch.randn(30, 6), torch.randint(0, 2, (30,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    res = sap_kernels.project(Binary(), loader, alpha=10.0, n_trusted=10, progress=False)
    li = res.label_issues(loader, progress=False)
    assert li.rule == "argmax" and any("30 samples are more than" in n for n in li.notices)
