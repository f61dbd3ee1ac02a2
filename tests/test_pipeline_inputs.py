"""Inputs that once gave silent wrong results: each now a correct result or a named error.

Overflowing activations, parametrized and tied weights, one-logit models, lost samples, the
sample dim, and process-wide state.
"""
from __future__ import annotations

import math
import threading

import pytest
import torch
from reference import layer_rows, sap_weight
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels


def loader(x, y, bs=64, shuffle=False):
    return DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=shuffle)


def rel(a, b):
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


# --- 1. activations that overflow a float32 Gram ---------------------------------------------


@pytest.mark.parametrize("solver,alphas", [("eigh", None), ("solve", None), ("auto", [1.0, 10.0, 100.0])])
@pytest.mark.parametrize("rows", [600, 200])  # 200 < K: the rows (dual) route
def test_huge_activations_give_the_scale_free_projection(solver, alphas, rows):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 3))
    x, y = torch.randn(rows, 300), torch.randint(0, 3, (rows,))
    kw = dict(n_trusted=rows, progress=False, inplace=False)
    if alphas is None:
        kw.update(alpha=10.0, solver=solver)
    else:
        kw.update(alphas=alphas, val_loader=loader(x[:50], y[:50]))
    big = sap_kernels.project(model, loader(x * 1e18, y), **kw)
    small = sap_kernels.project(model, loader(x, y), **kw)
    w_big, w_small = big.model[0].weight, small.model[0].weight
    assert bool(torch.isfinite(w_big).all())
    assert rel(w_big, w_small) < 1e-5
    if alphas is None:
        ref = sap_weight(model[0].weight, layer_rows(model[0], x), 10.0)
        assert rel(w_big, ref) < 1e-4
    if big.layers[0].eigenvalues is not None:  # the report gives the true (unscaled) energies
        true = torch.linalg.eigvalsh((x.double() * 1e18).T @ (x.double() * 1e18)).max()
        assert float(big.layers[0].eigenvalues.max()) == pytest.approx(float(true), rel=1e-3)


def test_tiny_activations_do_not_underflow():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 3))
    x, y = torch.randn(600, 300), torch.randint(0, 3, (600,))
    a = sap_kernels.project(model, loader(x * 1e-30, y), alpha=10.0, n_trusted=600, progress=False)
    ref = sap_weight(model[0].weight, layer_rows(model[0], x), 10.0)
    assert rel(a.model[0].weight, ref) < 1e-4


def test_non_finite_statistics_are_refused_by_layer_name():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 3))
    x, y = torch.randn(600, 300), torch.randint(0, 3, (600,))
    stats = sap_kernels.collect(model, loader(x, y), progress=False)
    stats.streams["0"].gram[0, 0, 0] = float("inf")
    before = model[0].weight.clone()
    with pytest.raises(sap_kernels.NonFiniteStatistics, match="'0'"):
        stats.decompose()
    with pytest.raises(ValueError, match="'0'"):
        sap_kernels.apply(model, stats, 10.0, inplace=True)
    assert torch.equal(model[0].weight, before)


# --- 2. parametrized weights ----------------------------------------------------------------


def _effective_reference(model, name, x, alpha):
    mod = dict(model.named_modules())[name]
    rows = []
    h = mod.register_forward_pre_hook(lambda m, a: rows.append(layer_rows(m, a[0])))
    with torch.no_grad():
        model.eval()(x)
    h.remove()
    return sap_weight(mod.weight.detach(), torch.cat(rows, 1), alpha)


