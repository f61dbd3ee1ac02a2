"""``project`` on real architectures (torchvision, built without weights), attention blocks,
layers wider than the data, wrapped models, dict batches, half precision, selection, dry runs.

Every projected weight is compared with a float64 SVD of its materialised input rows: conv patch
rows from ``reference.layer_rows``, attention rows recomputed by hand in
``reference_attention``. The SVD here is the reduced one: directions outside the row space have
zero energy, hence ``lambda = 0``, and add nothing to ``W V diag(lambda) V^T``.
"""
from __future__ import annotations

import copy
import math
import time

import pytest
import torch
import torch.nn.functional as F
import torchvision
from reference import layer_rows
from reference_attention import capture_attention
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels

ALPHA = 1e3
TOL = 1e-4


def loader(x, y, bs=8):
    return DataLoader(TensorDataset(x, y), batch_size=bs)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def svd_project(weight: torch.Tensor, rows: torch.Tensor, alpha: float) -> torch.Tensor:
    """Float64 ``W V diag(lambda) V^T`` for ``weight [out, ...]`` and rows ``[groups, M, K_g]``."""
    groups, _, k = rows.shape
    w = weight.double().reshape(groups, weight.shape[0] // groups, k)
    out = torch.empty_like(w)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small SVDs: threads only add barrier waits on shared cores
    try:
        svds = [torch.linalg.svd(rows[g], full_matrices=False) for g in range(groups)]
    finally:
        torch.set_num_threads(threads)
    for g in range(groups):
        _, s, vh = svds[g]
        r = s**2 / (s**2).sum()
        lam = alpha * r / ((alpha - 1) * r + 1)
        out[g] = (w[g] @ vh.T * lam) @ vh
    return out.reshape(weight.shape)


def input_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[groups, rows, K_g]`` float64 rows; Conv2d with zero padding through ``F.unfold`` (fast on
    CPU in float64, where the one-hot convolution of ``reference.layer_rows`` is slow)."""
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros" and x.dim() == 4 \
            and not isinstance(module.padding, str):
        cols = F.unfold(x.double(), module.kernel_size, module.dilation, module.padding, module.stride)
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # columns in (channel, offset) order
        g = module.groups
        return rows.reshape(rows.shape[0], g, -1).transpose(0, 1)
    return layer_rows(module, x)


def weight_of(model: nn.Module, name: str) -> torch.Tensor:
    """The weight (block) a reported target name refers to."""
    mods = dict(model.named_modules())
    if "[" in name:
        base, part = name[:-1].split("[")
        owner, param = base.rsplit(".", 1)
        e = mods[owner].embed_dim
        i = "qkv".index(part)
        return getattr(mods[owner], param)[i * e : (i + 1) * e]
    if name.endswith("_proj_weight"):
        owner, param = name.rsplit(".", 1)
        return getattr(mods[owner], param)
    return mods[name].weight


@torch.no_grad()
def reference_weights(model: nn.Module, inputs: torch.Tensor, alpha: float, names: list[str],
                      forward_dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Float64 SAP weights of the named targets (every sample of ``inputs`` trusted)."""
    mha = {n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    owner_of = {}
    for t in names:
        owner = next((a for a in mha if t.startswith(a + ".")), None)
        owner_of[t] = owner
    plain = [t for t in names if owner_of[t] is None]
    ref = copy.deepcopy(model).to(forward_dtype).eval()
    mods = dict(ref.named_modules())
    rows: dict[str, list] = {n: [] for n in plain}
    hs = [mods[n].register_forward_pre_hook(lambda m, a, n=n: rows[n].append(input_rows(m, a[0]))) for n in plain]
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # unfused modules: every Linear really called
    try:
        ref(inputs.to(forward_dtype))
        att = capture_attention(model, inputs, sorted(set(o for o in owner_of.values() if o)), forward_dtype)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
        for h in hs:
            h.remove()
    out = {n: svd_project(weight_of(model, n), torch.cat(rows[n], dim=1), alpha) for n in plain}
    for t in names:
        owner = owner_of[t]
        if owner is None:
            continue
        calls = att[owner]
        part = "out" if t.endswith("out_proj") else (
            "q" if t.endswith("in_proj_weight") else t[-2] if "[" in t else t.rsplit(".", 1)[1][0])
        idx = "qkvo".index(part[0])
        r = torch.cat([c[0][idx] for c in calls])[None]
        out[t] = svd_project(weight_of(model, t), r, alpha)
    return out


def check_exact(model, x, y, bs=8, alpha=ALPHA, **kw):
    """Project ``model`` on all of ``x`` and compare every projected weight with the reference."""
    res = sap_kernels.project(model, loader(x, y, bs), alpha=alpha, n_trusted=len(x), progress=False, **kw)
    names = [r.name for r in res.layers]
    ref = reference_weights(model, x, alpha, names)
    errors = {n: rel(weight_of(res.model, n), ref[n]) for n in names}
    return res, errors


def expected_targets(model: nn.Module) -> set[str]:
    """Linear/Conv modules outside attention blocks plus each block's in- and out-projection."""
    out, inside = set(), set()
    for n, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            out |= {f"{n}.in_proj_weight", f"{n}.out_proj"}
            inside |= {f"{n}.{c}" for c, _ in m.named_modules() if c}
    for n, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and n not in inside:
            out.add(n)
    return out


def small_vit() -> nn.Module:
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                                hidden_dim=48, mlp_dim=96, num_classes=10)


# --- the four torchvision models compared layer by layer ----------------------------------

ZOO = {
    # name: (constructor, samples, image size)
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), 16, 32),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), 16, 32),
    "small_vit": (small_vit, 12, 32),
    "vgg11_bn": (lambda: torchvision.models.vgg11_bn(num_classes=10), 4, 32),
}


