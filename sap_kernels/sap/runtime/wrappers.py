"""Models wrapped for data parallelism or compilation: project the module inside.

``nn.DataParallel`` and ``DistributedDataParallel`` hold the user's model as ``.module``; a
``torch.compile``d model (``OptimizedModule``) holds it as ``._orig_mod`` and shares its
parameters. ``project`` runs and hooks the innermost module eagerly (no replication, no
collectives, no recompilation), reports layer names relative to it (without the ``module.`` or
``_orig_mod.`` prefix), and writes the projected weights into it, so every wrapper around it sees
them.
"""
from __future__ import annotations

import copy
import sys

import torch
from torch import nn

_DATA_PARALLEL = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def _compiled_type() -> tuple[type, ...]:
    """``OptimizedModule`` when torch's compiler is loaded, else nothing: a compiled model exists
    only once it was, and importing it here would cost every call about 2 s (it imports SymPy)."""
    frame = sys.modules.get("torch._dynamo.eval_frame")
    cls = getattr(frame, "OptimizedModule", None)
    return (cls,) if isinstance(cls, type) else ()


def unwrap(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """The innermost module and the wrapper kinds peeled off, outermost first."""
    peeled: list[str] = []
    compiled = _compiled_type()
    while True:
        if isinstance(model, _DATA_PARALLEL):
            peeled.append(type(model).__name__)
            model = model.module
        elif compiled and isinstance(model, compiled):
            try:
                inner = model._orig_mod
            except (AttributeError, KeyError):  # OptimizedModule raises KeyError when it is gone
                inner = None
            if not isinstance(inner, nn.Module):
                raise TypeError(
                    "this torch.compile'd model does not expose its original module (_orig_mod); "
                    "pass the uncompiled model to project() and compile the result"
                )
            peeled.append("torch.compile")
            model = inner
        else:
            return model, peeled


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); a named error on the meta device."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.device.type == "meta":
            raise ValueError("the model is on the meta device (its weights hold no values): load or "
                             "materialise its weights (e.g. model.to_empty(device=...) then load_state_dict) first")
        return t.device
    return torch.device("cpu")


def _deepcopy(model: nn.Module) -> nn.Module:
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        raise TypeError(
            f"the model cannot be copied ({type(exc).__name__}: {exc}); pass inplace=True to correct it in place "
            "(it is restored if anything fails)"
        ) from None


def working_copy(model: nn.Module, inplace: bool) -> tuple[nn.Module, nn.Module, list[str]]:
    """``(returned model, module to project, wrappers)``.

    With ``inplace`` the caller's model itself; otherwise a deep copy of the whole wrapper (or, for
    a wrapper that cannot be deep-copied, such as a ``DistributedDataParallel`` bound to a process
    group, a deep copy of the module inside, which is then what is returned).
    """
    if not isinstance(inplace, bool):
        raise TypeError(f"inplace must be True or False, got {inplace!r}")
    inner, peeled = unwrap(model)
    device_of(inner)
    if inplace:
        return model, inner, peeled
    if peeled:
        try:
            outer = copy.deepcopy(model)
        except Exception:
            inner_copy = _deepcopy(inner)
            return inner_copy, inner_copy, peeled
        return outer, unwrap(outer)[0], peeled
    outer = _deepcopy(model)
    return outer, outer, peeled


def check_not_sharded(model: nn.Module) -> None:
    """A named error for a model whose weights are sharded across processes (FSDP ``fully_shard``,
    DTensor parameters): SAP needs each projected weight whole on every rank."""
    for name, p in model.named_parameters():
        if type(p).__name__ == "DTensor" or type(getattr(p, "data", None)).__name__ == "DTensor":
            raise ValueError(
                f"parameter {name!r} is sharded across processes (FSDP fully_shard / DTensor): project needs whole "
                "weights; gather them into an unsharded copy of the model (e.g. its full state_dict), project that, "
                "and load the result back"
            )
