"""Unusual inputs that once crashed or gave unclear errors: now they work, or the error names the
argument and the caller's model is left exactly as it was."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels


def loader(x, y, bs=16):
    return DataLoader(TensorDataset(x, y), batch_size=bs)


@pytest.fixture
def small():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, torch.randn(40, 6), torch.randint(0, 3, (40,))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- inputs whose size varies across batches work ---------------------------------------------


class FullyConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 3, 3)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x))).mean((2, 3))


def test_images_of_several_sizes_are_kept_per_shape():
    torch.manual_seed(0)
    model = FullyConv()
    sizes = [(6, 8), (9, 7), (6, 8), (5, 5)]
    batches = [(torch.randn(5, 1, *s), torch.randint(0, 3, (5,))) for s in sizes]
    res = sap_kernels.project(model, batches, alpha=30.0, n_trusted=20, progress=False)
    by_hand = sap_kernels.collect(model, batches, progress=False)
    assert res.layers[0].rows == by_hand.streams["c1"].rows == 5 * (48 + 63 + 48 + 25)
    val = [(torch.randn(3, 1, 7, 7), torch.randint(0, 3, (3,))), (torch.randn(3, 1, 4, 9), torch.randint(0, 3, (3,)))]
    swept = sap_kernels.project(model, batches, alphas=[1.0, 100.0], val_loader=val, n_trusted=8, progress=False)
    assert set(swept.scores) == {1.0, 100.0, math.inf}


def test_token_batches_padded_per_batch():
    torch.manual_seed(0)

    class Tok(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc, self.head = nn.Embedding(11, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, input_ids, attention_mask):
            h = torch.relu(self.fc(self.emb(input_ids)))
            m = attention_mask.unsqueeze(-1).float()
            return self.head((h * m).sum(1) / m.sum(1))

    def batch(t):
        ids = torch.randint(1, 11, (4, t))
        mask = torch.ones(4, t, dtype=torch.long)
        mask[0, t // 2:] = 0
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (4,))}

    data = [batch(t) for t in (3, 7, 5)]
    res = sap_kernels.project(Tok(), data, alpha=10.0, n_trusted=12, label_key="labels", progress=False)
    fc = next(r for r in res.layers if r.name == "fc")
    assert fc.rows == sum(int(b["attention_mask"].sum()) for b in data)  # padding rows left out


# --- argument checks ---------------------------------------------------------------------------


def test_integral_counts_of_any_type(small):
    model, x, y = small
    res = sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=np.int64(20), progress=False)
    assert len(res.trusted_indices) == 20


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(alpha="10"), TypeError, "alpha must be a positive number"),
    (dict(alpha=True), TypeError, "alpha must be a positive number"),
    (dict(alpha=-1.0), ValueError, "alpha must be > 0"),
    (dict(alpha=float("nan")), ValueError, "alpha must be > 0"),
    (dict(alphas=10), TypeError, "alphas must be a sequence"),
    (dict(alphas="10"), TypeError, "alphas must be a sequence"),
    (dict(alphas=[]), ValueError, "alphas is empty"),
    (dict(alphas=[1.0, True]), TypeError, "alphas entry"),
    (dict(alpha=1.0, alphas=[1.0, 2.0]), ValueError, "not both"),
    (dict(alpha=1.0, layers=123), TypeError, "layers must be"),
    (dict(alpha=1.0, skip="typo"), ValueError, r"skip=\['typo'\] matched no"),
    (dict(alpha=1.0, layers="typo"), ValueError, r"layers=\['typo'\] matched no"),
    (dict(alpha=1.0, batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(alpha=1.0, batch_size=-1), ValueError, "batch_size must be a positive integer"),
    (dict(alpha=1.0, n_trusted=0), ValueError, "n_trusted must be a positive integer"),
    (dict(alpha=1.0, n_trusted=2.5), ValueError, "n_trusted must be a count"),
    (dict(alpha=1.0, n_trusted="5"), TypeError, "n_trusted must be a positive integer"),
    (dict(alpha=1.0, eig_dtype=torch.float16), ValueError, "eig_dtype must be"),
    (dict(alpha=1.0, eig_dtype="float16"), ValueError, "eig_dtype must be"),
    (dict(alpha=1.0, solver="lu"), ValueError, "solver must be"),
    (dict(alphas=[1.0], solver="solve"), ValueError, "needs one fixed alpha"),
    (dict(alpha=1.0, trusted="best"), ValueError, "trusted must be one of"),
    (dict(alpha=1.0, trusted=3.5), TypeError, "trusted must be"),
    (dict(alpha=1.0, trusted=[1, 99]), ValueError, "beyond the 40 samples"),
    (dict(alpha=1.0, inplace=1), TypeError, "inplace must be True or False"),
    (dict(alpha=1.0, holdout=1.5), ValueError, "holdout must be None or a fraction"),
    (dict(alpha=1.0, backend="bogus"), ValueError, "bogus"),
    (dict(alpha=1.0, class_balanced="yes"), TypeError, "class_balanced must be True or False"),
    (dict(alpha=1.0, batch_fn=3), TypeError, "batch_fn must be callable"),
    (dict(alpha=1.0, loss_fn=3), TypeError, "loss_fn must be callable"),
    # every sample trusted, labels not fitted, no val_loader: nothing left to choose alpha on
    (dict(n_trusted=40), ValueError, "every training sample is trusted .40. and the model does not fit"),
])
def test_bad_arguments_are_named_and_leave_the_model_alone(small, kwargs, error, match):
    model, x, y = small
    before = _state(model)
    kwargs = {"n_trusted": 20, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        sap_kernels.project(model, loader(x, y), inplace=kwargs.pop("inplace", True), **kwargs)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_eig_dtype_by_name(small):
    model, x, y = small
    a = sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=40, eig_dtype="float64", solver="eigh",
                            progress=False)
    b = sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=40, eig_dtype=torch.float64, solver="eigh",
                            progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_backend_environment_variable_is_validated_on_every_path(small, monkeypatch):
    model, x, y = small
    monkeypatch.setenv("SAP_KERNELS_BACKEND", "bogus")
    with pytest.raises(ValueError, match="SAP_KERNELS_BACKEND"):
        sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=40, progress=False)


# --- models and loaders of the wrong kind ------------------------------------------------------


def test_meta_device_model_is_named(small):
    _, x, y = small
    with torch.device("meta"):
        model = nn.Linear(6, 3)
    with pytest.raises(ValueError, match="meta device"):
        sap_kernels.project(model, loader(x, y), alpha=1.0, n_trusted=10, progress=False)


def test_model_that_cannot_be_copied_suggests_inplace(small):
    _, x, y = small

    class Locked(nn.Linear):
        def __init__(self):
            super().__init__(6, 3)
            self.lock = threading.Lock()

    with pytest.raises(TypeError, match="inplace=True"):
        sap_kernels.project(Locked(), loader(x, y), alpha=1.0, n_trusted=10, progress=False)
    res = sap_kernels.project(Locked(), loader(x, y), alpha=1.0, n_trusted=10, progress=False, inplace=True)
    assert res.layers


def test_a_dataset_instead_of_a_loader_is_named(small):
    model, x, y = small
    with pytest.raises(TypeError, match="DataLoader"):
        sap_kernels.project(model, TensorDataset(x, y), alpha=1.0, n_trusted=10, progress=False)
    with pytest.raises(TypeError, match="val_loader is a Dataset"):
        sap_kernels.project(model, loader(x, y), val_loader=TensorDataset(x, y), n_trusted=10, progress=False)


def test_a_generator_as_val_loader_is_read_once_and_cached(small):
    model, x, y = small
    reads = []

    def val():
        for i in range(0, 40, 10):
            reads.append(i)
            yield x[i:i + 10], y[i:i + 10]

    res = sap_kernels.project(model, loader(x, y), val_loader=val(), alphas=[1.0, 10.0, 100.0], n_trusted=20,
                              progress=False)
    assert reads == [0, 10, 20, 30]
    want = sap_kernels.project(model, loader(x, y), val_loader=loader(x, y, 10), alphas=[1.0, 10.0, 100.0],
                               n_trusted=20, progress=False)
    assert res.scores == want.scores
