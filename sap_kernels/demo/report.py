"""Plain-text tables of experiment results (one seed, or mean ± std over seeds)."""
from __future__ import annotations

import math
import statistics
from typing import Sequence

from .experiment import ExperimentConfig, ExperimentResult, IssuesFound, gap_closed

METHODS: tuple[tuple[str, str], ...] = (
    ("vanilla", "vanilla (trained on noisy labels)"),
    ("sap_default", "SAP, no validation data"),
    ("sap", "SAP, alpha on noisy validation"),
    ("finetune", "finetune-on-trusted"),
    ("retrain", "retrain-on-clean (upper bound)"),
)


def _alpha_text(alpha: float) -> str:
    return "inf (unchanged)" if math.isinf(alpha) else f"{alpha:.4g}"


def _trusted_text(c: ExperimentConfig) -> str:
    n = "default" if c.n_trusted is None else str(c.n_trusted)
    balanced = {None: " (class balance: default)", True: " class-balanced", False: ""}[c.class_balanced]
    return f"n_trusted {n}{balanced}"


def _gap_text(closed: float) -> str:
    return "n/a (no gap)" if math.isnan(closed) else f"{100 * closed:.0f}%"


def format_issues(found: IssuesFound) -> str:
    """What the corrected model flagged among the training labels, against the known flips."""
    share = 100 * found.n_flagged / max(1, found.n_samples)
    pct = "n/a" if math.isnan(found.precision) else f"{100 * found.precision:.1f}%"
    rec = "n/a" if math.isnan(found.recall) else f"{100 * found.recall:.1f}%"
    lines = [f"label issues (res.label_issues: one forward pass, then the neighbours' vote): {found.n_flagged} of "
             f"{found.n_samples} training labels flagged ({share:.1f}%); {found.n_flipped} were flipped",
             f"  precision {pct} (flagged that were flipped), recall {rec} (flipped that were flagged)"]
    if found.top_pairs:
        lines.append("  most flagged given -> predicted: " + ", ".join(f"{g} -> {p} ({n})" for g, p, n in
                                                                         found.top_pairs))
    return "\n".join(lines)


def format_single(result: ExperimentResult) -> str:
    """Test accuracy of each method for one seed, and the share of the gap each SAP call closed."""
    c = result.config
    lines = [
        f"digits, {c.noise_type} noise {c.noise_rate:.0%} (actual {result.noise_rate:.1%} of "
        f"training labels), seed {c.seed}, {_trusted_text(c)}",
        "",
        f"{'method':<52}{'test accuracy':>14}",
    ]
    alphas = {"sap": result.alpha, "sap_default": result.alpha_default}
    for key, name in METHODS:
        if key not in result.accuracies:
            continue
        label = f"{name} (alpha {_alpha_text(alphas[key])})" if key in alphas else name
        lines.append(f"{label:<52}{100 * result.accuracies[key]:>13.1f}%")
    lines.append("")
    for key, name in (("sap_default", "SAP without validation data"), ("sap", "SAP with noisy validation")):
        if key in result.accuracies:
            lines.append(f"{name} closed {_gap_text(gap_closed(result.accuracies, key))} of the vanilla -> "
                         "retrain-on-clean gap")
    if result.label_issues is not None:
        lines += ["", format_issues(result.label_issues)]
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = list(values)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def format_summary(results: Sequence[ExperimentResult]) -> str:
    """One row per method: test accuracy mean ± std (in %) over the given seeds (the ± omitted
    for a single seed). All results should share every setting but the seed."""
    if not results:
        raise ValueError("no results to summarise")
    c = results[0].config
    several = len(results) > 1
    seeds = ", ".join(str(r.config.seed) for r in results)
    rates = mean_std([r.noise_rate for r in results])[0]
    lines = [
        f"digits, {c.noise_type} noise {c.noise_rate:.0%} (actual {rates:.1%}), seeds [{seeds}], {_trusted_text(c)}",
        f"{'method':<34}{'test accuracy' + (' (mean ± std)' if several else ''):>28}",
    ]
    for key, name in METHODS:
        if not all(key in r.accuracies for r in results):
            continue
        m, s = mean_std([100 * r.accuracies[key] for r in results])
        lines.append(f"{name:<34}{m:>20.2f}" + (f" ± {s:.2f}" if several else ""))
    lines.append("alpha, noisy validation: " + ", ".join(_alpha_text(r.alpha) for r in results))
    lines.append("alpha, no validation data: " + ", ".join(_alpha_text(r.alpha_default) for r in results))
    for key, name in (("sap_default", "SAP without validation data"), ("sap", "SAP with noisy validation")):
        keys = ("vanilla", key, "retrain")
        mean_acc = {k: mean_std([r.accuracies[k] for r in results])[0] for k in keys}
        per_seed = mean_std([gap_closed(r.accuracies, key) for r in results])
        spread = f" (per seed {100 * per_seed[0]:.0f} ± {100 * per_seed[1]:.0f}%)" if several else ""
        lines.append(f"gap closed by {name}: {_gap_text(gap_closed(mean_acc, key))} of the mean gap{spread}")
    return "\n".join(lines)