@pytest.mark.parametrize("solver", ["eigh", "solve"])
@pytest.mark.parametrize("arch", list(ZOO))
def test_torchvision_model_matches_float64_reference(arch, solver, capsys):
    make, n, size = ZOO[arch]
    torch.manual_seed(0)
    model = make().eval()
    x, y = torch.randn(n, 3, size, size), torch.randint(0, 10, (n,))
    start = time.perf_counter()
    res, errors = check_exact(model, x, y, solver=solver)
    names = {r.name for r in res.layers}
    assert names == expected_targets(model), names ^ expected_targets(model)
    worst = max(errors, key=errors.get)
    with capsys.disabled():
        print(f"\n{arch} ({solver}): {len(errors)} weights, max rel err {errors[worst]:.2e} ({worst}); "
              f"methods {sorted({r.method for r in res.layers})}; {time.perf_counter() - start:.1f}s")
    assert errors[worst] < TOL, {k: v for k, v in errors.items() if v >= TOL}
    # every parametrised module left alone is named, with a reason
    skipped = dict(res.skipped)
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.BatchNorm2d, nn.LayerNorm)):
            assert "normalisation" in skipped[name]


def test_vgg_wide_classifier_uses_the_rows():
    """K = 25,088 at 4 samples: decomposed through 4 rows, never a 2.5 GB Gram."""
    torch.manual_seed(0)
    model = torchvision.models.vgg11_bn(num_classes=10).eval()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    res = sap_kernels.project(model, loader(x, y, 4), alpha=ALPHA, n_trusted=4, progress=False,
                              layers=["classifier.*"])
    wide = next(r for r in res.layers if r.name == "classifier.0")
    assert (wide.K, wide.rows, wide.method) == (25088, 4, "rows")
    assert wide.eigenvalues.shape == (1, 25088) and int((wide.eigenvalues > 0).sum()) <= 4


# --- attention blocks ---------------------------------------------------------------------


class CrossAttention(nn.Module):
    """Self-attention (packed, batch_first) then cross-attention (kdim/vdim differ, seq-first,
    masks, attention weights returned), reused twice; tokens mean-pooled into logits."""

    def __init__(self, e=12, classes=5):
        super().__init__()
        self.embed = nn.Linear(6, e)
        self.mem = nn.Linear(6, 7)
        self.self_attn = nn.MultiheadAttention(e, 3, batch_first=True)
        self.cross = nn.MultiheadAttention(e, 2, kdim=7, vdim=5)
        self.packed_cross = nn.MultiheadAttention(e, 4)
        self.head = nn.Linear(e, classes)

    def forward(self, x):  # x [N, T, 6]
        h = self.embed(x)
        n, t = h.shape[:2]
        pad = torch.zeros(n, t, dtype=torch.bool)
        pad[:, -2:] = True  # the last two tokens are padding
        h, _ = self.self_attn(h, h, h, key_padding_mask=pad, need_weights=False)
        m = self.mem(x).transpose(0, 1)  # [T, N, 7]
        causal = torch.triu(torch.full((t, t), float("-inf")), 1)
        c, w = self.cross(h.transpose(0, 1), m, m[..., :5], attn_mask=causal, need_weights=True)
        assert w.shape == (n, t, t)
        d, _ = self.packed_cross(c, h.transpose(0, 1), c)
        return self.head(d.mean(0))


