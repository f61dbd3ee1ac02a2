#!/usr/bin/env python3
"""The CIFAR-10 CPU cell in one figure, from ``cifar10.py``'s JSONL: per label set, test accuracy
against alpha (mean over seeds, the vanilla model and the clean retrain as lines) and the F1 of the
flagged labels against alpha for the neighbours' vote and for the probabilities alone, with
cross-validated cleanlab's F1 as a line.

    python python/cifar10_figure.py --out cifar10_cpu.jsonl --png docs/cifar10_cpu.png
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _records(path: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            by[(r["label_set"], r["arm"])].append(r)
    return by


def _curve(rules: list[dict[str, Any]], value: Any) -> tuple[list[float], list[float]]:
    """Mean over seeds of ``value(point)`` at every finite alpha of the recorded curves."""
    points: dict[float, list[float]] = defaultdict(list)
    for r in rules:
        for c in r["curve"]:
            if not math.isinf(c["alpha"]):
                points[c["alpha"]].append(value(c))
    alphas = sorted(points)
    return alphas, [statistics.mean(points[a]) for a in alphas]


def draw(path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = _records(path)
    sets = sorted({ls for ls, arm in by if arm == "package_rules"})
    if not sets:
        raise SystemExit(f"{path}: no package_rules records to draw")
    fig, axes = plt.subplots(2, len(sets), figsize=(3.6 * len(sets), 6), squeeze=False, sharex=True)
    for j, ls in enumerate(sets):
        rules = by[(ls, "package_rules")]
        top, bottom = axes[0][j], axes[1][j]
        a, acc = _curve(rules, lambda c: 100 * c["test_acc"])
        top.semilogx(a, acc, "o-", color="C0", label="corrected model")
        for arm, style, name in (("vanilla", "--", "vanilla"), ("retrain_clean", ":", "clean retrain")):
            got = by[("clean" if arm == "retrain_clean" else ls, arm)]
            if got:
                top.axhline(100 * statistics.mean(r["test_acc"] for r in got), ls=style, color="k", label=name)
        top.set_title(f"{ls} ({len(rules)} seeds)")
        top.set_ylabel("test accuracy, %")
        for rule, color in (("neighbours", "C2"), ("argmax", "C1")):
            a, f1 = _curve(rules, lambda c, rule=rule: c["rules"].get(rule, {}).get("f1", math.nan))
            bottom.semilogx(a, f1, "o-", color=color, label=f"{rule} F1")
        cv = by[(ls, "cleanlab_cv")]
        if cv:
            bottom.axhline(statistics.mean(r["f1"] for r in cv), ls="--", color="k", label="K-fold cleanlab F1")
        bottom.set_xlabel("alpha")
        bottom.set_ylabel("F1 of the flagged labels")
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="cifar10.py's JSONL")
    p.add_argument("--png", type=Path, required=True)
    args = p.parse_args(argv)
    draw(args.out, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
