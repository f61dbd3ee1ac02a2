"""Triton backend vs float64 references, on CPU through the Triton interpreter (or on CUDA).

The references here are written independently of the package: patches are gathered by slicing a
zero-padded copy of the input (one slice per kernel offset), and ``lambda`` is re-derived from
its formula. Errors are measured as ``max|got - ref| / max|ref|``.
"""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sap_kernels import ops
from sap_kernels.ops.dispatch import ENV_VAR, generic_request, select

triton = pytest.importorskip("triton")
from sap_kernels.kernels.triton import _common  # noqa: E402
from sap_kernels.kernels.triton.conv_gram import conv_gram_triton_launch  # noqa: E402
from sap_kernels.kernels.triton.gram import gram_triton_launch  # noqa: E402
from sap_kernels.kernels.triton.projection import (  # noqa: E402
    scaled_projection_triton_launch,
    weight_times_eigvecs,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.interpreter,
    pytest.mark.skipif(
        DEVICE == "cpu" and not _common.interpreted(),
        reason="no GPU and the Triton kernels were not built by the interpreter (TRITON_INTERPRET=1)",
    ),
]
TOL = 1e-5  # fp32 "ieee" vs float64
FAST = settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
ODD = [1, 2, 3, 5, 7, 11, 13, 17, 31, 37, 64, 65, 97]


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double().cpu()
    return ((got.double().cpu() - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()


# ----------------------------------------------------------------------------- references
def same_padding(ks, dilation):
    total = [d * (k - 1) for k, d in zip(ks, dilation)]
    return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)


def im2col_ref(x, ks, stride, pad_lo, pad_hi, dilation, groups) -> torch.Tensor:
    """``[G, rows, K_g]`` float64 patches: pad, then one strided slice per kernel offset."""
    x = x.double()
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    pads = []
    for lo, hi in zip(reversed(pad_lo), reversed(pad_hi)):
        pads += [lo, hi]
    xp = F.pad(x, pads)
    outs = [(s + lo + hi - d * (k - 1) - 1) // t + 1
            for s, lo, hi, d, k, t in zip(spatial, pad_lo, pad_hi, dilation, ks, stride)]
    cols = []
    for q in itertools.product(*[range(k) for k in ks]):
        sl = [slice(None), slice(None)]
        sl += [slice(qd * d, qd * d + (o - 1) * t + 1, t) for qd, d, o, t in zip(q, dilation, outs, stride)]
        cols.append(xp[tuple(sl)])
    p = torch.stack(cols, dim=2).flatten(3)  # [N, C, Q, R]
    rows = p.permute(0, 3, 1, 2).reshape(-1, groups, (c // groups) * math.prod(ks))
    return rows.transpose(0, 1)


def gram_ref(p: torch.Tensor) -> torch.Tensor:
    p = p.double()
    return p.transpose(-1, -2) @ p


def projection_ref(w, e, v, alpha) -> torch.Tensor:
    w, e, v = w.double(), e.double(), v.double()
    if math.isinf(alpha):
        lam = torch.ones_like(e)
    else:
        ep = e.clamp_min(0)
        tot = ep.sum(-1, keepdim=True)
        r = torch.where(tot > 0, ep / tot.clamp_min(1e-300), torch.zeros_like(ep))
        lam = alpha * r / ((alpha - 1) * r + 1)
    return ((w @ v) * lam.unsqueeze(-2)) @ v.transpose(-1, -2)


# ----------------------------------------------------------------------------- strategies
@st.composite
def conv_cases(draw):
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    kmax = 7 if nd < 3 else 3
    ks = tuple(draw(st.integers(1, kmax)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    stride = (1,) * nd if kind == "same" else tuple(draw(st.integers(1, 3)) for _ in range(nd))
    if kind == "int":
        padding = draw(st.integers(0, 3))
        lo = hi = (padding,) * nd
    elif kind == "tuple":
        padding = tuple(draw(st.integers(0, 3)) for _ in range(nd))
        lo = hi = padding
    elif kind == "same":
        padding = "same"
        lo, hi = same_padding(ks, dil)
    else:
        padding = "valid"
        lo = hi = (0,) * nd
    if draw(st.booleans()):  # depthwise
        groups = draw(st.sampled_from([1, 2, 3, 5]))
        cpg = 1
    else:
        groups = draw(st.sampled_from([1, 1, 2, 3]))
        cpg = draw(st.sampled_from([1, 2, 3, 5]))
    assume(cpg * math.prod(ks) <= 160)  # bounded interpreter time
    smax = 12 if nd < 3 else 5
    spatial = []
    for k, d, p0, p1 in zip(ks, dil, lo, hi):
        need = max(1, d * (k - 1) + 1 - p0 - p1)
        spatial.append(draw(st.integers(need, max(need, smax))))
    n = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["contiguous", "channels_last"]))
    return dict(nd=nd, ks=ks, stride=stride, dil=dil, padding=padding, lo=lo, hi=hi,
                groups=groups, c=groups * cpg, spatial=tuple(spatial), n=n, layout=layout)


def make_input(case, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case["n"], case["c"], *case["spatial"], generator=g, dtype=torch.float64).to(dtype)
    if case["layout"] == "channels_last":
        # Channels innermost, whatever the rank: same values, different strides.
        perm = (0, *range(2, x.dim()), 1)
        inv = [perm.index(i) for i in range(x.dim())]
        x = x.permute(perm).contiguous().permute(inv)
    return x.to(DEVICE)


def launch_options(draw_fn):
    return dict(block_k=draw_fn(st.sampled_from([None, 16, 32])), splits=draw_fn(st.sampled_from([None, 1, 2, 3])))


# ----------------------------------------------------------------------------- gram
@FAST
@given(m=st.sampled_from(ODD + [130, 257]), k=st.sampled_from(ODD), data=st.data())
def test_gram_matches_float64(m, k, data):
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(m * 1000 + k)).to(DEVICE)
    ref = gram_ref(x.cpu())
    if data.draw(st.booleans(), label="public op"):
        got = ops.gram(x, backend="triton")
    else:
        got = torch.zeros(k, k, device=DEVICE)
        gram_triton_launch(x, got, **launch_options(data.draw))
    assert got.dtype == torch.float32
    assert rel_err(got, ref) < TOL
    assert torch.equal(got, got.T), "the mirrored result must be exactly symmetric"


def test_gram_leading_dims_and_strided_rows():
    x = torch.randn(3, 7, 40, dtype=torch.float64).float().to(DEVICE)
    assert rel_err(ops.gram(x, backend="triton"), gram_ref(x.reshape(-1, 40).cpu())) < TOL
    wide = torch.randn(50, 90, device=DEVICE)
    view = wide[:, 5:71:2]  # non-contiguous columns
    out = torch.zeros(33, 33, device=DEVICE)
    gram_triton_launch(view, out, block_k=16, splits=2)
    assert rel_err(out, gram_ref(view.cpu())) < TOL


@pytest.mark.parametrize("splits", [1, 3])
def test_gram_accumulates_into_out(splits):
    x = torch.randn(77, 37, device=DEVICE)
    init = torch.randn(37, 37, device=DEVICE)
    out = init.clone()
    gram_triton_launch(x, out, block_k=16, splits=splits)
    assert rel_err(out, init.double().cpu() + gram_ref(x.cpu())) < TOL
    before = out.clone()
    ret = ops.gram(x, out=out, backend="triton")
    assert ret is out
    assert rel_err(out, before.double().cpu() + gram_ref(x.cpu())) < TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gram_half_inputs_accumulate_in_fp32(dtype):
    x = (torch.randn(97, 41) * 3).to(dtype).to(DEVICE)
    got = ops.gram(x, backend="triton")
    assert got.dtype == torch.float32
    # Products of 16-bit values are exact in fp32: compare with the exact Gram of the same values.
    assert rel_err(got, gram_ref(x.cpu())) < TOL


def test_gram_float64():
    x = torch.randn(65, 23, dtype=torch.float64, device=DEVICE)
    got = ops.gram(x, backend="triton")
    assert got.dtype == torch.float64
    assert rel_err(got, gram_ref(x.cpu())) < 1e-12


def test_gram_bf16_precision_rounds_operands():
    x = torch.randn(129, 35, device=DEVICE)
    got = ops.gram(x, backend="triton", precision="bf16")
    assert rel_err(got, gram_ref(x.bfloat16().cpu())) < TOL
    assert rel_err(got, gram_ref(x.cpu())) > 1e-4  # the option really changes the operands


def test_gram_tf32_precision_runs():
    x = torch.randn(64, 30, device=DEVICE)
    assert rel_err(ops.gram(x, backend="triton", precision="tf32"), gram_ref(x.cpu())) < 5e-3


def test_split_reduction_adds_partials_in_split_order():
    """Determinism rests on a fixed reduction order (bit-identical reruns on a GPU are checked in
    tests/test_triton_gpu.py; the interpreter runs programs one by one, so reruns here could not
    differ). Partials whose fp32 sum depends on the order must give the left-to-right sum
    ``((p0 + p1) + p2) + p3`` exactly: a tree or reversed order gives another value."""
    splits, block = 4, 16
    parts = torch.tensor([1e8, 1.0, -1e8, 1.0], dtype=torch.float32)  # in order: 1.0; (p0+p2)+(p1+p3): 2.0
    ws = parts.view(1, splits, 1, 1, 1).expand(1, splits, 1, block, block).contiguous().to(DEVICE)
    tiles = _common.upper_tiles(1, torch.device(DEVICE))
    out = torch.zeros(1, block, block, device=DEVICE)
    _common.reduce_splits(ws, tiles, out, block, _common.identity_launch)
    expected = ((parts[0] + parts[1]) + parts[2]) + parts[3]
    assert expected.item() == 1.0  # the construction really is order-sensitive
    assert torch.equal(out.cpu(), torch.full((1, block, block), expected.item()))


def test_kernels_use_no_float_atomics():
    """Bitwise-reproducible results need every output element to have one writer: a Triton
    kernel that adds with ``tl.atomic_*`` would make the summation order a race."""
    import inspect

    from sap_kernels.kernels.triton import conv_gram as tconv
    from sap_kernels.kernels.triton import gram as tgram
    from sap_kernels.kernels.triton import projection as tproj

    for module in (_common, tgram, tconv, tproj):
        assert "tl.atomic_" not in inspect.getsource(module), module.__name__


# ----------------------------------------------------------------------------- conv_gram
@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_reference_im2col_matches_conv():
    """The test's own im2col reproduces F.convNd (including 'same' with even kernels)."""
    convs = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    for nd, ks, stride, padding, dil, groups in [
        (1, (4,), (1,), "same", (2,), 1),
        (2, (2, 3), (2, 1), (1, 0), (1, 2), 3),
        (2, (4, 4), (1, 1), "same", (1, 3), 6),
        (3, (2, 1, 3), (1, 2, 1), 1, (1, 1, 2), 2),
    ]:
        x = torch.randn(2, 6, *([9] * nd), dtype=torch.float64)
        w = torch.randn(6, 6 // groups, *ks, dtype=torch.float64)
        y = convs[nd](x, w, stride=stride, padding=padding, dilation=dil, groups=groups)
        if padding == "same":
            lo, hi = same_padding(ks, dil)
        else:
            lo = hi = (padding,) * nd if isinstance(padding, int) else padding
        p = im2col_ref(x, ks, stride, lo, hi, dil, groups)  # [G, rows, K_g]
        wg = w.reshape(groups, 6 // groups, -1)
        yp = (p @ wg.transpose(1, 2))  # [G, rows, out_g]
        yp = yp.reshape(groups, x.shape[0], -1, 6 // groups).permute(1, 0, 3, 2).reshape(y.shape)
        torch.testing.assert_close(yp, y)


# On a GPU every new geometry compiles a kernel (about a second), so fewer examples there.
@settings(deadline=None, max_examples=60 if DEVICE == "cpu" else 12, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_cases(), data=st.data())
def test_conv_gram_matches_float64(case, data):
    x = make_input(case)
    ref = gram_ref(im2col_ref(x.cpu(), case["ks"], case["stride"], case["lo"], case["hi"], case["dil"], case["groups"]))
    kwargs = dict(stride=case["stride"], padding=case["padding"], dilation=case["dil"], groups=case["groups"])
    if data.draw(st.booleans(), label="public op"):
        got = ops.conv_gram(x, case["ks"], backend="triton", **kwargs)
    else:
        geom = ops.conv_geometry(x.shape, case["ks"], **kwargs)
        got = torch.zeros(case["groups"], geom.k_per_group, geom.k_per_group, device=DEVICE)
        conv_gram_triton_launch(x, geom, got, **launch_options(data.draw))
    assert got.shape == ref.shape
    assert rel_err(got, ref) < TOL
    assert torch.equal(got, got.transpose(1, 2))


BASE_CASE = dict(nd=2, ks=(3, 3), stride=(1, 1), dil=(1, 1), padding=1, lo=(1, 1), hi=(1, 1),
                 groups=1, c=5, spatial=(7, 6), n=2, layout="contiguous")


@pytest.mark.parametrize("case", [
    BASE_CASE,
    dict(BASE_CASE, ks=(4, 2), padding="same", lo=(1, 0), hi=(2, 1), groups=5, layout="channels_last"),
    dict(BASE_CASE, nd=1, ks=(5,), stride=(2,), dil=(3,), padding=2, lo=(2,), hi=(2,), spatial=(23,), groups=5),
    dict(BASE_CASE, nd=3, ks=(2, 3, 1), stride=(1, 1, 1), dil=(2, 1, 1), padding="same",
         lo=(1, 1, 0), hi=(1, 1, 0), spatial=(4, 5, 3), c=6, groups=3, layout="channels_last"),
])
@pytest.mark.parametrize("splits", [1, 3])
def test_conv_gram_accumulates_into_out(case, splits):
    if case["padding"] == "same":
        lo, hi = same_padding(case["ks"], case["dil"])
        assert (lo, hi) == (case["lo"], case["hi"])  # the hand-written case agrees
    x = make_input(case, seed=splits)
    ref = gram_ref(im2col_ref(x.cpu(), case["ks"], case["stride"], case["lo"], case["hi"], case["dil"], case["groups"]))
    geom = ops.conv_geometry(x.shape, case["ks"], case["stride"], case["padding"], case["dil"], case["groups"])
    init = torch.randn(*ref.shape, device=DEVICE)
    out = init.clone()
    conv_gram_triton_launch(x, geom, out, block_k=16, splits=splits)
    assert rel_err(out, init.double().cpu() + ref) < TOL
    again = ops.conv_gram(x, case["ks"], stride=case["stride"], padding=case["padding"], dilation=case["dil"],
                          groups=case["groups"], out=out, backend="triton")
    assert again is out
    assert rel_err(out, init.double().cpu() + 2 * ref) < TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_conv_gram_half_inputs(dtype):
    case = dict(BASE_CASE, groups=5, layout="channels_last")
    x = make_input(case, dtype=dtype)
    got = ops.conv_gram(x, 3, padding=1, groups=5, backend="triton")
    assert got.dtype == torch.float32
    ref = gram_ref(im2col_ref(x.cpu(), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), 5))
    assert rel_err(got, ref) < TOL


def test_conv_gram_bf16_precision_and_float64():
    x = make_input(BASE_CASE)
    ref16 = gram_ref(im2col_ref(x.bfloat16().cpu(), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), 1))
    assert rel_err(ops.conv_gram(x, 3, padding=1, backend="triton", precision="bf16"), ref16) < TOL
    x64 = x.double()
    got = ops.conv_gram(x64, 3, padding=1, backend="triton")
    assert got.dtype == torch.float64
    assert rel_err(got, gram_ref(im2col_ref(x64.cpu(), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), 1))) < 1e-12


# ----------------------------------------------------------------------------- projection
ALPHAS = [0.3, 1.0, 7.5, 3e4, math.inf]


@FAST
@given(out=st.sampled_from([1, 2, 5, 17, 40]), k=st.sampled_from([1, 3, 7, 16, 31, 37]),
       lead=st.sampled_from([(), (1,), (3,)]), alpha=st.sampled_from(ALPHAS), use_wv=st.booleans())
def test_scaled_projection_matches_float64(out, k, lead, alpha, use_wv):
    g = torch.Generator().manual_seed(out * 100 + k)
    rows = torch.randn(*lead, 3 * k + 2, k, generator=g, dtype=torch.float64)
    e, v = torch.linalg.eigh(rows.transpose(-1, -2) @ rows)
    w = torch.randn(*lead, out, k, generator=g)
    e32, v32 = e.float().to(DEVICE), v.float().to(DEVICE)
    wv = weight_times_eigvecs(w.to(DEVICE), v32) if use_wv else None
    got = ops.scaled_projection(w.to(DEVICE), e32, v32, alpha, wv=wv, backend="triton")
    assert got.dtype == torch.float32 and got.shape == w.shape
    # Reference from the same fp32 inputs (their rounding is not the kernel's error).
    assert rel_err(got, projection_ref(w, e32.cpu(), v32.cpu(), alpha)) < TOL


def test_scaled_projection_alpha_sweep_reuses_wv_and_edge_cases():
    rows = torch.randn(90, 24, dtype=torch.float64)
    e, v = torch.linalg.eigh(rows.T @ rows)
    w = torch.randn(6, 24, device=DEVICE)
    ef, vf = e.float().to(DEVICE), v.float().to(DEVICE)
    t = weight_times_eigvecs(w, vf)
    assert rel_err(t, w.double().cpu() @ vf.double().cpu()) < TOL
    for alpha in ALPHAS:
        got = scaled_projection_triton_launch(w, ef, vf, alpha, wv=t)
        assert rel_err(got, projection_ref(w.cpu(), ef.cpu(), vf.cpu(), alpha)) < TOL
    # alpha = inf is the identity (V orthonormal); zero energy projects everything away.
    assert rel_err(ops.scaled_projection(w, ef, vf, math.inf, backend="triton"), w.cpu()) < 1e-5
    zero = ops.scaled_projection(w, torch.zeros_like(ef), vf, 10.0, backend="triton")
    assert torch.count_nonzero(zero) == 0
    # Negative rounding noise in eigenvalues counts as zero energy.
    noisy = ef.clone()
    noisy[:3] = -1e-3
    assert rel_err(ops.scaled_projection(w, noisy, vf, 5.0, backend="triton"),
                   projection_ref(w.cpu(), noisy.cpu(), vf.cpu(), 5.0)) < TOL


def test_scaled_projection_dtypes():
    rows = torch.randn(60, 20, dtype=torch.float64)
    e, v = torch.linalg.eigh(rows.T @ rows)
    w = torch.randn(9, 20, dtype=torch.float64)
    got = ops.scaled_projection(w.to(DEVICE), e.to(DEVICE), v.to(DEVICE), 4.0, backend="triton")
    assert got.dtype == torch.float64
    assert rel_err(got, projection_ref(w, e, v, 4.0)) < 1e-12
    wb = w.to(torch.bfloat16)
    got = ops.scaled_projection(wb.to(DEVICE), e.float().to(DEVICE), v.float().to(DEVICE), 4.0, backend="triton")
    assert got.dtype == torch.bfloat16
    assert rel_err(got, projection_ref(wb, e.float(), v.float(), 4.0)) < 1e-2  # bf16 output rounding


# ----------------------------------------------------------------------------- dispatch
def test_forced_backend_selects_triton(monkeypatch):
    dev = torch.device(DEVICE)
    for op in ("gram", "conv_gram", "scaled_projection"):
        assert select(generic_request(op, dev), "triton").name == "triton"
    monkeypatch.setenv(ENV_VAR, "triton")
    assert select(generic_request("gram", dev)).name == "triton"
    x = torch.randn(20, 9, device=DEVICE)
    assert rel_err(ops.gram(x), gram_ref(x.cpu())) < TOL
    monkeypatch.setenv(ENV_VAR, "torch")
    assert select(generic_request("gram", dev)).name == "torch"
    monkeypatch.setenv(ENV_VAR, "tritonn")
    with pytest.raises(ValueError, match="SAP_KERNELS_BACKEND"):
        ops.gram(x)


def test_invalid_precision_is_rejected():
    x = torch.randn(4, 3, device=DEVICE)
    with pytest.raises(ValueError, match="precision"):
        ops.gram(x, backend="triton", precision="fp8")
    with pytest.raises(ValueError, match="precision"):
        ops.conv_gram(x.reshape(1, 1, 4, 3), 1, backend="triton", precision="TF32")


def _run_clean(code: str, **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", ENV_VAR)}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(DEVICE != "cpu", reason="checks the CPU message without the interpreter")
def test_cpu_without_interpreter_fails_clearly_when_forced_and_falls_back_quietly():
    res = _run_clean("""
        import torch
        from sap_kernels import ops
        x = torch.randn(10, 4)
        g = ops.gram(x)  # automatic: torch backend on CPU
        assert torch.allclose(g, x.T @ x, atol=1e-5)
        for call in (lambda: ops.gram(x, backend="triton"),
                     lambda: ops.conv_gram(x.reshape(1, 1, 10, 4), 3, backend="triton")):
            try:
                call()
            except ops.BackendUnavailable as exc:
                print("ERR", str(exc).replace(chr(10), " | "))
            else:
                raise SystemExit("forced triton on CPU without the interpreter did not fail")
        """)
    assert res.returncode == 0, res.stderr
    msgs = [line for line in res.stdout.splitlines() if line.startswith("ERR")]
    assert len(msgs) == 2
    assert all("TRITON_INTERPRET=1" in m and "'triton'" in m for m in msgs), msgs
    res = _run_clean("""
        import torch
        from sap_kernels import ops
        ops.gram(torch.randn(3, 2))
        """, SAP_KERNELS_BACKEND="triton")
    assert res.returncode != 0 and "TRITON_INTERPRET=1" in res.stderr


def test_missing_triton_is_a_clear_message_not_an_import_error():
    res = _run_clean("""
        import sys
        sys.modules["triton"] = None  # as if Triton were not installed
        import torch
        from sap_kernels import ops
        x = torch.randn(6, 3)
        ops.gram(x)
        import sap_kernels.ops.library as lib
        assert not lib.TRITON_OPS
        try:
            ops.gram(x, backend="triton")
        except ops.BackendUnavailable as exc:
            print("ERR", str(exc).replace(chr(10), " | "))
        """)
    assert res.returncode == 0, res.stderr
    assert "ERR" in res.stdout and "failed to load" in res.stdout


def test_real_triton_kernels_are_launched():
    """Every launch goes through a Triton kernel object (JIT or interpreted), never a fallback."""
    launched = []

    def record(kernel):
        launched.append(type(kernel).__name__ + ":" + kernel.fn.__name__)
        return kernel

    x = torch.randn(70, 20, device=DEVICE)
    out = torch.zeros(20, 20, device=DEVICE)
    gram_triton_launch(x, out, block_k=16, splits=2, launch=record)
    xc = make_input(BASE_CASE)
    geom = ops.conv_geometry(xc.shape, 3, padding=1)
    conv_gram_triton_launch(xc, geom, torch.zeros(1, 45, 45, device=DEVICE), splits=1, launch=record)
    rows = torch.randn(30, 12, dtype=torch.float64)
    e, v = torch.linalg.eigh(rows.T @ rows)
    scaled_projection_triton_launch(torch.randn(4, 12, device=DEVICE), e.float().to(DEVICE), v.float().to(DEVICE),
                                    3.0, launch=record)
    kinds = {name.split(":")[0] for name in launched}
    assert kinds <= {"InterpretedFunction", "JITFunction"}, kinds
    names = [name.split(":")[1] for name in launched]
    assert names == ["_gram_kernel", "_reduce_splits_kernel", "_conv_gram_kernel",
                     "_scaled_mm_kernel", "_scaled_mm_kernel"], names
    assert rel_err(out, gram_ref(x.cpu())) < TOL
