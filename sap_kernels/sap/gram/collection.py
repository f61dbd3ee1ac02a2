"""Phase 2, ``collect``: run the trusted samples through the model and stream every selected
layer's input activations into per-stream Grams (``GramCollector``), then describe them as
``Statistics``.

The row layout. Each stream's Gram is ``G = R^T R``, one ``[K, K]`` per group, over the rows ``R``
its layer's calls contribute; a row's columns are in the order of the weight's flattened input
dim, so that the projection ``W P`` applies to ``W [out, K]`` (per group) as it is:

- ``nn.Linear(in, out)``, stream ``"<name>"``, ``K = in``: every leading position of the input
  ``[..., in]`` is a row, tokens included. ``Linear(512, 10)`` on ``[32, 512]``: 32 rows of 512;
  on tokens ``[8, 128, 512]`` with an ``attention_mask`` of 100 real tokens per sample: 800 rows
  (padding positions are left out, ``row_mask``).
- ``nn.Conv1d/2d/3d(C, O, k, groups=g)``, stream ``"<name>"``, ``K = C / g * prod(k)``: the im2col
  patch rows of the input (``F.unfold`` semantics and order: channels, then kernel offsets), one
  per output position per sample, per group; ``reflect``/``replicate``/``circular`` padding is
  applied first, as the module does. ``Conv2d(64, 128, 3, padding=1)`` on ``[32, 64, 8, 8]``:
  ``32 * 8 * 8 = 2048`` rows of 576, never materialised (``ops.conv_gram``); the depthwise
  ``Conv2d(64, 64, 3, groups=64)``: 64 Grams of ``9 x 9``.
- ``nn.MultiheadAttention(E)``, streams ``"<name>:q"``, ``":k"``, ``":v"``, ``":out"``, ``K = E``
  (``kdim``/``vdim`` for separate key/value weights): every token of the query (key, value) is a
  row of its stream, and every token of the attention output before ``out_proj`` a row of
  ``":out"``. Self-attention (query is key is value) projects the packed ``in_proj_weight
  [3E, E]`` with the query's Gram alone; ``out_proj.weight [E, E]`` with ``":out"``.
- Output side (``location="post"``/``"all"``), stream ``"<name>@post"``, ``K = out / g``: each
  output position's ``out / g`` channels of its group are a row. ``Linear(512, 10)`` on
  ``[32, 512]``: 32 rows of 10.

Where that happens: a unit's hooks (``layers.linear_conv``, ``layers.attention``) hand each call's
input to ``GramCollector.add`` (``gram.collector``), which checks it is finite, scales it by a
power of two when its magnitude would overflow the Gram, masks padding rows, and adds it through
the layer kind's sink (``layers.row_sinks``: ``ops.gram`` for rows, ``ops.conv_gram`` for patches;
the row maths in ``layers.rows``). A stream keeps its raw rows while it has seen no more than
``K`` of them (they are decomposed through ``R R^T``, ``spectra.eigenpairs``). Under
torch.distributed every rank collects its own samples and ``gram.merge`` combines them.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import batches
from ..data.loaders import RowMaskFn, attention_mask_rows, check_loader, row_mask_of
from ..data.samples import SampleSet
from ..layers.discovery import Discovery, Selector, discover, nothing_to_project
from ..layers.head import drop_unit, find_head
from ..options.choices import check_count, check_location
from ..options.configs import BatchFormat, CollectConfig, Parallel
from ..runtime.distributed import ProcessGroup, Ranks, agreed, resolve_ranks
from ..runtime.forward import call_model
from ..runtime.guards import eval_modes
from ..runtime.wrappers import device_of, unwrap
from ..spectra.statistics import Statistics
from ..spectra.streams import StreamStats
from ..trusted.selection import TrustedSet
from .collector import GramCollector
from .merge import merge_streams


def _batches(trusted: Any, split: batches.Splitter, batch_size: Optional[int]) -> Iterator[Any]:
    """Model inputs, batch by batch, from a TrustedSet, a SampleSet or a loader."""
    if isinstance(trusted, TrustedSet):
        trusted = trusted.samples
    if isinstance(trusted, SampleSet):
        for inputs, _ in trusted.batches(batch_size):
            yield inputs
        return
    check_loader(trusted, "trusted")
    for b, batch in enumerate(trusted):
        inputs, labels = split(batch)
        if labels.dim() and labels.shape[0]:
            batches.check_samples(inputs, int(labels.shape[0]), b)
            yield inputs


def statistics_of(collector: GramCollector, disc: Discovery, head: Optional[str], n_samples: int,
                  trusted_indices: torch.Tensor, notices: list[str]) -> Statistics:
    """The collector's accumulators as ``Statistics``; targets never reached go to ``skipped``."""
    skipped = list(disc.skipped)
    targets, streams = [], {}
    for t in disc.targets():
        acc = collector.streams.get(t.stream)
        if acc is None or acc.rows == 0:
            skipped.append((t.name, "never called during the forward pass"))
            continue
        targets.append(t)
        for key in (t.stream, t.post):
            got = collector.streams.get(key) if key is not None else None
            if key is not None and got is not None and got.rows and key not in streams:
                streams[key] = StreamStats(got.spec, got.rows, got.gram, got.kept_rows(), got.exp or 0)
    if not targets:
        raise ValueError("nothing to project: no selected layer was called during the forward pass"
                         + "".join(f"\n  {n}: {why}" for n, why in skipped[:20]))
    return Statistics(streams, targets, skipped, head, n_samples, trusted_indices, notices)


