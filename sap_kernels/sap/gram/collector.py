"""Streaming each unit's input activations into per-stream accumulators while the model runs.

A stream keeps its raw rows while it has seen no more rows than its width ``K`` (at most
``K^2`` values per group: the size of the Gram it would otherwise hold) and switches to a
streamed ``[groups, K, K]`` Gram (``ops.gram``/``ops.conv_gram`` adding into it) as soon as the
rows outnumber ``K``. A layer wider than the data (torchvision VGG's 25,088-wide classifier at a
few hundred samples) is then decomposed through its rows, in time and memory that scale with
``min(rows, K)``; its Gram is never formed.

Each call's activations are checked (non-finite values name the layer) and, when their magnitude
would overflow or underflow the Gram, scaled by a power of two (exact; ``precision.gram_scale``).
Token-wise rows at padding positions (``row_mask == False``) are left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, TypeGuard, TypeVar

import torch

from ..layers.row_sinks import Sink, rows_sink
from ..layers.targets import StreamSpec
from ..layers.units import Handle, Unit
from ..options import precision
from ..runtime.guards import attention_fastpath_off, hooks_are_paused

_Collector = TypeVar("_Collector", bound="GramCollector")


class NonFiniteActivation(ValueError):
    """A layer received NaN or Inf inputs; its Gram (and so its projection) would be meaningless."""


@dataclass
class Accumulator:
    """What one stream has gathered (activations divided by ``2^exp``).

    kept: ``[groups, m_i, K]`` row blocks while the stream has seen ``rows <= K``.
    gram: ``[groups, K, K]`` (dtype from ``precision.gram_dtype``) once the rows outnumber ``K``.
    rows: rows seen per group.
    """

    spec: StreamSpec
    kept: list[torch.Tensor] = field(default_factory=list)
    gram: Optional[torch.Tensor] = None
    rows: int = 0
    exp: Optional[int] = None

    def clone(self, spec: StreamSpec) -> "Accumulator":
        return Accumulator(spec, [r.clone() for r in self.kept], None if self.gram is None else self.gram.clone(),
                           self.rows, self.exp)

    def kept_rows(self) -> Optional[torch.Tensor]:
        """The rows ``[groups, m, K]`` while the stream is in row mode, else None."""
        if self.gram is not None or not self.kept:
            return None
        if len(self.kept) > 1:
            self.kept = [torch.cat(self.kept, dim=1)]
        return self.kept[0]

    def scale_for(self, amax: float) -> int:
        """The exponent to divide this call's activations by, rescaling what is held if needed."""
        if self.exp is None:
            self.exp = precision.gram_scale(amax)
        elif amax > 0 and math.frexp(amax)[1] - self.exp > precision.SAFE_EXP:
            new = math.frexp(amax)[1]
            shift = self.exp - new
            if self.gram is not None:
                self.gram.mul_(2.0 ** (2 * shift))
            self.kept = [r * 2.0 ** shift for r in self.kept]
            self.exp = new
        return self.exp

    def start_gram(self, activation_dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        s = self.spec
        dtype = precision.gram_dtype(s.k, activation_dtype)
        self.gram = torch.zeros(s.groups, s.k, s.k, dtype=dtype, device=device)
        for r in self.kept:
            r = r.to(dtype)
            self.gram.baddbmm_(r.transpose(1, 2), r)
        self.kept = []
        return self.gram


def _masked(x: torch.Tensor, mask: Optional[torch.Tensor]) -> tuple[torch.Tensor, Optional[bool]]:
    """Rows of a token-wise input ``[B, T, ..., K]`` (or ``[T, B, ..., K]``) at unmasked positions,
    and whether the mask fitted it (None: not a token-wise input, or no mask)."""
    if mask is None or x.dim() < 3:
        return x, None
    b, t = mask.shape
    if tuple(x.shape[:2]) == (b, t):
        return x[mask.to(x.device)], True
    if tuple(x.shape[:2]) == (t, b) and t != b:
        return x.transpose(0, 1)[mask.to(x.device)], True
    return x, False


class GramCollector:
    """Context manager: while active, every call of a unit's module feeds its streams.

    A module called several times per forward pass accumulates every call. While active, torch's
    fused attention fast path is off (so ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``
    call their submodules and the hooks see every input). Hooks are removed on exit, exceptions
    included.

    Attributes:
        streams: key -> ``Accumulator``.
        row_mask: ``[B, T]`` bool for the current batch (True: a real token), or None; setting it
            checks that the previous batch's mask fitted (``check_row_mask``).
    """

    def __init__(self, units: list[Unit], *, backend: Optional[str] = None, keep_rows: bool = True):
        self.units = units
        self.specs = {s.key: s for u in units for s in u.streams()}
        self.backend = backend
        self.keep_rows = keep_rows
        self.streams: dict[str, Accumulator] = {}
        self._row_mask: Optional[torch.Tensor] = None
        self._mask_fitted = False
        self._mask_misfits: list[tuple[int, ...]] = []
        self._handles: list[Handle] = []
        self._guard = attention_fastpath_off()

    def __enter__(self: _Collector) -> _Collector:
        self._guard.__enter__()
        try:
            for unit in self.units:
                self._handles.extend(unit.install(self))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for h in reversed(self._handles):
            h.remove()
        self._handles.clear()
        self._guard.__exit__(None, None, None)

    @property
    def row_mask(self) -> Optional[torch.Tensor]:
        return self._row_mask

    @row_mask.setter
    def row_mask(self, mask: Optional[torch.Tensor]) -> None:
        """Set the next batch's mask, after checking that the last one fitted its batch."""
        self.check_row_mask()
        self._row_mask, self._mask_fitted, self._mask_misfits = mask, False, []

    def check_row_mask(self) -> None:
        """A ValueError naming ``row_mask`` when the current batch's mask fitted none of its
        token-wise layer inputs although there were some (a ``[B, T+1]`` mask for ``[B, T]`` tokens)."""
        mask = self._row_mask
        if mask is not None and not self._mask_fitted and self._mask_misfits:
            shapes = sorted({s[:2] for s in self._mask_misfits})
            self._row_mask, self._mask_misfits = None, []
            raise ValueError(
                f"row_mask returned a mask of shape {list(mask.shape)}, which fits none of the token-wise layer "
                f"inputs of its batch (their leading dimensions: {', '.join(str(list(s)) for s in shapes)}); "
                "return a [B, T] mask with the inputs' batch and token dimensions")

    @staticmethod
    def is_activation(x: object) -> TypeGuard[torch.Tensor]:
        return isinstance(x, torch.Tensor)

    def rows(self, key: str) -> int:
        acc = self.streams.get(key)
        return 0 if acc is None else acc.rows

    def copy_stream(self, src: str, dst: str) -> None:
        """Start stream ``dst`` as a copy of ``src`` (used when shared inputs stop being shared)."""
        if src in self.streams and not hooks_are_paused():
            self.streams[dst] = self.streams[src].clone(self.specs[dst])

    def add(self, key: str, x: torch.Tensor, sink: Sink = rows_sink) -> None:
        """Add one call's input ``x`` to stream ``key`` through ``sink``."""
        if hooks_are_paused():
            return
        with torch.no_grad():
            self._add(self.specs[key], x.detach(), sink)

    def _add(self, spec: StreamSpec, x: torch.Tensor, sink: Sink) -> None:
        if x.is_nested:
            x = torch.cat([t.reshape(-1, spec.k) for t in x.unbind()])
        if spec.kind in ("rows", "outputs"):
            x, fitted = _masked(x, self._row_mask)
            if fitted:
                self._mask_fitted = True
            elif fitted is False:
                self._mask_misfits.append(tuple(x.shape))
        acc = self.streams.get(spec.key)
        if acc is None:
            acc = self.streams[spec.key] = Accumulator(spec)
        if x.numel() == 0:
            return
        exp = acc.scale_for(_checked_amax(spec, x))
        if exp:  # a power of two: exact; in fp32/fp64 so that the factor itself is representable
            x = x.to(torch.promote_types(x.dtype, torch.float32)) * 2.0 ** -exp
        acc.rows += sink.count(spec.k, x)
        if acc.gram is None and self.keep_rows and acc.rows <= spec.k:
            acc.kept.append(sink.rows(spec.k, x, precision.rows_dtype(x.dtype)))
            return
        out = acc.gram if acc.gram is not None else acc.start_gram(x.dtype, x.device)
        sink.gram(x, out, self.backend)


def _checked_amax(spec: StreamSpec, x: torch.Tensor) -> float:
    lo, hi = torch.aminmax(x)
    amax = max(-float(lo), float(hi))
    if not math.isfinite(amax):
        part = spec.key.split(":")[-1] if ":" in spec.key else ""
        what = f"attention stream {spec.key!r}" if part in ("q", "k", "v", "out") else f"layer {spec.key!r}"
        raise NonFiniteActivation(f"{what} received non-finite (NaN/Inf) input activations")
    return amax
