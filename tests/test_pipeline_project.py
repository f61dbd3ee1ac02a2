"""``project`` end to end on small random models: exactness, invariances, selection, reports."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from models import PROJECTED, MixedNet
from reference import reference_project
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels


def loader(x, y, bs=16, shuffle=False):
    return DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=shuffle)


def rel(a, b):
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


@pytest.fixture(scope="module")
def mixed():
    torch.manual_seed(0)
    model = MixedNet()
    x = torch.randn(64, 3, 9, 11)
    y = torch.randint(0, 7, (64,))
    return model, x, y


@pytest.mark.parametrize("solver", ["eigh", "auto"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 10.0, 1e3, 3e4, 1e6])
def test_matches_float64_svd_reference(mixed, alpha, solver):
    model, x, y = mixed
    res = sap_kernels.project(model, loader(x, y), alpha=alpha, n_trusted=64, progress=False, solver=solver)
    ref = reference_project(model, x, alpha, PROJECTED)
    mods = dict(res.model.named_modules())
    errors = {n: rel(mods[n].weight, ref[n]) for n in PROJECTED}
    assert max(errors.values()) < 1e-4, errors
    assert sorted(r.name for r in res.layers) == sorted(PROJECTED)
    methods = {r.method for r in res.layers}
    # A given alpha takes the Cholesky route for every Gram layer unless eigh is asked for.
    assert ("solve" in methods) == (solver == "auto") and ("gram" in methods) == (solver == "eigh")
    solved = [r for r in res.layers if r.method == "solve"]
    assert all(r.eigenvalues is None and r.energy_rank() is None for r in solved)
    assert all(r.eigenvalues is not None for r in res.layers if r.method != "solve")
    assert (" solve" in repr(res)) == bool(solved)  # the report's method column


def test_solver_argument_errors(mixed):
    model, x, y = mixed
    with pytest.raises(ValueError, match="solver must be"):
        sap_kernels.project(model, loader(x, y), alpha=2.0, solver="lu", progress=False)
    with pytest.raises(ValueError, match="needs one fixed alpha"):
        sap_kernels.project(model, loader(x, y), alphas=[1.0, 10.0], solver="solve", progress=False)


def test_float64_model_is_exact(mixed):
    model, x, y = mixed
    m64 = type(model)().double()
    m64.load_state_dict(model.state_dict())
    res = sap_kernels.project(m64, loader(x.double(), y), alpha=1e4, n_trusted=64, progress=False)
    ref = reference_project(m64, x, 1e4, PROJECTED, forward_dtype=torch.float64)
    mods = dict(res.model.named_modules())
    assert max(rel(mods[n].weight, ref[n]) for n in PROJECTED) < 1e-9


def test_batch_size_and_shuffling_do_not_change_the_result(mixed):
    model, x, y = mixed
    a = sap_kernels.project(model, loader(x, y, bs=64), alpha=100.0, n_trusted=64, progress=False)
    b = sap_kernels.project(model, loader(x, y, bs=5, shuffle=True), alpha=100.0, n_trusted=64, progress=False)
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert rel(q, p) < 1e-5, n


def test_alpha_infinity_is_the_identity(mixed):
    model, x, y = mixed
    res = sap_kernels.project(model, loader(x, y), alpha=math.inf, n_trusted=64, progress=False)
    for (n, p), (_, q) in zip(model.named_parameters(), res.model.named_parameters()):
        assert torch.equal(p, q), n


def _snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: m.training for n, m in model.named_modules()},
    )


def _assert_untouched(model, snap):
    state, modes = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert {n: m.training for n, m in model.named_modules()} == modes
    for name, m in model.named_modules():
        assert not m._forward_pre_hooks and not m._forward_hooks, name


def test_callers_model_is_untouched_and_inplace_writes(mixed):
    model, x, y = mixed
    model.train()
    model.c2.eval()  # a mixed mode must come back exactly
    snap = _snapshot(model)
    res = sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=32, progress=False)
    _assert_untouched(model, snap)
    assert res.model is not model
    res2 = sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=32, progress=False, inplace=True)
    assert res2.model is model
    assert torch.allclose(model.c1.weight, res.model.c1.weight)
    assert {n: m.training for n, m in model.named_modules()} == snap[1]
    model.load_state_dict(snap[0])


def test_trusted_samples_are_the_lowest_loss_ones(mixed):
    model, x, y = mixed
    res = sap_kernels.project(model, loader(x, y, bs=7), alpha=10.0, n_trusted=20, class_balanced=False,
                              progress=False)
    with torch.no_grad():
        losses = nn.functional.cross_entropy(model.eval()(x), y, reduction="none")
    expected = set(torch.sort(losses, stable=True).indices[:20].tolist())
    assert set(res.trusted_indices.tolist()) == expected
    res_b = sap_kernels.project(model, loader(x, y, bs=7), alpha=10.0, n_trusted=21, class_balanced=True,
                                progress=False)
    counts = torch.bincount(y[res_b.trusted_indices], minlength=7)
    for c in range(7):
        avail = int((y == c).sum())
        assert int(counts[c]) == min(3, avail)
        in_class = torch.nonzero(y == c).squeeze(1)
        best = in_class[torch.sort(losses[in_class], stable=True).indices[: int(counts[c])]]
        assert set(best.tolist()) <= set(res_b.trusted_indices.tolist())


def test_sweep_on_holdout_and_on_val_loader(mixed):
    model, x, y = mixed
    res = sap_kernels.project(model, loader(x, y), n_trusted=30, alphas=[1.0, 100.0], holdout=0.2, progress=False)
    assert set(res.scores) == {1.0, 100.0, math.inf}
    assert res.alpha in res.scores
    assert res.scores[res.alpha] >= res.scores[math.inf]  # never below the unchanged model
    assert "hold-out" in res.validation
    held = set(res.holdout_indices.tolist())
    assert held and held.isdisjoint(res.trusted_indices.tolist())
    val = sap_kernels.project(model, loader(x, y), val_loader=loader(x[:20], y[:20]), n_trusted=64,
                              alphas=[3.0, 3e3], progress=False)
    assert val.validation == "val_loader" and set(val.scores) == {3.0, 3e3, math.inf}
    assert val.holdout_indices is None
    text = val.summary()
    assert "unchanged" in text and "c1d" in text and "chosen" in text


def test_default_search_scores_every_decade_then_the_alphas_around_the_pick(mixed):
    model, x, y = mixed
    res = sap_kernels.project(model, loader(x, y), n_trusted=30, progress=False)
    scored = sorted(a for a in res.scores if not math.isinf(a))
    decades = [10.0**e for e in range(7)]
    assert all(any(math.isclose(a, d) for a in scored) for d in decades)
    halves = [a for a in scored if not any(math.isclose(a, d) for d in decades)]
    assert 1 <= len(halves) <= 6 and len(scored) == 7 + len(halves)
    assert "coarse-to-fine" in res.rule
    if not math.isinf(res.alpha):  # the alphas within a decade of the pick were scored
        assert all(any(math.isclose(a, res.alpha * 10 ** (f / 2)) for a in scored) for f in (-2, -1, 1, 2)
                   if 1 <= res.alpha * 10 ** (f / 2) <= 1e6 * (1 + 1e-9))


def test_an_explicit_grid_is_scored_in_full(mixed):
    model, x, y = mixed
    grid = [10 ** (e / 2) for e in range(13)]
    res = sap_kernels.project(model, loader(x, y), n_trusted=30, alphas=grid, progress=False)
    assert sorted(a for a in res.scores if not math.isinf(a)) == sorted(grid)
    assert "coarse-to-fine" not in res.rule


def test_unused_and_unsupported_layers_are_reported():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(4, 3)
            self.unused = nn.Linear(4, 3)
            self.norm = nn.LayerNorm(4)
            self.emb = nn.Embedding(5, 4)

        def forward(self, x):
            return self.used(self.norm(x))

    torch.manual_seed(0)
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    res = sap_kernels.project(Net(), loader(x, y), alpha=10.0, n_trusted=20, progress=False)
    reasons = dict(res.skipped)
    assert [r.name for r in res.layers] == ["used"]
    assert "never called" in reasons["unused"]
    assert "normalisation" in reasons["norm"] and "embedding" in reasons["emb"]


def test_layer_selection_by_name_pattern_and_type(mixed):
    model, x, y = mixed
    res = sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=64, layers=["c*"], skip=[nn.Conv3d],
                              progress=False)
    assert sorted(r.name for r in res.layers) == ["c1", "c1d", "c2"]
    assert torch.equal(res.model.head.weight, model.head.weight)
    with pytest.raises(ValueError, match="matched no Linear/Conv"):
        sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=64, layers=["nope*"], progress=False)


# --- bad input: a clear error, and the model exactly as it was ----------------------------


class NaNAfter(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 3)

    def forward(self, x):
        h = self.a(x)
        h = torch.where(x[:, :1] > 3.0, torch.full_like(h, float("nan")), h)
        return self.b(h)


@pytest.mark.parametrize("inplace", [False, True])
def test_errors_are_clear_and_leave_the_model_as_it_was(inplace):
    torch.manual_seed(0)
    model = NaNAfter().train()
    snap = _snapshot(model)
    x, y = torch.rand(30, 4), torch.randint(0, 3, (30,))  # x < 1: no NaN unless planted
    cases = [
        (dict(loader=loader(x[:0], y[:0]), alpha=1.0), "no samples"),
        (dict(loader=loader(x, y + 3), alpha=1.0), "labels out of range"),
        (dict(loader=loader(x, y), alpha=0.0), "alpha must be > 0"),
        (dict(loader=loader(x, y), alpha=-2.0), "alpha must be > 0"),
        (dict(loader=loader(x, y), alphas=[1.0, -1.0]), "alphas entry must be > 0"),
        (dict(loader=loader(x, y), alpha=1.0, n_trusted=31), "larger than the 30"),
        (dict(loader=loader(x, y), alpha=1.0, n_trusted=0), "n_trusted must be a positive int"),
        (dict(loader=[(x, y, y)], alpha=1.0), r"\(inputs, labels\)"),
        (dict(loader=loader(x, y.float()), alpha=1.0), "integer class indices"),
    ]
    xn = x.clone()
    xn[5, 0] = 5.0  # only sample 5 makes layer b see NaN
    cases.append((dict(loader=loader(xn, y), alpha=1.0, n_trusted=30), "'b'"))
    for kwargs, msg in cases:
        kwargs.setdefault("n_trusted", 10)
        with pytest.raises((ValueError, TypeError), match=msg):
            sap_kernels.project(model, progress=False, inplace=inplace, **kwargs)
        _assert_untouched(model, snap)


def test_model_with_nothing_to_project():
    net = nn.Sequential(nn.LayerNorm(3))
    with pytest.raises(ValueError, match="nothing to project"):
        sap_kernels.project(net, loader(torch.randn(4, 3), torch.zeros(4, dtype=torch.long)), alpha=1.0, n_trusted=4)


def test_failure_during_the_sweep_restores_weights_and_modes(mixed):
    model, x, y = mixed
    snap = _snapshot(model)

    class Exploding:
        def __iter__(self):
            yield x[:8], y[:8]
            raise RuntimeError("val data broke")

    with pytest.raises(RuntimeError, match="val data broke"):
        sap_kernels.project(model, loader(x, y), val_loader=Exploding(), n_trusted=64, alphas=[10.0],
                            progress=False, inplace=True)
    _assert_untouched(model, snap)


def test_alpha_choice_smooths_noisy_scores_and_never_loses_to_unchanged():
    from sap_kernels.sap.alpha.rules import best_alpha, smoothed_scores

    grid = [10 ** (e / 4) for e in range(0, 13)]
    # A broad good region around 1e2 with a lone spike at 1e0 (noise): the region wins.
    scores = {a: 0.80 for a in grid}
    scores.update({grid[0]: 0.90, grid[7]: 0.88, grid[8]: 0.89, grid[9]: 0.88, grid[10]: 0.87, grid[6]: 0.87})
    scores[math.inf] = 0.70
    smooth = smoothed_scores(scores)
    assert smooth[grid[8]] == pytest.approx((0.87 + 0.88 + 0.89 + 0.88 + 0.87) / 5)  # +-half decade
    assert smooth[grid[0]] == pytest.approx((0.90 + 0.80 + 0.80) / 3)
    assert best_alpha(scores) == grid[8]
    # The unchanged model beats the smoothed pick's own score: keep it.
    scores[math.inf] = 0.895
    assert best_alpha(scores) == math.inf
    assert best_alpha({math.inf: 0.5}) == math.inf


@pytest.mark.parametrize("solver", ["eigh", "auto"])
def test_many_rows_of_a_wide_layer_stay_float64_accurate(solver):
    """2100 rows of a 2200-wide Linear, spectrum over four decades, alpha 1e5: the dual route
    decomposes in float64 whatever the row count (float32 there erred by 3e-2), and the fixed-
    alpha route builds the Gram from the kept rows when that is cheaper."""
    torch.manual_seed(5)
    k, m = 2200, 2100
    model = nn.Linear(k, 3)
    x = torch.randn(m, k) * torch.logspace(0, -2, k)
    y = torch.randint(0, 3, (m,))
    res = sap_kernels.project(model, loader(x, y, bs=700), alpha=1e5, n_trusted=m, progress=False, solver=solver)
    assert res.layers[0].method == ("rows" if solver == "eigh" else "solve")
    ref = reference_project(model, x, 1e5, [""])[""]
    assert rel(res.model.weight, ref) < 1e-5


def test_few_rows_of_a_wide_layer_keep_the_dual_route_for_a_given_alpha():
    torch.manual_seed(6)
    model = nn.Linear(3000, 4)
    x, y = torch.randn(40, 3000), torch.randint(0, 4, (40,))
    res = sap_kernels.project(model, loader(x, y), alpha=1e3, n_trusted=40, progress=False)
    assert res.layers[0].method == "rows" and res.layers[0].rows == 40
    assert rel(res.model.weight, reference_project(model, x, 1e3, [""])[""]) < 1e-5


class _Counting(nn.Module):
    """Counts the samples its inner model is called on."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.samples = inner, 0

    def forward(self, x):
        self.samples += int(x.shape[0])
        return self.inner(x)


