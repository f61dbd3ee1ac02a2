"""SAP as a Lightning callback: ``Trainer(callbacks=[SAPCallback()])`` corrects the trained model
at the end of ``fit``, on the trainer's own train and validation dataloaders.

Needs ``lightning`` (``pip install "sap_kernels[lightning]"``).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Union

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - exercised by the import-isolation test
    raise ImportError('sap_kernels.integrations.lightning needs Lightning: pip install "sap_kernels[lightning]"'
                      ) from exc

from ..sap import SAPResult
from ..sap.issues.label_issues import LabelIssues
from ._common import check_label_issues, check_project_kwargs, one_loader, run_sap


class SAPCallback(pl.Callback):
    """Run ``sap_kernels.project(pl_module, train_loader, val_loader=..., inplace=True, **kwargs)``
    when ``trainer.fit`` has finished training.

    It runs in ``on_train_end``: the last hook of ``fit`` that sees the model on its training
    device with the loggers and the process group still up (Lightning moves the model to the CPU
    before ``on_fit_end``). The LightningModule itself is projected, so its ``forward`` must take a
    batch's inputs and return logits (or pass ``batch_fn=``/``loss_fn=``/``score_fn=``, as to
    ``project``). Checkpoints written during ``fit`` hold the weights from before SAP.

    Logged to every ``trainer.loggers`` entry at ``trainer.global_step``: ``sap/alpha``,
    ``sap/score@<alpha>`` for every alpha scored (``inf``: the unchanged model), ``sap/score``,
    ``sap/n_trusted``, ``sap/layers``.

    Under ``torch.distributed`` with several processes, rank 0 computes on a plain loader over the
    whole training (and validation) dataset (not its ``DistributedSampler`` shard), and every
    parameter and buffer is broadcast from rank 0, so all ranks end identical; a failure on rank 0
    raises on every rank.

    Args:
        train_loader: batches SAP selects trusted samples from; default: ``trainer.train_dataloader``.
        val_loader: batches alpha is chosen on; default: ``trainer.val_dataloaders`` (several are
            read one after another; none: ``project`` chooses alpha on training samples and says so
            in ``result.warnings``). Ignored when ``alpha`` is given.
        report_dir: rank 0 writes ``sap_kernels.report.save_report(result, report_dir)`` there.
        label_issues: ``True`` (or a rule name, ``sap_kernels.sap.issues.RULES``): after projecting,
            the corrected model scores every sample of the train loader and flags the labels it
            calls wrong (``SAPResult.label_issues``; under torch.distributed rank 0 reads the
            whole dataset, so positions are dataset indices, and every rank gets the result);
            logged as ``sap/label_issues`` (the flagged count), in the report when there is one.
        **project_kwargs: any keyword of ``sap_kernels.project`` but ``inplace`` (``alpha``,
            ``alphas``, ``n_trusted``, ``layers``, ``skip``, ``batch_fn``, ...); checked here, so a
            misspelt option fails before training, not after.

    Attributes:
        result: the ``SAPResult`` after fit (None before, and on ranks other than 0).
        metrics: the logged values (on every rank after fit).
        report: path of the written report page, if any.
        label_issues: the ``LabelIssues`` after training with ``label_issues=`` (every rank), else None.
    """

    def __init__(self, *, train_loader: Optional[Iterable[Any]] = None, val_loader: Optional[Iterable[Any]] = None,
                 report_dir: Optional[Union[str, "os.PathLike[str]"]] = None, label_issues: Union[bool, str] = False,
                 **project_kwargs: Any):
        super().__init__()
        self.project_kwargs = check_project_kwargs(project_kwargs)
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.report_dir = report_dir
        self.issues_rule = check_label_issues(label_issues)
        self.label_issues: Optional[LabelIssues] = None
        self.result: Optional[SAPResult] = None
        self.metrics: dict[str, float] = {}
        self.report: Optional[str] = None

    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        loader = self.train_loader if self.train_loader is not None else one_loader(trainer.train_dataloader,
                                                                                   "train dataloader")
        if loader is None:
            raise RuntimeError("SAPCallback: the trainer has no train dataloader; pass SAPCallback(train_loader=...)")
        val = self.val_loader if self.val_loader is not None else one_loader(trainer.val_dataloaders,
                                                                            "validation dataloaders")
        outcome = run_sap(pl_module, loader, val, self.project_kwargs, self.report_dir, self.issues_rule)
        self.result, self.metrics, self.report = outcome.result, outcome.metrics, outcome.report
        self.label_issues = outcome.label_issues
        for logger in trainer.loggers:
            logger.log_metrics(dict(self.metrics), step=trainer.global_step)
            logger.save()


__all__ = ["SAPCallback"]
