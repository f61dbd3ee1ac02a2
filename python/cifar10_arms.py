"""The arms of ``cifar10.py``: each returns a JSON-ready record (test accuracy on the same test images,
wall-clock seconds, number of full trainings, and what the arm chose or flagged)."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from cifar10_cleanlab import TorchCifarClassifier, detection_scores
from cifar10_model import make_model
from cifar10_train import Recipe, accuracy, predict_proba, train
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels


@dataclass
class Cell:
    """One label set and seed: float ``x`` ``[N, 3, 32, 32]`` (on ``device``), its noisy and clean int64
    labels, a validation split with labels of the same set, the test images, and the settings."""

    x: torch.Tensor
    noisy: torch.Tensor
    clean: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    recipe: Recipe
    seed: int
    folds: int
    finetune_epochs: int
    finetune_lr: float
    device: str
    project_options: dict[str, Any]

    def loader(self, x: torch.Tensor, y: torch.Tensor) -> DataLoader[Any]:
        """Unshuffled batches of 256 (positions are the dataset's order)."""
        return DataLoader(TensorDataset(x, y), batch_size=256, shuffle=False)

    def fresh_model(self, seed: int | None = None) -> nn.Module:
        m = make_model(self.seed if seed is None else seed, self.recipe.width, self.recipe.blocks)
        return m.to(self.device, memory_format=torch.channels_last)

    def test_acc(self, model: nn.Module) -> float:
        return accuracy(model, self.x_test, self.y_test)


def train_fresh(cell: Cell, x: torch.Tensor, y: torch.Tensor) -> tuple[nn.Module, float]:
    """A fresh model (seeded by the cell's seed) trained on ``(x, y)``; returns it and its seconds."""
    model = cell.fresh_model()
    return model, train(model, x, y, cell.recipe, cell.seed)


def vanilla_record(cell: Cell, model: nn.Module, seconds: float) -> dict[str, Any]:
    """The vanilla arm: the model trained on the noisy labels, its fit of them and its test accuracy."""
    return {"test_acc": cell.test_acc(model), "seconds": seconds, "trainings": 1,
            "train_acc_noisy": accuracy(model, cell.x, cell.noisy),
            "train_acc_clean": accuracy(model, cell.x, cell.clean),
            "epoch_seconds": seconds / max(1, cell.recipe.epochs),
            "noise_rate": float((cell.noisy != cell.clean).float().mean())}


def project_arm(cell: Cell, vanilla: nn.Module, with_val: bool) -> tuple[dict[str, Any], sap_kernels.SAPResult]:
    """``sap_kernels.project`` with its defaults, without validation data or with the noisy split."""
    t0 = time.perf_counter()
    res = sap_kernels.project(vanilla, cell.loader(cell.x, cell.noisy), progress=False, seed=cell.seed,
                              val_loader=cell.loader(cell.x_val, cell.y_val) if with_val else None,
                              **cell.project_options)
    seconds = time.perf_counter() - t0
    rec = {"test_acc": cell.test_acc(res.model), "seconds": seconds, "trainings": 0, "alpha": float(res.alpha),
           "rule": str(getattr(res, "rule", "")), "warnings": [str(w) for w in getattr(res, "warnings", ())],
           "timings": {k: float(v) for k, v in dict(getattr(res, "timings", {}) or {}).items()
                       if isinstance(v, (int, float))}}
    return rec, res


def finetune_arm(cell: Cell, vanilla: nn.Module, trusted: torch.Tensor) -> dict[str, Any]:
    """The paper's baseline: fine-tune a copy of the vanilla model on the trusted samples (their noisy
    labels), ``finetune_epochs`` at peak learning rate ``finetune_lr``."""
    model = copy.deepcopy(vanilla)
    idx = trusted.to(cell.x.device)
    seconds = train(model, cell.x[idx], cell.noisy[idx], cell.recipe, cell.seed, cell.finetune_epochs, cell.finetune_lr)
    share = cell.finetune_epochs * len(idx) / (cell.recipe.epochs * len(cell.noisy))
    return {"test_acc": cell.test_acc(model), "seconds": seconds, "trainings": share, "n_trusted": len(idx)}


def retrain_kept(cell: Cell, flagged: np.ndarray) -> tuple[float, float]:
    """Train a fresh model on the samples not flagged (their noisy labels): test accuracy, seconds."""
    keep = torch.from_numpy(np.flatnonzero(~flagged)).to(cell.x.device)
    model, seconds = train_fresh(cell, cell.x[keep], cell.noisy[keep])
    return cell.test_acc(model), seconds


def insample_cleanlab_arm(cell: Cell, vanilla: nn.Module, vanilla_seconds: float) -> dict[str, Any]:
    """Detection (a): the vanilla model's in-sample probabilities -> ``cleanlab.filter.find_label_issues``."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    t0 = time.perf_counter()
    probs = predict_proba(vanilla, cell.x).numpy()
    labels = cell.noisy.cpu().numpy()
    flagged = find_label_issues(labels, probs)
    quality = get_label_quality_scores(labels, probs)
    seconds = time.perf_counter() - t0
    det = detection_scores((cell.noisy != cell.clean).cpu().numpy(), quality, flagged)
    return {"detect_seconds": seconds, "seconds": seconds + vanilla_seconds, "trainings": 1, **det}


def cv_cleanlab_arm(cell: Cell) -> dict[str, Any]:
    """Detection (b) and its retrain: cleanlab's workflow, K-fold cross-validated probabilities
    (``cleanlab.count.estimate_cv_predicted_probabilities``) -> ``cleanlab.filter.find_label_issues``
    -> retrain on the samples kept."""
    from cleanlab.count import estimate_cv_predicted_probabilities
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    r = cell.recipe
    clf = TorchCifarClassifier(r.epochs, r.lr, r.batch_size, r.weight_decay, r.augment, r.width, r.blocks,
                               cell.seed, cell.device)
    labels = cell.noisy.cpu().numpy()
    t0 = time.perf_counter()
    probs = estimate_cv_predicted_probabilities(cell.x.cpu().numpy(), labels, clf, cv_n_folds=cell.folds,
                                                seed=cell.seed)
    flagged = find_label_issues(labels, probs)
    detect_seconds = time.perf_counter() - t0
    det = detection_scores((cell.noisy != cell.clean).cpu().numpy(), get_label_quality_scores(labels, probs), flagged)
    acc, retrain_seconds = retrain_kept(cell, flagged)
    return {"test_acc": acc, "detect_seconds": detect_seconds, "seconds": detect_seconds + retrain_seconds,
            "detect_trainings": cell.folds * (cell.folds - 1) / cell.folds, "trainings": cell.folds + 1,
            "folds": cell.folds, **det}


def package_issues_arm(cell: Cell, vanilla: nn.Module) -> dict[str, Any] | None:
    """Detection (c) and its retrain: the user's one call, ``sap_kernels.find_label_issues(vanilla,
    train_loader)`` (``project`` with its defaults, then the scoring pass; where the plain call keeps a
    memorised model it scores at ``detection_alpha``) -> retrain on the samples not flagged. None when the
    installed package has no ``find_label_issues`` (the arm is skipped)."""
    if not hasattr(sap_kernels, "find_label_issues"):
        return None
    t0 = time.perf_counter()
    issues = sap_kernels.find_label_issues(vanilla, cell.loader(cell.x, cell.noisy), progress=False, seed=cell.seed,
                                           **cell.project_options)
    detect_seconds = time.perf_counter() - t0
    order = torch.as_tensor(issues.positions).cpu().numpy().astype(np.int64)
    flagged = np.zeros(len(cell.noisy), dtype=bool)
    flagged[order] = torch.as_tensor(issues.is_issue).cpu().numpy().astype(bool)
    quality = np.empty(len(cell.noisy))
    quality[order] = torch.as_tensor(issues.label_quality).cpu().double().numpy()
    det = detection_scores((cell.noisy != cell.clean).cpu().numpy(), quality, flagged)
    acc, retrain_seconds = retrain_kept(cell, flagged)
    return {"test_acc": acc, "detect_seconds": detect_seconds, "seconds": detect_seconds + retrain_seconds,
            "detect_trainings": 0, "trainings": 1, "alpha": None if np.isinf(issues.alpha) else float(issues.alpha),
            "rule": issues.rule, "notices": list(issues.notices), **det}


def package_rules_arm(cell: Cell, vanilla: nn.Module, plain: sap_kernels.SAPResult) -> dict[str, Any]:
    """How the flagging rule and the alpha matter: every rule of the package, with test accuracy, at
    each alpha of the default grid (the phases, one decomposition), and at the alpha the plain call's
    ``find_label_issues`` scores with (``detection_alpha``: the plateau pick where the model was kept)."""
    from issue_metrics import every_rule

    from sap_kernels.sap.find_issues import detection_alpha

    t0 = time.perf_counter()
    loader = cell.loader(cell.x, cell.noisy)
    wrong = (cell.noisy != cell.clean).cpu().numpy()
    trusted = sap_kernels.select_trusted(vanilla, loader, progress=False)
    spectra = sap_kernels.collect(vanilla, trusted, progress=False).decompose()
    curve = []
    for a in [math.inf] + [10 ** (k / 2) for k in range(13)]:
        m = sap_kernels.apply(vanilla, spectra, a)
        curve.append({"alpha": a, "test_acc": cell.test_acc(m), "rules": every_rule(m, loader, wrong)})
    return {"seconds": time.perf_counter() - t0, "trainings": 0, "alpha": float(plain.alpha),
            "detection_alpha": float(detection_alpha(plain)), "curve": curve}
