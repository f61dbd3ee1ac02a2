"""Reading and writing a target's *effective* weight, whatever stores it.

- a plain parameter (or a block of its rows): read and copied into in place;
- a weight under ``torch.nn.utils.parametrize`` (``parametrizations.weight_norm`` ...): read as
  the module computes it, written through the parametrizations' ``right_inverse``; a
  parametrization that cannot represent an arbitrary weight (``spectral_norm``, ``orthogonal``)
  is found by a probe and the layer is refused by name;
- the old hook-based ``nn.utils.weight_norm``: written as ``weight_g = ||W||`` (per output),
  ``weight_v = W``; the old hook-based ``nn.utils.spectral_norm`` is refused.

Every access can ``snapshot()`` what it will change and ``restore()`` it exactly.
"""
from __future__ import annotations

from typing import Optional, Protocol, Union, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

# A write through a parametrization must read back to within this relative error.
WRITE_TOLERANCE = 1e-5


class WeightAccess(Protocol):
    def read(self) -> torch.Tensor: ...

    def write(self, value: torch.Tensor) -> None: ...

    def snapshot(self) -> list[torch.Tensor]: ...

    def restore(self, saved: list[torch.Tensor]) -> None: ...


def _tensor(module: nn.Module, name: str) -> torch.Tensor:
    """``getattr(module, name)``, a tensor (every caller checked that it is one)."""
    value: torch.Tensor = getattr(module, name)
    return value


def _parametrizations(module: nn.Module, name: str) -> parametrize.ParametrizationList:
    """``module.parametrizations[name]`` (``nn.Module.__getattr__`` is typed ``Tensor | Module``)."""
    return cast(parametrize.ParametrizationList, cast(nn.ModuleDict, module.parametrizations)[name])


class PlainWeight:
    """``getattr(module, name)`` (rows ``start:stop`` of it) is a tensor written in place."""

    def __init__(self, module: nn.Module, name: str, rows: Optional[tuple[int, int]] = None):
        self.module, self.name, self.rows = module, name, rows

    def _view(self) -> torch.Tensor:
        w = _tensor(self.module, self.name).detach()
        return w if self.rows is None else w[self.rows[0]:self.rows[1]]

    def read(self) -> torch.Tensor:
        return self._view()

    @torch.no_grad()
    def write(self, value: torch.Tensor) -> None:
        self._view().copy_(value)

    def snapshot(self) -> list[torch.Tensor]:
        return [self._view().clone()]

    def restore(self, saved: list[torch.Tensor]) -> None:
        self.write(saved[0])


class _TensorsWeight:
    """Base for weights computed from other tensors: snapshot/restore those tensors."""

    def __init__(self, module: nn.Module, name: str, tensors: list[torch.Tensor]):
        self.module, self.name, self.tensors = module, name, tensors

    def read(self) -> torch.Tensor:
        return _tensor(self.module, self.name).detach()

    def snapshot(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def restore(self, saved: list[torch.Tensor]) -> None:
        for t, s in zip(self.tensors, saved):
            if t.shape == s.shape:
                t.copy_(s)
            else:
                t.set_(s.clone())  # type: ignore[call-overload]  # torch's stubs omit set_(source: Tensor)

    def check(self, value: torch.Tensor) -> None:
        got = self.read().double()
        err = float((got - value.double()).norm() / value.double().norm().clamp_min(1e-300))
        if not err <= WRITE_TOLERANCE:
            raise ValueError(
                f"the weight {self.name!r} of {type(self.module).__name__} did not take the projected value "
                f"(relative error {err:.2g} after writing through its parametrization)"
            )


class ParametrizedWeight(_TensorsWeight):
    """A weight under ``torch.nn.utils.parametrize``: written through ``right_inverse``."""

    def __init__(self, module: nn.Module, name: str):
        p = _parametrizations(module, name)
        super().__init__(module, name, list(p.parameters()) + list(p.buffers()))

    @torch.no_grad()
    def write(self, value: torch.Tensor) -> None:
        setattr(self.module, self.name, value.to(self.read().dtype))
        self.check(value)


class HookWeightNorm(_TensorsWeight):
    """The hook-based ``nn.utils.weight_norm``: ``W = g v / ||v||`` with ``g``, ``v`` parameters."""

    def __init__(self, module: nn.Module, name: str, dim: Optional[int]):
        self.dim = dim
        super().__init__(module, name, [_tensor(module, name + "_g"), _tensor(module, name + "_v")])

    @torch.no_grad()
    def write(self, value: torch.Tensor) -> None:
        g, v = self.tensors
        v.copy_(value)
        g.copy_(_norm_except(value, self.dim).reshape(g.shape))
        setattr(self.module, self.name, v * (g / _norm_except(v, self.dim)))
        self.check(value)


def _norm_except(w: torch.Tensor, dim: Optional[int]) -> torch.Tensor:
    norm: torch.Tensor  # Tensor.norm is typed as returning Any
    if dim == -1 or dim is None:
        norm = w.norm()
        return norm
    dims = [d for d in range(w.dim()) if d != dim % w.dim()]
    norm = w.norm(dim=dims, keepdim=True)
    return norm


def _hook_of(module: nn.Module, name: str, kind: str) -> object:
    for hook in module._forward_pre_hooks.values():
        if type(hook).__name__ == kind and getattr(hook, "name", None) == name:
            return hook
    return None


def _probe(access: Union[ParametrizedWeight, HookWeightNorm]) -> Optional[str]:
    """Write ``2 W`` and read it back (then restore): None when the weight takes it."""
    saved = access.snapshot()
    w = access.read()
    try:
        access.write(2 * w)
    except Exception as exc:  # the parametrization refused or distorted the value
        return str(exc)
    finally:
        access.restore(saved)
        if isinstance(access, HookWeightNorm):
            with torch.no_grad():
                setattr(access.module, access.name, w.clone())
    return None


def weight_access(module: nn.Module, name: str,
                  rows: Optional[tuple[int, int]] = None) -> tuple[Optional[WeightAccess], Optional[str]]:
    """The access to ``module.name`` (rows ``start:stop``), or None and why it cannot be written."""
    if parametrize.is_parametrized(module, name):
        chain = ", ".join(type(p).__name__ for p in _parametrizations(module, name))
        if rows is not None:
            return None, f"a block of a parametrized weight ({chain}) cannot be written"
        access = ParametrizedWeight(module, name)
        if _probe(access) is not None:
            return None, f"its parametrization ({chain}) cannot take an arbitrary weight"
        return access, None
    if _hook_of(module, name, "SpectralNorm") is not None:
        return None, "spectral_norm (hook-based) cannot take an arbitrary weight"
    hook = _hook_of(module, name, "WeightNorm")
    if hook is not None:
        if rows is not None:
            return None, "a block of a weight_norm weight cannot be written"
        return HookWeightNorm(module, name, getattr(hook, "dim", 0)), None
    if not isinstance(getattr(module, name, None), torch.Tensor):
        return None, f"{name!r} is not a tensor"
    return PlainWeight(module, name, rows), None
