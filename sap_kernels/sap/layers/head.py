"""Finding the classifier head: the projectable layer whose output is the logits.

One forward pass on a couple of samples, with forward hooks on every Linear/Conv unit: the head
is the last layer called whose output *is* the tensor the model returns (torchvision's ResNet,
VGG, MobileNet, ConvNeXt and ViT all return their last Linear's output as it is). When the model
transforms that output (a temperature, a reshape), the last layer called whose output equals the
logits in shape and value is taken. A model where neither holds gets a clear error: name the
layer with ``skip=`` instead.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..data import batches
from ..data.objective import logits_of
from ..runtime.forward import call_model
from .discovery import Discovery
from .linear_conv import LayerUnit
from .units import Unit


@torch.no_grad()
def find_head(model: nn.Module, units: list[Unit], inputs: Any) -> str:
    """Name of the unit that produces the logits of ``model(inputs)``."""
    calls: list[tuple[str, Any]] = []
    handles = []
    try:
        for u in units:
            if isinstance(u.module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                handles.append(u.module.register_forward_hook(
                    lambda mod, args, out, name=u.name: calls.append((name, out))))
        logits = logits_of(call_model(model, inputs))
    finally:
        for h in handles:
            h.remove()
    head: Optional[str] = next((n for n, out in reversed(calls) if out is logits), None)
    if head is None:
        head = next((n for n, out in reversed(calls) if isinstance(out, torch.Tensor)
                     and out.shape == logits.shape and torch.equal(out, logits)), None)
    if head is None:
        raise ValueError(
            "skip_head=True: no Linear/Conv layer's output is the model's logits, so the classifier "
            "head could not be identified; name it with skip= instead"
        )
    return head


def drop_head(model: nn.Module, disc: Discovery, inputs: Any) -> str:
    """Find the classifier head on ``inputs`` and remove it (and layers tied to it) from ``disc``."""
    head = find_head(model, disc.units, batches.slice_rows(inputs, 0, 2))
    drop_unit(disc, head)
    return head


def drop_unit(disc: Discovery, head: str) -> None:
    """Remove the unit named ``head`` (and layers tied to it) from ``disc``, recording why."""
    disc.skipped.append((head, "classifier head (skip_head=True)"))
    # the head is a Linear/Conv unit (find_head hooks no other kind)
    stream = next((u.stream for u in disc.units if isinstance(u, LayerUnit) and u.name == head), head)
    disc.units = [u for u in disc.units if getattr(u, "stream", u.name) != stream]
