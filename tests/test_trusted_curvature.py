"""``strategy="curvature"``: the published scripts' input-curvature score, against a plain
reference written from the published code (a loop over batches and random +-1 directions, one
gradient of the loss difference per direction), same seed, same samples chosen."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels


def reference_curvature(model, x, y, batch_size, seed, h=1e-3, niter=10):
    """Per sample: mean over ``niter`` directions v (+-1, scaled by h) of
    ``|| grad_x [CE(x + h v) - CE(x)] ||``, CE the batch mean, batches in order."""
    g = torch.Generator().manual_seed(seed)
    model.eval()
    out = []
    for a in range(0, len(y), batch_size):
        xb, yb = x[a:a + batch_size], y[a:a + batch_size]
        total = torch.zeros(len(yb), dtype=torch.float64)
        for _ in range(niter):
            v = torch.randint(0, 2, xb.shape, generator=g).to(xb)
            v[v == 0] = -1
            v = h * (v + 1e-7)
            xr = xb.clone().requires_grad_(True)
            diff = F.cross_entropy(model(xr + v), yb) - F.cross_entropy(model(xr), yb)
            grad = torch.autograd.grad(diff, xr)[0]
            total += grad.reshape(len(yb), -1).norm(dim=1).double()
        out.append(total / niter)
    return torch.cat(out)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(6 * 6 * 6, 4)).double()
    x, y = torch.randn(70, 1, 6, 6, dtype=torch.float64), torch.randint(0, 4, (70,))
    return model, x, y


@pytest.mark.parametrize("balanced", [False, True])
def test_curvature_selects_what_the_published_score_selects(setup, balanced):
    model, x, y = setup
    ref = reference_curvature(model, x, y, batch_size=16, seed=5)
    got = sap_kernels.select_trusted(model, DataLoader(TensorDataset(x, y), batch_size=16), n_trusted=20,
                                     strategy="curvature", class_balanced=balanced, seed=5, progress=False)
    assert torch.allclose(got.scores.double(), ref[got.indices], rtol=1e-6, atol=0)
    if balanced:
        want = []
        for c in range(4):
            mine = (y == c).nonzero().squeeze(1)
            want += mine[torch.argsort(ref[mine], stable=True)[:5]].tolist()
    else:
        want = torch.argsort(ref, stable=True)[:20].tolist()
    assert sorted(got.indices.tolist()) == sorted(want)


def test_curvature_differs_from_loss_and_needs_float_inputs(setup):
    model, x, y = setup
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    by_loss = sap_kernels.select_trusted(model, loader, n_trusted=20, class_balanced=False, progress=False)
    by_curv = sap_kernels.select_trusted(model, loader, n_trusted=20, class_balanced=False, strategy="curvature",
                                         progress=False)
    assert set(by_loss.indices.tolist()) != set(by_curv.indices.tolist())
    ids = DataLoader(TensorDataset(torch.randint(0, 5, (8, 3)), torch.randint(0, 2, (8,))), batch_size=4)
    emb = nn.Sequential(nn.Embedding(5, 4), nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(TypeError, match="curvature.*float input"):
        sap_kernels.select_trusted(emb, ids, n_trusted=4, strategy="curvature", progress=False)