def test_weight_norm_parametrization_is_projected_through_right_inverse():
    torch.manual_seed(0)
    model = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(6, 5)), nn.ReLU(),
                          nn.utils.parametrizations.weight_norm(nn.Conv1d(5, 4, 1)))
    model = nn.Sequential(model[0], nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    ref = _effective_reference(model, "0", x, 30.0)
    res = sap_kernels.project(model, loader(x, y), alpha=30.0, n_trusted=40, progress=False)
    assert "0" in [r.name for r in res.layers]
    assert rel(res.model[0].weight, ref) < 1e-5
    assert rel(res.model[0].weight, model[0].weight) > 1e-3  # the effective weight really changed


def test_old_style_weight_norm_inplace_changes_the_effective_weight():
    torch.manual_seed(0)
    model = nn.Sequential(nn.utils.weight_norm(nn.Linear(6, 5)), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    ref = _effective_reference(model, "0", x, 30.0)
    sap_kernels.project(model, loader(x, y), alpha=30.0, n_trusted=40, progress=False, inplace=True)
    with torch.no_grad():
        model(x[:2])  # the hook recomputes weight from weight_g / weight_v
    assert rel(model[0].weight, ref) < 1e-5


def test_spectral_norm_is_refused_by_name_and_left_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.utils.parametrizations.spectral_norm(nn.Linear(6, 5)), nn.ReLU(), nn.Linear(5, 3))
    model.eval()
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = sap_kernels.project(model, loader(x, y), alpha=30.0, n_trusted=40, progress=False)
    assert [r.name for r in res.layers] == ["2"]
    reasons = dict(res.skipped)
    assert "0" in reasons and "parametrization" in reasons["0"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(res.model[0].weight, model[0].weight)


# --- 3. tied weights ---------------------------------------------------------------------------


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(5, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


def test_tied_weights_are_one_target_with_both_inputs():
    torch.manual_seed(0)
    model = Tied()
    x, y = torch.randn(30, 5), torch.randint(0, 3, (30,))
    rows = {}
    hooks = [getattr(model, n).register_forward_pre_hook(lambda m, a, n=n: rows.update({n: layer_rows(m, a[0])}))
             for n in ("a", "b")]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    ref = sap_weight(model.a.weight, torch.cat([rows["a"], rows["b"]], 1), 20.0)
    res = sap_kernels.project(model, loader(x, y), alpha=20.0, n_trusted=30, progress=False)
    names = [r.name for r in res.layers]
    assert names.count("a") == 1 and "b" not in names
    assert next(r for r in res.layers if r.name == "a").tied == ("b",)
    assert res.model.b.weight is res.model.a.weight
    assert rel(res.model.a.weight, ref) < 1e-5


def test_weight_tied_to_an_embedding_is_refused():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = nn.Embedding(7, 4), nn.Linear(4, 7, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, ids):
            return self.out(self.emb(ids).mean(1))

    model = LM()
    ids, y = torch.randint(0, 7, (20, 3)), torch.randint(0, 7, (20,))
    with pytest.raises(ValueError, match="nothing to project") as e:
        sap_kernels.project(model, loader(ids, y), alpha=10.0, n_trusted=20, progress=False)
    assert "shared with emb" in str(e.value)


# --- 4. one logit, custom objectives ------------------------------------------------------------


@pytest.mark.parametrize("squeeze", [False, True])
def test_binary_model_ranks_by_bce_and_scores_at_threshold_zero(squeeze):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model = nn.Sequential(body, nn.Flatten(0)) if squeeze else body
    x = torch.randn(60, 4)
    y = (x[:, 0] > 0).long()
    res = sap_kernels.project(model, loader(x, y), n_trusted=20, class_balanced=False, val_loader=loader(x, y),
                              progress=False)
    with torch.no_grad():
        logit = body(x).reshape(-1)
    bce = nn.functional.binary_cross_entropy_with_logits(logit, y.float(), reduction="none")
    assert sorted(res.trusted_indices.tolist()) == sorted(torch.argsort(bce)[:20].tolist())
    acc = float(((logit > 0).long() == y).float().mean())
    assert res.scores[math.inf] == pytest.approx(acc)


def test_binary_labels_out_of_range_and_token_outputs_are_named_errors():
    model = nn.Linear(4, 1)
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        sap_kernels.project(model, loader(x, torch.full((10,), 2)), alpha=1.0, n_trusted=5, progress=False)
    tokens = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"shape \[10, 2, 3\].*loss_fn"):
        sap_kernels.project(tokens, loader(torch.randn(10, 2, 4), torch.zeros(10, dtype=torch.long)), alpha=1.0,
                            n_trusted=5, progress=False)


def test_custom_loss_and_score_functions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, t = torch.randn(50, 4), torch.randn(50, 2)

    def mse(out, target):
        return ((out - target) ** 2).mean(1)

    res = sap_kernels.project(model, loader(x, t), n_trusted=10, loss_fn=mse,
                              score_fn=lambda o, tt: -mse(o, tt), val_loader=loader(x, t), progress=False)
    with torch.no_grad():
        want = torch.argsort(mse(model(x), t))[:10]
    assert sorted(res.trusted_indices.tolist()) == sorted(want.tolist())
    assert res.scores[math.inf] == pytest.approx(-float(mse(model(x), t).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="score_fn"):
        sap_kernels.project(model, loader(x, t), n_trusted=10, loss_fn=mse, val_loader=loader(x, t), progress=False)


# --- 5. samples silently lost ----------------------------------------------------------------


def test_unbatched_samples_are_a_named_error():
    model = nn.Linear(4, 3)
    batches = [(torch.randn(4, 4), torch.randint(0, 3, (4,))), (torch.randn(4), torch.tensor(1))]
    with pytest.raises(ValueError, match="0-d label"):
        sap_kernels.project(model, batches, alpha=1.0, n_trusted=4, progress=False)


def test_class_balanced_with_an_absent_class_fills_and_says_so():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(30, 4), torch.randint(0, 2, (30,))  # class 2 never appears
    res = sap_kernels.project(model, loader(x, y), alpha=10.0, n_trusted=12, class_balanced=True, progress=False)
    assert len(res.trusted_indices) == 12
    assert any("class 2 had 0 of its 4" in n for n in res.notices)
    assert "class 2 had 0" in repr(res)


# --- 6. dim 0 must be the sample dim ---------------------------------------------------------


def test_sequence_first_inputs_and_shared_tables_name_the_key():
    model = nn.Linear(4, 3)
    seq_first = [(torch.randn(7, 5, 4), torch.randint(0, 3, (5,)))]
    with pytest.raises(ValueError, match=r"inputs has shape \[7, 5, 4\] but the batch has 5 labels"):
        sap_kernels.project(model, seq_first, alpha=1.0, n_trusted=5, progress=False)

    class WithTable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x, table):
            return self.fc(x + table.mean(0))

    batch = {"x": torch.randn(5, 4), "table": torch.randn(64, 4), "y": torch.randint(0, 3, (5,))}
    with pytest.raises(ValueError, match=r"inputs\['table'\]"):
        sap_kernels.project(WithTable(), [batch], alpha=1.0, n_trusted=5, label_key="y", progress=False)
    res = sap_kernels.project(WithTable(), [batch], alpha=1.0, n_trusted=5, progress=False,
                              batch_fn=lambda b: ({"x": b["x"], "table": sap_kernels.Shared(b["table"])}, b["y"]))
    assert [r.name for r in res.layers] == ["fc"]


# --- 7. process-wide state ---------------------------------------------------------------------


def test_flush_denormal_setting_is_restored():
    from sap_kernels.sap.runtime.guards import _denormals_flushed

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        sap_kernels.project(model, loader(x, y), alpha=1.0, n_trusted=20, solver="eigh", progress=False)
        assert _denormals_flushed()
    finally:
        torch.set_flush_denormal(False)
    sap_kernels.project(model, loader(x, y), alpha=1.0, n_trusted=20, solver="eigh", progress=False)
    assert not _denormals_flushed()


def test_concurrent_calls_restore_the_attention_fast_path_and_threads():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(200, 4), torch.randint(0, 3, (200,))
    threads_before = torch.get_num_threads()
    assert torch.backends.mha.get_fastpath_enabled()
    errors = []

    def run():
        try:
            for _ in range(3):
                sap_kernels.project(model, loader(x, y), alphas=[1.0, 10.0], val_loader=loader(x, y),
                                    n_trusted=50, progress=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert torch.backends.mha.get_fastpath_enabled()
    assert torch.get_num_threads() == threads_before
