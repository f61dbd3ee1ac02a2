"""Plain-text tables of experiment results (one seed, or mean ± std over seeds)."""
from __future__ import annotations

import math
import statistics
from typing import Sequence

from .experiment import ExperimentResult, gap_closed

METHODS: tuple[tuple[str, str], ...] = (
    ("vanilla", "vanilla (trained on noisy labels)"),
    ("sap", "SAP"),
    ("finetune", "finetune-on-trusted"),
    ("retrain", "retrain-on-clean (upper bound)"),
)


def _alpha_text(alpha: float) -> str:
    return "inf (unchanged)" if math.isinf(alpha) else f"{alpha:.4g}"


def format_single(result: ExperimentResult) -> str:
    """Test accuracy of each method for one seed, and the share of the gap SAP closed."""
    c = result.config
    lines = [
        f"digits, {c.noise_type} noise {c.noise_rate:.0%} (actual {result.noise_rate:.1%} of "
        f"training labels), seed {c.seed}, n_trusted {c.n_trusted}"
        + (" (class-balanced)" if c.class_balanced else ""),
        "",
        f"{'method':<36}{'test accuracy':>14}",
    ]
    for key, name in METHODS:
        if key not in result.accuracies:
            continue
        label = f"{name} (alpha {_alpha_text(result.alpha)})" if key == "sap" else name
        lines.append(f"{label:<36}{100 * result.accuracies[key]:>13.1f}%")
    closed = result.gap_closed
    lines.append("")
    lines.append(
        "SAP closed "
        + ("n/a (no gap)" if math.isnan(closed) else f"{100 * closed:.0f}%")
        + " of the vanilla -> retrain-on-clean gap"
    )
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = list(values)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def format_summary(results: Sequence[ExperimentResult]) -> str:
    """One row per method: test accuracy mean ± std (in %) over the given seeds.

    All results should share every setting but the seed.
    """
    if not results:
        raise ValueError("no results to summarise")
    c = results[0].config
    seeds = ", ".join(str(r.config.seed) for r in results)
    rates = mean_std([r.noise_rate for r in results])[0]
    lines = [
        f"digits, {c.noise_type} noise {c.noise_rate:.0%} (actual {rates:.1%}), seeds [{seeds}], "
        f"n_trusted {c.n_trusted}" + (" class-balanced" if c.class_balanced else ""),
        f"{'method':<34}{'test accuracy (mean ± std)':>28}",
    ]
    for key, name in METHODS:
        if not all(key in r.accuracies for r in results):
            continue
        m, s = mean_std([100 * r.accuracies[key] for r in results])
        lines.append(f"{name:<34}{m:>20.2f} ± {s:.2f}")
    alphas = ", ".join(_alpha_text(r.alpha) for r in results)
    gm, gs = mean_std([gap_closed(r.accuracies) for r in results])
    mean_acc = {k: mean_std([r.accuracies[k] for r in results])[0] for k in ("vanilla", "sap", "retrain")}
    lines.append(f"alpha chosen on noisy validation: {alphas}")
    lines.append(
        f"gap closed by SAP: {100 * gap_closed(mean_acc):.0f}% of the mean gap "
        f"(per seed {100 * gm:.0f} ± {100 * gs:.0f}%)"
    )
    return "\n".join(lines)