def test_the_unchanged_score_on_training_samples_comes_from_the_ranking_pass(mixed):
    model, x, y = mixed

    def accuracy(output, labels):  # the default score, given explicitly: the sweep scores inf itself
        return (output.argmax(1) == labels).float()

    runs = {}
    for name, score_fn in (("default", None), ("explicit", accuracy)):
        counted = _Counting(copy.deepcopy(model))  # inplace: the counter seen is the one called
        res = sap_kernels.project(counted, loader(x, y), n_trusted=30, alphas=[1.0, 100.0], score_fn=score_fn,
                                  progress=False, inplace=True)
        runs[name] = (res, counted.samples)
    (default, seen_default), (explicit, seen_explicit) = runs["default"], runs["explicit"]
    assert default.scores == explicit.scores and default.alpha == explicit.alpha
    reference = int(default.validation.split()[0])  # "<n> training samples, ..."
    assert seen_explicit - seen_default == reference > 0  # one pass over them fewer


def test_a_plain_model_does_not_load_the_compiler():
    """Checking for a ``torch.compile``d wrapper must not import torch's compiler (about 2 s of
    SymPy and more on every fresh process) when no model was compiled."""
    import subprocess
    import sys

    code = (
        "import sys, torch, sap_kernels\n"
        "m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))\n"
        "x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))\n"
        "dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)\n"
        "before = 'torch._dynamo' in sys.modules\n"
        "sap_kernels.project(m, dl, alpha=10.0, progress=False)\n"
        "print(before, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = out.stdout.split()
    assert after == before  # project() itself imported nothing of the compiler
