"""``torch.library`` registration: ``opcheck`` on every op and tracing with ``torch.compile``.

On CPU the Triton ops run in the interpreter (registered as opaque custom ops there); on CUDA
they are ``triton_op``s whose kernels the compiler sees.
"""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("triton")
import sap_kernels.ops.library as lib  # noqa: E402
from sap_kernels.kernels.triton._common import interpreted  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.interpreter,
    pytest.mark.skipif(DEVICE == "cpu" and not interpreted(),
                       reason="no GPU and Triton kernels not built by the interpreter"),
]
OPS = torch.ops.sap_kernels


def _eig(k: int, dtype=torch.float32):
    rows = torch.randn(3 * k, k, dtype=torch.float64)
    e, v = torch.linalg.eigh(rows.T @ rows)
    return e.to(dtype).to(DEVICE), v.to(dtype).to(DEVICE)


def _cases():
    x = torch.randn(37, 19, device=DEVICE)
    xc = torch.randn(2, 6, 7, 5, device=DEVICE)
    e, v = _eig(19)
    w = torch.randn(5, 19, device=DEVICE)
    wv = w @ v
    conv_args = ([3, 2], [1, 1], [0], "same", [2, 1], 3)
    return [
        ("gram_", (x, torch.zeros(19, 19, device=DEVICE), "ieee", "triton")),
        ("gram_", (x, torch.zeros(19, 19, device=DEVICE), "ieee", None)),
        ("triton_gram_", (x, torch.zeros(19, 19, device=DEVICE), "ieee")),
        ("conv_gram_", (xc, torch.zeros(3, 12, 12, device=DEVICE), *conv_args, "ieee", "triton")),
        ("triton_conv_gram_", (xc, torch.zeros(1, 54, 54, device=DEVICE), [3, 3], [2, 1], [1, 0], "", [1, 1], 1)),
        ("scaled_projection", (w, e, v, 30.0, None, "ieee", "triton")),
        ("scaled_projection", (w, e, v, math.inf, wv, "ieee", None)),
        ("triton_scaled_projection", (w, e, v, 30.0, wv, "ieee")),
        ("triton_scaled_projection", (torch.randn(40, 19, device=DEVICE), e, v, 2.0, None, "ieee")),
    ]


def test_triton_ops_registered():
    assert lib.TRITON_OPS
    for name in ("gram_", "conv_gram_", "scaled_projection", "triton_gram_", "triton_conv_gram_",
                 "triton_scaled_projection"):
        assert hasattr(OPS, name)


@pytest.mark.parametrize("name,args", _cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_opcheck(name, args):
    torch.library.opcheck(getattr(OPS, name), args)


def test_ops_agree_with_public_functions():
    from sap_kernels import ops

    x = torch.randn(2, 6, 7, 5, device=DEVICE)
    out = torch.zeros(3, 12, 12, device=DEVICE)
    OPS.triton_conv_gram_(x, out, [3, 2], [1, 1], [0], "same", [2, 1], 3)
    ref = ops.conv_gram(x.double(), (3, 2), padding="same", dilation=(2, 1), groups=3, backend="torch")
    assert ((out.double() - ref).abs().max() / ref.abs().max()).item() < 1e-5


def test_torch_compile_traces_the_ops():
    """A full graph (no graph break) through both op families; aot_eager keeps CPU runs cheap."""
    e, v = _eig(16)

    def step(x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, w: torch.Tensor):
        OPS.gram_(x, g1, "ieee", "triton")
        OPS.triton_gram_(x * 2.0, g2, "ieee")
        p = OPS.scaled_projection(w, e, v, 10.0, None, "ieee", "triton")
        q = OPS.triton_scaled_projection(w, e, v, 10.0, None, "ieee")
        return p - q

    backend = "inductor" if DEVICE == "cuda" else "aot_eager"
    compiled = torch.compile(step, backend=backend, fullgraph=True)
    x = torch.randn(50, 16, device=DEVICE)
    w = torch.randn(3, 16, device=DEVICE)
    g1 = torch.zeros(16, 16, device=DEVICE)
    g2 = torch.zeros(16, 16, device=DEVICE)
    diff = compiled(x, g1, g2, w)
    ref = (x.double().T @ x.double()).cpu()
    assert ((g1.double().cpu() - ref).abs().max() / ref.abs().max()).item() < 1e-5
    assert ((g2.double().cpu() - 4 * ref).abs().max() / ref.abs().max()).item() < 1e-5
    assert diff.abs().max().item() < 1e-4


def test_triton_ops_validate_before_launching():
    x = torch.randn(2, 6, 7, 5, device=DEVICE)
    with pytest.raises(ValueError, match="out has shape"):
        OPS.triton_conv_gram_(x, torch.zeros(3, 12, 12, device=DEVICE), [3, 3], [1, 1], [1], "", [1, 1], 1)
    with pytest.raises(ValueError, match="out has shape"):
        OPS.triton_gram_(x[0, 0], torch.zeros(4, 4, device=DEVICE))
    e, v = _eig(5)
    with pytest.raises(ValueError, match="shapes do not match"):
        OPS.triton_scaled_projection(torch.randn(3, 6, device=DEVICE), e, v, 2.0)
