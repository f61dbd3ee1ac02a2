"""benchmarks/authors_pipeline.py, the published pipeline rebuilt for the benchmark: its per-batch
row budget, and with no subsampling it must equal ``sap_kernels.apply`` (same method, SVD of rows
instead of eigh of the Gram)."""
import copy
import os
import sys

import torch
from torch import nn

import sap_kernels

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import authors_pipeline as ap  # noqa: E402


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 1, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(54, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_rows_per_batch_follow_the_published_formula():
    model, x = _model(), torch.randn(12, 3, 6, 6)
    rows = ap.collect_rows(model, x, max_samples=200, batch_size=5, generator=torch.Generator().manual_seed(0))
    budget = int(200 / (12 / 5)) + 1
    assert rows.per_batch == ap.rows_per_batch(12, 5, 200) == budget == 84
    # 36 patch rows per sample: batches of 5, 5, 2 samples give 180, 180, 72 rows, each cut to the budget
    assert rows.kept["pre:0"] == [84, 84, 72] and rows.kept["post:0"] == [84, 84, 72]
    assert rows.pre["0"].shape == (200, 27) and rows.post["0"].shape == (200, 4)  # 240 kept, final cut to 200
    assert rows.kept["pre:2"] == [45, 45, 18] and rows.pre["2"].shape == (108, 4)  # 1x1 stride 2: 9 rows/sample
    assert rows.kept["pre:5"] == [5, 5, 2] and rows.pre["7"].shape == (12, 8)


def test_without_subsampling_equals_sap_kernels_apply():
    model, x = _model(), torch.randn(12, 3, 6, 6)
    alpha = 100.0
    ours = copy.deepcopy(model)
    rows = ap.collect_rows(ours, x, max_samples=10**9, batch_size=5, output_side=False)
    ap.project_weights(ap.published_layers(ours), ap.projection_matrices(ap.svd_bases(rows.pre), alpha))
    loader = [(x[a:a + 5], torch.zeros(len(x[a:a + 5]), dtype=torch.long)) for a in range(0, 12, 5)]
    ref = sap_kernels.apply(model, sap_kernels.collect(model, loader, progress=False).decompose(progress=False), alpha)
    with torch.no_grad():
        for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
            assert float((p - q).norm() / q.norm()) < 1e-4, name


def test_output_side_and_classifier_flag_change_nothing_in_the_default_setting():
    model, x, y = _model(), torch.randn(12, 3, 6, 6), torch.arange(12) % 3
    runs = []
    for kw in (dict(), dict(project_classifier=False), dict(output_side=False)):
        m = copy.deepcopy(model)
        out = ap.authors_project(m, x, y, 1000.0, n_trusted=6, batch_size=5, ranking="loss", **kw)
        assert out["n_trusted"] == 6
        runs.append([p.detach().clone() for p in m.parameters()])
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], model.parameters()))


def test_trusted_selection_takes_the_lowest_scores_per_class():
    scores = torch.arange(20, dtype=torch.float32)
    labels = torch.arange(20) % 2
    gen = torch.Generator().manual_seed(0)
    picked = ap.select_by_class(scores, labels, 4, 2, generator=gen)
    assert len(picked) == 4 and set(picked.tolist()) <= {0, 1, 2, 3, 4, 5}  # 4 // 2 + 1 = 3 per class, a random 4
    shifted = ap.select_by_class(scores, labels, 4, 2, percentile=0.2, generator=gen)  # moved up 2 of 10 per class
    assert len(shifted) == 4 and set(shifted.tolist()) <= {4, 5, 6, 7, 8, 9}
    forget = ap.select_by_class(scores, labels, 4, 2, lowest=False, generator=gen)
    assert set(forget.tolist()) <= {14, 15, 16, 17, 18, 19}
