"""Property-based, for the newer surfaces of ``project``: row masks of random dtypes, values and
shapes; random clean-position sets in random forms with hold-outs and shuffling loaders; random
variant combinations (mode, location, rounds, solver). Each case ends in a correct result or a
``ValueError``/``TypeError`` naming what was wrong, and after every call the caller's model is
bit-identical, no hook is left and every module's train/eval flag is back."""
from __future__ import annotations

import functools

import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels

B, T, V, E, C, N = 4, 5, 11, 6, 3, 32
ERRORS = (ValueError, TypeError)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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


def _token_batches():
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(2):
        ids = torch.randint(0, V, (B, T), generator=g)
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        mask = (torch.arange(T)[None] < lengths[:, None]).long()
        out.append(({"input_ids": ids, "attention_mask": mask}, torch.randint(0, C, (B,), generator=g)))
    return out


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, C)).double()


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _call(model: nn.Module, loader, names: tuple[str, ...], **kw):
    """``project`` with the invariants checked; the result, or None after a named error."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    try:
        res = sap_kernels.project(model, loader, progress=False, **kw)
    except ERRORS as exc:
        event(f"error {type(exc).__name__}")
        assert str(exc) and any(w in str(exc) for w in names), str(exc)
        res = None
    else:
        event("result")
        assert res.model is not model
        assert all(bool(torch.isfinite(p).all()) for p in res.model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert _hooks(model) == 0 and (res is None or _hooks(res.model) == 0)
    assert [m.training for m in model.modules()] == modes
    return res


# --- row masks -----------------------------------------------------------------------------------

MASK_DTYPES = [torch.bool, torch.int64, torch.int32, torch.uint8, torch.float32, torch.float64]


@functools.lru_cache(maxsize=None)
def _masked_reference(alpha: float) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    res = sap_kernels.project(TokenNet().double(), _token_batches(), alpha=alpha, n_trusted=8, class_balanced=False,
                              progress=False, row_mask=lambda x: x["attention_mask"].bool())
    return tuple(v.clone() for v in res.model.state_dict().values())


@FAST
@given(dtype=st.sampled_from(MASK_DTYPES), value=st.sampled_from([1, 2, 0.5, -1]),
       shape=st.sampled_from(["ok", "long", "wide", "flat", "list"]), alpha=st.sampled_from([10.0, 1000.0]),
       eigh=st.booleans())
def test_random_row_masks(dtype, value, shape, alpha, eigh):
    def mask(x):
        m = x["attention_mask"].to(torch.float64) * value
        m = m.to(dtype) if dtype != torch.bool else m != 0
        if shape == "long":
            m = torch.cat([m, m[:, :1]], 1)
        elif shape == "wide":
            m = torch.cat([m, m[:1]], 0)
        elif shape == "flat":
            m = m[:, 0]
        return m.tolist() if shape == "list" else m

    torch.manual_seed(0)
    model = TokenNet().double()
    res = _call(model, _token_batches(), ("row_mask",), alpha=alpha, n_trusted=8, class_balanced=False,
                row_mask=mask, solver="eigh" if eigh else "auto")
    sample = mask(_token_batches()[0][0]) if shape == "ok" else None
    zero_one = sample is not None and bool(((sample == 0) | (sample == 1)).all())
    same = zero_one and torch.equal(sample != 0, _token_batches()[0][0]["attention_mask"].bool())
    if shape != "ok" or not zero_one:
        assert res is None  # a wrong shape, a non-tensor, values other than 0/1 (uint8 -1 is 255)
    elif same:
        assert res is not None
    if res is not None and same and not eigh:
        assert all(torch.equal(a, b) for a, b in zip(res.model.state_dict().values(), _masked_reference(alpha)))


# --- clean positions with hold-outs -------------------------------------------------------------


def _data():
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(N, 4, generator=g, dtype=torch.float64), torch.randint(0, C, (N,), generator=g))


@FAST
@given(positions=st.sets(st.integers(0, N - 1), min_size=1, max_size=N - 4),
       form=st.sampled_from(["list", "numpy", "tensor", "np64", "mask", "torchmask"]),
       holdout=st.sampled_from([None, 0.2, 0.5, 0.9]), shuffle=st.booleans(), sweep=st.booleans(),
       batch=st.integers(1, 9))
def test_random_position_sets(positions, form, holdout, shuffle, sweep, batch):
    p = sorted(positions)
    given = {"list": p, "numpy": np.array(p), "tensor": torch.tensor(p), "np64": [np.int64(i) for i in p],
             "mask": np.isin(np.arange(N), p), "torchmask": torch.from_numpy(np.isin(np.arange(N), p))}[form]
    loader = DataLoader(_data(), batch_size=batch, shuffle=shuffle)
    kw = dict(alphas=[10.0, 100.0], holdout=holdout) if sweep else dict(alpha=10.0)
    res = _call(_mlp(), loader, ("trusted", "indices", "holdout", "alpha", "training samples"), trusted=given, **kw)
    if res is None:
        return
    assert res.trusted_indices.tolist() == p
    if res.holdout_indices is not None:
        assert not set(res.holdout_indices.tolist()) & set(p)


# --- variants ------------------------------------------------------------------------------------


@FAST
@given(mode=st.sampled_from(["sap", "sgp", "gpm"]), location=st.sampled_from(["pre", "post", "all"]),
       rounds=st.integers(1, 3), solver=st.sampled_from(["auto", "eigh", "solve"]), sweep=st.booleans())
def test_random_variants(mode, location, rounds, solver, sweep):
    loader = DataLoader(_data(), batch_size=8)
    alpha = {"gpm": 0.9}.get(mode, 10.0)
    kw = dict(alphas=[alpha]) if sweep else dict(alpha=alpha)
    res = _call(_mlp(), loader, ("solver", "rounds", "location", "mode", "alpha"), mode=mode, location=location,
                rounds=rounds, solver=solver, n_trusted=16, **kw)
    spectra_only = mode != "sap" or location != "pre" or rounds > 1
    if solver == "solve" and (spectra_only or sweep):
        assert res is None
    if rounds > 1 and location != "pre":
        assert res is None
    if res is None:
        return
    assert (res.mode, res.location, res.rounds) == (mode, location, rounds)
    for layer in res.layers:
        if spectra_only or sweep or solver == "eigh":
            assert layer.method in ("gram", "rows")
        else:
            assert layer.method == "solve"
        assert (layer.eigenvalues is None) == (layer.method == "solve" or location == "post")
