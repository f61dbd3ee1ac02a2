"""SAP across processes: the collectives at the phase boundaries (torch.distributed, any backend).

Every rank reads its own shard. The phases stay local; between them:

- ranking: each rank's candidates (score, global index, class) are gathered and every rank runs
  the same selection on the whole table, so the trusted set is the one a single process would
  choose on the concatenated data (rank 0's samples first);
- statistics: row counts and scale exponents are agreed, streams with few rows gathered, Grams
  summed with one all-reduce per bucket (per dtype, ``BUCKET_BYTES`` each, as DDP buckets);
- decomposition: streams assigned to ranks by longest-processing-time on their cost, each
  spectrum broadcast from the rank that computed it;
- alpha: every candidate's score summed over ranks.

Failure: before every collective the ranks agree that each of them finished its local part
(``agreed``): if one raised, every rank raises (the failing one its own error) and nothing is
written, instead of the others waiting in a collective forever.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
ProcessGroup = dist.ProcessGroup

# Grams are summed in buckets of about this many bytes (one all-reduce each), as DDP buckets
# gradients: few collectives, bounded extra memory.
BUCKET_BYTES = 25 * 2**20


class RankFailed(RuntimeError):
    """Another rank raised during a distributed phase; this rank stopped with it."""


@dataclass(frozen=True)
class Ranks:
    """The process group a distributed call runs in, and where its collectives' tensors live."""

    group: Optional[dist.ProcessGroup]
    rank: int
    size: int
    device: torch.device

    def all_reduce(self, t: torch.Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> torch.Tensor:
        """``t`` reduced over the ranks (a new tensor on ``t``'s device and dtype)."""
        buf = t.detach().to(self.device).clone()
        dist.all_reduce(buf, op=op, group=self.group)
        return buf.to(t.device)

    def broadcast(self, t: torch.Tensor, src: int) -> torch.Tensor:
        """``t`` as rank ``src`` holds it (every rank passes a tensor of the same shape and dtype)."""
        buf = t.detach().to(self.device).contiguous().clone()
        dist.broadcast(buf, src=dist.get_global_rank(self.group, src) if self.group is not None else src,
                       group=self.group)
        return buf.to(t.device)

    def gather_rows(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``t`` (same trailing shape and dtype, any length on dim 0), in rank order."""
        n = self.all_gather_ints(int(t.shape[0]))
        pad = t.new_zeros((max(n), *t.shape[1:]))
        pad[: t.shape[0]] = t
        bufs = [torch.empty_like(pad, device=self.device) for _ in range(self.size)]
        dist.all_gather(bufs, pad.to(self.device), group=self.group)
        return [b[:k].to(t.device) for b, k in zip(bufs, n)]

    def all_gather_ints(self, value: int) -> list[int]:
        out = torch.zeros(self.size, dtype=torch.long, device=self.device)
        out[self.rank] = value
        dist.all_reduce(out, group=self.group)
        return [int(v) for v in out.tolist()]


def dist_max() -> dist.ReduceOp.RedOpType:
    return dist.ReduceOp.MAX


def resolve_ranks(process_group: Optional[dist.ProcessGroup], distributed: Optional[bool]) -> Optional[Ranks]:
    """``distributed=None``: the group's ranks when torch.distributed is initialised with several
    processes; ``False``: this process alone; ``True``: the ranks, or an error when there are none."""
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(f"distributed must be True, False or None, got {distributed!r}")
    if distributed is False:
        return None
    ranks = ranks_of(process_group)
    if distributed and ranks is None:
        raise ValueError("distributed=True but torch.distributed is not initialised with several processes")
    return ranks


def ranks_of(process_group: Optional[dist.ProcessGroup] = None) -> Optional[Ranks]:
    """The ranks to run with: None when torch.distributed is not initialised or has one process
    (then everything runs locally)."""
    if not (dist.is_available() and dist.is_initialized()):
        if process_group is not None:
            raise ValueError("process_group was given but torch.distributed is not initialised")
        return None
    size = dist.get_world_size(process_group)
    if size == 1:
        return None
    backend = dist.get_backend(process_group)
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    return Ranks(process_group, dist.get_rank(process_group), size, device)


def agreed(ranks: Optional[Ranks], what: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on every rank, then agree that all of them succeeded before going on.

    A rank whose ``fn`` raised re-raises its error after the agreement; the others raise
    ``RankFailed`` naming ``what``. Without ranks, just ``fn()``.
    """
    if ranks is None:
        return fn()
    error: Optional[BaseException] = None
    result: Optional[T] = None
    try:
        result = fn()
    except BaseException as exc:  # every rank must reach the agreement, whatever happened
        error = exc
    failed = ranks.all_reduce(torch.tensor([0 if error is None else 1], dtype=torch.long))
    if error is not None:
        raise error
    if int(failed.item()):
        raise RankFailed(f"{what} failed on {int(failed.item())} other rank(s); see their errors")
    return result  # type: ignore[return-value]


def bucketed_all_reduce(ranks: Ranks, tensors: Sequence[torch.Tensor], bucket_bytes: int = BUCKET_BYTES) -> None:
    """Sum every tensor over the ranks in place, one all-reduce per bucket of one dtype."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for t in group:
            bucket.append(t)
            size += t.numel() * t.element_size()
            if size >= bucket_bytes:
                _reduce_bucket(ranks, bucket)
                bucket, size = [], 0
        if bucket:
            _reduce_bucket(ranks, bucket)


def _reduce_bucket(ranks: Ranks, bucket: list[torch.Tensor]) -> None:
    flat = torch.cat([t.reshape(-1) for t in bucket]).to(ranks.device)
    dist.all_reduce(flat, group=ranks.group)
    start = 0
    for t in bucket:
        n = t.numel()
        t.copy_(flat[start:start + n].view_as(t).to(t.device))
        start += n


def lpt_assignment(costs: Sequence[float], size: int) -> list[int]:
    """Owner rank of each job, longest-processing-time first onto the least loaded rank (ties: the
    lower rank), the greedy rule that is within 4/3 of the best makespan."""
    load = [0.0] * size
    owner = [0] * len(costs)
    for j in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        r = min(range(size), key=lambda r: (load[r], r))
        owner[j] = r
        load[r] += costs[j]
    return owner


def is_writer() -> bool:
    """Whether this process writes shared results: always, except ranks other than 0 of an
    initialised torch.distributed job."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
