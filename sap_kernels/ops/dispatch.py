"""The one place that chooses a backend for an op call.

Each backend (``sap_kernels.kernels.<name>``) exports ``BACKEND``, a ``kernels.spec.Backend``
with an implementation of every op and ``not_supported_reasons(request)``: every reason it cannot
run *these* inputs exactly as asked (device, dtype, accumulator dtype, precision, shape). Choice:

1. ``backend=`` on the call, else ``$SAP_KERNELS_BACKEND``: that backend runs the call, or
   ``BackendUnavailable`` is raised listing every backend with its reasons. An unknown name is a
   ``ValueError`` naming where it came from (checked on every op, even when nothing dispatches).
2. Otherwise the first backend of the device's automatic order with no reason against it
   (CUDA: triton, torch; everything else: torch). Experimental backends (cuda) run only when
   forced. When none fits, ``BackendUnavailable`` lists them all.

A non-reference backend is checked against the torch backend on its first use per (device, op,
dtype, precision) (``sap_kernels.ops.verify``); one that fails is skipped with a warning, or,
when forced, raises ``BackendUnavailable``.

Backend modules are imported lazily (a missing Triton or an unbuilt CUDA extension never breaks
``import sap_kernels``), and only from here: ``ops`` depends on ``kernels``, never the reverse.
"""
from __future__ import annotations

import importlib
import os
import threading
from typing import Optional, Sequence, Union

import torch

from ..kernels.spec import OPS, Backend, OpName, Request, dtype_name
from . import verify

ENV_VAR = "SAP_KERNELS_BACKEND"
BACKENDS = ("torch", "triton", "cuda")
_MODULES = {name: f"sap_kernels.kernels.{name}" for name in BACKENDS}
_AUTO: dict[str, tuple[str, ...]] = {"cuda": ("triton", "torch")}
_DEFAULT_AUTO: tuple[str, ...] = ("torch",)

_lock = threading.Lock()
_loaded: dict[str, Union[Backend, str]] = {}  # name -> backend, or why it failed to load
_extra: dict[str, Backend] = {}  # added with register_backend
_extra_auto: dict[str, list[str]] = {}  # device type -> extra names tried first


class BackendUnavailable(RuntimeError):
    """No backend (or not the forced one) can run an op call exactly as asked.

    Attributes:
        op: the op name.
        forced: the backend asked for by name, or None for the automatic choice.
        reasons: every backend considered -> its reasons (an empty list: usable).
    """

    def __init__(self, request: Request, forced: Optional[str], reasons: dict[str, list[str]]) -> None:
        self.op: str = request.op
        self.forced = forced
        self.reasons = reasons
        role = "compute dtype" if request.op == "scaled_projection" else "accumulator"
        what = (f"{request.op}: {dtype_name(request.dtype)} input on {request.device} ({role} "
                f"{dtype_name(request.out_dtype)}, precision {request.precision!r}, shape {list(request.shape)})")
        head = f"cannot use backend {forced!r} for {what}" if forced else f"no backend can run {what}"
        lines = [f"  {name}: {'; '.join(why) if why else 'usable'}" for name, why in reasons.items()]
        super().__init__("\n".join([head, *lines]))


def known_backends() -> tuple[str, ...]:
    """Every backend name: the built-in ones, then those added with ``register_backend``."""
    return BACKENDS + tuple(n for n in _extra if n not in BACKENDS)


def requested_backend(backend: Optional[str] = None) -> Optional[str]:
    """The backend asked for by name (argument first, then environment), validated.

    Raises:
        ValueError: an unknown name, saying whether it came from ``backend=`` or the variable.
    """
    name = backend if backend is not None else (os.environ.get(ENV_VAR) or None)
    if name is not None and name not in known_backends():
        source = "backend=" if backend is not None else f"${ENV_VAR}="
        raise ValueError(f"{source}{name!r} is not a backend; choose one of {known_backends()}")
    return name


def load_backend(name: str) -> Union[Backend, str]:
    """The backend called ``name``, importing its module on first use, or why it failed to load."""
    if name in _extra:
        return _extra[name]
    with _lock:
        if name not in _loaded:
            try:
                module = importlib.import_module(_MODULES[name])
                _loaded[name] = module.BACKEND
            except Exception as exc:  # an optional backend must never break the others
                _loaded[name] = f"{type(exc).__name__}: {exc}"
        return _loaded[name]


