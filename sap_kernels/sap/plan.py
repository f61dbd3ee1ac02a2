"""``project(..., dry_run=True)``: what would be projected, from one batch, without the heavy passes.

One forward pass over the loader's first batch with counting hooks (no Gram is formed) tells
which targets are reached, how many activation rows each receives per sample, and whether each
attention block is used as self-attention. From that and ``n_trusted`` the plan estimates, per
target, whether the rows or a Gram will be decomposed and the memory that takes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .capture import GramCollector, row_count


@dataclass
class PlannedLayer:
    """One target as ``project`` would handle it.

    rows_per_sample: activation rows one sample feeds it (patch rows for convs; tokens for
        token-wise layers); 0 when the first batch never reached it.
    method: ``"gram"`` (a ``[groups, K, K]`` Gram) or ``"rows"`` (at most ``K`` rows kept and
        decomposed through ``R R^T``, when ``n_trusted`` samples give no more rows than ``K``).
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
class DryRun:
    """What ``project`` would project: ``layers`` (``PlannedLayer``), ``skipped`` (name, reason),
    ``head`` (the classifier head's name, when ``skip_head`` asked for it), ``n_trusted``."""

    layers: list[PlannedLayer]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    head: Optional[str] = None
    n_trusted: int = 0

    @property
    def memory_bytes(self) -> int:
        return sum(p.memory_bytes for p in self.layers)

    def summary(self) -> str:
        w = max([len(p.name) for p in self.layers] + [5])
        kw = max([len(p.kind) for p in self.layers] + [4])
        lines = [f"SAP dry run: {len(self.layers)} weights would be projected with {self.n_trusted} trusted samples; "
                 f"accumulators {self.memory_bytes / 2**20:.1f} MiB in all"]
        lines.append(f"  {'layer':<{w}}  {'kind':<{kw}} {'K':>6} {'groups':>6} {'rows/sample':>11} {'method':>6} {'MiB':>9}")
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

    def __init__(self, units: list):
        super().__init__(units, check_finite=False)
        self.counts: dict[str, int] = {}

    def copy_stream(self, src: str, dst: str) -> None:
        if src in self.counts:
            self.counts[dst] = self.counts[src]

    def rows(self, key: str) -> int:
        return self.counts.get(key, 0)

    def add(self, key: str, x: torch.Tensor) -> None:
        spec = self.specs[key]
        n = sum(row_count(spec, t) for t in x.unbind()) if x.is_nested else row_count(spec, x)
        self.counts[key] = self.counts.get(key, 0) + n


def plan_targets(targets: list, counter: RowCounter, batch_size: int, n_trusted: int) -> list[PlannedLayer]:
    out = []
    for t in targets:
        per_sample = counter.rows(t.stream) / max(1, batch_size)
        rows = per_sample * n_trusted
        method = "rows" if 0 < rows <= t.k else "gram"
        kept = min(int(rows), t.k) if rows > 0 else t.k
        out.append(PlannedLayer(t.name, t.kind, t.k, t.groups, per_sample, method, t.groups * t.k * kept * 4))
    return out
