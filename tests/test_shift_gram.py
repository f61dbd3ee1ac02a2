"""The torch backend's shift route for stride-1 convolutions against float64 patches."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv_patches

from sap_kernels import ops
from sap_kernels.kernels.torch import shift_gram


def float64_gram(x, kernel_size, padding, dilation):
    p = conv_patches(x, kernel_size, 1, padding, dilation, 1)[0]
    return p.t() @ p


def rel(a, b, scale=0.0):
    """Max error over the larger of max|b| and ``scale``."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(max(scale, 1e-300)))


@st.composite
def stride1_cases(draw):
    nd = draw(st.integers(1, 2))
    ks = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    form = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    choices = {"int": draw(st.integers(0, 3)), "tuple": tuple(draw(st.integers(0, 3)) for _ in range(nd))}
    padding = choices.get(form, form)
    pad_total = [2 * (padding if isinstance(padding, int) else padding[i]) if form in ("int", "tuple") else 0
                 for i in range(nd)]
    spatial = tuple(max(1, d * (k - 1) + 1 - pt) + draw(st.integers(0, 6)) for d, k, pt in zip(dil, ks, pad_total))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 5)), *spatial), ks, padding, dil


@settings(max_examples=80, deadline=None)
@given(case=stride1_cases(), seed=st.integers(0, 2**16))
def test_shift_route_matches_float64_patches(case, seed):
    """Every stride-1 1-d/2-d geometry (kernel 1..5, dilation 1..3, every padding form, odd and
    unit sizes), exact in float64: the shifted sums minus the border strips are the Gram."""
    shape, ks, padding, dil = case
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    geom = ops.conv_geometry(x.shape, ks, 1, padding, dil, 1)
    assert shift_gram.applicable(geom)
    p, c = math.prod(ks), shape[1]
    out = torch.zeros(1, c * p, c * p, dtype=torch.float64)
    shift_gram.shift_conv_gram_(out, x, geom)
    # The route subtracts border strips from whole-image sums, so its rounding is relative to
    # those sums (the largest per-channel sum of squares), not to the result: a geometry whose
    # patches all fall on padding has an exactly zero Gram and a ~1e-16 computed one.
    scale = float(x.pow(2).sum(dim=[d for d in range(x.dim()) if d != 1]).max())
    assert rel(out[0], float64_gram(x, ks, padding, dil), scale) < 1e-12


@pytest.mark.parametrize("chunk_mb", [None, "0.01"])
def test_torch_backend_takes_the_shift_route_and_accumulates(monkeypatch, chunk_mb):
    """A 24-channel 3x3 'same' conv goes through the shift route (several sample chunks when the
    budget is small) and matches float64 in float32, adding into ``out``."""
    if chunk_mb:
        monkeypatch.setenv("SAP_KERNELS_CHUNK_MB", chunk_mb)
    torch.manual_seed(0)
    x = torch.randn(5, 24, 11, 9)
    geom = ops.conv_geometry(x.shape, 3, 1, "same", 1, 1)
    assert shift_gram.preferred(geom)
    calls = []
    real = shift_gram.shift_conv_gram_
    monkeypatch.setattr(shift_gram, "shift_conv_gram_", lambda *a: calls.append(1) or real(*a))
    out = torch.eye(216).unsqueeze(0)
    ops.conv_gram(x, 3, padding="same", out=out, backend="torch")
    assert len(calls) == (5 if chunk_mb else 1)
    assert rel(out[0] - torch.eye(216), float64_gram(x, 3, "same", 1)) < 1e-5


def test_route_choice():
    def geom(c, size, k=3, stride=1, padding=1, groups=1, nd=2):
        return ops.conv_geometry((1, c, *([size] * nd)), k, stride, padding, 1, groups)

    assert shift_gram.preferred(geom(64, 32))  # ResNet 3x3 'same': 2.5x fewer multiply-adds
    assert shift_gram.preferred(geom(64, 32, nd=1))
    assert not shift_gram.preferred(geom(3, 32))  # too few channels for efficient products
    assert not shift_gram.preferred(geom(64, 32, stride=2))
    assert not shift_gram.preferred(geom(64, 32, groups=2))
    assert not shift_gram.preferred(geom(32, 8, padding=0))  # 'valid' on a small input: wide borders
    assert not shift_gram.applicable(ops.conv_geometry((1, 64, 4, 4, 4), 3, 1, 1, 1, 1))  # 3-d
