"""SAP as a Hugging Face ``Trainer`` callback: ``Trainer(..., callbacks=[SAPCallback()])`` corrects
the trained model at the end of ``train``, on the trainer's own train and evaluation dataloaders.

Needs ``transformers`` (and ``accelerate``, which its ``Trainer`` needs):
``pip install "sap_kernels[transformers]"``.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Union

try:
    import transformers
except ImportError as exc:  # pragma: no cover - exercised by the import-isolation test
    raise ImportError('sap_kernels.integrations.transformers needs transformers: '
                      'pip install "sap_kernels[transformers]"') from exc

from torch import nn

from ..sap import SAPResult
from ..sap.issues.label_issues import LabelIssues
from ._common import check_label_issues, check_project_kwargs, run_sap


class SAPCallback(transformers.TrainerCallback):
    """Run ``sap_kernels.project(model, train_dataloader, val_loader=eval_dataloader,
    inplace=True, label_key="labels", **kwargs)`` in ``on_train_end``.

    Batches are the dicts the trainer's collator builds (``input_ids``, ``attention_mask``,
    ``labels``, ...): ``label_key="labels"`` by default (unless ``batch_fn``/``input_key``/
    ``label_key`` is given), every other entry goes to the model as a keyword argument, the
    output's ``.logits`` are read, and rows at ``attention_mask == 0`` stay out of every token-wise
    Gram. The trainer's model is corrected in place; checkpoints saved during training hold the
    weights from before SAP (call ``trainer.save_model()`` after ``train`` for the corrected ones).

    Logged: ``sap/alpha``, ``sap/score@<alpha>`` for every alpha scored (``inf``: the unchanged
    model), ``sap/score``, ``sap/n_trusted``, ``sap/layers``. With the trainer attached
    (``SAPCallback(...).attach(trainer)``) they go through ``trainer.log``: into
    ``state.log_history`` and to every ``report_to`` integration's ``on_log``. Without it (a
    ``TrainerCallback`` is not handed the trainer) they are appended to ``state.log_history`` only.

    The evaluation dataloader is the one the trainer built when it last evaluated (with an
    ``eval_strategy``); if it never evaluated, pass ``val_loader=`` (or attach the trainer, whose
    ``get_eval_dataloader()`` is then used when it has an ``eval_dataset``), else ``project``
    chooses alpha on training samples and says so in ``result.warnings``.

    Under ``torch.distributed`` with several processes, rank 0 computes on a plain ``DataLoader``
    over the whole training (and evaluation) dataset (the trainer's own loaders are sharded and
    synchronise ranks while iterated), and every parameter and buffer is broadcast from rank 0, so
    all ranks end identical; a failure on rank 0 raises on every rank.

    Args:
        train_loader, val_loader: override the trainer's dataloaders.
        report_dir: rank 0 writes ``sap_kernels.report.save_report(result, report_dir)`` there.
        label_issues: ``True`` (or a rule name, ``sap_kernels.sap.issues.RULES``): after projecting,
            the corrected model scores every sample of the train loader and flags the labels it
            calls wrong (``SAPResult.label_issues``; under torch.distributed rank 0 reads the
            whole dataset, so positions are dataset indices, and every rank gets the result);
            logged as ``sap/label_issues`` (the flagged count), in the report when there is one.
        **project_kwargs: any keyword of ``sap_kernels.project`` but ``inplace`` (``alpha``,
            ``alphas``, ``n_trusted``, ``layers``, ``skip``, ...); checked here, before training.

    Attributes:
        result: the ``SAPResult`` after training (None before, and on ranks other than 0).
        metrics: the logged values (on every rank after training).
        report: path of the written report page, if any.
        label_issues: the ``LabelIssues`` after training with ``label_issues=`` (every rank), else None.
    """

    def __init__(self, *, train_loader: Optional[Iterable[Any]] = None, val_loader: Optional[Iterable[Any]] = None,
                 report_dir: Optional[Union[str, "os.PathLike[str]"]] = None, label_issues: Union[bool, str] = False,
                 **project_kwargs: Any):
        kwargs = check_project_kwargs(project_kwargs)
        if not any(kwargs.get(k) is not None for k in ("batch_fn", "input_key", "label_key")):
            kwargs["label_key"] = "labels"
        self.project_kwargs = kwargs
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.report_dir = report_dir
        self.issues_rule = check_label_issues(label_issues)
        self.label_issues: Optional[LabelIssues] = None
        self.trainer: Optional[transformers.Trainer] = None
        self.result: Optional[SAPResult] = None
        self.metrics: dict[str, float] = {}
        self.report: Optional[str] = None

    def attach(self, trainer: "transformers.Trainer") -> "SAPCallback":
        """Let the callback log through ``trainer.log`` (reaching ``report_to`` loggers) and build
        the evaluation dataloader; adds the callback to the trainer if it is not there yet."""
        self.trainer = trainer
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        return self

    def on_train_end(self, args: "transformers.TrainingArguments", state: "transformers.TrainerState",
                     control: "transformers.TrainerControl", model: Optional[nn.Module] = None,
                     train_dataloader: Optional[Iterable[Any]] = None,
                     eval_dataloader: Optional[Iterable[Any]] = None, **kwargs: Any) -> None:
        if model is None:
            raise RuntimeError("SAPCallback: the trainer passed no model to on_train_end")
        loader = self.train_loader if self.train_loader is not None else train_dataloader
        if loader is None:
            raise RuntimeError("SAPCallback: the trainer has no train dataloader; pass SAPCallback(train_loader=...)")
        val = self.val_loader if self.val_loader is not None else eval_dataloader
        if val is None and self.trainer is not None and self.trainer.eval_dataset is not None:
            val = self.trainer.get_eval_dataloader()
        outcome = run_sap(model, loader, val, self.project_kwargs, self.report_dir, self.issues_rule)
        self.result, self.metrics, self.report = outcome.result, outcome.metrics, outcome.report
        self.label_issues = outcome.label_issues
        if self.trainer is not None:
            self.trainer.log(dict(self.metrics))
        else:
            state.log_history.append({**self.metrics, "step": state.global_step})


__all__ = ["SAPCallback"]
