"""Phase 6, the decision: which given labels to call wrong, from out-of-sample-like evidence.

Every rule ends in a distribution over the classes per sample; a sample's label quality is the
given label's share of it (lower: more likely wrong), and samples are ranked by it.

- ``"neighbours"`` (default): the corrected model's ``k`` nearest neighbours vote with their given
  labels, the model's probabilities one more vote (``sap.issues.neighbours``); flagged when another
  class has more of that vote than the given label.
- ``"argmax"``: the corrected model's probabilities alone; flagged when the predicted class differs
  from the given label.
- ``"confident_learning"``: confident learning's per-class thresholds (Northcutt et al., 2021) on
  the model's probabilities: ``t_k`` is the mean probability of class ``k`` over the samples
  labelled ``k``; a sample is confidently of class ``k`` when ``p_k >= t_k``, of the likeliest class
  when several pass; it is flagged when that class is not its given label (the off-diagonal of the
  confident joint), unless the given label is (within ``THRESHOLD_SLACK``) the likeliest class
  anyway. With cleanlab installed its own ``cleanlab.filter.find_label_issues(filter_by=
  "confident_learning")`` decides; the built-in copy gives the same set (tests check it).
- ``"prune_by_noise_rate"``: cleanlab's default filter on the model's probabilities (needs cleanlab).

``DEFAULT_RULE`` is the measured choice (python/README.md, "Which labels are wrong"). On the
corrected model's probabilities alone argmax disagreement had the best F1 (digits, 25 % symmetric,
seed 0: 0.934 against 0.883 for prune_by_noise_rate and 0.864 for confident learning; the
corrected model stays confident, so confident learning's thresholds, a class's mean
self-confidence near 1, flag too few); the neighbours' vote beat it where the model generalises
weakly (CIFAR-10 CPU cell, 25 % symmetric, seed 0: F1 0.500 against 0.425 at the same alpha) and
where it generalises well (digits 25 %, seed 1: 0.971 against 0.948).
"""
from __future__ import annotations

import importlib.util
from typing import Literal, get_args

import numpy as np
import torch

from .neighbours import DEFAULT_NEIGHBOURS, combine, flag_against

Rule = Literal["neighbours", "argmax", "confident_learning", "prune_by_noise_rate"]
RULES: tuple[str, ...] = get_args(Rule)
DEFAULT_RULE: Rule = "neighbours"
# cleanlab counts a probability within this of a threshold as reaching it.
THRESHOLD_SLACK = 1e-6
# cleanlab clips its thresholds from below by this (CONFIDENT_THRESHOLDS_LOWER_BOUND).
THRESHOLD_FLOOR = 2 * THRESHOLD_SLACK
# A class no sample is labelled with gets a threshold no probability reaches, as cleanlab does.
ABSENT_THRESHOLD = 2.0


def has_cleanlab() -> bool:
    return importlib.util.find_spec("cleanlab") is not None


def check_rule(rule: object) -> Rule:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}, got {rule!r}")
    if rule == "prune_by_noise_rate" and not has_cleanlab():
        raise ImportError("rule='prune_by_noise_rate' needs cleanlab: pip install 'sap_kernels[issues]'")
    return rule  # type: ignore[return-value]


def self_confidence(labels: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``[N]`` the probability of each given label (``labels`` int64 ``[N]``, ``probs`` ``[N, C]``)."""
    return probs.gather(1, labels.view(-1, 1)).view(-1)


def class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """float64 ``[C]``: mean ``probs[:, k]`` over the samples labelled ``k`` (confident learning)."""
    c = probs.shape[1]
    counts = np.bincount(labels, minlength=c)
    sums = np.zeros(c, dtype=np.float64)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels].astype(np.float64))
    t = np.where(counts > 0, sums / np.maximum(counts, 1), ABSENT_THRESHOLD)
    out: np.ndarray = np.clip(t, THRESHOLD_FLOOR, None)
    return out


def confident_learning_builtin(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """bool ``[N]``: the off-diagonal of the confident joint (see the module docstring)."""
    confident = probs >= class_thresholds(labels, probs) - THRESHOLD_SLACK
    n_conf = confident.sum(1)
    guess = np.where(n_conf > 1, probs.argmax(1), confident.argmax(1))
    given_wins = _argmax_with_given_bonus(labels, probs) == labels
    out: np.ndarray = (n_conf > 0) & (guess != labels) & ~given_wins
    return out


def _argmax_with_given_bonus(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The likeliest class when the given label's probability is raised by ``THRESHOLD_SLACK``
    (cleanlab never flags a sample whose given label is, to that slack, the prediction)."""
    raised = probs.copy()
    raised[np.arange(len(labels)), labels] += THRESHOLD_SLACK
    out: np.ndarray = raised.argmax(1)
    return out


def _cleanlab(labels: np.ndarray, probs: np.ndarray, rule: str) -> np.ndarray:
    from cleanlab.filter import find_label_issues  # optional extra: imported only when asked for

    mask: np.ndarray = find_label_issues(labels, probs, filter_by=rule)
    return mask.astype(bool)


def distribution(probs: torch.Tensor, rule: Rule, votes: torch.Tensor | None = None,
                 k: int = DEFAULT_NEIGHBOURS) -> torch.Tensor:
    """float ``[N, C]``: what ``rule`` judges labels by: the neighbours' vote with the model's
    probabilities (``"neighbours"``, ``votes`` ``[N, C]`` needed), else the probabilities."""
    if rule != "neighbours":
        return probs
    if votes is None:
        raise ValueError("rule='neighbours' needs the neighbours' votes (sap.issues.neighbours.neighbour_votes)")
    return combine(votes, probs, k)


def flag(labels: torch.Tensor, probs: torch.Tensor, rule: Rule = DEFAULT_RULE,
         use_cleanlab: bool | None = None, votes: torch.Tensor | None = None,
         k: int = DEFAULT_NEIGHBOURS) -> torch.Tensor:
    """bool ``[N]``: the samples ``rule`` calls mislabelled.

    Args:
        labels: int64 ``[N]`` given labels in ``[0, C)``.
        probs: float ``[N, C]`` predicted probabilities, rows summing to 1.
        rule: see the module docstring.
        use_cleanlab: None: cleanlab's own functions when it is installed; False: the built-in.
        votes: float ``[N, C]`` the neighbours' votes (``rule="neighbours"`` only), from ``k`` neighbours.
    """
    rule = check_rule(rule)
    if rule == "neighbours":
        return flag_against(labels, distribution(probs, rule, votes, k))
    if rule == "argmax":
        return probs.argmax(1) != labels
    y, p = labels.numpy(), probs.double().numpy()
    via_cleanlab = has_cleanlab() if use_cleanlab is None else use_cleanlab
    if rule == "prune_by_noise_rate" or via_cleanlab:
        return torch.from_numpy(_cleanlab(y, p, rule))
    return torch.from_numpy(confident_learning_builtin(y, p))
