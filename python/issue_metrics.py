"""Scoring a label-issue detector against labels known to be wrong (for the studies in python/)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve, roc_auc_score

from sap_kernels.sap.issues.neighbours import DEFAULT_NEIGHBOURS, neighbour_votes
from sap_kernels.sap.issues.rules import RULES, distribution, flag
from sap_kernels.sap.issues.scoring import score_samples


def detection(quality: np.ndarray, flagged: np.ndarray, wrong: np.ndarray) -> dict[str, float]:
    """AUROC of the ranking and precision / recall / F1 of the flagged set.

    Args:
        quality: float ``[N]`` label-quality score, lower = more likely wrong.
        flagged: bool ``[N]``, the detector's issues.
        wrong: bool ``[N]``, the labels known to be wrong (noisy != clean).
    """
    wrong, flagged = wrong.astype(bool), flagged.astype(bool)
    tp = int((flagged & wrong).sum())
    precision = tp / max(1, int(flagged.sum()))
    recall = tp / max(1, int(wrong.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    p, r, _ = precision_recall_curve(wrong, -quality)
    best = float(np.max(2 * p * r / np.maximum(p + r, 1e-12)))
    return {"auroc": float(roc_auc_score(wrong, -quality)), "precision": precision, "recall": recall, "f1": f1,
            "best_f1": best, "n_flagged": int(flagged.sum()), "n_wrong": int(wrong.sum())}


def every_rule(model: torch.nn.Module, loader: Iterable[Any], wrong: np.ndarray,
               k: int = DEFAULT_NEIGHBOURS) -> dict[str, dict[str, float]]:
    """``detection`` of every rule of ``sap.issues.rules`` on one pass of ``model`` over ``loader``
    (unshuffled, the order of ``wrong``): the neighbours' vote from the head's inputs, the others
    from the probabilities (cleanlab's own functions for confident learning and prune_by_noise_rate)."""
    table = score_samples(model, loader, progress=False, features=True)
    y, probs = table.labels, table.probabilities
    votes = None if table.features is None else neighbour_votes(table.features, y, int(probs.shape[1]), k)
    out = {}
    for rule in RULES:
        if rule == "neighbours" and votes is None:
            continue
        dist = distribution(probs, rule, votes, k)  # type: ignore[arg-type]
        quality = dist.gather(1, y.view(-1, 1)).view(-1).double().numpy()
        out[rule] = detection(quality, flag(y, probs, rule, votes=votes, k=k).numpy(), wrong)  # type: ignore[arg-type]
    return out
