"""The channels-last policy (``sap.runtime.layout``): same results, hooks counted once, and a model whose
code depends on its memory layout keeps the caller's layout."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import sap_kernels
from sap_kernels.sap.runtime import layout


class _Conv(nn.Module):
    """Two convs and a head; ``flatten`` decides how the 4-d activation becomes rows."""

    def __init__(self, flatten: str = "reshape"):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 6, 3)
        self.fc = nn.Linear(6 * 5 * 5, 4)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c2(torch.relu(self.c1(x))))
        if self.flatten == "view":  # raises on a channels-last activation
            h = h.view(h.shape[0], -1)
        elif self.flatten == "raw":  # reads memory in the order it lies in: silently different
            h = h.as_strided((h.shape[0], h[0].numel()), (h[0].numel(), 1))
        else:
            h = h.reshape(h.shape[0], -1)
        return self.fc(h)


def _data(n: int = 40, seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, 7, 7, generator=g), torch.randint(0, 4, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def _grams(model: nn.Module, monkeypatch: pytest.MonkeyPatch, on: bool) -> dict[str, torch.Tensor]:
    monkeypatch.setenv(layout.ENV_VAR, "1" if on else "0")
    stats = sap_kernels.collect(model, _data(), progress=False)
    return {k: s.gram.clone() for k, s in stats.streams.items() if s.gram is not None}


@pytest.mark.parametrize("flatten, verdict", [("reshape", True), ("view", False), ("raw", False)])
def test_verdict_and_statistics_match_the_callers_layout(flatten, verdict, monkeypatch):
    torch.manual_seed(0)
    model = _Conv(flatten).eval()
    off = _grams(model, monkeypatch, on=False)
    on = _grams(model, monkeypatch, on=True)
    assert layout._verdicts.get(model) is verdict
    assert off.keys() == on.keys() and off
    for k in off:  # the trial batch was not counted twice: same sums up to rounding
        assert torch.allclose(on[k], off[k], rtol=1e-5, atol=1e-6 * float(off[k].abs().max())), k


def test_projection_is_the_same_either_way(monkeypatch):
    torch.manual_seed(1)
    model = _Conv().eval()
    runs = []
    for on in (False, True):
        monkeypatch.setenv(layout.ENV_VAR, "1" if on else "0")
        runs.append(sap_kernels.project(model, _data(), n_trusted=24, alpha=100.0, progress=False).model)
    for (n, p), (_, q) in zip(runs[0].named_parameters(), runs[1].named_parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), n


def test_gradient_passes_and_non_image_inputs_keep_their_layout():
    model = _Conv().eval()
    x = torch.randn(2, 3, 7, 7)
    assert not layout._candidate(model, x)  # gradients on
    with torch.no_grad():
        assert layout._candidate(model, x)
        assert not layout._candidate(model, torch.randn(2, 7, 7))
        assert not layout._candidate(nn.Linear(7, 2), torch.randn(2, 3, 7, 7))


def test_agreement_rule():
    a = torch.tensor([1.0, -2.0, math.inf, math.nan])
    assert layout.agree(a, a.clone())
    assert layout.agree(a, a + torch.tensor([1e-6, 0.0, 0.0, 0.0]))
    assert not layout.agree(a, a + torch.tensor([0.1, 0.0, 0.0, 0.0]))
    assert not layout.agree(a, torch.tensor([1.0, -2.0, -math.inf, math.nan]))
    assert not layout.agree(a, torch.tensor([1.0, -2.0, math.inf, 0.0]))
    assert not layout.agree((a, a), (a,))
    assert layout.agree({"logits": a, "n": torch.tensor([3])}, {"logits": a.clone(), "n": torch.tensor([3])})
    assert not layout.agree({"n": torch.tensor([3])}, {"n": torch.tensor([4])})
    assert not layout.agree("text", "text")  # nothing to compare: keep the caller's layout


class _Picky(_Conv):
    """Counts the samples of every call; refuses batches smaller than ``least`` (a model written
    for one batch size)."""

    def __init__(self, least: int = 1):
        super().__init__()
        self.least, self.calls = least, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        if x.shape[0] < self.least:
            raise RuntimeError(f"this model needs batches of at least {self.least}")
        return super().forward(x)


@pytest.mark.parametrize("least, verdict", [(1, True), (layout.TRIAL_SAMPLES + 1, False)])
def test_the_trial_runs_a_few_samples_and_a_failing_trial_keeps_the_callers_layout(least, verdict, monkeypatch):
    monkeypatch.setenv(layout.ENV_VAR, "1")
    torch.manual_seed(2)
    model = _Picky(least).eval()
    data = _data(n=32)  # two batches of 16
    stats = sap_kernels.collect(model, data, progress=False)
    assert layout._verdicts.get(model) is verdict
    trial = [layout.TRIAL_SAMPLES] * (2 if verdict else 1)  # the channels-last run is skipped once one fails
    assert model.calls == trial + [16, 16]
    assert stats.n_samples == 32
