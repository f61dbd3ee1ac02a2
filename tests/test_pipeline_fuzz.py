"""Property-based: whatever arguments and data ``project`` gets, it returns a result or raises a
``ValueError``/``TypeError``/``BackendUnavailable`` whose message names what was wrong, and after
every call the caller's model is bit-identical (unless ``inplace=True`` succeeded), no hook is
left, every module's train/eval flag is back, and torch's process-wide switches are unchanged.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels
from sap_kernels.ops import BackendUnavailable
from sap_kernels.sap.runtime.guards import _denormals_flushed

# --- models ------------------------------------------------------------------------------------


class ConvNet(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, classes)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


class AttnNet(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.inp = nn.Linear(3, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        h = self.inp(x)
        return self.head(self.attn(h, h, h)[0].mean(1))


def mlp(classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Dropout(0.1), nn.Linear(6, classes))


MODELS = {
    "mlp": (mlp, (5,)),
    "conv": (ConvNet, (2, 5, 5)),
    "attn": (AttnNet, (4, 3)),
}

# --- argument strategies ------------------------------------------------------------------------

ANY = st.one_of(st.none(), st.booleans(), st.integers(-3, 50), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=4), st.just([]), st.just([1.0, "x"]), st.just(np.int64(7)))
ALPHA = st.one_of(st.none(), st.floats(1e-3, 1e6), st.sampled_from([math.inf, 0.0, -1.0, math.nan, "10", True]))
ALPHAS = st.one_of(st.none(), st.lists(st.floats(0.5, 1e6), min_size=1, max_size=4),
                   st.sampled_from([10, "10", [], [1.0, -1.0], [1.0, True]]))
SELECTOR = st.one_of(st.none(), st.sampled_from(["head", "h*", "typo", nn.Linear, nn.Conv2d, 123, ["head", 1]]))

ARGS = st.fixed_dictionaries({}, optional={
    "alpha": ALPHA,
    "alphas": ALPHAS,
    "n_trusted": st.one_of(st.none(), st.integers(-1, 40), st.sampled_from([0.3, 2.5, np.int64(5), "5", True])),
    "class_balanced": st.sampled_from([None, True, False, "yes"]),
    "layers": SELECTOR,
    "skip": SELECTOR,
    "skip_head": st.booleans(),
    "inplace": st.sampled_from([True, False, 1]),
    "batch_size": st.one_of(st.none(), st.integers(-1, 9)),
    "eig_dtype": st.sampled_from([None, torch.float32, torch.float64, "float64", torch.float16, "bogus"]),
    "solver": st.sampled_from(["auto", "eigh", "solve", "lu"]),
    "holdout": st.sampled_from([None, 0.0, 0.3, 1.5]),
    "trusted": st.sampled_from(["loss", "random", "curvature", "best", [0, 1, 2]]),
    "seed": ANY,
})

ERRORS = (ValueError, TypeError, BackendUnavailable)
# Words at least one of which an error message contains: the argument, layer, key or data named.
NAMES = ("alpha", "n_trusted", "class_balanced", "layers", "skip", "inplace", "batch_size", "eig_dtype", "solver",
         "holdout", "trusted", "indices", "curvature", "seed", "label", "loader", "sample", "val_loader",
         "nothing to project", "head", "layer", "model", "batch")


def _flags() -> tuple:
    return (torch.backends.mha.get_fastpath_enabled(), torch.get_num_threads(), _denormals_flushed(),
            torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled())


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(sorted(MODELS)), classes=st.sampled_from([1, 2, 4]), n=st.integers(0, 40),
       bs=st.integers(1, 16), train_mode=st.booleans(), with_val=st.booleans(), args=ARGS)
def test_project_returns_a_result_or_a_named_error_and_keeps_every_invariant(arch, classes, n, bs, train_mode,
                                                                              with_val, args):
    make, shape = MODELS[arch]
    torch.manual_seed(0)
    model = make(classes).train(train_mode)
    x = torch.randn(n, *shape)
    y = torch.randint(0, max(classes, 2), (n,))
    data = DataLoader(TensorDataset(x, y), batch_size=bs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    flags = _flags()
    inplace = args.get("inplace", False)
    if with_val:
        args["val_loader"] = DataLoader(TensorDataset(x[:12], y[:12]), batch_size=5)
    try:
        res = sap_kernels.project(model, data, progress=False, **args)
    except ERRORS as exc:
        event(f"error {type(exc).__name__}")
        msg = str(exc)
        assert msg and any(w in msg for w in NAMES), msg
        ok = False
    else:
        event("result")
        ok = True
        assert isinstance(res, sap_kernels.SAPResult) and res.layers
        assert res.model is model if inplace is True else res.model is not model
        assert all(bool(torch.isfinite(p).all()) for p in res.model.parameters())
    if not (ok and inplace is True):
        after = model.state_dict()
        assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert _hooks(model) == 0
    assert [m.training for m in model.modules()] == modes
    assert _flags() == flags


@pytest.mark.parametrize("kind", ["empty", "nan", "labels", "shape"])
def test_bad_data_is_named_and_the_model_kept(kind):
    torch.manual_seed(0)
    model = mlp(3)
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    if kind == "nan":
        x[3, 2] = math.nan
    if kind == "labels":
        y[4] = 7
    if kind == "shape":
        x = torch.randn(20, 6)
    data = DataLoader(TensorDataset(x[:0] if kind == "empty" else x, y[:0] if kind == "empty" else y), batch_size=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises((ValueError, TypeError, RuntimeError)) as e:
        sap_kernels.project(model, data, alpha=10.0, n_trusted=5, progress=False, inplace=True)
    assert str(e.value)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert _hooks(model) == 0
