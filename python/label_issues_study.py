#!/usr/bin/env python3
"""Which labels are wrong, on scikit-learn's digits: the corrected model against cleanlab's workflow.

For every noise rate and seed: corrupt the training labels (symmetric), train the digits CNN until
it fits them (vanilla), then find the flipped labels three ways:

- ``vanilla``: the vanilla model's in-sample probabilities (1 training);
- ``cv5``: 5-fold cross-validated probabilities, cleanlab's recommended workflow (5 more trainings);
- ``sap``: ``sap_kernels.project`` then ``res.label_issues`` (one forward pass more), plain call
  (no validation data) and with a noisy validation split (``sap_val``).

Each probability table is flagged by every rule of ``sap_kernels.sap.issues.rules`` (cleanlab's own
``find_label_issues`` for confident learning and prune_by_noise_rate) and scored against the flipped
labels (AUROC of the self-confidence ranking; precision / recall / F1 of the flagged set). The
package's probabilities are also taken at every alpha of the grid (``--alpha-curve``), to see whether
the alpha chosen for accuracy is the right one for detection. Downstream: the samples flagged by the
default rule are removed and the model retrained (``cv5``, ``sap``), test accuracy reported.

Rows go to a JSONL file as each method finishes; a rerun skips what is there.

    python python/label_issues_study.py --noise-rate 0.25 0.4 --seeds 0 1 2 --out li_digits.jsonl
    python python/label_issues_study.py --out li_digits.jsonl --summarize
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from issue_metrics import detection, every_rule  # noqa: E402

import sap_kernels  # noqa: E402
from sap_kernels.demo.data import tensor_loader  # noqa: E402
from sap_kernels.demo.experiment import ExperimentConfig, NoisyDigits, make_noisy_digits  # noqa: E402
from sap_kernels.demo.models import make_model  # noqa: E402
from sap_kernels.demo.train import accuracy, train  # noqa: E402
from sap_kernels.sap.issues.rules import DEFAULT_RULE, RULES, flag, self_confidence  # noqa: E402
from sap_kernels.sap.issues.scoring import score_samples  # noqa: E402


def rule_rows(labels: torch.Tensor, probs: torch.Tensor, wrong: np.ndarray,
              base: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per flagging rule that needs only a probability table (cross-validated ones: no one
    model's features to take neighbours in)."""
    quality = self_confidence(labels, probs).numpy()
    return [{**base, "rule": r, **detection(quality, flag(labels, probs, r).numpy(), wrong)} for r in RULES
            if r != "neighbours"]


