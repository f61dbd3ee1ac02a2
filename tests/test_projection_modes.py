"""Projection variants (``mode``: sap / sgp / gpm) on each side (``location``: pre / post / all)
against a float64 reference written from their definitions: materialised input and output rows,
an SVD per group, ``P = V diag(lambda) V^T``, ``W <- P_out W P_in``, ``b <- P_out b``."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from reference import layer_rows
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.fc = nn.Linear(6 * 5 * 5, 7)
        self.head = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.fc(torch.relu(self.c(x)).flatten(1))))


def output_rows(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """``[groups, rows, out_g]`` float64 rows of a layer's output."""
    if isinstance(module, nn.Linear):
        return out.double().reshape(1, -1, out.shape[-1])
    g = module.groups
    rows = out.double().movedim(1, -1).reshape(-1, g, out.shape[1] // g)
    return rows.transpose(0, 1)


def lam(s: torch.Tensor, mode: str, p: float) -> torch.Tensor:
    """Importance of singular values ``s`` (descending)."""
    e = s ** 2
    r = e / e.sum()
    if mode == "sap":
        return p * r / ((p - 1) * r + 1)
    if mode == "sgp":
        return p * s / ((p - 1) * s + s.max())
    kept = int((torch.cumsum(r, 0) < p).sum()) + 1
    return (torch.arange(len(s)) < kept).double()


def projection(rows: torch.Tensor, mode: str, p: float) -> torch.Tensor:
    """``[groups, K, K]`` projection matrices from rows ``[groups, M, K]``."""
    out = []
    for g in range(rows.shape[0]):
        _, s, vh = torch.linalg.svd(rows[g], full_matrices=True)
        k = rows.shape[-1]
        full = torch.zeros(k, dtype=torch.float64)
        full[: len(s)] = s
        v = vh.T
        out.append(v @ torch.diag(lam(full, mode, p)) @ v.T)
    return torch.stack(out)


def reference(model: nn.Module, x: torch.Tensor, mode: str, location: str, p: float) -> dict[str, torch.Tensor]:
    model = model.double().eval()
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    def keep(mod: nn.Module, args: tuple, out: torch.Tensor, name: str) -> None:
        seen[name] = (layer_rows(mod, args[0]), output_rows(mod, out))

    hooks = [m.register_forward_hook(lambda mod, a, o, n=n: keep(mod, a, o, n)) for n, m in model.named_children()]
    with torch.no_grad():
        model(x.double())
    for h in hooks:
        h.remove()
    out = {}
    for name, mod in model.named_children():
        rin, rout = seen[name]
        g = rin.shape[0]
        w = mod.weight.detach().double().reshape(g, mod.weight.shape[0] // g, -1)
        b = mod.bias.detach().double().reshape(g, -1, 1)
        if location in ("pre", "all"):
            w = w @ projection(rin, mode, p)
        if location in ("post", "all"):
            pout = projection(rout, mode, p)
            w, b = pout @ w, pout @ b
        out[f"{name}.weight"] = w.reshape(mod.weight.shape)
        out[f"{name}.bias"] = b.reshape(mod.bias.shape)
    return out


@pytest.mark.parametrize("location", ["pre", "post", "all"])
@pytest.mark.parametrize("mode,param", [("sap", 30.0), ("sap", 1e4), ("sgp", 3.0), ("gpm", 0.9)])
def test_mode_and_side_match_float64_reference(mode, param, location):
    torch.manual_seed(0)
    model = Net().double()
    x, y = torch.randn(40, 4, 5, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
    res = sap_kernels.project(model, DataLoader(TensorDataset(x, y), batch_size=16), alpha=param, n_trusted=40,
                              mode=mode, location=location, progress=False)
    ref = reference(copy.deepcopy(model), x, mode, location, param)
    got = res.model.state_dict()
    for k, want in ref.items():
        err = float((got[k].double() - want).norm() / want.norm().clamp_min(1e-300))
        assert err < 1e-9, (k, err)
    moved = (got["fc.weight"] - model.state_dict()["fc.weight"]).norm()
    assert float(moved) > 0 or (mode == "gpm")  # a real change (GPM may keep every direction)


def test_gpm_and_sgp_sweep_and_argument_checks():
    torch.manual_seed(0)
    model = Net()
    x, y = torch.randn(40, 4, 5, 5), torch.randint(0, 3, (40,))
    data = DataLoader(TensorDataset(x, y), batch_size=16)
    res = sap_kernels.project(model, data, val_loader=data, mode="gpm", n_trusted=20, progress=False)
    assert set(res.scores) - {math.inf} == set(sap_kernels.sap.options.grid.GPM_SHARES)
    with pytest.raises(ValueError, match="mode='gpm' takes alpha as the share of energy"):
        sap_kernels.project(model, data, alpha=30.0, mode="gpm", progress=False)
    with pytest.raises(ValueError, match="mode must be one of"):
        sap_kernels.project(model, data, alpha=30.0, mode="pca", progress=False)
    with pytest.raises(ValueError, match="location must be one of"):
        sap_kernels.project(model, data, alpha=30.0, location="both", progress=False)
    stats = sap_kernels.collect(model, data, progress=False)  # input side only
    with pytest.raises(ValueError, match="needs the layer's output statistics"):
        sap_kernels.apply(model, stats.decompose(), 30.0, location="post")


def test_output_statistics_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = Net()
    x, y = torch.randn(40, 4, 5, 5), torch.randint(0, 3, (40,))
    stats = sap_kernels.collect(model, DataLoader(TensorDataset(x, y), batch_size=16), location="all", progress=False)
    stats.save(tmp_path / "s.safetensors")
    loaded = sap_kernels.Statistics.load(tmp_path / "s.safetensors")
    a = sap_kernels.apply(model, stats.decompose(), 30.0, mode="sgp", location="all")
    b = sap_kernels.apply(model, loaded.decompose(), 30.0, mode="sgp", location="all")
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n


def reference_rounds(model: nn.Module, x: torch.Tensor, alpha: float, rounds: int) -> dict[str, torch.Tensor]:
    """The published composition: round k's rows are the layer's inputs in the model projected so
    far, times the composed ``M``; ``M <- M P_k`` (alpha x10 per round); ``W = W_0 M^T``."""
    model = model.double().eval()
    w0 = {n: m.weight.detach().clone() for n, m in model.named_children()}
    mats: dict[str, torch.Tensor] = {}
    for k in range(rounds):
        seen: dict[str, torch.Tensor] = {}
        hooks = [m.register_forward_pre_hook(lambda mod, a, n=n: seen.update({n: layer_rows(mod, a[0])}) and None)
                 for n, m in model.named_children()]
        with torch.no_grad():
            model(x.double())
        for h in hooks:
            h.remove()
        for name, mod in model.named_children():
            rows = seen[name]
            if name in mats:
                rows = rows @ mats[name]
            p = projection(rows, "sap", alpha * 10 ** k)
            mats[name] = p if name not in mats else mats[name] @ p
            g = rows.shape[0]
            w = w0[name].double().reshape(g, w0[name].shape[0] // g, -1) @ mats[name].transpose(-1, -2)
            with torch.no_grad():
                mod.weight.copy_(w.reshape(mod.weight.shape))
    return {f"{n}.weight": m.weight.detach().clone() for n, m in model.named_children()}


@pytest.mark.parametrize("rounds", [2, 3])
def test_rounds_compose_as_the_published_code(rounds):
    torch.manual_seed(0)
    model = Net().double()
    x, y = torch.randn(40, 4, 5, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
    res = sap_kernels.project(model, DataLoader(TensorDataset(x, y), batch_size=16), alpha=30.0, n_trusted=40,
                              rounds=rounds, progress=False)
    ref = reference_rounds(copy.deepcopy(model), x, 30.0, rounds)
    got = res.model.state_dict()
    for k, want in ref.items():
        err = float((got[k].double() - want).norm() / want.norm())
        assert err < 1e-8, (k, err)
    once = sap_kernels.project(model, DataLoader(TensorDataset(x, y), batch_size=16), alpha=30.0, n_trusted=40,
                               progress=False).model.state_dict()
    assert float((once["fc.weight"] - got["fc.weight"]).norm()) > 1e-6  # the later rounds did something
    with pytest.raises(ValueError, match="needs location='pre'"):
        sap_kernels.project(model, DataLoader(TensorDataset(x, y), batch_size=16), alpha=30.0, rounds=2,
                            location="all", progress=False)


def test_rounds_after_a_sweep_say_the_scores_are_one_rounds():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    x, y = torch.randn(120, 6), torch.randint(0, 3, (120,))
    train = DataLoader(TensorDataset(x, y), batch_size=40)
    val = DataLoader(TensorDataset(x[:40], y[:40]), batch_size=40)
    res = sap_kernels.project(model, train, val_loader=val, alphas=[10.0, 100.0, 1000.0], rounds=2, progress=False)
    # the notice exactly when the sweep picked a finite alpha (inf: nothing was projected, no rounds)
    assert any("first round's sweep" in n for n in res.notices) == (not math.isinf(res.alpha))
    given = sap_kernels.project(model, train, alpha=100.0, rounds=2, progress=False)
    assert not any("first round's sweep" in n for n in given.notices)