def test_attention_inputs_and_outputs_match_reference():
    torch.manual_seed(0)
    model = CrossAttention()
    x, y = torch.randn(20, 6, 6), torch.randint(0, 5, (20,))
    res, errors = check_exact(model, x, y, bs=7)
    names = {r.name for r in res.layers}
    assert {"self_attn.in_proj_weight", "self_attn.out_proj", "cross.q_proj_weight", "cross.k_proj_weight",
            "cross.v_proj_weight", "cross.out_proj", "packed_cross.in_proj_weight[q]",
            "packed_cross.in_proj_weight[k]", "packed_cross.in_proj_weight[v]", "packed_cross.out_proj"} <= names
    assert max(errors.values()) < TOL, errors
    # the caller's model still computes what it computed (out_proj restored, weights untouched)
    assert all(isinstance(m.out_proj, nn.Linear) for m in model.modules() if isinstance(m, nn.MultiheadAttention))


def test_transformer_encoder_with_padding_mask():
    """nn.TransformerEncoder in eval mode would take the fused path; every layer is still seen."""
    torch.manual_seed(0)

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            pad = torch.zeros(x.shape[:2], dtype=torch.bool)
            pad[:, -3:] = True
            return self.head(self.enc(x, src_key_padding_mask=pad)[:, 0])

    model = Enc().eval()
    x, y = torch.randn(10, 8, 16), torch.randint(0, 3, (10,))
    res, errors = check_exact(model, x, y, bs=5)
    assert {r.name for r in res.layers} == expected_targets(model)
    assert max(errors.values()) < TOL, errors
    assert torch.backends.mha.get_fastpath_enabled()


def test_attention_state_restored_after_an_error_inside_the_block():
    torch.manual_seed(0)

    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            mask = torch.zeros(x.shape[1], x.shape[1])
            mask[0] = float("-inf") if bool((x[:, 0, 0] > 3).any()) else 0.0  # a fully masked row: NaN
            return self.head(self.attn(x, x, x, attn_mask=mask)[0].mean(1).nan_to_num())

    model = Bad()
    x, y = torch.rand(6, 4, 8), torch.randint(0, 3, (6,))
    x[2, 0, 0] = 5.0
    out_proj = model.attn.out_proj
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="non-finite"):
        sap_kernels.project(model, loader(x, y, 3), alpha=10.0, n_trusted=6, progress=False, inplace=True)
    assert model.attn.out_proj is out_proj and model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.backends.mha.get_fastpath_enabled()


# --- layers wider than the data -------------------------------------------------------------


def test_dual_decomposition_is_exact_and_switches_to_the_gram():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 40), nn.ReLU(), nn.Linear(40, 4))
    x, y = torch.randn(60, 300), torch.randint(0, 4, (60,))
    few, errors = check_exact(model, x[:20], y[:20], bs=8, solver="eigh")
    assert few.layers[0].method == "rows" and few.layers[0].rows == 20
    assert max(errors.values()) < TOL, errors
    # 300 rows kept over several batches, then the Gram takes over: same as one big batch
    wide = nn.Sequential(nn.Linear(50, 40), nn.ReLU(), nn.Linear(40, 4))
    a = sap_kernels.project(wide, loader(x[:, :50], y, 60), alpha=ALPHA, n_trusted=60, progress=False, solver="eigh")
    b = sap_kernels.project(wide, loader(x[:, :50], y, 7), alpha=ALPHA, n_trusted=60, progress=False, solver="eigh")
    assert a.layers[0].method == b.layers[0].method == "gram"
    assert rel(b.model[0].weight, a.model[0].weight) < 1e-6
    c = sap_kernels.project(wide, loader(x[:, :50], y, 7), alpha=ALPHA, n_trusted=42, progress=False, solver="eigh")
    assert c.layers[0].method == "rows" and c.layers[0].rows == 42


def test_conv_wider_than_its_patches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, groups=2, padding_mode="reflect"), nn.ReLU(),
                          nn.Conv2d(6, 40, 4, stride=4), nn.Flatten(), nn.Linear(40, 3))
    x, y = torch.randn(3, 4, 4, 4), torch.randint(0, 3, (3,))
    res, errors = check_exact(model, x, y, bs=2, solver="eigh")
    assert {r.name: r.method for r in res.layers} == {"0": "gram", "2": "rows", "4": "rows"}
    assert max(errors.values()) < TOL, errors


# --- wrapped and unusual models -------------------------------------------------------------


