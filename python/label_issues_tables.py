"""Markdown tables of a label-issues study's JSONL rows: mean ± std over seeds."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

METRICS = ("auroc", "precision", "recall", "f1", "best_f1")


def _ms(values: Iterable[float], scale: float = 1.0, digits: int = 3) -> str:
    v = [x * scale for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return "-"
    return f"{np.mean(v):.{digits}f} ± {np.std(v):.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def print_tables(rows: list[dict[str, Any]]) -> None:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["method"] != "sap_alpha":
            groups[(r["noise"], r["method"], r["rule"])].append(r)
    print("| noise | method | rule | seeds | AUROC | precision | recall | F1 | best F1 | seconds | trainings | "
          "test acc after retrain on kept |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (noise, method, rule), g in sorted(groups.items()):
        cells = [_ms(r[m] for r in g) for m in METRICS]
        kept = [r["retrain_kept_acc"] for r in g if "retrain_kept_acc" in r]
        print(f"| {noise} | {method} | {rule} | {len(g)} | " + " | ".join(cells)
              + f" | {_ms((r['seconds'] for r in g), digits=1)} | {g[0]['trainings']} | "
              + (_ms(kept, 100, 1) if kept else "") + " |")
    _alpha_table(rows)


def _alpha_table(rows: list[dict[str, Any]]) -> None:
    curve: dict[tuple[str, float, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["method"] == "sap_alpha":
            curve[(r["noise"], r["alpha"], r["rule"])].append(r)
    if not curve:
        return
    print("\n| noise | alpha | AUROC (probabilities) | AUROC (neighbours) | F1 confident_learning | F1 argmax | "
          "F1 neighbours | test acc |")
    print("|---|---|---|---|---|---|---|---|")
    for noise, alpha in sorted({(n, a) for n, a, _ in curve}):
        cl, am = curve[(noise, alpha, "confident_learning")], curve[(noise, alpha, "argmax")]
        nb = curve[(noise, alpha, "neighbours")]
        print(f"| {noise} | {alpha:.4g} | {_ms(r['auroc'] for r in cl)} | {_ms(r['auroc'] for r in nb)} | "
              f"{_ms(r['f1'] for r in cl)} | {_ms(r['f1'] for r in am)} | {_ms(r['f1'] for r in nb)} | "
              f"{_ms((r['test_acc'] for r in cl), 100, 1)} |")
