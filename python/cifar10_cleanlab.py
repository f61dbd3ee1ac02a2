"""The CIFAR models as a scikit-learn classifier, so that cleanlab runs its own cross-validation
(``cleanlab.count.estimate_cv_predicted_probabilities``: ``sklearn.model_selection.StratifiedKFold``
with ``shuffle=True``, a ``sklearn.base.clone`` of the classifier trained per fold, out-of-fold
``predict_proba``), and detection scores for any predicted probabilities."""
from __future__ import annotations

import numpy as np
import torch
from cifar10_model import make_model
from cifar10_train import Recipe, predict_proba, train
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score


class TorchCifarClassifier(ClassifierMixin, BaseEstimator):
    """``fit(X, y)``: X float32 ``[n, 3, 32, 32]`` normalised images (numpy), y int ``[n]``; trains a
    fresh ``CifarResNet`` with the recipe's fields. ``predict_proba(X)``: float ``[n, 10]``."""

    def __init__(self, epochs: int = 30, lr: float = 0.05, batch_size: int = 128, weight_decay: float = 5e-4,
                 augment: bool = False, width: int = 16, blocks: int = 1, seed: int = 0, device: str = "cpu"):
        self.epochs, self.lr, self.batch_size, self.weight_decay = epochs, lr, batch_size, weight_decay
        self.augment, self.width, self.blocks, self.seed, self.device = augment, width, blocks, seed, device

    def _recipe(self) -> Recipe:
        return Recipe(self.epochs, self.lr, self.batch_size, self.weight_decay, self.augment, self.width, self.blocks)

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(X)).to(self.device).contiguous(memory_format=torch.channels_last)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "TorchCifarClassifier":
        self.classes_ = np.arange(10)
        self.model_ = make_model(self.seed, self.width, self.blocks).to(self.device, memory_format=torch.channels_last)
        self.seconds_ = train(self.model_, self._tensor(X), torch.as_tensor(y, dtype=torch.int64, device=self.device),
                              self._recipe(), self.seed)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self.model_, self._tensor(X)).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(1)


def detection_scores(is_wrong: np.ndarray, quality: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """AUROC of ranking by ``quality`` (lower = more likely wrong) and precision / recall / F1 of the
    bool ``flagged`` set, all against the bool ``is_wrong`` (given label != clean label)."""
    if is_wrong.all() or not is_wrong.any():
        return {"auroc": float("nan"), "precision": float("nan"), "recall": float("nan"), "f1": float("nan"),
                "n_flagged": int(flagged.sum())}
    return {
        "auroc": float(roc_auc_score(is_wrong, -quality)),
        "precision": float(precision_score(is_wrong, flagged, zero_division=0)),
        "recall": float(recall_score(is_wrong, flagged, zero_division=0)),
        "f1": float(f1_score(is_wrong, flagged, zero_division=0)),
        "n_flagged": int(flagged.sum()),
    }
