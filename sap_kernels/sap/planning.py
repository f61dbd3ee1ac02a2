"""``plan``: what ``project`` would project, from one batch, without the heavy passes.

One forward pass over the loader's first batch with counting hooks (no Gram is formed) tells
which targets are reached, how many activation rows each receives per sample, and whether each
attention block is used as self-attention. From that and the trusted count ``project`` would use
the plan estimates, per target, whether its rows or a Gram will be decomposed and the memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn

from .data import batches
from .data.loaders import check_loader, known_size
from .gram.collector import GramCollector
from .layers.discovery import Selector, discover, nothing_to_project
from .layers.head import drop_head
from .layers.row_sinks import Sink, rows_sink
from .layers.targets import Target
from .layers.units import Unit
from .options.choices import check_n_trusted
from .runtime.forward import call_model
from .runtime.guards import eval_modes
from .runtime.wrappers import device_of, unwrap
from .trusted.selection import trusted_count


@dataclass
class PlannedLayer:
    """One target as ``project`` would handle it.

    rows_per_sample: activation rows one sample feeds it (patch rows for convs; tokens for
        token-wise layers); 0 when the first batch never reached it.
    method: ``"gram"`` (a ``[groups, K, K]`` Gram) or ``"rows"`` (at most ``K`` rows kept and
        decomposed through ``R R^T``, when the trusted samples give no more rows than ``K``).
    memory_bytes: fp32 bytes of what is accumulated (``groups * K * min(rows, K) * 4``).
    """

    name: str
    kind: str
    K: int
    groups: int
    rows_per_sample: float
    method: str
    memory_bytes: int


@dataclass
class Plan:
    """What ``project`` would project: ``layers``, ``skipped`` (name, reason), ``head`` (when
    ``skip_head`` asked for it), ``n_trusted`` (the count it would use) and ``notices``."""

    layers: list[PlannedLayer]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    head: Optional[str] = None
    n_trusted: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def memory_bytes(self) -> int:
        return sum(p.memory_bytes for p in self.layers)

    def summary(self) -> str:
        w = max([len(p.name) for p in self.layers] + [5])
        kw = max([len(p.kind) for p in self.layers] + [4])
        lines = [f"SAP plan: {len(self.layers)} weights would be projected with {self.n_trusted} trusted samples; "
                 f"accumulators {self.memory_bytes / 2**20:.1f} MiB in all"]
        lines += [f"  note: {n}" for n in self.notices]
        lines.append(f"  {'layer':<{w}}  {'kind':<{kw}} {'K':>6} {'groups':>6} {'rows/sample':>11} {'method':>6} "
                     f"{'MiB':>9}")
        for p in self.layers:
            lines.append(f"  {p.name:<{w}}  {p.kind:<{kw}} {p.K:>6} {p.groups:>6} {p.rows_per_sample:>11.4g} "
                         f"{p.method:>6} {p.memory_bytes / 2**20:>9.2f}")
        if self.skipped:
            lines.append("  not projected:")
            lines += [f"    {n}: {why}" for n, why in self.skipped]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


class RowCounter(GramCollector):
    """A collector that only counts rows per stream (no Gram, no kept rows)."""

    def __init__(self, units: list[Unit]):
        super().__init__(units)
        self.counts: dict[str, int] = {}

    def copy_stream(self, src: str, dst: str) -> None:
        if src in self.counts:
            self.counts[dst] = self.counts[src]

    def rows(self, key: str) -> int:
        return self.counts.get(key, 0)

    def add(self, key: str, x: torch.Tensor, sink: Optional[Sink] = None) -> None:

        spec, sink = self.specs[key], sink or rows_sink
        parts = x.unbind() if x.is_nested else [x]
        self.counts[key] = self.counts.get(key, 0) + sum(sink.count(spec.k, t) for t in parts)


def plan(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    n_trusted: Optional[Union[int, float]] = None,
    layers: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip_head: bool = False,
    batch_fn: Optional[batches.Splitter] = None,
    input_key: Optional[Union[str, list[str]]] = None,
    label_key: Optional[str] = None,
    progress: bool = False,
) -> Plan:
    """List what ``project`` would project (K, groups, rows per sample, method, memory) from one
    forward pass on the first batch of ``loader``; nothing is changed and no Gram is formed.

    ``n_trusted`` as for ``project``; the count used needs the data's size, known without
    iterating only for a DataLoader over a sized dataset (otherwise the first batch's size is
    taken as a lower bound and the plan says so).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_loader(loader, "loader")
    requested = check_n_trusted(n_trusted)
    split = batches.make_splitter(batch_fn, input_key, label_key)
    inner, _ = unwrap(model)
    disc = discover(inner, layers, skip)
    if not disc.units:
        raise nothing_to_project(disc)
    inputs = _first_samples(loader, split)
    inputs = batches.to_device(inputs, device_of(inner))
    head = None
    with eval_modes(inner), torch.no_grad():
        if skip_head:
            head = drop_head(inner, disc, inputs)
        with RowCounter(disc.units) as counter:
            call_model(inner, inputs)
    notices: list[str] = []
    size = known_size(loader)
    if size is None:
        notices.append("the loader's size is unknown without iterating it: the trusted count assumes its first batch")
    n = trusted_count(requested, size or batches.batch_len(inputs), notices)
    result = Plan(_planned(disc.targets(), counter, batches.batch_len(inputs), n), disc.skipped, head, n, notices)
    if progress:
        print(result.summary())
    return result


def _first_samples(loader: Iterable[Any], split: batches.Splitter) -> Any:
    """The inputs of the loader's first batch that holds samples (empty batches are skipped), or a
    ValueError when it yields none."""
    empty = 0
    for b, batch in enumerate(loader):
        inputs, labels = split(batch)
        n = int(labels.shape[0]) if labels.dim() else 0
        batches.check_samples(inputs, n, b)
        if n > 0:
            return inputs
        empty += 1
    raise ValueError("the loader yielded no samples" + (f" (its {empty} batches were all empty)" if empty else ""))


def _planned(targets: list[Target], counter: RowCounter, batch_size: int, n_trusted: int) -> list[PlannedLayer]:
    out = []
    for t in targets:
        per_sample = counter.rows(t.stream) / max(1, batch_size)
        rows = per_sample * n_trusted
        method = "rows" if 0 < rows <= t.k else "gram"
        kept = min(int(rows), t.k) if rows > 0 else t.k
        out.append(PlannedLayer(t.name, t.kind, t.k, t.groups, per_sample, method, t.groups * t.k * kept * 4))
    return out

