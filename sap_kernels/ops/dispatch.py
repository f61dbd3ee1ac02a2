"""The one place that chooses a backend for an op.

Backends register implementations here (``register``); public ops call ``resolve``. Choice:

1. ``backend=`` argument, else the ``SAP_KERNELS_BACKEND`` environment variable: that backend is
   used or a ``BackendUnavailable`` error says why it cannot run;
2. otherwise the first available of the device's preference list (CUDA: triton, cuda, torch;
   anything else: torch), falling back quietly.

Every backend function takes the keyword ``precision`` (``"ieee"``, ``"tf32"`` or ``"bf16"``,
validated by the public op) after its positional arguments.

Backend modules are imported lazily, so a missing Triton or an unbuilt CUDA extension never
breaks ``import sap_kernels``.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch

ENV_VAR = "SAP_KERNELS_BACKEND"
BACKENDS = ("torch", "triton", "cuda")
_PREFERENCE = {"cuda": ("triton", "cuda", "torch")}
_DEFAULT_PREFERENCE = ("torch",)


class BackendUnavailable(RuntimeError):
    """A backend was asked for by name and cannot run this op on this device."""


@dataclass(frozen=True)
class _Impl:
    fn: Callable
    # Returns None when the backend can run on ``device``, else the reason it cannot.
    check: Callable[[torch.device], Optional[str]]


_registry: dict[str, dict[str, _Impl]] = {}
_load_errors: dict[str, str] = {}
_loaded: set[str] = set()


def _always(device: torch.device) -> Optional[str]:
    return None


def register(op: str, backend: str, check: Callable[[torch.device], Optional[str]] = _always):
    """Decorator: register ``fn`` as ``backend``'s implementation of ``op``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {BACKENDS}")

    def deco(fn: Callable) -> Callable:
        _registry.setdefault(op, {})[backend] = _Impl(fn, check)
        return fn

    return deco


def _load(backend: str) -> None:
    if backend in _loaded:
        return
    _loaded.add(backend)
    try:
        importlib.import_module(f"sap_kernels.kernels.{backend}")
    except Exception as exc:  # an optional backend must never break the others
        _load_errors[backend] = f"{type(exc).__name__}: {exc}"


def _why_not(op: str, backend: str, device: torch.device) -> Optional[str]:
    _load(backend)
    if backend in _load_errors:
        return f"backend {backend!r} failed to load ({_load_errors[backend]})"
    impl = _registry.get(op, {}).get(backend)
    if impl is None:
        return f"backend {backend!r} has no implementation of {op!r}"
    return impl.check(device)


def requested_backend(backend: Optional[str] = None) -> Optional[str]:
    """The explicitly requested backend name (argument first, then environment), validated."""
    name = backend if backend is not None else (os.environ.get(ENV_VAR) or None)
    if name is not None and name not in BACKENDS:
        source = "backend=" if backend is not None else f"${ENV_VAR}"
        raise ValueError(f"{source}{name!r} is not a backend; choose one of {BACKENDS}")
    return name


def resolve(op: str, device: torch.device, backend: Optional[str] = None) -> Callable:
    """The implementation of ``op`` to run for tensors on ``device``."""
    device = torch.device(device)
    name = requested_backend(backend)
    if name is not None:
        reason = _why_not(op, name, device)
        if reason is not None:
            raise BackendUnavailable(f"{op}: cannot use backend {name!r} on {device}: {reason}")
        return _registry[op][name].fn
    for candidate in _PREFERENCE.get(device.type, _DEFAULT_PREFERENCE):
        if _why_not(op, candidate, device) is None:
            return _registry[op][candidate].fn
    raise BackendUnavailable(f"{op}: no backend can run on {device}")


def available_backends(op: str, device: torch.device) -> dict[str, Optional[str]]:
    """Map backend -> None (usable) or the reason it is not, for diagnostics."""
    return {b: _why_not(op, b, torch.device(device)) for b in BACKENDS}
