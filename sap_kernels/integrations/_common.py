"""What the training-framework callbacks share: checking ``project`` options up front, running SAP
once per job (rank 0 under ``torch.distributed``, then every rank gets its weights), metrics.

Imports only torch and sap_kernels, never a training framework.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from ..sap import SAPResult, project
from ..sap.find_issues import project_and_find
from ..sap.issues.label_issues import LabelIssues
from ..sap.issues.rules import DEFAULT_RULE, RULES

# Options a callback sets itself: the model and loaders come from the trainer, and the trainer's
# model is corrected in place.
_OWNED = ("model", "loader", "inplace", "dry_run")


def check_project_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` if every key is a keyword of ``sap_kernels.project`` a callback may pass on;
    a ``TypeError`` naming the offender otherwise (at construction, not after training)."""
    known = set(inspect.signature(project).parameters) - set(_OWNED)
    for key in kwargs:
        if key in _OWNED:
            raise TypeError(f"SAPCallback sets {key!r} itself (the trainer's model is corrected in place)")
        if key not in known:
            raise TypeError(f"SAPCallback got {key!r}, which is not an argument of sap_kernels.project; "
                            f"those are: {', '.join(sorted(known))}")
    return dict(kwargs)


# project's options that say how a batch splits; the label-issues pass and the report reuse them.
_SPLIT = ("batch_fn", "input_key", "label_key")


