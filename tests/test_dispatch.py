"""Input-aware dispatch: each backend's reasons for the actual call, the automatic choice, forced
backends, the ``BackendUnavailable`` message, and the shape of the layer (one-way imports, one
signature per op)."""
from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch

from sap_kernels import ops
from sap_kernels.kernels import spec
from sap_kernels.kernels.spec import Request
from sap_kernels.ops import dispatch

ROOT = Path(__file__).resolve().parents[1]


def request(op="gram", device="cpu", dtype=torch.float32, out_dtype=None, precision="ieee", shape=(40, 9),
            geometry=None) -> Request:
    out = out_dtype or spec.accumulator_dtype(dtype)
    return Request(op, torch.device(device), dtype, out, precision, shape, geometry)


@pytest.fixture(autouse=True)
def _no_forced_backend(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)


def test_float64_accumulator_goes_to_a_backend_that_accumulates_in_float64():
    """Triton and CUDA accumulate fp32 input in fp32; they must say so instead of serving an
    fp64 ``out`` at fp32 accuracy."""
    req = request(device="cuda", out_dtype=torch.float64)
    why = dispatch.backend_reasons(req, forced=True)
    assert why["torch"] == []
    assert any("accumulates float32 input in float32, but out is float64" in r for r in why["triton"])
    assert any("accumulates float32 input in float32, but out is float64" in r for r in why["cuda"])
    x = torch.randn(33, 7)
    out = torch.zeros(7, 7, dtype=torch.float64)
    ops.gram(x, out=out)  # automatic: torch, exact in float64
    assert torch.allclose(out, x.double().T @ x.double(), rtol=1e-13, atol=1e-12)


def test_automatic_order_and_policy_reasons():
    assert dispatch.auto_order(torch.device("cuda")) == ("triton", "torch")
    assert dispatch.auto_order(torch.device("cpu")) == ("torch",)
    why = dispatch.backend_reasons(request(device="cuda"))
    assert any("experimental" in r for r in why["cuda"])  # never chosen automatically
    cpu = dispatch.backend_reasons(request(device="cpu"))
    assert cpu["torch"] == []
    assert any("not tried automatically for cpu" in r or "TRITON_INTERPRET" in r for r in cpu["triton"])


def test_torch_backend_refuses_ieee_on_cuda_while_tf32_is_allowed():
    # Set and restored by hand: torch's cuBLAS settings object defines the attribute through
    # __getattr__/__setattr__, which pytest's monkeypatch cannot always undo.
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        why = dispatch.reasons(request(device="cuda"), "torch", forced=True)
        assert why and "allow_tf32" in why[0]
        assert dispatch.reasons(request(device="cuda", precision="tf32"), "torch", forced=True) == []
        assert dispatch.reasons(request(device="cuda", dtype=torch.float64), "torch", forced=True) == []
        assert dispatch.reasons(request(device="cpu"), "torch", forced=True) == []
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_grid_limits_and_dtypes_are_reasons():
    geom = spec.conv_geometry((1, 70_000, 3), 1, groups=70_000)
    req = request(op="conv_gram", device="cuda", shape=(1, 70_000, 3), geometry=geom)
    why = dispatch.backend_reasons(req, forced=True)
    assert any("70000 groups exceed the grid limit" in r for r in why["triton"])
    assert any("70000 groups exceed the grid limit" in r for r in why["cuda"])
    assert why["torch"] == []
    f8 = request(device="cuda", dtype=torch.float8_e4m3fn, out_dtype=torch.float32)
    why = dispatch.backend_reasons(f8, forced=True)
    assert any("float8_e4m3fn is not one the kernels load" in r for r in why["triton"])
    assert why["torch"] == []


def test_backend_unavailable_lists_every_backend_with_its_reason():
    x = torch.randn(10, 3)
    with pytest.raises(ops.BackendUnavailable) as info:
        ops.gram(x, backend="cuda")
    exc = info.value
    assert exc.forced == "cuda" and exc.op == "gram"
    assert set(exc.reasons) == set(dispatch.known_backends())
    text = str(exc)
    assert "cannot use backend 'cuda' for gram: float32 input on cpu" in text
    assert "  cuda: the CUDA kernels run only on CUDA tensors" in text
    assert "  torch: usable" in text
    assert all(f"  {name}:" in text for name in dispatch.known_backends())


def test_automatic_failure_lists_every_backend():
    req = dataclasses.replace(request(), dtype=torch.int64)  # not a real float dtype: no backend serves it
    with pytest.raises(ops.BackendUnavailable) as info:
        dispatch.select(req)
    assert "no backend can run gram: int64 input on cpu" in str(info.value)
    assert set(info.value.reasons) == set(dispatch.known_backends())
    assert all(info.value.reasons.values())


def test_backend_name_comes_from_argument_before_environment(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    assert dispatch.requested_backend("torch") == "torch"
    assert dispatch.requested_backend() == "triton"
    with pytest.raises(ValueError, match="backend='nope' is not a backend"):
        dispatch.requested_backend("nope")


def test_available_backends_reports_reasons_per_backend():
    got = ops.available_backends("conv_gram", "cpu")
    assert set(got) == set(dispatch.BACKENDS)
    assert got["torch"] is None
    assert "CUDA tensors" in got["cuda"]


# ----------------------------------------------------------------------------- layer shape
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


def test_kernels_never_import_ops():
    """The dependency runs one way: ops -> kernels (no lazy import cycle to hold apart)."""
    offenders = {}
    for path in (ROOT / "sap_kernels" / "kernels").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith("sap_kernels.ops") or m.startswith("sap_kernels.sap")}
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, offenders


def _loaded_backends():
    out = {}
    for name in dispatch.BACKENDS:
        backend = dispatch.load_backend(name)
        if not isinstance(backend, str):
            out[name] = backend
    return out


@pytest.mark.parametrize("op", spec.OPS)
def test_every_backend_has_the_same_signature_per_op(op):
    """The runtime twin of the mypy Protocol check (CI may run without mypy)."""
    backends = _loaded_backends()
    assert "torch" in backends and "cuda" in backends  # cuda's module loads even without kernels
    protocol = {"gram": spec.GramFn, "conv_gram": spec.ConvGramFn, "scaled_projection": spec.ScaledProjectionFn}[op]
    expected = [(p.name, p.kind) for p in inspect.signature(protocol.__call__).parameters.values()][1:]
    for name, backend in backends.items():
        params = [(p.name, p.kind) for p in inspect.signature(getattr(backend, op)).parameters.values()]
        assert params == expected, (name, params)
