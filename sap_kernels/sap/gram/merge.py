"""Statistics across ranks: after each rank collected its own trusted samples, make every rank
hold what one process would have collected on all of them.

Per stream the ranks agree on the rows seen (summed), the scale exponent (the largest) and the
form: a stream that saw no more rows than its width ``K`` in all keeps its rows, gathered in rank
order; any other is a Gram, summed over the ranks (one all-reduce per bucket). Attention blocks
agree on whether their query, key and value were ever distinct.
"""
from __future__ import annotations

import torch

from ..layers.attention import AttentionUnit
from ..options import precision
from ..runtime.distributed import Ranks, bucketed_all_reduce, dist_max
from .collector import Accumulator, GramCollector

_NO_ROWS = -(2**30)  # the exponent a rank that saw no rows reports (any real one is larger)


def _agree_attention(collector: GramCollector, ranks: Ranks) -> None:
    units = [u for u in collector.units if isinstance(u, AttentionUnit)]
    if not units:
        return
    shared = torch.tensor([1 if u.shared else 0 for u in units])
    everywhere = ranks.all_reduce(shared, torch.distributed.ReduceOp.MIN)
    for u, ok in zip(units, everywhere.tolist()):
        if u.shared and not ok:
            collector.copy_stream(u.key("q"), u.key("k"))
            collector.copy_stream(u.key("q"), u.key("v"))
            u.shared = False


def _local_gram(acc: Accumulator, dtype: torch.dtype, exp: int, device: torch.device) -> torch.Tensor:
    s = acc.spec
    gram = torch.zeros(s.groups, s.k, s.k, dtype=dtype, device=device)
    if acc.rows == 0:
        return gram
    if acc.gram is not None:
        gram.copy_(acc.gram)
    for r in acc.kept:
        r = r.to(device=device, dtype=dtype)
        gram.baddbmm_(r.transpose(1, 2), r)
    return gram.mul_(4.0 ** ((acc.exp or 0) - exp))


def _local_rows(acc: Accumulator, dtype: torch.dtype, exp: int, device: torch.device) -> torch.Tensor:
    s = acc.spec
    if acc.rows == 0 or not acc.kept:
        return torch.zeros(0, s.groups, s.k, dtype=dtype, device=device)
    rows = torch.cat([r.to(device=device, dtype=dtype) for r in acc.kept], dim=1) * 2.0 ** ((acc.exp or 0) - exp)
    return rows.transpose(0, 1).contiguous()  # [m, groups, K]: rows on dim 0 for gathering


def merge_streams(collector: GramCollector, ranks: Ranks, device: torch.device) -> None:
    """Replace every rank's accumulators by the statistics of all ranks together (in place)."""
    _agree_attention(collector, ranks)
    keys = sorted(collector.specs)
    streams = collector.streams
    local = [streams.get(k) for k in keys]
    table = torch.tensor([[0.0 if a is None else a.rows, float(_NO_ROWS if a is None or a.exp is None else a.exp),
                           1.0 if a is not None and a.gram is not None else 0.0,
                           1.0 if a is not None and _is_f64(a) else 0.0] for a in local], dtype=torch.float64)
    rows = ranks.all_reduce(table[:, 0])
    top = ranks.all_reduce(table[:, 1:], dist_max())
    grams: list[torch.Tensor] = []
    for i, key in enumerate(keys):
        spec = collector.specs[key]
        acc = local[i] or Accumulator(spec)
        total, exp = int(rows[i]), int(top[i, 0])
        if total == 0:
            streams.pop(key, None)
            continue
        act = torch.float64 if top[i, 2] else torch.float32
        merged = Accumulator(spec, rows=total, exp=exp)
        if top[i, 1] or total > spec.k or not collector.keep_rows:
            merged.gram = _local_gram(acc, precision.gram_dtype(spec.k, act), exp, device)
            grams.append(merged.gram)
        else:
            parts = ranks.gather_rows(_local_rows(acc, precision.rows_dtype(act), exp, device))
            merged.kept = [torch.cat(parts).transpose(0, 1).contiguous()]
        streams[key] = merged
    bucketed_all_reduce(ranks, grams)


def _is_f64(acc: Accumulator) -> bool:
    if acc.gram is not None:
        return acc.gram.dtype == torch.float64 and acc.spec.k > precision.GRAM_FP64_MAX_K
    return any(r.dtype == torch.float64 for r in acc.kept)
