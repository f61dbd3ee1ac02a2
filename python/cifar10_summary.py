"""``cifar10.py --summarize``: markdown tables, mean ± sample std over seeds, from the JSONL records."""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

ACC_ARMS = ("vanilla", "sap_plain", "sap_val", "finetune", "cleanlab_cv", "package_issues", "retrain_clean")
DETECT_ARMS = {"cleanlab_insample": "(a) vanilla in-sample + cleanlab", "cleanlab_cv": "(b) K-fold CV + cleanlab",
               "package_issues": "(c) sap_kernels label_issues"}


def _ms(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    vals = [v * scale for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "-"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.{digits}f} ± {sd:.{digits}f}"


def _gap(acc: float, vanilla: float, clean: float) -> float:
    return (acc - vanilla) / (clean - vanilla) if clean > vanilla else math.nan


def _accuracy_table(rows: dict[tuple[int, str, str], dict[str, Any]], sets: list[str], seeds: list[int]) -> list[str]:
    out = ["| label set | arm | test acc % | gap closed % | seconds | trainings | seeds |",
           "|---|---|---|---|---|---|---|"]
    for ls in sets:
        for arm in ACC_ARMS:
            got = [(s, rows[(s, "clean" if arm == "retrain_clean" else ls, arm)]) for s in seeds
                   if (s, "clean" if arm == "retrain_clean" else ls, arm) in rows]
            if not got:
                continue
            gaps = [_gap(r["test_acc"], rows[(s, ls, "vanilla")]["test_acc"],
                         rows[(s, "clean", "retrain_clean")]["test_acc"])
                    for s, r in got if (s, ls, "vanilla") in rows and (s, "clean", "retrain_clean") in rows]
            out.append(f"| {ls} | {arm} | {_ms([r['test_acc'] for _, r in got], 100)} | {_ms(gaps, 100, 0)} | "
                       f"{_ms([r['seconds'] for _, r in got])} | {_ms([r['trainings'] for _, r in got], 1, 2)} | "
                       f"{len(got)} |")
    return out


def _context_table(rows: dict[tuple[int, str, str], dict[str, Any]], sets: list[str], seeds: list[int]) -> list[str]:
    out = ["| label set | noise % | vanilla train acc on noisy labels % | one epoch s | plain call s | "
           "plain call / epoch | val call / epoch | alphas (plain) |", "|---|---|---|---|---|---|---|---|"]
    for ls in sets:
        v = [rows[(s, ls, "vanilla")] for s in seeds if (s, ls, "vanilla") in rows]
        p = [(rows[(s, ls, "sap_plain")], rows[(s, ls, "vanilla")]) for s in seeds if (s, ls, "sap_plain") in rows
             and (s, ls, "vanilla") in rows]
        q = [(rows[(s, ls, "sap_val")], rows[(s, ls, "vanilla")]) for s in seeds if (s, ls, "sap_val") in rows
             and (s, ls, "vanilla") in rows]
        if not v:
            continue
        alphas = ", ".join(f"{a['alpha']:g}" for a, _ in p)
        out.append(f"| {ls} | {_ms([r['noise_rate'] for r in v], 100)} | "
                   f"{_ms([r['train_acc_noisy'] for r in v], 100)} | "
                   f"{_ms([r['epoch_seconds'] for r in v], 1, 2)} | {_ms([a['seconds'] for a, _ in p])} | "
                   f"{_ms([a['seconds'] / b['epoch_seconds'] for a, b in p], 1, 2)} | "
                   f"{_ms([a['seconds'] / b['epoch_seconds'] for a, b in q], 1, 2)} | {alphas} |")
    return out


def _detection_table(rows: dict[tuple[int, str, str], dict[str, Any]], sets: list[str], seeds: list[int]) -> list[str]:
    out = ["| label set | method | AUROC | precision | recall | F1 | flagged | seconds | trainings |",
           "|---|---|---|---|---|---|---|---|---|"]
    for ls in sets:
        for arm, label in DETECT_ARMS.items():
            got = [rows[(s, ls, arm)] for s in seeds if (s, ls, arm) in rows]
            if not got:
                continue
            secs = [r.get("detect_seconds", r["seconds"]) for r in got]
            trains = [r.get("detect_trainings", r["trainings"]) for r in got]
            out.append(f"| {ls} | {label} | {_ms([r['auroc'] for r in got], 1, 3)} | "
                       f"{_ms([r['precision'] for r in got], 1, 3)} | {_ms([r['recall'] for r in got], 1, 3)} | "
                       f"{_ms([r['f1'] for r in got], 1, 3)} | {_ms([r['n_flagged'] for r in got], 1, 0)} | "
                       f"{_ms(secs)} | {_ms(trains, 1, 2)} |")
    return out


def _at(curve: list[dict[str, Any]], alpha: float) -> dict[str, Any] | None:
    return next((c for c in curve if math.isclose(c["alpha"], alpha, rel_tol=1e-9) or c["alpha"] == alpha), None)


def _rules_table(rows: dict[tuple[int, str, str], dict[str, Any]], sets: list[str], seeds: list[int]) -> list[str]:
    """Every flagging rule at the alpha the plain call's find_label_issues scores with, and on the
    unchanged model (``package_rules`` records)."""
    out = ["| label set | model | rule | AUROC | F1 | best F1 | flagged | seeds |", "|---|---|---|---|---|---|---|---|"]
    for ls in sets:
        got = [rows[(s, ls, "package_rules")] for s in seeds if (s, ls, "package_rules") in rows]
        for label, pick in (("corrected (detection alpha)", lambda r: r["detection_alpha"]),
                            ("unchanged", lambda r: math.inf)):
            points = [p for p in (_at(r["curve"], pick(r)) for r in got) if p is not None]
            for rule in (points[0]["rules"] if points else {}):
                det = [p["rules"][rule] for p in points if rule in p["rules"]]
                out.append(f"| {ls} | {label} | {rule} | {_ms([d['auroc'] for d in det], 1, 3)} | "
                           f"{_ms([d['f1'] for d in det], 1, 3)} | {_ms([d['best_f1'] for d in det], 1, 3)} | "
                           f"{_ms([d['n_flagged'] for d in det], 1, 0)} | {len(det)} |")
    return out


def summarize(path: Path) -> str:
    """The three tables (accuracy and gap closed; fit, noise and call cost; detection) per config."""
    if not path.is_file():
        raise FileNotFoundError(f"no results file: {path}")
    by_config: dict[str, dict[tuple[int, str, str], dict[str, Any]]] = defaultdict(dict)
    scale: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            by_config[r["config_id"]][(r["seed"], r["label_set"], r["arm"])] = r
            scale[r["config_id"]] = f"{r['scale']} {json.dumps(r['config'], sort_keys=True)}"
    parts = []
    for cid, rows in by_config.items():
        seeds = sorted({k[0] for k in rows})
        sets = sorted({k[1] for k in rows if k[1] != "clean"})
        parts += [f"## config {cid}: {scale[cid]}", f"seeds {seeds}", ""]
        parts += _accuracy_table(rows, sets, seeds) + [""] + _context_table(rows, sets, seeds) + [""]
        parts += _detection_table(rows, sets, seeds) + [""] + _rules_table(rows, sets, seeds) + [""]
    return "\n".join(parts)
