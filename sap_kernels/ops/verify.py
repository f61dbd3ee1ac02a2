"""First-use verification of backends that have not run on a device before.

The Triton and CUDA kernels have been checked under the Triton interpreter and by compilers, not
on every GPU. So the first time a non-reference backend is about to run an op on a device, for a
dtype and precision, it first runs a tiny problem (a few dozen rows, odd sizes, a split conv with
groups, stride, dilation and padding) and is compared with the torch backend computing the same
problem in float64 on the CPU. The verdict is cached for the process, per key
``(device, op, dtype, precision, backend)``:

- pass: the backend is used from then on without further checks;
- fail (error above the tolerance, or an exception): a ``RuntimeWarning`` naming the backend, op,
  device, dtype and measured error is issued once, and the automatic choice falls back to the next
  backend (torch) for that key; a backend forced by name raises ``BackendUnavailable`` instead.

Cost: one tiny launch per op and key (microseconds on a GPU; under the Triton interpreter a few
tenths of a second). ``SAP_KERNELS_VERIFY=0`` turns it off.
"""
from __future__ import annotations

import os
import threading
import warnings
from typing import Callable, Optional

import torch

from ..kernels.spec import Backend, Precision, Request, accumulator_dtype, conv_geometry, dtype_name, projection_dtype

ENV_VAR = "SAP_KERNELS_VERIFY"
_OFF = ("0", "false", "off", "no")
_ON = ("", "1", "true", "on", "yes")

Key = tuple[str, str, torch.dtype, str, str]
_verdicts: dict[Key, Optional[str]] = {}
_lock = threading.Lock()


def enabled() -> bool:
    """``$SAP_KERNELS_VERIFY`` (default on); a ValueError naming it for an unknown value."""
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ValueError(f"${ENV_VAR}={os.environ.get(ENV_VAR)!r} must be 1 (verify, the default) or 0 (skip)")


def tolerance(dtype: torch.dtype, precision: Precision) -> float:
    """Largest accepted ``max|got - ref| / max|ref|`` on the verification problems."""
    if dtype == torch.float64:
        return 1e-10
    return {"ieee": 1e-5, "tf32": 5e-3, "bf16": 3e-2}[precision]


def forget(backend: str) -> None:
    """Drop every cached verdict about ``backend``."""
    with _lock:
        for key in [k for k in _verdicts if k[3] == backend]:
            del _verdicts[key]


def reset() -> None:
    """Drop every cached verdict (tests)."""
    with _lock:
        _verdicts.clear()


def verdict(request: Request, backend: Backend, reference: Backend) -> Optional[str]:
    """``None`` when ``backend`` computes ``request.op`` correctly for this key, else the failure
    (measured on first use, then cached)."""
    device = _device_key(request.device)
    key: Key = (device, request.op, request.dtype, request.precision, backend.name)
    with _lock:
        if key in _verdicts:
            return _verdicts[key]
    failure = _measure(request, backend, reference)
    with _lock:
        first = key not in _verdicts
        _verdicts.setdefault(key, failure)
    if failure is not None and first:
        warnings.warn(f"sap_kernels: {failure}", RuntimeWarning, stacklevel=4)
    return failure


def _device_key(device: torch.device) -> str:
    """``"cuda:0"`` rather than ``"cuda"``: one verdict per physical device."""
    key = str(device)
    return f"cuda:{torch.cuda.current_device()}" if key == "cuda" else key


def _measure(request: Request, backend: Backend, reference: Backend) -> Optional[str]:
    what = (f"backend {backend.name!r} failed its first-use check of {request.op} on {request.device} "
            f"for {dtype_name(request.dtype)} (precision {request.precision!r})")
    check = _CHECKS[request.op]
    try:
        with torch.no_grad():
            err = check(request, backend, reference)
    except Exception as exc:  # a crashing kernel is a failed check, not a crash of the caller
        return f"{what}: it raised {type(exc).__name__}: {exc}"
    tol = tolerance(request.dtype, request.precision)
    if not err <= tol:  # NaN fails too
        return f"{what}: max relative error {err:.3g} against float64 torch exceeds {tol:.0e}"
    return None


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got64 = got.detach().to("cpu", torch.float64)
    scale = ref.abs().max().clamp_min(1e-300)
    return float((got64 - ref).abs().max() / scale)


def _data(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Float64 CPU values with a mean component (as post-ReLU activations have)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) + 0.5


def _check_gram(request: Request, backend: Backend, reference: Backend) -> float:
    x = _data((37, 19), 1).to(request.device, request.dtype)
    out = torch.zeros(19, 19, dtype=accumulator_dtype(request.dtype), device=request.device)
    backend.gram(x, out, precision=request.precision)
    ref = torch.zeros(19, 19, dtype=torch.float64)
    reference.gram(x.to("cpu", torch.float64), ref, precision="ieee")
    return _rel_err(out, ref)


def _check_conv_gram(request: Request, backend: Backend, reference: Backend) -> float:
    x = _data((2, 4, 7, 6), 2).to(request.device, request.dtype)
    geom = conv_geometry(x.shape, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    k = geom.k_per_group
    out = torch.zeros(2, k, k, dtype=accumulator_dtype(request.dtype), device=request.device)
    backend.conv_gram(x, geom, out, precision=request.precision)
    ref = torch.zeros(2, k, k, dtype=torch.float64)
    reference.conv_gram(x.to("cpu", torch.float64), geom, ref, precision="ieee")
    return _rel_err(out, ref)


def _check_projection(request: Request, backend: Backend, reference: Backend) -> float:
    rows = _data((29, 13), 3)
    e, v = torch.linalg.eigh(rows.T @ rows)
    vec_dtype = projection_dtype(request.dtype, torch.float32)
    w = _data((5, 13), 4).to(request.device, request.dtype)
    ed, vd = e.to(request.device, vec_dtype), v.to(request.device, vec_dtype)
    got = backend.scaled_projection(w, ed, vd, 30.0, None, precision=request.precision)
    cpu = [t.to("cpu", torch.float64) for t in (w, ed, vd)]
    ref = reference.scaled_projection(cpu[0], cpu[1], cpu[2], 30.0, None, precision="ieee")
    return _rel_err(got, ref)


_CHECKS: dict[str, Callable[[Request, Backend, Backend], float]] = {
    "gram": _check_gram,
    "conv_gram": _check_conv_gram,
    "scaled_projection": _check_projection,
}
