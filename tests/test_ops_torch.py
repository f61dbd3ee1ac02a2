"""The torch backend's ops against float64 references, on shapes hypothesis draws."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv_patches

from sap_kernels import ops


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300))


@st.composite
def conv_cases(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2, 3]))
    cg = draw(st.integers(1, 3))
    ks = tuple(draw(st.integers(1, 7 if nd == 1 else 4)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    form = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    stride = (1,) * nd if form == "same" else tuple(draw(st.integers(1, 3)) for _ in range(nd))
    if form == "int":
        padding = draw(st.integers(0, 3))
    elif form == "tuple":
        padding = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    else:
        padding = form
    pad_total = [2 * (padding if isinstance(padding, int) else padding[i]) if form in ("int", "tuple") else 0
                 for i in range(nd)]
    spatial = tuple(
        max(1, d * (k - 1) + 1 - pt) + draw(st.integers(0, 5 if nd < 3 else 2))
        for d, k, pt in zip(dil, ks, pad_total)
    )
    n = draw(st.integers(1, 3))
    return (n, groups * cg, *spatial), dict(kernel_size=ks, stride=stride, padding=padding, dilation=dil, groups=groups)


@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.sampled_from([None, 0.001]))
def test_conv_gram_matches_float64_patches(case, chunk_mb):
    shape, kw = case
    torch.manual_seed(0)
    x = torch.randn(shape)
    import os

    old = os.environ.get("SAP_KERNELS_CHUNK_MB")
    try:
        if chunk_mb is not None:  # a few KiB: forces chunking over samples and output rows
            os.environ["SAP_KERNELS_CHUNK_MB"] = str(chunk_mb)
        got = ops.conv_gram(x, kw["kernel_size"], stride=kw["stride"], padding=kw["padding"],
                            dilation=kw["dilation"], groups=kw["groups"], backend="torch")
    finally:
        if old is None:
            os.environ.pop("SAP_KERNELS_CHUNK_MB", None)
        else:
            os.environ["SAP_KERNELS_CHUNK_MB"] = old
    p = conv_patches(x, **kw)
    ref = p.transpose(1, 2) @ p
    assert got.shape == ref.shape
    assert got.dtype == torch.float32
    assert rel(got, ref) < 1e-5


@pytest.mark.parametrize("m,k", [(5, 3), (123, 17), (273, 401), (4100, 5), (37, 773)])
def test_gram_matches_float64(m, k):
    torch.manual_seed(k)
    x = torch.randn(m, k) + 0.5  # a mean component, as post-ReLU activations have
    got = ops.gram(x, backend="torch")
    ref = x.double().T @ x.double()
    assert rel(got, ref) < 1e-5
    assert torch.equal(got, got.T) or rel(got, got.T) < 1e-7


def test_gram_leading_dims_dtypes_and_accumulation():
    torch.manual_seed(1)
    x = torch.randn(3, 5, 7, 11)
    ref = x.reshape(-1, 11).double().T @ x.reshape(-1, 11).double()
    out = torch.zeros(11, 11)
    ops.gram(x[:1], out=out)
    ops.gram(x[1:], out=out)
    assert rel(out, ref) < 1e-6
    for dt in (torch.float16, torch.bfloat16):
        xh = x.to(dt)
        g = ops.gram(xh)
        assert g.dtype == torch.float32
        assert rel(g, xh.reshape(-1, 11).double().T @ xh.reshape(-1, 11).double()) < 1e-6
    assert ops.gram(x.double()).dtype == torch.float64


def test_conv_gram_accumulates_and_takes_channels_last():
    torch.manual_seed(2)
    x = torch.randn(4, 6, 9, 10)
    kw = dict(stride=2, padding=(1, 2), dilation=(2, 1), groups=2)
    ref = conv_patches(x, 3, **kw)
    ref = ref.transpose(1, 2) @ ref
    out = ops.conv_gram(x[:1], 3, **kw)
    ops.conv_gram(x[1:].contiguous(memory_format=torch.channels_last), 3, out=out, **kw)
    assert rel(out, ref) < 1e-6


def test_op_argument_errors_name_the_problem():
    x = torch.randn(2, 4, 5, 5)
    with pytest.raises(ValueError, match="groups=3"):
        ops.conv_gram(x, 3, groups=3)
    with pytest.raises(ValueError, match="'same' is only defined for stride 1"):
        ops.conv_gram(x, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.conv_gram(x, 7)
    with pytest.raises(ValueError, match="out has shape"):
        ops.conv_gram(x, 3, out=torch.zeros(1, 3, 3))
    with pytest.raises(TypeError, match="float tensor"):
        ops.gram(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="not a backend"):
        ops.gram(torch.ones(3, 3), backend="numpy")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=9),
       st.floats(1e-3, 1e7), st.floats(1e-3, 1e7))
def test_sap_scales_bounds_and_monotone_in_alpha(energies, a1, a2):
    e = torch.tensor(energies, dtype=torch.float64)
    lo, hi = sorted((a1, a2))
    l1, l2 = ops.sap_scales(e, lo), ops.sap_scales(e, hi)
    assert bool(((l1 >= 0) & (l1 <= 1 + 1e-12)).all())
    assert bool((l2 >= l1 - 1e-12).all())
    if float(e.sum()) > 0:
        r = e / e.sum()
        assert torch.allclose(l1, lo * r / ((lo - 1) * r + 1))


def test_sap_scales_limits_and_errors():
    e = torch.tensor([4.0, 1.0, 0.0, -1e-9])
    assert torch.equal(ops.sap_scales(e, math.inf), torch.ones(4))
    assert torch.allclose(ops.sap_scales(e, 1.0), torch.tensor([0.8, 0.2, 0.0, 0.0]))
    assert torch.equal(ops.sap_scales(torch.zeros(3), 10.0), torch.zeros(3))
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha must be > 0"):
            ops.sap_scales(e, bad)


@pytest.mark.parametrize("out,k,lead", [(5, 7, ()), (123, 17, (3,)), (1, 273, ())])
@pytest.mark.parametrize("alpha", [0.5, 30.0, 3e4])
def test_scaled_projection_matches_float64(out, k, lead, alpha):
    torch.manual_seed(out + k)
    w = torch.randn(*lead, out, k)
    a = torch.randn(*lead, 2 * k, k)
    e, v = torch.linalg.eigh(a.transpose(-1, -2) @ a)
    e64, v64, w64 = e.double(), v.double(), w.double()
    r = e64 / e64.sum(-1, keepdim=True)
    lam = alpha * r / ((alpha - 1) * r + 1)
    ref = (w64 @ v64 * lam.unsqueeze(-2)) @ v64.transpose(-1, -2)
    got = ops.scaled_projection(w, e, v, alpha, backend="torch")
    assert got.dtype == w.dtype and rel(got, ref) < 1e-5
    wv = w @ v
    assert rel(ops.scaled_projection(w, e, v, alpha, wv=wv, backend="torch"), ref) < 1e-5
    assert rel(ops.scaled_projection(w, e, v, math.inf, backend="torch"), w64) < 1e-5
