"""Sinks: how one call's input activation is added to a stream's accumulator.

A hook is a forward pre-hook bound (``functools.partial``) to a collector, a stream key and one of
these sinks. A sink only knows the row maths of its layer kind; the collector does the checks,
the scaling and the switch from kept rows to a Gram.
"""
from __future__ import annotations

from typing import Optional, Protocol

import torch

from ... import ops
from . import rows
from .targets import ConvSpec


class Sink(Protocol):
    def count(self, k: int, x: torch.Tensor) -> int: ...

    def rows(self, k: int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor: ...

    def gram(self, x: torch.Tensor, out: torch.Tensor, backend: Optional[str]) -> None: ...


class RowsSink:
    """Every leading position of ``x [..., K]`` is a row (a Linear's input, tokens included)."""

    def count(self, k: int, x: torch.Tensor) -> int:
        return rows.row_count(k, None, tuple(x.shape))

    def rows(self, k: int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return rows.as_rows(k, None, x, dtype)

    def gram(self, x: torch.Tensor, out: torch.Tensor, backend: Optional[str]) -> None:
        ops.gram(x, out=out[0], backend=backend)


class PatchSink:
    """The im2col patch rows of a conv's input, per group, never materialised for the Gram."""

    def __init__(self, conv: ConvSpec):
        self.conv = conv

    def count(self, k: int, x: torch.Tensor) -> int:
        return rows.row_count(k, self.conv, tuple(x.shape))

    def rows(self, k: int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return rows.as_rows(k, self.conv, x, dtype)

    def gram(self, x: torch.Tensor, out: torch.Tensor, backend: Optional[str]) -> None:
        c = self.conv
        x, padding = rows.conv_input(c, x)
        ops.conv_gram(x, c.kernel_size, stride=c.stride, padding=padding, dilation=c.dilation, groups=c.groups,
                      out=out, backend=backend)


rows_sink = RowsSink()


def conv_sink(conv: ConvSpec) -> PatchSink:
    return PatchSink(conv)


class OutputSink:
    """A layer's outputs as rows: a Linear's ``[..., out]`` (every leading position a row), a conv's
    ``[N, C_out, *spatial]`` (or unbatched ``[C_out, *spatial]``) with each position a row of its
    group's ``C_out / groups`` channels."""

    def __init__(self, groups: int, conv_nd: Optional[int]):
        self.groups, self.conv_nd = groups, conv_nd

    def _rows(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """``[groups, m, k]`` (a view where possible)."""
        if self.conv_nd is None:
            return x.reshape(1, -1, k)
        channels_last = x.movedim(0 if x.dim() == self.conv_nd + 1 else 1, -1)
        return channels_last.reshape(-1, self.groups, k).transpose(0, 1)

    def count(self, k: int, x: torch.Tensor) -> int:
        return x.numel() // max(1, k * self.groups)

    def rows(self, k: int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self._rows(k, x).to(dtype)

    def gram(self, x: torch.Tensor, out: torch.Tensor, backend: Optional[str]) -> None:
        rows = self._rows(out.shape[-1], x)
        for g in range(self.groups):
            ops.gram(rows[g], out=out[g], backend=backend)
