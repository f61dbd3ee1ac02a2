"""Bad input at the op level: a TypeError/ValueError that names the argument, never a silent
wrong result or a raw error from deep inside a backend. Also the edge cases that are valid
(empty inputs) and what they return."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sap_kernels import ops
from sap_kernels.kernels.torch import chunking


def _eigpairs(k: int = 6, dtype=torch.float32):
    a = torch.randn(3 * k, k, dtype=torch.float64)
    e, v = torch.linalg.eigh(a.T @ a)
    return e.to(dtype), v.to(dtype)


# ------------------------------------------------------------------------------- out aliasing
def test_gram_refuses_out_aliasing_x():
    x = torch.randn(5, 5)
    with pytest.raises(ValueError, match="out overlaps the input x"):
        ops.gram(x, out=x)
    base = torch.randn(30)
    with pytest.raises(ValueError, match="out overlaps"):  # partly overlapping views of one storage
        ops.gram(base[:25].view(5, 5), out=base[5:30].view(5, 5))


def test_gram_refuses_out_sharing_memory_through_another_wrapper():
    a = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    x, out = torch.from_numpy(a), torch.from_numpy(a)  # two tensors, one buffer
    with pytest.raises(ValueError, match="out overlaps"):
        ops.gram(x, out=out)


def test_gram_with_separate_out_of_same_storage_is_fine():
    buf = torch.zeros(2, 4, 4)
    x = torch.randn(7, 4)
    buf[0].copy_(x[:4])
    got = ops.gram(buf[0], out=buf[1])  # disjoint halves of one storage: allowed
    ref = buf[0].double().T @ buf[0].double()
    assert torch.allclose(got.double(), ref, atol=1e-5)


def test_conv_gram_refuses_out_aliasing_x():
    x = torch.randn(1, 1, 3, 3)  # K_g = 3 for a (3, 1) kernel: out [1, 3, 3] can be x itself
    with pytest.raises(ValueError, match="out overlaps"):
        ops.conv_gram(x, (3, 1), padding=(1, 0), out=x.view(1, 3, 3))


# ------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_float_weight_is_refused(dtype):
    e, v = _eigpairs()
    w = torch.ones(3, 6).to(dtype)
    with pytest.raises(TypeError, match="weight must be a real float tensor"):
        ops.scaled_projection(w, e, v, 10.0)
    with pytest.raises(TypeError, match="weight must be a real float tensor"):
        ops.gram_projection(w, torch.eye(6), 10.0)


def test_non_float_eigenpairs_wv_and_inputs_are_refused():
    e, v = _eigpairs()
    w = torch.randn(3, 6)
    with pytest.raises(TypeError, match="eigvals"):
        ops.scaled_projection(w, e.long(), v, 10.0)
    with pytest.raises(TypeError, match="eigvecs"):
        ops.scaled_projection(w, e, v.int(), 10.0)
    with pytest.raises(TypeError, match="wv"):
        ops.scaled_projection(w, e, v, 10.0, wv=torch.ones(3, 6, dtype=torch.int64))
    with pytest.raises(TypeError, match="x must be a real float tensor"):
        ops.conv_gram(torch.ones(1, 1, 3, 3, dtype=torch.int64), 1)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        ops.gram(np.ones((3, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="eigvals must be a real float tensor"):
        ops.sap_scales(torch.tensor([1, 2]), 2.0)


def test_out_dtype_device_and_layout_are_checked():
    x = torch.randn(6, 3)
    with pytest.raises(TypeError, match="out must be float32 or float64"):
        ops.gram(x, out=torch.zeros(3, 3, dtype=torch.float16))
    with pytest.raises(TypeError, match="float64 for float64 input"):
        ops.gram(x.double(), out=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="out must be contiguous"):
        ops.gram(x, out=torch.zeros(3, 6)[:, ::2])
    with pytest.raises(TypeError, match="out must be a torch.Tensor"):
        ops.gram(x, out=np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="out is on meta"):
        ops.gram(x, out=torch.zeros(3, 3, device="meta"))


# ------------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_eigenvalues_are_refused(bad):
    """One NaN eigenvalue used to zero the whole weight (the total is not > 0); inf gave NaN."""
    e, v = _eigpairs()
    e[2] = bad
    w = torch.randn(3, 6)
    with pytest.raises(ValueError, match="eigvals holds NaN or inf"):
        ops.scaled_projection(w, e, v, 10.0)
    with pytest.raises(ValueError, match="eigvals holds NaN or inf"):
        ops.sap_scales(e, 10.0)


def test_non_finite_eigenvectors_are_refused():
    e, v = _eigpairs()
    v[0, 0] = math.nan
    with pytest.raises(ValueError, match="eigvecs holds NaN or inf"):
        ops.scaled_projection(torch.randn(3, 6), e, v, 10.0)


# ------------------------------------------------------------------------------- devices
def test_mismatched_devices_name_each_tensor():
    e, v = _eigpairs()
    w = torch.randn(3, 6)
    with pytest.raises(ValueError, match="wv on meta"):
        ops.scaled_projection(w, e, v, 10.0, wv=torch.empty(3, 6, device="meta"))
    with pytest.raises(ValueError, match="eigvecs on meta"):
        ops.scaled_projection(w, e, v.to("meta"), 10.0)
    with pytest.raises(ValueError, match="gram on meta"):
        ops.gram_projection(w, torch.eye(6, device="meta"), 10.0)


# ------------------------------------------------------------------------------- alpha
@pytest.mark.parametrize("alpha", ["10", None, True, [1.0], 1 + 2j])
def test_alpha_must_be_a_real_number(alpha):
    e, v = _eigpairs()
    with pytest.raises(TypeError, match="alpha must be a positive number"):
        ops.scaled_projection(torch.randn(3, 6), e, v, alpha)
    with pytest.raises(TypeError, match="alpha must be a positive number"):
        ops.sap_scales(e, alpha)


def test_alpha_accepts_numpy_and_0d_tensors():
    e, v = _eigpairs()
    w = torch.randn(3, 6)
    ref = ops.scaled_projection(w, e, v, 10.0)
    assert torch.equal(ops.scaled_projection(w, e, v, np.float32(10.0)), ref)
    assert torch.equal(ops.scaled_projection(w, e, v, torch.tensor(10.0)), ref)


# ------------------------------------------------------------------------------- conv sizes
@pytest.mark.parametrize("arg", ["kernel_size", "stride", "dilation", "padding", "groups"])
def test_conv_size_arguments_must_be_integers(arg):
    x = torch.randn(1, 2, 6, 6)
    kwargs = dict(kernel_size=3, stride=1, dilation=1, padding=0, groups=1)
    kwargs[arg] = 1.0 if arg != "kernel_size" else 3.0
    ks = kwargs.pop("kernel_size")
    with pytest.raises(TypeError, match=arg):
        ops.conv_gram(x, ks, **kwargs)
    with pytest.raises(TypeError, match=arg):
        ops.conv_patches(x, ks, **kwargs)


def test_conv_sizes_accept_integral_types_and_tuples():
    x = torch.randn(1, 2, 6, 6)
    ref = ops.conv_gram(x, 3, stride=2, padding=1)
    assert torch.equal(ops.conv_gram(x, np.int64(3), stride=(np.int32(2), 2), padding=torch.tensor(1)), ref)
    with pytest.raises(TypeError, match="kernel_size"):
        ops.conv_gram(x, (3, 2.5))
    with pytest.raises(TypeError, match="kernel_size"):
        ops.conv_gram(x, "3")


# ------------------------------------------------------------------------------- empty inputs
def test_zero_width_rows_give_an_empty_gram():
    """K = 0 is valid: the Gram of zero-width rows is the [0, 0] matrix (documented)."""
    assert ops.gram(torch.empty(5, 0)).shape == (0, 0)
    assert ops.gram(torch.empty(0, 0)).shape == (0, 0)
    g = ops.conv_gram(torch.empty(2, 0, 5, 5), 3)
    assert g.shape == (1, 0, 0)


def test_no_rows_leave_out_unchanged():
    out = torch.ones(4, 4)
    assert ops.gram(torch.empty(0, 4), out=out) is out and torch.equal(out, torch.ones(4, 4))
    assert torch.equal(ops.gram(torch.empty(3, 0, 4)), torch.zeros(4, 4))
    assert torch.equal(ops.conv_gram(torch.empty(0, 2, 5, 5), 3), torch.zeros(1, 18, 18))


def test_scalar_input_is_a_named_error():
    with pytest.raises(ValueError, match="x must be \\[..., K\\]"):
        ops.gram(torch.tensor(1.0))


def test_empty_weight_projects_to_empty():
    e, v = _eigpairs(0)
    assert ops.scaled_projection(torch.empty(3, 0), e, v, 10.0).shape == (3, 0)


# ------------------------------------------------------------------------------- env vars
@pytest.mark.parametrize("raw", ["abc", "nan", "inf", "-inf", "0", "-1", "1e400"])
def test_bad_chunk_size_names_the_variable_and_value(monkeypatch, raw):
    monkeypatch.setenv(chunking.ENV_VAR, raw)
    x = torch.randn(20, 3)
    for call in (lambda: ops.gram(x, backend="torch"), lambda: ops.conv_gram(x.view(1, 1, 20, 3), 2)):
        with pytest.raises(ValueError, match=f"SAP_KERNELS_CHUNK_MB={raw!r}"):
            call()


def test_good_chunk_sizes(monkeypatch):
    x = torch.randn(50, 7)
    for raw in ("", "0.0001", "64", " 2 "):
        monkeypatch.setenv(chunking.ENV_VAR, raw)
        assert torch.allclose(ops.gram(x.half(), backend="torch"), x.half().double().T.float() @ x.half().float(),
                              atol=1e-3)


def _every_op_call():
    x = torch.randn(6, 3)
    e, v = _eigpairs(3)
    w = torch.randn(2, 3)
    return {
        "gram": lambda: ops.gram(x),
        "gram (empty)": lambda: ops.gram(torch.empty(0, 3)),
        "conv_gram": lambda: ops.conv_gram(x.view(1, 1, 6, 3), 2),
        "conv_gram (empty)": lambda: ops.conv_gram(torch.empty(0, 1, 6, 3), 2),
        "scaled_projection": lambda: ops.scaled_projection(w, e, v, 3.0),
        "scaled_projection (empty)": lambda: ops.scaled_projection(torch.empty(0, 3), e, v, 3.0),
        "gram_projection": lambda: ops.gram_projection(w, x.T @ x, 3.0),
        "gram_projection (inf)": lambda: ops.gram_projection(w, x.T @ x, math.inf),
        "sap_scales": lambda: ops.sap_scales(e, 3.0),
        "conv_patches": lambda: ops.conv_patches(x.view(1, 1, 6, 3), 2),
    }


@pytest.mark.parametrize("name", list(_every_op_call()))
def test_bogus_backend_variable_is_refused_on_every_op_path(monkeypatch, name):
    call = _every_op_call()[name]
    call()  # valid without the variable
    monkeypatch.setenv("SAP_KERNELS_BACKEND", "bogus")
    with pytest.raises(ValueError, match="SAP_KERNELS_BACKEND='bogus' is not a backend"):
        call()


def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision must be one of"):
        ops.gram(torch.randn(3, 3), precision="fp8")
    with pytest.raises(ValueError, match="precision must be one of"):
        ops.scaled_projection(torch.randn(2, 3), *_eigpairs(3), 2.0, precision=None)


def test_results_carry_no_autograd_history():
    w = torch.randn(3, 6, requires_grad=True)
    e, v = _eigpairs()
    assert not ops.scaled_projection(w, e, v, 5.0).requires_grad
    x = torch.randn(8, 6, requires_grad=True)
    assert not ops.gram(x).requires_grad
    assert not ops.conv_patches(x.view(1, 1, 8, 6), 2).requires_grad


# --- sparse tensors and absurd sizes: named errors from the argument checks ---------------------


def _sparse_cases():
    import sap_kernels.ops as o

    x = torch.randn(4, 3)
    img = torch.randn(1, 2, 5, 5)
    return [
        lambda: o.gram(x.to_sparse()),
        lambda: o.gram(x, out=torch.zeros(3, 3).to_sparse()),
        lambda: o.conv_gram(img.to_sparse(), 3),
        lambda: o.conv_gram(img, 3, out=torch.zeros(1, 18, 18).to_sparse()),
        lambda: o.conv_patches(img.to_sparse(), 3),
        lambda: o.scaled_projection(torch.randn(3, 4).to_sparse(), torch.ones(4), torch.eye(4), 2.0),
        lambda: o.scaled_projection(torch.randn(3, 4), torch.ones(4).to_sparse(), torch.eye(4), 2.0),
        lambda: o.gram_projection(torch.randn(3, 4), torch.eye(4).to_sparse(), 2.0),
    ]


@pytest.mark.parametrize("case", range(8))
def test_sparse_tensors_are_named_type_errors(case):
    with pytest.raises(TypeError, match="dense"):
        _sparse_cases()[case]()


@pytest.mark.parametrize("kw, words", [
    (dict(kernel_size=10**6, padding=10**6), "beyond any tensor"),
    (dict(kernel_size=2**31, padding=2**31), "beyond any tensor"),
    (dict(kernel_size=3, dilation=2**62), "dilation must be < 2**62"),
    (dict(kernel_size=3, stride=2**70), "stride must be < 2**62"),
    (dict(kernel_size=3, padding=2**70), "padding must be < 2**62"),
    (dict(kernel_size=2**70), "kernel_size must be < 2**62"),
])
def test_absurd_conv_sizes_are_named_value_errors(kw, words):
    import sap_kernels.ops as o

    with pytest.raises(ValueError) as info:
        o.conv_gram(torch.randn(1, 2, 5, 5), **kw)
    assert words in str(info.value)
