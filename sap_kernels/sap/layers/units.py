"""The protocols between what is projected and what collects its activations.

A *unit* (``Unit``) is a module that feeds activation streams and owns projection targets: a
Linear/Conv layer (``linear_conv.LayerUnit``) or an attention block (``attention.AttentionUnit``).
``install`` registers hooks that hand each call's activation to a *collector* (``Collector``:
``gram.collector.GramCollector``, or ``planning.RowCounter`` counting rows only) through
``collector.add(stream_key, x, sink)``, the sink (``row_sinks``) knowing the layer kind's row maths.
"""
from __future__ import annotations

from typing import Protocol, TypeGuard

import torch
from torch import nn

from .row_sinks import Sink
from .targets import StreamSpec, Target


class Handle(Protocol):
    """What ``Unit.install`` returns: a hook handle (``RemovableHandle``) or anything removable."""

    def remove(self) -> None: ...


class Collector(Protocol):
    """What a unit's hooks hand activations to."""

    def add(self, key: str, x: torch.Tensor, sink: Sink = ...) -> None: ...

    def copy_stream(self, src: str, dst: str) -> None: ...

    @staticmethod
    def is_activation(x: object) -> TypeGuard[torch.Tensor]: ...


class Unit(Protocol):
    """A module that feeds activation streams and owns projection targets."""

    @property
    def name(self) -> str: ...

    @property
    def module(self) -> nn.Module: ...

    def streams(self) -> list[StreamSpec]: ...

    def targets(self) -> list[Target]: ...

    def install(self, collector: Collector) -> list[Handle]: ...