def _plain_result(model, x, y):
    return sap_kernels.project(model, loader(x, y), alpha=ALPHA, n_trusted=len(x), progress=False)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def test_data_parallel_and_compiled_models_project_the_inner_module():
    net = _net()
    x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 5, (16,))
    want = _plain_result(net, x, y)
    for wrapped in (nn.DataParallel(net), torch.compile(net), nn.DataParallel(torch.compile(net))):
        res = _plain_result(wrapped, x, y)
        assert type(res.model) is type(wrapped)
        assert [r.name for r in res.layers] == ["0", "3"]
        inner = res.model
        while not isinstance(inner, nn.Sequential):
            inner = getattr(inner, "module", None) or inner._orig_mod
        for n in ("0", "3"):
            assert torch.equal(dict(inner.named_modules())[n].weight, dict(want.model.named_modules())[n].weight)
    assert torch.equal(net[0].weight, _net()[0].weight)  # caller's model untouched


def test_distributed_data_parallel_single_process(tmp_path):
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        net = _net()
        x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 5, (16,))
        want = _plain_result(net, x, y)
        res = _plain_result(nn.parallel.DistributedDataParallel(net), x, y)
        got = dict(res.model.named_modules()).get("module", res.model)
        assert [r.name for r in res.layers] == ["0", "3"]
        assert torch.equal(got[3].weight, want.model[3].weight)
    finally:
        dist.destroy_process_group()


def test_wrapper_that_cannot_be_deep_copied_returns_a_projected_copy_of_its_module():
    class Uncopyable(nn.DataParallel):  # like a DDP bound to a process group
        def __deepcopy__(self, memo):
            raise RuntimeError("cannot copy a process group")

    net = _net()
    before = copy.deepcopy(net.state_dict())
    x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 5, (16,))
    want = _plain_result(net, x, y)
    res = _plain_result(Uncopyable(net), x, y)
    assert type(res.model) is nn.Sequential and res.model is not net
    assert torch.equal(res.model[3].weight, want.model[3].weight)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # caller's model untouched


def test_compiled_model_without_its_original_module_is_a_clear_error():
    compiled = torch.compile(_net())
    object.__getattribute__(compiled, "_modules").pop("_orig_mod")
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 5, (8,))
    with pytest.raises(TypeError, match="does not expose its original module"):
        sap_kernels.project(compiled, loader(x, y, 8), alpha=10.0, n_trusted=8, progress=False)


def test_frozen_parameters_and_shared_modules():
    torch.manual_seed(0)

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(6, 6)
            self.head = nn.Linear(6, 3)

        def forward(self, x):
            return self.head(torch.relu(self.block(torch.relu(self.block(x)))))

    model = Shared()
    model.block.requires_grad_(False)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    res, errors = check_exact(model, x, y)
    assert next(r for r in res.layers if r.name == "block").rows == 60
    assert max(errors.values()) < TOL, errors
    assert not res.model.block.weight.requires_grad


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 4)
        self.b = nn.Linear(3, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, image, extra):
        return self.head(torch.relu(self.a(image) + self.b(extra)))


def test_dict_batches_by_keys_or_batch_fn():
    torch.manual_seed(0)
    model = DictNet()
    data = [{"image": torch.randn(8, 5), "extra": torch.randn(8, 3), "label": torch.randint(0, 3, (8,)), "id": i}
            for i in range(3)]
    plain = [({"image": d["image"], "extra": d["extra"]}, d["label"]) for d in data]
    want = sap_kernels.project(model, plain, alpha=ALPHA, n_trusted=24, progress=False)
    by_keys = sap_kernels.project(model, data, alpha=ALPHA, n_trusted=24, progress=False,
                                  input_key=["image", "extra"], label_key="label")
    fn = lambda d: ({"image": d["image"], "extra": d["extra"]}, d["label"])  # noqa: E731
    by_fn = sap_kernels.project(model, data, alpha=ALPHA, n_trusted=24, progress=False, batch_fn=fn)
    for res in (by_keys, by_fn):
        for n in ("a", "b", "head"):
            assert torch.equal(getattr(res.model, n).weight, getattr(want.model, n).weight)
    swept = sap_kernels.project(model, data, val_loader=data, alphas=[1.0, ALPHA], n_trusted=24, progress=False,
                                batch_fn=fn)
    assert set(swept.scores) == {1.0, ALPHA, math.inf}
    with pytest.raises(TypeError, match="input_key=/label_key="):
        sap_kernels.project(model, data, alpha=ALPHA, n_trusted=24, progress=False)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_model(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 25, 6), nn.ReLU(),
                          nn.Linear(6, 4))
    x, y = torch.randn(64, 3, 5, 5), torch.randint(0, 4, (64,))
    half = copy.deepcopy(model).to(dtype)
    res = sap_kernels.project(half, loader(x.to(dtype), y, 16), alpha=ALPHA, n_trusted=64, progress=False)
    names = [r.name for r in res.layers]
    ref = reference_weights(half, x, ALPHA, names, forward_dtype=dtype)
    rounding = 2 * torch.finfo(dtype).eps  # the projected weight is stored in the model's dtype
    for n in names:
        got = dict(res.model.named_modules())[n].weight
        assert got.dtype == dtype
        assert rel(got, ref[n]) < rounding, (n, rel(got, ref[n]))