def collect(
    model: nn.Module,
    trusted: Union[TrustedSet, SampleSet, Iterable[Any]],
    *,
    layers: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip_head: bool = False,
    batch_size: Optional[int] = None,
    backend: Optional[str] = None,
    row_mask: Optional[RowMaskFn] = attention_mask_rows,
    batch_fn: Optional[batches.Splitter] = None,
    input_key: Optional[Union[str, list[str]]] = None,
    label_key: Optional[str] = None,
    progress: bool = True,
    process_group: Optional[ProcessGroup] = None,
    distributed: Optional[bool] = None,
    location: str = "pre",
) -> Statistics:
    """Phase 2: the Gram (or, while fewer than ``K``, the rows) of every selected layer's input.

    Args:
        model: the model (run in eval mode, modes restored; wrappers such as DDP are peeled off).
        trusted: a ``TrustedSet`` (from ``select_trusted``), a ``SampleSet``, or any loader of
            ``(inputs, labels)`` batches whose samples are all trusted (a verified clean subset).
        layers, skip, skip_head: which targets (see ``sap_kernels.project``).
        batch_size: batch size for a ``TrustedSet``/``SampleSet`` (default: the loader's largest).
        backend: kernel backend for the Grams.
        row_mask: ``inputs -> [B, T] bool`` marking real tokens; rows at False positions of
            token-wise inputs (``[B, T, ..., K]``) are left out of every Gram. Default: a dict
            input's ``attention_mask``; None: every row.
        batch_fn, input_key, label_key: how a loader batch becomes ``(inputs, labels)``.
        progress: a tqdm bar over the batches.
        process_group, distributed: under torch.distributed each rank collects its own samples
            (none is fine) and every rank ends with the statistics of all of them (see
            ``select_trusted``).
        location: ``"post"``/``"all"`` also collect every Linear/Conv layer's outputs (for
            output-side projection, ``sap_kernels.sap.projection.scaling``).
    Returns:
        ``Statistics`` (the same on every rank).
    """
    config = CollectConfig(layers=layers, skip=skip, skip_head=skip_head, batch_size=batch_size, backend=backend,
                           row_mask=row_mask, progress=progress, location=location,
                           batches=BatchFormat(batch_fn, input_key, label_key),
                           parallel=Parallel(process_group, distributed))
    return collect_with(model, trusted, config)


