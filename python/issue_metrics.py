"""Scoring a label-issue detector against labels known to be wrong (for the studies in python/)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score


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
