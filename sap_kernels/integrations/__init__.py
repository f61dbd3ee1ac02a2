"""SAP where users already train: callbacks that correct the model at the end of training.

- ``sap_kernels.integrations.lightning.SAPCallback``: a ``lightning.pytorch.Callback``
  (``pip install "sap_kernels[lightning]"``), run at the end of ``Trainer.fit``.
- ``sap_kernels.integrations.transformers.SAPCallback``: a ``transformers.TrainerCallback``
  (``pip install "sap_kernels[transformers]"``), run at the end of ``Trainer.train``.

Both call ``sap_kernels.project(..., inplace=True)`` on the trainer's own train and validation
dataloaders, log ``sap/alpha`` and ``sap/score@<alpha>`` to the trainer's loggers, keep the
``SAPResult`` as ``callback.result``, take ``project``'s keyword arguments (and ``report_dir=``),
and under ``torch.distributed`` compute on rank 0 and broadcast the weights to every rank. With
``label_issues=True`` they also score every training sample with the corrected model and keep
the ``LabelIssues`` as ``callback.label_issues`` (on every rank).

This package imports neither framework (nor timm, nor JAX); each submodule imports its own.
"""
from ._common import sap_metrics

__all__ = ["sap_metrics"]
