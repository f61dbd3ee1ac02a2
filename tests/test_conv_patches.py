"""``ops.conv_patches`` against ``F.unfold`` in float64, and its consistency with ``conv_gram``."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv_patches as onehot_patches

from sap_kernels import ops


def unfold_rows(x: torch.Tensor, kernel_size, stride, padding, dilation, groups) -> torch.Tensor:
    """``[groups, N * L, K_g]`` float64 rows from ``F.unfold`` (2-d only), whose columns are
    ``(channel, kernel offset)``: the order of ``weight.flatten(1)``."""
    cols = F.unfold(x.double(), kernel_size, dilation=dilation, padding=padding, stride=stride)  # [N, C*P, L]
    n, ck, length = cols.shape
    return cols.transpose(1, 2).reshape(n * length, groups, ck // groups).transpose(0, 1)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3), cg=st.integers(1, 3), groups=st.sampled_from([1, 2, 3]),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
    extra_h=st.integers(0, 4), extra_w=st.integers(0, 4), channels_last=st.booleans(),
)
def test_matches_unfold_in_float64(n, cg, groups, kh, kw, sh, sw, ph, pw, dh, dw, extra_h, extra_w, channels_last):
    h = max(1, dh * (kh - 1) + 1 - 2 * ph) + extra_h
    w = max(1, dw * (kw - 1) + 1 - 2 * pw) + extra_w
    x = torch.randn(n, groups * cg, h, w, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    args = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    got = ops.conv_patches(x, (kh, kw), **args)
    ref = unfold_rows(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups)
    geom = ops.conv_geometry(x.shape, (kh, kw), **args)
    assert got.shape == (groups, n * geom.rows_per_sample, geom.k_per_group)
    assert got.dtype == torch.float64 and got.is_contiguous()
    assert torch.equal(got, ref)  # a copy of the same values: exact


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("shape,kernel,kw", [
    ((2, 4, 11), 3, dict(stride=2, padding=1, dilation=2, groups=2)),  # Conv1d
    ((1, 3, 4, 5, 6), (2, 3, 2), dict(stride=(1, 2, 1), padding=1, groups=3)),  # Conv3d
    ((2, 2, 7, 6), 4, dict(padding="same")),  # asymmetric 'same' padding
])
def test_1d_3d_and_same_padding_match_the_onehot_reference(shape, kernel, kw):
    x = torch.randn(shape, dtype=torch.float64)
    assert torch.equal(ops.conv_patches(x, kernel, **kw), onehot_patches(x, kernel, **kw))


def test_gram_of_patches_is_conv_gram_and_dtype_argument():
    x = torch.randn(3, 6, 9, 8, dtype=torch.float64)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    p = ops.conv_patches(x, 3, **kw)
    g = ops.conv_gram(x, 3, **kw)
    assert torch.allclose(p.transpose(1, 2) @ p, g, rtol=1e-12, atol=1e-10)
    p32 = ops.conv_patches(x, 3, dtype=torch.float32, **kw)
    assert p32.dtype == torch.float32 and torch.equal(p32, p.float())
    with pytest.raises(TypeError, match="dtype"):
        ops.conv_patches(x, 3, dtype=torch.int64)


def test_rows_per_sample_is_public():
    geom = ops.conv_geometry((5, 4, 10, 12), 3, stride=2, padding=1)
    assert geom.rows_per_sample == 5 * 6 and geom.k_per_group == 36