def collect_with(model: nn.Module, trusted: Union[TrustedSet, SampleSet, Iterable[Any]],
                 config: CollectConfig) -> Statistics:
    """``collect`` with its options as a ``CollectConfig`` (each checked here)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    batch_size = None if config.batch_size is None else check_count(config.batch_size, "batch_size")
    row_mask = config.row_mask
    if row_mask is not None and not callable(row_mask):
        raise TypeError(f"row_mask must be a function inputs -> [B, T] bool mask, or None; got {row_mask!r}")
    ranks = resolve_ranks(config.parallel.process_group, config.parallel.distributed)
    inner, _ = unwrap(model)
    fmt = config.batches
    split = batches.make_splitter(fmt.batch_fn, fmt.input_key, fmt.label_key)
    disc = discover(inner, config.layers, config.skip, post=check_location(config.location) != "pre")
    if not disc.units:
        raise nothing_to_project(disc)
    device = device_of(inner)
    stream = _batches(trusted, split, batch_size)
    first = agreed(ranks, "reading the trusted samples", lambda: next(stream, None))
    head = _head(inner, disc, first, device, ranks) if config.skip_head else None
    run = _Run(inner, disc, row_mask, device, config.backend, config.progress)
    collector, n = agreed(ranks, "collecting activations", lambda: run.collect(first, stream))
    indices = trusted.indices if isinstance(trusted, (TrustedSet, SampleSet)) else torch.arange(n)
    if ranks is not None:
        agreed(ranks, "merging statistics", lambda: merge_streams(collector, ranks, device))
        n = sum(ranks.all_gather_ints(n))
        if not isinstance(trusted, (TrustedSet, SampleSet)):
            indices = torch.arange(n)  # a plain loader: every sample, in rank order
        else:
            indices = torch.sort(torch.cat(ranks.gather_rows(indices))).values
    elif first is None:
        raise ValueError("collect: there are no samples to collect statistics on")
    notices = list(trusted.notices) if isinstance(trusted, TrustedSet) else []
    return statistics_of(collector, disc, head, n, indices, notices)


def _head(model: nn.Module, disc: Discovery, first: Any, device: torch.device, ranks: Optional[Ranks]) -> str:
    """Find and drop the classifier head (from a rank that has samples, the same on every rank)."""
    def local() -> Optional[str]:
        if first is None:
            return None
        with eval_modes(model):
            return find_head(model, disc.units, batches.slice_rows(batches.to_device(first, device), 0, 2))

    name = agreed(ranks, "finding the classifier head", local)
    if ranks is not None:
        names: list[Optional[str]] = [None] * ranks.size
        torch.distributed.all_gather_object(names, name, group=ranks.group)
        name = next((x for x in names if x is not None), None)
    if name is None:
        raise ValueError("skip_head=True: there are no samples to find the classifier head with")
    drop_unit(disc, name)
    return name


class _Run:
    """One collection pass over this rank's trusted samples."""

    def __init__(self, model: nn.Module, disc: Discovery, row_mask: Optional[RowMaskFn], device: torch.device,
                 backend: Optional[str], progress: bool):
        self.model, self.disc, self.row_mask, self.device = model, disc, row_mask, device
        self.backend, self.progress = backend, progress

    def collect(self, first: Any, rest: Iterator[Any]) -> tuple[GramCollector, int]:
        collector = GramCollector(self.disc.units, backend=self.backend)
        n = 0
        if first is None:
            return collector, 0
        with eval_modes(self.model), collector, torch.no_grad():
            for inputs in tqdm(_chain(first, rest), desc="SAP: collecting activations", disable=not self.progress,
                               leave=False):
                size = batches.batch_len(inputs)
                collector.row_mask = None if self.row_mask is None else row_mask_of(self.row_mask, inputs, size)
                call_model(self.model, batches.to_device(inputs, self.device))
                n += size
            collector.row_mask = None
        return collector, n


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
