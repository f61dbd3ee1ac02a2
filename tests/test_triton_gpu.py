"""Triton kernels compiled for a CUDA device: accuracy per precision on realistic shapes,
determinism with many row splits, and extra memory independent of the batch size.

Skipped without CUDA; needs no hypothesis (shapes are drawn from a seeded generator).
"""
from __future__ import annotations

import math
import random

import pytest
import torch

pytest.importorskip("triton")
from sap_kernels import ops  # noqa: E402
from sap_kernels.kernels.triton import _common  # noqa: E402
from sap_kernels.ops.dispatch import generic_request, select  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double().cpu()
    return ((got.double().cpu() - ref).abs().max() / ref.abs().max()).item()


def unfold_gram64(x: torch.Tensor, k: int, stride: int, padding: int, groups: int = 1) -> torch.Tensor:
    """float64 reference on the GPU: explicit F.unfold then a GEMM per group."""
    p = torch.nn.functional.unfold(x.double(), k, padding=padding, stride=stride)  # [N, C*k*k, L]
    n, ck, length = p.shape
    p = p.transpose(1, 2).reshape(n * length, groups, ck // groups).transpose(0, 1)
    return p.transpose(1, 2) @ p


# (C, H, k, stride, pad, groups): ResNet-like layers plus odd/prime/depthwise ones.
SHAPES = [
    (3, 32, 3, 1, 1, 1), (64, 32, 3, 1, 1, 1), (64, 32, 3, 2, 1, 1), (128, 16, 1, 2, 0, 1),
    (256, 8, 3, 1, 1, 1), (3, 56, 7, 2, 3, 1), (96, 14, 3, 1, 1, 96), (37, 13, 5, 3, 2, 1),
    (30, 11, 2, 1, 0, 3),
]


def test_cuda_prefers_triton():
    assert select(generic_request("gram", "cuda")).name == "triton"
    assert not _common.interpreted()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_conv_gram_ieee_matches_float64(shape, layout):
    c, h, k, s, p, g = shape
    x = torch.randn(8, c, h, h, device="cuda")
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    got = ops.conv_gram(x, k, stride=s, padding=p, groups=g)
    assert rel_err(got, unfold_gram64(x, k, s, p, g)) < 1e-5
    assert torch.equal(got, got.transpose(1, 2))


@pytest.mark.parametrize("shape", SHAPES[:5], ids=str)
def test_conv_gram_precisions(shape):
    c, h, k, s, p, g = shape
    x = torch.randn(8, c, h, h, device="cuda")
    ref = unfold_gram64(x, k, s, p, g)
    assert rel_err(ops.conv_gram(x, k, stride=s, padding=p, groups=g, precision="tf32"), ref) < 5e-3
    xb = x.bfloat16()
    ref_b = unfold_gram64(xb, k, s, p, g)
    # bf16 operands, fp32 accumulation: products are exact, so only summation order differs.
    assert rel_err(ops.conv_gram(xb, k, stride=s, padding=p, groups=g), ref_b) < 1e-5
    assert rel_err(ops.conv_gram(x, k, stride=s, padding=p, groups=g, precision="bf16"), ref_b) < 1e-5
    xh = x.half()
    assert rel_err(ops.conv_gram(xh, k, stride=s, padding=p, groups=g), unfold_gram64(xh, k, s, p, g)) < 1e-5


def test_random_conv_params_match_float64():
    rng = random.Random(1234)
    for _ in range(40):
        nd = rng.choice([1, 2, 2, 3])
        ks = [rng.randint(1, 7 if nd < 3 else 3) for _ in range(nd)]
        dil = [rng.randint(1, 3) for _ in range(nd)]
        same = rng.random() < 0.3
        stride = [1] * nd if same else [rng.randint(1, 3) for _ in range(nd)]
        groups = rng.choice([1, 2, 3])
        c = groups * rng.choice([1, 2, 5, 16])
        spatial = [rng.randint(d * (k - 1) + 1, d * (k - 1) + 20 if nd < 3 else d * (k - 1) + 6)
                   for k, d in zip(ks, dil)]
        x = torch.randn(rng.randint(1, 6), c, *spatial, device="cuda")
        padding = "same" if same else rng.randint(0, 3)
        got = ops.conv_gram(x, ks, stride=stride, padding=padding, dilation=dil, groups=groups)
        ref = ops.conv_gram(x.double().cpu(), ks, stride=stride, padding=padding, dilation=dil, groups=groups,
                            backend="torch")
        assert rel_err(got, ref) < 1e-5, (nd, ks, stride, padding, dil, groups, list(x.shape))


@pytest.mark.parametrize("m,k", [(1, 1), (4100, 27), (200_000, 64), (3001, 273), (513, 1000)])
def test_gram_matches_float64(m, k):
    x = torch.randn(m, k, device="cuda")
    xd = x.double()
    assert rel_err(ops.gram(x), xd.T @ xd) < 1e-5


def test_many_splits_are_bit_identical():
    x = torch.randn(256, 64, 32, 32, device="cuda")  # 262k rows, 576 columns: splits > 1
    first = ops.conv_gram(x, 3, padding=1)
    for _ in range(3):
        assert torch.equal(ops.conv_gram(x, 3, padding=1), first)
    rows = torch.randn(1_000_000, 27, device="cuda")
    g = ops.gram(rows)
    assert torch.equal(ops.gram(rows), g)


def test_extra_memory_is_independent_of_batch():
    def extra(n: int) -> int:
        x = torch.randn(n, 64, 32, 32, device="cuda")
        out = torch.zeros(1, 576, 576, device="cuda")
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        ops.conv_gram(x, 3, padding=1, out=out)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    small, large = extra(16), extra(512)
    assert large <= small + 2**20
    assert large <= _common.WORKSPACE_BYTES + 2**20


@pytest.mark.parametrize("out,k", [(64, 576), (512, 4608), (10, 512), (256, 64)])
@pytest.mark.parametrize("alpha", [3e4, math.inf])
def test_scaled_projection_matches_float64(out, k, alpha):
    rows = torch.randn(2 * k, k, device="cuda", dtype=torch.float64)
    e, v = torch.linalg.eigh(rows.T @ rows)
    w = torch.randn(out, k, device="cuda")
    got = ops.scaled_projection(w, e.float(), v.float(), alpha)
    ref = ops.scaled_projection(w.double(), e.float().double(), v.float().double(), alpha, backend="torch")
    assert rel_err(got, ref) < 1e-5
