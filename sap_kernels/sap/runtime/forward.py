"""Calling the model on a batch: a dict as keyword arguments, a tuple/list as positional ones,
``Shared`` tensors unwrapped, in the memory layout ``layout.call`` decides."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..data.batches import Shared
from . import layout


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(inputs)``: a dict as keyword arguments, a tuple/list as positional ones; in the
    memory layout ``layout.call`` decides."""
    return layout.call(model, inputs, lambda x: _call(model, x))


def _call(model: nn.Module, inputs: Any) -> Any:
    unwrapped = _unwrap_shared(inputs)
    if isinstance(unwrapped, Mapping):
        return model(**unwrapped)
    if isinstance(unwrapped, (tuple, list)):
        return model(*unwrapped)
    return model(unwrapped)


def _unwrap_shared(obj: Any) -> Any:
    if isinstance(obj, Shared):
        return obj.tensor
    if isinstance(obj, Mapping):
        return {k: _unwrap_shared(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap_shared(v) for v in obj)
    return obj
