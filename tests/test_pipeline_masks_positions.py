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
