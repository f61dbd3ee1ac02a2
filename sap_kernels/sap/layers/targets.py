"""Projection targets and activation streams: *which weight rows* are projected with *which Gram*.

A stream is one flow of input activations (a Linear's input, a conv's patch rows, the query of an
attention block, the attention output that ``out_proj`` multiplies) accumulated into one Gram. A
``Target`` is a weight (or a block of its rows) projected with the spectrum of one stream. Most
layers have one of each; ``nn.MultiheadAttention`` has several, a self-attention block projects
its packed ``[3E, E]`` weight with a single stream, and a weight shared by several modules (tied
weights) is one target whose stream sums every module that uses it.

Both are plain data naming modules by their path in the model, so statistics can be saved and
applied to another instance of the same model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd


@dataclass(frozen=True)
class StreamSpec:
    """One Gram to accumulate: ``[groups, k, k]``; ``kind`` is ``"rows"`` (the last dim of the
    activation is ``k``, every leading dim is a row) or ``"patches"`` (conv patch rows)."""

    key: str
    groups: int
    k: int
    kind: str = "rows"


@dataclass(frozen=True)
class ConvSpec:
    """What the patch rows of a conv's input depend on (a pure description of the module).

    padding: as ``nn.ConvNd`` takes it (int tuple or ``'same'``/``'valid'``) for ``padding_mode
    == 'zeros'``; for the other modes ``mode_padding`` is the ``F.pad`` amount applied first.
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Union[str, tuple[int, ...]]
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str = "zeros"
    mode_padding: tuple[int, ...] = ()

    @classmethod
    def of(cls, m: _ConvNd) -> "ConvSpec":
        return cls(tuple(m.kernel_size), tuple(m.stride), m.padding if isinstance(m.padding, str) else tuple(m.padding),
                   tuple(m.dilation), int(m.groups), m.padding_mode, tuple(m._reversed_padding_repeated_twice))

    @property
    def nd(self) -> int:
        return len(self.kernel_size)


@dataclass
class Target:
    """A weight, or a block of rows of one, projected with the spectrum of ``stream``.

    name: the name reported (a module name, ``"<mha>.in_proj_weight[q]"``-style for attention).
    path, param: the weight is ``getattr(model.get_submodule(path), param)``, ``[out, ...]`` with
        ``K`` columns per group once flattened.
    rows: ``(start, stop)`` of dim 0 projected, or None for all of them.
    groups, k: the flattened block is ``[groups, out_rows / groups, k]``.
    stream: key of the ``StreamSpec`` whose Gram gives the spectrum.
    kind: short description for reports (``"Conv2d"``, ``"MHA.in_proj"``, ...).
    unit: name of the module the target was discovered from (selection by name matches it).
    shape: the full parameter's shape (checked when statistics are applied to a model).
    tied: other modules whose calls feed the same stream because they share this weight.
    post: key of the stream of the layer's outputs (``[groups, out_g, out_g]`` Gram), when the
        output side was collected; bias: the module's bias parameter name, or None.
    """

    name: str
    path: str
    param: str
    rows: Optional[tuple[int, int]]
    groups: int
    k: int
    stream: str
    kind: str
    unit: str
    shape: tuple[int, ...] = ()
    tied: tuple[str, ...] = field(default_factory=tuple)
    post: Optional[str] = None
    bias: Optional[str] = None

    def module(self, model: nn.Module) -> nn.Module:
        return model.get_submodule(self.path)

    def parameter(self, model: nn.Module) -> torch.Tensor:
        weight: torch.Tensor = getattr(self.module(model), self.param)
        return weight

    def block(self, weight: torch.Tensor) -> torch.Tensor:
        """The projected rows of a full weight (a view)."""
        return weight if self.rows is None else weight[self.rows[0]:self.rows[1]]

    def out_rows(self) -> int:
        return (self.shape[0] if self.rows is None else self.rows[1] - self.rows[0]) if self.shape else 0

    @property
    def gram_bytes(self) -> int:
        """fp32 bytes of a full ``[groups, K, K]`` Gram."""
        return self.groups * self.k * self.k * 4

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "param": self.param,
                "rows": list(self.rows) if self.rows else None, "groups": self.groups, "k": self.k,
                "stream": self.stream, "kind": self.kind, "unit": self.unit, "shape": list(self.shape),
                "tied": list(self.tied), "post": self.post, "bias": self.bias}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Target":
        return cls(d["name"], d["path"], d["param"], tuple(d["rows"]) if d["rows"] else None, int(d["groups"]),
                   int(d["k"]), d["stream"], d["kind"], d["unit"], tuple(d["shape"]), tuple(d["tied"]),
                   d.get("post"), d.get("bias"))
