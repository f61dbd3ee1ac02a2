"""First-use verification (``sap_kernels.ops.verify``) with injected backends: a faulty one is
caught, warned about once and replaced by torch (or refused when forced); a correct one is used;
verdicts are cached per key; ``SAP_KERNELS_VERIFY=0`` turns the check off."""
from __future__ import annotations

import dataclasses
import warnings
from typing import Optional

import pytest
import torch

from sap_kernels import ops
from sap_kernels.kernels.spec import Backend, ConvGeometry, Precision, Request
from sap_kernels.kernels.torch import BACKEND as TORCH
from sap_kernels.ops import dispatch, verify


class Calls:
    def __init__(self) -> None:
        self.n = 0


def make_backend(name: str, *, scale: float = 1.0, crash: bool = False,
                 refuse_fp64: bool = False) -> tuple[Backend, Calls]:
    """The torch backend's results times ``scale`` (``scale != 1``: a wrong kernel)."""
    calls = Calls()

    def gram(x: torch.Tensor, out: torch.Tensor, *, precision: Precision = "ieee") -> None:
        calls.n += 1
        if crash:
            raise RuntimeError("illegal memory access (simulated)")
        tmp = torch.zeros_like(out)
        TORCH.gram(x, tmp, precision=precision)
        out += tmp * scale

    def conv_gram(x: torch.Tensor, geom: ConvGeometry, out: torch.Tensor, *, precision: Precision = "ieee") -> None:
        calls.n += 1
        tmp = torch.zeros_like(out)
        TORCH.conv_gram(x, geom, tmp, precision=precision)
        out += tmp * scale

    def projection(weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, alpha: float,
                   wv: Optional[torch.Tensor], *, precision: Precision = "ieee") -> torch.Tensor:
        calls.n += 1
        return TORCH.scaled_projection(weight, eigvals, eigvecs, alpha, wv, precision=precision) * scale

    def reasons(request: Request) -> list[str]:
        if refuse_fp64 and request.out_dtype == torch.float64:
            return ["accumulates in float32 only"]
        return []

    return Backend(name, gram, conv_gram, projection, reasons), calls


@pytest.fixture
def inject(monkeypatch):
    monkeypatch.delenv("SAP_KERNELS_BACKEND", raising=False)
    monkeypatch.delenv(verify.ENV_VAR, raising=False)
    names = []

    def add(backend: Backend) -> None:
        dispatch.register_backend(backend, auto_on=("cpu",))
        names.append(backend.name)

    yield add
    for name in names:
        dispatch.unregister_backend(name)


def test_faulty_backend_is_caught_warned_once_and_replaced_by_torch(inject):
    faulty, calls = make_backend("faulty", scale=1.001)
    inject(faulty)
    x = torch.randn(30, 5)
    with pytest.warns(RuntimeWarning) as record:
        got = ops.gram(x)
    msg = str(record[0].message)
    for part in ("'faulty'", "gram", "cpu", "float32", "max relative error 0.001"):
        assert part in msg, msg
    assert torch.allclose(got.double(), x.double().T @ x.double(), rtol=1e-6, atol=1e-5)  # torch
    assert calls.n == 1  # the verification run only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = ops.gram(x)  # cached verdict: no second check, no second warning
    assert torch.equal(again, got) and calls.n == 1


def test_forced_faulty_backend_raises(inject):
    faulty, _ = make_backend("faulty", scale=0.5)
    inject(faulty)
    x = torch.randn(4, 3, 9)
    with pytest.warns(RuntimeWarning):
        with pytest.raises(ops.BackendUnavailable, match="failed its first-use check of conv_gram") as info:
            ops.conv_gram(x, 3, backend="faulty")
    assert set(info.value.reasons) >= {"faulty", "torch", "triton", "cuda"}
    with pytest.raises(ops.BackendUnavailable, match="first-use check"):  # cached, raised again
        ops.conv_gram(x, 3, backend="faulty")


def test_crashing_backend_fails_its_check(inject):
    broken, _ = make_backend("broken", crash=True)
    inject(broken)
    x = torch.randn(10, 4)
    with pytest.warns(RuntimeWarning, match="raised RuntimeError: illegal memory access"):
        got = ops.gram(x)
    assert torch.allclose(got, x.T @ x, atol=1e-5)


def test_correct_backend_is_used_and_verdicts_are_per_key(inject):
    good, calls = make_backend("good")
    inject(good)
    x = torch.randn(12, 4)
    ops.gram(x)
    assert calls.n == 2  # verification + the call
    ops.gram(x)
    assert calls.n == 3
    ops.gram(x.double())  # new key (dtype): verified again
    assert calls.n == 5
    ops.gram(x, precision="tf32")  # new key (precision)
    assert calls.n == 7
    rows = torch.randn(40, 6, dtype=torch.float64)
    e, v = torch.linalg.eigh(rows.T @ rows)
    ops.scaled_projection(torch.randn(3, 6), e.float(), v.float(), 10.0)
    assert calls.n == 9


def test_unsupported_request_skips_the_backend_without_verifying(inject):
    fp32_only, calls = make_backend("fp32only", refuse_fp64=True)
    inject(fp32_only)
    x = torch.randn(12, 4)
    out = ops.gram(x, out=torch.zeros(4, 4, dtype=torch.float64))  # float64 accumulation: torch
    assert calls.n == 0
    assert torch.allclose(out, x.double().T @ x.double(), rtol=1e-12)
    with pytest.raises(ops.BackendUnavailable, match="fp32only: accumulates in float32 only"):
        ops.gram(x, out=torch.zeros(4, 4, dtype=torch.float64), backend="fp32only")


def test_verification_can_be_turned_off(inject, monkeypatch):
    faulty, calls = make_backend("faulty", scale=2.0)
    inject(faulty)
    monkeypatch.setenv(verify.ENV_VAR, "0")
    x = torch.randn(8, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ops.gram(x)
    assert calls.n == 1 and torch.allclose(got, 2 * (x.T @ x), atol=1e-5)  # unchecked: its result
    monkeypatch.setenv(verify.ENV_VAR, "sometimes")
    with pytest.raises(ValueError, match="SAP_KERNELS_VERIFY='sometimes'"):
        ops.gram(x)


def test_reference_backend_is_never_verified(monkeypatch):
    seen = []
    monkeypatch.setattr(verify, "_measure", lambda *a: seen.append(a) or None)
    ops.gram(torch.randn(5, 2), backend="torch")
    assert seen == []


def test_registering_a_builtin_name_is_refused():
    with pytest.raises(ValueError, match="built-in"):
        dispatch.register_backend(dataclasses.replace(TORCH, name="triton"))
