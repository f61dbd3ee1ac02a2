"""``project`` on timm models built without weights (``pretrained=False``), CPU, small images.

End to end: ``vit_tiny_patch16_224`` (at 32x32), ``resnet18``, ``convnext_atto``,
``efficientnet_b0``: every Linear/Conv2d is projected, every projected weight is finite and
moved, every other module with parameters is listed in ``res.skipped`` with its reason.

Against float64: ``mobilevit_xxs`` (timm's fused ``qkv`` Linear attention over unfolded patches
``[B * 4, N, C]``, depthwise 3x3 convs with stride 1 and 2, 1x1 and 3x3 convs, the head) and
``convnext_atto`` (7x7 depthwise convs, MLP Linears over channels-last ``[B, H, W, C]``, stride-4
stem, 2x2 downsampling), every projected weight compared with a float64 SVD of its input rows
(``reference.layer_rows``/``reference.sap_weight``), captured with hooks on a float64 copy.
"""
from __future__ import annotations

import copy

import pytest
import torch
from reference import layer_rows, sap_weight
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels

timm = pytest.importorskip("timm")

ALPHA = 100.0
TOL = 1e-4
N_CLASSES = 5
LAYERS = (nn.Linear, nn.Conv2d)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def build(name: str, seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, num_classes=N_CLASSES, **kw)


def images(n: int, size: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % N_CLASSES


def layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, LAYERS)]


@pytest.mark.parametrize("name, kw, size", [
    ("vit_tiny_patch16_224", dict(img_size=32), 32),
    ("resnet18", {}, 32),
    ("convnext_atto", {}, 32),
    ("efficientnet_b0", {}, 32),
])
def test_timm_model_end_to_end(name, kw, size):
    model = build(name, **kw)
    x, y = images(4, size)
    res = sap_kernels.project(model, DataLoader(TensorDataset(x, y), batch_size=2), alpha=ALPHA, n_trusted=4,
                              progress=False)
    names = layer_names(model)
    assert sorted(r.name for r in res.layers) == sorted(names)
    before, after = dict(model.named_modules()), dict(res.model.named_modules())
    for n in names:
        w = after[n].weight
        assert bool(torch.isfinite(w).all()), n
        assert w.shape == before[n].weight.shape and not torch.equal(w, before[n].weight), n
    # Every other module holding parameters of its own is listed, with a reason.
    skipped = dict(res.skipped)
    owners = [n or "<root>" for n, m in model.named_modules()
              if not isinstance(m, LAYERS) and any(True for _ in m.parameters(recurse=False))]
    assert owners and sorted(skipped) == sorted(owners)
    assert all(isinstance(why, str) and why for why in skipped.values())
    for n, m in model.named_modules():
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm)):
            assert "normalisation" in skipped[n], (n, skipped[n])
    if name.startswith("vit"):
        assert "cls_token" in skipped["<root>"] and "pos_embed" in skipped["<root>"]
    if name.startswith("convnext"):
        assert any("gamma" in why for why in skipped.values())  # layer scale, a bare parameter


@torch.no_grad()
def float64_reference(model: nn.Module, x: torch.Tensor, names: list[str], alpha: float) -> dict[str, torch.Tensor]:
    """Float64 SAP weights of the named layers on all of ``x [N, 3, H, W]``: a float64 copy of the
    model runs ``x``; a forward pre-hook turns each call's input into ``[groups, rows, K_g]`` rows
    (``layer_rows``: a Linear's leading dims are rows, a conv's im2col patches per group)."""
    m64 = copy.deepcopy(model).double().eval()
    mods = dict(m64.named_modules())
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    handles = [mods[n].register_forward_pre_hook(lambda mod, args, n=n: rows[n].append(layer_rows(mod, args[0])))
               for n in names]
    try:
        m64(x.double())
    finally:
        for h in handles:
            h.remove()
    return {n: sap_weight(mods[n].weight, torch.cat(rows[n], dim=1), alpha) for n in names}


@pytest.mark.parametrize("name, size, n, solver", [
    ("mobilevit_xxs", 64, 6, "auto"),
    ("mobilevit_xxs", 64, 6, "eigh"),
    ("convnext_atto", 32, 4, "auto"),
])
def test_timm_model_matches_float64_reference(name, size, n, solver):
    model = build(name)
    x, y = images(n, size)
    res = sap_kernels.project(model, DataLoader(TensorDataset(x, y), batch_size=3), alpha=ALPHA, n_trusted=n,
                              solver=solver, progress=False)
    names = layer_names(model)
    mods = dict(model.named_modules())
    depthwise = [k for k in names if isinstance(mods[k], nn.Conv2d) and mods[k].groups == mods[k].in_channels > 1]
    assert depthwise
    if name == "mobilevit_xxs":
        assert any(k.endswith("attn.qkv") for k in names)
    # Both routes are exercised: layers that saw more rows than their width, and fewer.
    assert {r.method for r in res.layers} >= ({"solve", "rows"} if solver == "auto" else {"gram", "rows"})
    ref = float64_reference(model, x, names, ALPHA)
    out = dict(res.model.named_modules())
    errors = {k: rel(out[k].weight, ref[k]) for k in names}
    print(f"{name} {solver}: max rel error {max(errors.values()):.1e} over {len(errors)} weights")
    assert max(errors.values()) < TOL, sorted(errors.items(), key=lambda kv: -kv[1])[:5]