# --- selection, head, dry run, report -------------------------------------------------------


def test_skip_head_and_selection_by_type_and_pattern():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    res = sap_kernels.project(model, loader(x, y), alpha=ALPHA, n_trusted=8, progress=False, skip_head=True,
                              skip=["layer4.*"], layers=[nn.Conv2d, "fc"])
    names = {r.name for r in res.layers}
    assert "fc" not in names and not any(n.startswith("layer4") for n in names) and "layer1.0.conv1" in names
    reasons = dict(res.skipped)
    assert "classifier head" in reasons["fc"] and "skip=" in reasons["layer4.0.conv1"]
    assert torch.equal(res.model.fc.weight, model.fc.weight)

    class Tempered(nn.Module):  # the head's output is transformed: found by value
        def __init__(self):
            super().__init__()
            self.body, self.out = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x):
            return (self.out(torch.relu(self.body(x))) / 1.0).contiguous()

    t = sap_kernels.project(Tempered(), loader(torch.randn(8, 4), torch.randint(0, 3, (8,))), alpha=ALPHA,
                            n_trusted=8, progress=False, skip_head=True)
    assert [r.name for r in t.layers] == ["body"]


def test_plan_lists_targets_without_touching_the_model(monkeypatch):
    torch.manual_seed(0)
    model = torchvision.models.vgg11_bn(num_classes=10).train()
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))

    def no_gram(*args, **kwargs):
        raise AssertionError("a dry run must not accumulate any Gram")

    for op in ("gram", "conv_gram"):
        monkeypatch.setattr(sap_kernels.ops, op, no_gram)
    plan = sap_kernels.plan(model, loader(x, y, 2), n_trusted=4, skip_head=True)
    assert isinstance(plan, sap_kernels.Plan) and plan.head == "classifier.6" and plan.n_trusted == 4
    by_name = {p.name: p for p in plan.layers}
    assert "classifier.6" not in by_name and len(by_name) == 8 + 2
    wide = by_name["classifier.0"]
    assert (wide.K, wide.groups, wide.method, wide.memory_bytes) == (25088, 1, "rows", 4 * 25088 * 4)
    first = by_name["features.0"]
    assert (first.K, first.rows_per_sample, first.method) == (27, 32 * 32, "gram")
    assert first.memory_bytes == 27 * 27 * 4
    assert "classifier.0" in plan.summary() and "normalisation" in plan.summary()
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# --- larger torchvision models: projection runs, shapes kept, skipped modules reported ----


SMOKE = {
    "resnet50": (lambda: torchvision.models.resnet50(num_classes=10), 64),
    "convnext_tiny": (lambda: torchvision.models.convnext_tiny(num_classes=10), 32),
    "vit_b_16": (lambda: torchvision.models.vit_b_16(num_classes=10), 224),
}


@pytest.mark.parametrize("arch", list(SMOKE))
def test_large_torchvision_model_smoke(arch, capsys):
    make, size = SMOKE[arch]
    torch.manual_seed(0)
    model = make()
    x, y = torch.randn(2, 3, size, size), torch.randint(0, 10, (2,))
    start = time.perf_counter()
    res = sap_kernels.project(model, loader(x, y, 2), alpha=ALPHA, n_trusted=2, progress=False)
    with capsys.disabled():
        print(f"\n{arch}: {len(res.layers)} weights projected, {len(res.skipped)} not; "
              f"{time.perf_counter() - start:.1f}s")
    assert {r.name for r in res.layers} == expected_targets(model)
    for (n, p), (_, q) in zip(model.named_parameters(), res.model.named_parameters()):
        assert p.shape == q.shape and p.dtype == q.dtype and bool(torch.isfinite(q).all()), n
    assert res.skipped and all(why for _, why in res.skipped)
    for r in res.layers:  # every projected weight changed, unless it is all zeros (ViT's head)
        before = weight_of(model, r.name)
        assert bool(before.eq(0).all()) or not torch.equal(before, weight_of(res.model, r.name)), r.name
