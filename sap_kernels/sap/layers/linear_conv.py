"""``nn.Linear`` and ``nn.ConvNd`` as units: one input stream (a forward pre-hook) and one target.

A Linear's input ``[..., K]`` feeds stream ``<name>`` with every leading position as a row
(``row_sinks.rows_sink``); a conv's input feeds it its im2col patch rows per group
(``row_sinks.PatchSink``). With ``post`` the layer's outputs feed ``<name>@post`` too (output-side
projection, ``projection.scaling``).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Optional, Union

import torch
from torch import nn

from .row_sinks import OutputSink, PatchSink, Sink, rows_sink
from .targets import ConvSpec, StreamSpec, Target
from .units import Collector, Handle

Layer = Union[nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d]  # an instance of LAYER_TYPES
CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
LAYER_TYPES = (nn.Linear,) + CONV_TYPES


class LayerUnit:
    """An ``nn.Linear`` or ``nn.ConvNd``: one stream (its input, via a forward pre-hook) and one
    target; with ``stream`` given, a module tied to another's weight that only feeds its stream."""

    def __init__(self, name: str, module: Layer, stream: Optional[str] = None, post: bool = False):
        self.name, self.module, self.post = name, module, post
        w = module.weight
        self.k = int(w[0].numel() if w.dim() > 1 else w.numel())
        self.groups = int(getattr(module, "groups", 1))
        self.conv = ConvSpec.of(module) if isinstance(module, CONV_TYPES) else None
        self.stream = stream or name
        self.feeds_only = stream is not None
        self.tied: list[str] = []

    @property
    def out_per_group(self) -> int:
        return int(self.module.weight.shape[0]) // self.groups

    def streams(self) -> list[StreamSpec]:
        if self.feeds_only:
            return []
        out = [StreamSpec(self.name, self.groups, self.k, "rows" if self.conv is None else "patches")]
        if self.post:
            kind = "outputs" if self.conv is None else "conv-outputs"  # token masks apply to the former only
            out.append(StreamSpec(post_key(self.name), self.groups, self.out_per_group, kind))
        return out

    def targets(self) -> list[Target]:
        if self.feeds_only:
            return []
        bias = "bias" if getattr(self.module, "bias", None) is not None else None
        return [Target(self.name, self.name if self.name != "<root>" else "", "weight", None, self.groups, self.k,
                       self.name, type(self.module).__name__, self.name, tuple(self.module.weight.shape),
                       tuple(self.tied), post_key(self.name) if self.post else None, bias)]

    def install(self, collector: Collector) -> list[Handle]:
        sink: Sink = rows_sink if self.conv is None else PatchSink(self.conv)
        hook = partial(_layer_hook, collector=collector, key=self.stream, name=self.name, sink=sink)
        handles: list[Handle] = [self.module.register_forward_pre_hook(hook)]
        if self.post:
            out_sink = OutputSink(self.groups, None if self.conv is None else self.conv.nd)
            post = partial(_output_hook, collector=collector, key=post_key(self.stream), sink=out_sink)
            handles.append(self.module.register_forward_hook(post))
        return handles


def post_key(stream: str) -> str:
    """The key of the output-side stream of a layer whose input stream is ``stream``."""
    return f"{stream}@post"


def _output_hook(module: nn.Module, args: tuple[Any, ...], output: Any, *, collector: Collector, key: str,
                 sink: Sink) -> None:
    if isinstance(output, torch.Tensor):
        collector.add(key, output, sink)


def _layer_hook(module: nn.Module, args: tuple[Any, ...], *, collector: Collector, key: str, name: str,
                sink: Sink) -> None:
    if not args or not collector.is_activation(args[0]):
        raise TypeError(f"layer {name!r} was called without a tensor input")
    collector.add(key, args[0], sink)
