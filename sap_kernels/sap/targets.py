"""Projection targets and activation streams: *which weight rows* are projected with *which Gram*.

A ``Stream`` is one flow of input activations (a Linear's input, a conv's patch rows, the query
of an attention block, the attention output that ``out_proj`` multiplies) accumulated into one
Gram. A ``Target`` is a weight (or a block of its rows) projected with the spectrum of one
stream. Most layers have one of each; ``nn.MultiheadAttention`` has several targets and streams,
and a self-attention block projects its packed ``[3E, E]`` weight with a single stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass(frozen=True)
class StreamSpec:
    """One Gram to accumulate.

    key: unique name of the stream (a module name, or ``"<mha>:q"``-style for attention).
    groups, k: the Gram is ``[groups, k, k]``.
    conv: the conv module whose patch rows form the stream, or None for plain rows (the last dim
        of the activation is ``k``, every leading dim is a row).
    """

    key: str
    groups: int
    k: int
    conv: Optional[nn.Module] = None


@dataclass
class Target:
    """A weight, or a block of rows of one, projected with the spectrum of ``stream``.

    name: the name reported (a module name, or ``"<mha>.in_proj_weight[q]"``-style).
    module, param: the weight is ``getattr(module, param)``, ``[out, ...]`` with ``K`` columns
        per group once flattened.
    rows: the weight rows projected (a slice of dim 0), or None for all of them.
    groups, k: the flattened weight is ``[groups, out_rows/groups, k]``.
    stream: key of the ``StreamSpec`` whose Gram gives the spectrum.
    kind: short description for reports (``"Conv2d"``, ``"MHA.in_proj"``, ...).
    unit: name of the module the target was discovered from (selection by name matches it).
    """

    name: str
    module: nn.Module
    param: str
    rows: Optional[slice]
    groups: int
    k: int
    stream: str
    kind: str
    unit: str

    def parameter(self) -> torch.Tensor:
        return getattr(self.module, self.param)

    def weight(self) -> torch.Tensor:
        """The projected block of the weight, a view ``[out_rows, ...]`` (detached)."""
        w = self.parameter().detach()
        return w if self.rows is None else w[self.rows]

    @property
    def gram_bytes(self) -> int:
        """fp32 bytes of a full ``[groups, K, K]`` Gram."""
        return self.groups * self.k * self.k * 4