def check_label_issues(value: Union[bool, str, None]) -> Optional[str]:
    """The flagging rule a callback's ``label_issues=`` asks for (None: no label issues);
    ``True`` is the default rule. Checked at construction, not after training."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_RULE
    if isinstance(value, str) and value in RULES:
        return value
    raise ValueError(f"label_issues must be True, False or a rule name {list(RULES)}, got {value!r}")


class ChainedLoaders:
    """Several loaders read one after another as one re-iterable loader (several validation
    dataloaders: alpha is scored on all of their batches)."""

    def __init__(self, loaders: list[Iterable[Any]]):
        self.loaders = loaders

    def __iter__(self) -> Iterator[Any]:
        for loader in self.loaders:
            yield from loader


def one_loader(loaders: Any, what: str) -> Optional[Iterable[Any]]:
    """A trainer's dataloader(s) as one loader: None, a loader, or a list/tuple of loaders
    (chained); a dict of loaders (several named training iterables) is refused."""
    if loaders is None:
        return None
    if isinstance(loaders, dict):
        raise TypeError(f"the trainer's {what} is a dict of loaders {sorted(loaders)}; pass the one SAP should "
                        f"read as SAPCallback({'train_loader' if what == 'train dataloader' else 'val_loader'}=...)")
    if isinstance(loaders, (list, tuple)):
        loaders = [ld for ld in loaders if ld is not None]
        if not loaders:
            return None
        return loaders[0] if len(loaders) == 1 else ChainedLoaders(loaders)
    return loaders  # type: ignore[no-any-return]


def distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def whole_dataset_loader(loader: Iterable[Any]) -> Iterable[Any]:
    """A plain ``DataLoader`` over all of ``loader``'s dataset, in order, for rank 0 to read alone.

    A trainer's loader under ``torch.distributed`` yields only this rank's shard
    (``DistributedSampler``), and an ``accelerate``-prepared one runs collectives while it is
    iterated (random-state synchronisation, batch dispatch), which would hang with only rank 0
    reading. Same dataset, ``collate_fn``, batch size and workers; the loader itself when that
    cannot be rebuilt (no map-style dataset or no batch size).
    """
    dataset = getattr(loader, "dataset", None)
    if dataset is None or isinstance(dataset, IterableDataset):
        return loader
    batch_size = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None),
                                                                 "batch_size", None)
    if not batch_size:
        return loader
    return DataLoader(dataset, batch_size=int(batch_size), shuffle=False,
                      collate_fn=getattr(loader, "collate_fn", None),
                      num_workers=int(getattr(loader, "num_workers", 0) or 0),
                      pin_memory=bool(getattr(loader, "pin_memory", False)))


def sap_metrics(result: SAPResult) -> dict[str, float]:
    """``{"sap/alpha": a, "sap/score@<alpha>": s, ..., "sap/score": score at a, "sap/n_trusted": n,
    "sap/layers": projected layers}``; scores only when alpha was chosen (``"inf"``: unchanged model)."""
    out = {"sap/alpha": float(result.alpha)}
    for a, s in sorted(result.scores.items()):
        out[f"sap/score@{a:g}"] = float(s)
    if result.alpha in result.scores:
        out["sap/score"] = float(result.scores[result.alpha])
    out["sap/n_trusted"] = float(len(result.trusted_indices))
    out["sap/layers"] = float(len(result.layers))
    return out


@dataclass
class Outcome:
    """What every rank knows after ``run_sap``: the metrics, and the full result on the rank that
    computed it (None on the others)."""

    metrics: dict[str, float]
    result: Optional[SAPResult] = None
    report: Optional[str] = None
    label_issues: Optional[LabelIssues] = None


def broadcast_weights(model: nn.Module, src: int = 0) -> None:
    """Every parameter and buffer of ``model`` (each tensor once) from rank ``src`` to all ranks."""
    seen: set[int] = set()
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if id(t) in seen:
                continue
            seen.add(id(t))
            data = t.data
            if data.is_contiguous():
                dist.broadcast(data, src=src)
            else:  # broadcast needs contiguous memory
                buf = data.contiguous()
                dist.broadcast(buf, src=src)
                data.copy_(buf)


def run_sap(model: nn.Module, loader: Iterable[Any], val_loader: Optional[Iterable[Any]], kwargs: dict[str, Any],
            report_dir: Optional[Union[str, "os.PathLike[str]"]] = None, issues_rule: Optional[str] = None) -> Outcome:
    """``project(model, loader, val_loader=..., inplace=True, **kwargs)`` once per job.

    Single process: runs it. Under ``torch.distributed`` with several processes: rank 0 runs it on
    ``whole_dataset_loader`` copies of the loaders, its status (and, on success, its metrics) is
    broadcast, every parameter and buffer is broadcast from rank 0, so all ranks end with identical
    weights; a failure on rank 0 raises on every rank. ``report_dir``: rank 0 writes
    ``sap_kernels.report.save_report(result, report_dir)`` (needs matplotlib). ``issues_rule``:
    the corrected model then scores every sample of ``loader`` (rank 0's whole-dataset copy under
    torch.distributed, so positions are dataset indices) and flags by that rule; the
    ``LabelIssues`` are broadcast, so every rank has them, and go into the report.
    """
    if "alpha" in kwargs and kwargs["alpha"] is not None:
        val_loader = None  # a given alpha is not chosen on anything
    if not distributed():
        return _run(model, loader, val_loader, kwargs, report_dir, issues_rule)
    outcome: Optional[Outcome] = None
    error: Optional[BaseException] = None
    if dist.get_rank() == 0:
        try:
            outcome = _run(model, whole_dataset_loader(loader),
                           None if val_loader is None else whole_dataset_loader(val_loader), kwargs, report_dir,
                           issues_rule)
        except BaseException as exc:  # every rank must learn of it, or they wait in broadcast forever
            error = exc
    status: list[Any] = [None if outcome is None else outcome.metrics,
                         None if error is None else f"{type(error).__name__}: {error}",
                         None if outcome is None else outcome.label_issues]
    dist.broadcast_object_list(status, src=0)
    if status[1] is not None:
        if error is not None:
            raise error
        raise RuntimeError(f"SAP failed on rank 0, so no rank's weights were changed: {status[1]}")
    broadcast_weights(model, src=0)
    return outcome if outcome is not None else Outcome(metrics=dict(status[0]), label_issues=status[2])


def _run(model: nn.Module, loader: Iterable[Any], val_loader: Optional[Iterable[Any]], kwargs: dict[str, Any],
         report_dir: Optional[Union[str, "os.PathLike[str]"]], issues_rule: Optional[str] = None) -> Outcome:
    # distributed=False: this runs on one process (rank 0 alone under torch.distributed, which then
    # broadcasts the weights); project must not wait for the other ranks in its own collectives.
    options = {**kwargs, "distributed": False}
    split = {k: kwargs[k] for k in _SPLIT if kwargs.get(k) is not None}
    issues = None
    if issues_rule is None:
        result = project(model, loader, val_loader=val_loader, inplace=True, **options)
    else:  # find_label_issues' work: labels scored at detection_alpha where the plain call keeps the model
        result, issues = project_and_find(model, loader, val_loader=val_loader, inplace=True,
                                          rule=issues_rule, **options)  # type: ignore[arg-type]
    metrics = sap_metrics(result)
    if issues is not None:
        metrics["sap/label_issues"] = float(issues.n_issues)
    report = None
    if report_dir is not None:
        from ..report import save_report

        report = save_report(result, report_dir, issues, None if issues is None else loader, **split)
    return Outcome(metrics=metrics, result=result, report=report, label_issues=issues)