def auto_order(device: torch.device) -> tuple[str, ...]:
    """Backends tried, in order, when none is forced, for tensors on ``device``."""
    base = _AUTO.get(device.type, _DEFAULT_AUTO)
    return tuple(_extra_auto.get(device.type, [])) + base


def reasons(request: Request, name: str, *, forced: bool) -> list[str]:
    """Why backend ``name`` cannot run ``request`` (empty: it can). Without ``forced``, also the
    automatic-choice policy (experimental backends, backends not tried on this device)."""
    backend = load_backend(name)
    if isinstance(backend, str):
        return [f"failed to load ({backend})"]
    why = list(backend.not_supported_reasons(request))
    if not forced:
        if backend.experimental:
            why.append(f"experimental: runs only when forced (backend={name!r} or ${ENV_VAR}={name})")
        elif name not in auto_order(request.device):
            why.append(f"not tried automatically for {request.device.type} tensors (force it by name)")
    return why


def _verified(request: Request, backend: Backend) -> list[str]:
    """``[]`` when ``backend`` passed (or needs no) first-use verification, else the failure."""
    if backend.reference or not verify.enabled():
        return []
    reference = load_backend("torch")
    assert not isinstance(reference, str), reference  # the torch backend always loads
    failure = verify.verdict(request, backend, reference)
    return [] if failure is None else [failure]


def select(request: Request, backend: Optional[str] = None) -> Backend:
    """The backend to run ``request`` with (see the module docstring for the rules).

    Raises:
        ValueError: ``backend`` (or ``$SAP_KERNELS_BACKEND``) is not a backend name.
        BackendUnavailable: the forced backend, or every automatic candidate, cannot run it.
    """
    name = requested_backend(backend)
    if name is not None:
        why = reasons(request, name, forced=True)
        chosen = load_backend(name)
        if not why and not isinstance(chosen, str):
            why = _verified(request, chosen)
            if not why:
                return chosen
        others = {n: reasons(request, n, forced=True) for n in known_backends() if n != name}
        raise BackendUnavailable(request, name, {name: why, **others})
    found: dict[str, list[str]] = {}
    for candidate in auto_order(request.device):
        why = reasons(request, candidate, forced=False)
        chosen = load_backend(candidate)
        if not why and not isinstance(chosen, str):
            why = _verified(request, chosen)
            if not why:
                return chosen
        found[candidate] = why
    rest = {n: reasons(request, n, forced=False) for n in known_backends() if n not in found}
    raise BackendUnavailable(request, None, {**found, **rest})


def generic_request(op: OpName, device: Union[str, torch.device]) -> Request:
    """A float32, ``precision="ieee"`` call of ``op`` on ``device`` with a small shape."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; ops: {OPS}")
    shape = {"gram": (64, 16), "conv_gram": (2, 4, 8, 8), "scaled_projection": (8, 16)}[op]
    return Request(op, torch.device(device), torch.float32, torch.float32, "ieee", shape)


def available_backends(op: OpName, device: Union[str, torch.device]) -> dict[str, Optional[str]]:
    """Backend -> ``None`` when it would run a float32 ``"ieee"`` call of ``op`` on ``device``
    if forced, else its reasons joined by ``"; "`` (diagnostics; calls with other dtypes can
    differ: ``backend_reasons`` takes a full ``Request``)."""
    request = generic_request(op, device)
    return {n: ("; ".join(why) or None) for n, why in backend_reasons(request, forced=True).items()}


def backend_reasons(request: Request, *, forced: bool = False) -> dict[str, list[str]]:
    """Every backend -> its reasons against ``request`` (``forced=False``: as the automatic
    choice sees them, policy included). Does not run the first-use verification."""
    return {n: reasons(request, n, forced=forced) for n in known_backends()}


def register_backend(backend: Backend, *, auto_on: Sequence[str] = ()) -> None:
    """Add a backend under ``backend.name`` (not a built-in name), tried first automatically on
    the device types in ``auto_on``. For out-of-tree backends and tests; see CONTRIBUTING.md."""
    if backend.name in BACKENDS:
        raise ValueError(f"{backend.name!r} is a built-in backend; register under another name")
    unregister_backend(backend.name)
    _extra[backend.name] = backend
    for device_type in auto_on:
        _extra_auto.setdefault(device_type, []).insert(0, backend.name)


def unregister_backend(name: str) -> None:
    """Remove a backend added with ``register_backend`` and forget its verification verdicts."""
    _extra.pop(name, None)
    for names in _extra_auto.values():
        while name in names:
            names.remove(name)
    verify.forget(name)
