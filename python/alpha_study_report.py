#!/usr/bin/env python3
"""Compare ways of choosing alpha on the curves ``alpha_study.py`` recorded: a markdown table of
the share of the vanilla -> clean-retrain gap each rule closes (of the seed means), per setting.

Rules: ``oracle`` (the best test alpha: an upper bound no rule can see), ``val`` (the package's
pick on the noisy validation split, ``best_alpha``), ``plateau`` (the package's pick on memorised
training data, ``plateau_alpha`` on the training-label agreement), both over the whole grid and
as ``val c2f`` / ``plateau c2f`` replaying the default coarse-to-fine search (``search_and_pick``)
on the same recorded scores, ``plain c2f`` that search with the plain call's guards (``memorised="auto"``:
a model kept where the curve shows no plateau), ``fixed`` alphas, and
``eta*`` (the largest alpha whose training agreement is at most 1 - the true noise rate: a rule
that would need the noise rate). ``default``/``val_loader`` are what ``project`` itself chose.

    python python/alpha_study_report.py study.json
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from typing import Callable, Sequence

from sap_kernels.sap.alpha.choice import search_and_pick
from sap_kernels.sap.alpha.rules import best_alpha, plateau_alpha

Rule = Callable[[dict], float]


def _scores(run: dict, key: str) -> dict[float, float]:
    return {row["alpha"]: row[key] for row in run["curve"]}


def _test_at(run: dict, alpha: float) -> float:
    finite = [r for r in run["curve"] if not math.isinf(r["alpha"])]
    if math.isinf(alpha):
        return run["curve"][0]["test"]
    return min(finite, key=lambda r: abs(math.log10(r["alpha"]) - math.log10(alpha)))["test"]


def _searched(run: dict, key: str, memorised: bool | str) -> float:
    """``choose_alpha``'s coarse-to-fine pick, replayed on the recorded scores (``key``)."""
    recorded = _scores(run, key)

    def score(alphas: Sequence[float], unchanged: bool) -> dict[float, float]:
        out = {a: recorded[a] for a in alphas}
        return {**out, math.inf: recorded[math.inf]} if unchanged else out

    grid = sorted(a for a in recorded if not math.isinf(a))
    return search_and_pick(grid, score, True, memorised, 1.0 / run["classes"]).alpha


def _eta(run: dict) -> float:
    ok = [r["alpha"] for r in run["curve"] if not math.isinf(r["alpha"]) and r["train_noisy"] <= 1 - run["actual_rate"]]
    return max(ok) if ok else math.inf


RULES: dict[str, Rule] = {
    "oracle": lambda run: max(r["test"] for r in run["curve"]),
    "val": lambda run: _test_at(run, best_alpha(_scores(run, "val_noisy"))),
    "plateau": lambda run: _test_at(run, plateau_alpha(_scores(run, "train_noisy"), 1.0 / run["classes"])),
    "val c2f": lambda run: _test_at(run, _searched(run, "val_noisy", False)),
    "plateau c2f": lambda run: _test_at(run, _searched(run, "train_noisy", True)),
    "plain c2f": lambda run: _test_at(run, _searched(run, "train_noisy", "auto")),
    "fixed 100": lambda run: _test_at(run, 100.0),
    "fixed 1000": lambda run: _test_at(run, 1000.0),
    "fixed 1e4": lambda run: _test_at(run, 1e4),
    "eta*": lambda run: _test_at(run, _eta(run)),
    "project default": lambda run: _test_at(run, run["package_alpha"]["default"]),
    "project val_loader": lambda run: _test_at(run, run["package_alpha"]["val_loader"]),
}


def gap(vanilla: float, value: float, retrain: float) -> float:
    return (value - vanilla) / (retrain - vanilla) if retrain > vanilla else math.nan


def table(runs: Sequence[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["noise"], r["rate"]), []).append(r)
    names = list(RULES)
    lines = ["| data set | noise | seeds | vanilla | retrain | " + " | ".join(names) + " |",
             "|---" * (5 + len(names)) + "|"]
    per_rule: dict[str, list[float]] = {n: [] for n in names}
    for (ds, noise, rate), rs in sorted(groups.items()):
        v = statistics.fmean(r["curve"][0]["test"] for r in rs)
        t = statistics.fmean(r["retrain"] for r in rs)
        cells = []
        for n in names:
            g = gap(v, statistics.fmean(RULES[n](r) for r in rs), t)
            per_rule[n].append(g)
            cells.append(f"{100 * g:.0f}")
        lines.append(f"| {ds} | {noise} {rate:.0%} | {len(rs)} | {100 * v:.1f} | {100 * t:.1f} | "
                     + " | ".join(cells) + " |")
    for label, fn in (("mean", statistics.fmean), ("worst", min)):
        lines.append(f"| **{label}** | | | | | " + " | ".join(f"{100 * fn(per_rule[n]):.0f}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", nargs="+", help="files written by alpha_study.py")
    args = p.parse_args(argv)
    runs = [r for path in args.json for r in json.load(open(path))]
    print("Share of the vanilla -> clean-retrain gap closed, % (of the seed means of test accuracy):\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