def model_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, wrong: np.ndarray,
               base: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per flagging rule (the neighbours' vote included) on one model's pass over ``(x, y)``."""
    return [{**base, "rule": r, **det} for r, det in every_rule(model, tensor_loader(x, y), wrong).items()]


def probs_of(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return score_samples(model, tensor_loader(x, y), progress=False).probabilities


def cross_validated(data: NoisyDigits, c: ExperimentConfig, folds: int) -> torch.Tensor:
    """``[N, C]`` out-of-fold probabilities: each fold scored by a model trained on the others."""
    x, y = data.splits.x_train, data.train_noise.labels
    out = torch.zeros(len(y), 10)
    split = StratifiedKFold(folds, shuffle=True, random_state=c.seed).split(np.zeros(len(y)), y.numpy())
    for k, (tr, te) in enumerate(split):
        m = train(make_model(c.seed + 100 * (k + 1), 10, c.width), x[tr], y[tr], c.train, c.seed + k)
        out[te] = probs_of(m, x[te], y[te])
    return out


def retrained_accuracy(data: NoisyDigits, c: ExperimentConfig, keep: np.ndarray) -> float:
    s = data.splits
    idx = torch.from_numpy(np.flatnonzero(keep))
    m = train(make_model(c.seed, 10, c.width), s.x_train[idx], data.train_noise.labels[idx], c.train, c.seed)
    return accuracy(m, s.x_test, s.y_test)


def alpha_curve(vanilla: torch.nn.Module, data: NoisyDigits, wrong: np.ndarray, base: dict[str, Any],
                alphas: Sequence[float]) -> list[dict[str, Any]]:
    """Detection and test accuracy of the corrected model at every alpha (the phases, one sweep)."""
    s, y = data.splits, data.train_noise.labels
    loader = tensor_loader(s.x_train, y)
    spectra = sap_kernels.collect(vanilla, sap_kernels.select_trusted(vanilla, loader, progress=False),
                                  progress=False).decompose()
    rows = []
    for a in alphas:
        m = sap_kernels.apply(vanilla, spectra, a)
        for row in model_rows(m, s.x_train, y, wrong, {**base, "method": "sap_alpha", "alpha": a}):
            rows.append({**row, "test_acc": accuracy(m, s.x_test, s.y_test)})
    return rows


def run_cell(rate: float, seed: int, done: set[tuple[Any, ...]], emit: Callable[[list[dict[str, Any]]], None],
             curve: bool, folds: int) -> None:
    c = ExperimentConfig(noise_rate=rate, seed=seed)
    data = make_noisy_digits(c)
    s, y = data.splits, data.train_noise.labels
    wrong = data.train_noise.flipped.numpy()
    base = {"data": "digits", "noise": f"sym{round(rate * 100)}", "seed": seed}
    if all((base["noise"], seed, m) in done for m in ("vanilla", "cv5", "sap", "sap_val")) and not curve:
        return
    t0 = time.perf_counter()
    vanilla = train(make_model(seed, 10, c.width), s.x_train, y, c.train, seed)
    t_train = time.perf_counter() - t0
    fit = accuracy(vanilla, s.x_train, y)
    common = {**base, "train_fit": fit, "vanilla_test": accuracy(vanilla, s.x_test, s.y_test), "train_s": t_train}
    if (base["noise"], seed, "vanilla") not in done:
        emit(model_rows(vanilla, s.x_train, y, wrong, {**common, "method": "vanilla", "seconds": 0.0,
                                                       "trainings": 1}))
    for method, val in (("sap", None), ("sap_val", tensor_loader(s.x_val, data.val_noise.labels))):
        if (base["noise"], seed, method) in done:
            continue
        t0 = time.perf_counter()  # the user's one call
        issues = sap_kernels.find_label_issues(vanilla, tensor_loader(s.x_train, y), val_loader=val, progress=False)
        sec = time.perf_counter() - t0
        scorer = vanilla if math.isinf(issues.alpha) else sap_kernels.project(
            vanilla, tensor_loader(s.x_train, y), alpha=issues.alpha, progress=False).model
        rows = model_rows(scorer, s.x_train, y, wrong, {**common, "method": method, "seconds": sec, "trainings": 1,
                                                        "alpha": issues.alpha,
                                                        "test_acc": accuracy(scorer, s.x_test, s.y_test)})
        if method == "sap":
            acc = retrained_accuracy(data, c, ~issues.is_issue.numpy())
            rows = [{**r, "retrain_kept_acc": acc} if r["rule"] == DEFAULT_RULE else r for r in rows]
        emit(rows)
    if (base["noise"], seed, "cv5") not in done:
        t0 = time.perf_counter()
        oof = cross_validated(data, c, folds)
        sec = time.perf_counter() - t0
        rows = rule_rows(y, oof, wrong, {**common, "method": "cv5", "seconds": sec, "trainings": 1 + folds})
        keep = ~flag(y, oof, "prune_by_noise_rate").numpy()  # cleanlab's default filter, as its users run it
        acc = retrained_accuracy(data, c, keep)
        emit([{**r, "retrain_kept_acc": acc} if r["rule"] == "prune_by_noise_rate" else r for r in rows])
    if curve and (base["noise"], seed, "sap_alpha") not in done:
        emit(alpha_curve(vanilla, data, wrong, common, [10 ** (k / 2) for k in range(13)]))


def read_rows(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise-rate", type=float, nargs="+", default=[0.25, 0.4])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--alpha-curve", action="store_true", help="also score every alpha of the grid")
    p.add_argument("--out", default="label_issues_digits.jsonl")
    p.add_argument("--summarize", action="store_true", help="print the tables of --out and exit")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.summarize:
        from label_issues_tables import print_tables

        print_tables(read_rows(args.out))
        return 0
    torch.set_num_threads(args.threads)
    done = {(r["noise"], r["seed"], r["method"]) for r in read_rows(args.out)}

    def emit(rows: list[dict[str, Any]]) -> None:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"{rows[0]['noise']} seed {rows[0]['seed']} {rows[0]['method']}: " + ", ".join(
            f"{r['rule']} auroc {r['auroc']:.3f} f1 {r['f1']:.3f}" for r in rows[:3]), flush=True)

    for rate in args.noise_rate:
        for seed in args.seeds:
            run_cell(rate, seed, done, emit, args.alpha_curve, args.folds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
