"""SAP on real data: scikit-learn digits with symmetric label noise, 3 seeds, 25% and 40%.

Marked ``slow`` (about two to three minutes on 2 CPU cores) but part of the default run. Each
seed trains one model on clean labels (shared by both noise rates) and one on noisy labels
per rate; ``sap_kernels.project`` picks alpha on a validation split as noisy as training.
"""
from __future__ import annotations

import statistics

import pytest

pytest.importorskip("sklearn")

from sap_kernels.demo.experiment import (  # noqa: E402
    ExperimentConfig,
    gap_closed,
    make_noisy_digits,
    run_experiment,
    train_clean,
)

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)
RATES = (0.25, 0.4)
MIN_GAP_CLOSED = 0.70  # (sap - vanilla) / (retrain - vanilla) of the seed means, per noise rate
MAX_DROP = 0.01  # SAP may trail vanilla on test by at most 1 point (about 4 of 450 images)


def _config(rate: float, seed: int) -> ExperimentConfig:
    return ExperimentConfig(noise_rate=rate, noise_type="symmetric", seed=seed)


@pytest.fixture(scope="module")
def clean_models():
    """seed -> model retrained on clean labels (independent of the noise)."""
    out = {}
    for seed in SEEDS:
        cfg = _config(RATES[0], seed)
        out[seed] = train_clean(make_noisy_digits(cfg), cfg)
    return out


@pytest.fixture(scope="module")
def results(clean_models):
    """noise rate -> one ExperimentResult per seed (no fine-tune baseline)."""
    return {
        rate: [
            run_experiment(_config(rate, seed), clean_model=clean_models[seed], with_finetune=False)
            for seed in SEEDS
        ]
        for rate in RATES
    }


def _describe(runs) -> str:
    return "; ".join(
        f"seed {r.config.seed}: vanilla {100 * r.accuracies['vanilla']:.1f} sap "
        f"{100 * r.accuracies['sap']:.1f} (alpha {r.alpha:.3g}) retrain "
        f"{100 * r.accuracies['retrain']:.1f}"
        for r in runs
    )


@pytest.mark.parametrize("rate", RATES)
def test_noise_actually_hurts(results, rate):
    """The setting is meaningful: the vanilla model is clearly below the clean retrain."""
    runs = results[rate]
    for r in runs:
        assert r.noise_rate == pytest.approx(rate, abs=0.05)
    gaps = [r.accuracies["retrain"] - r.accuracies["vanilla"] for r in runs]
    assert min(gaps) > 0.03, _describe(runs)


@pytest.mark.parametrize("rate", RATES)
def test_sap_closes_most_of_the_gap(results, rate):
    runs = results[rate]
    mean = {k: statistics.fmean(r.accuracies[k] for r in runs) for k in ("vanilla", "sap", "retrain")}
    closed = gap_closed(mean)
    assert closed >= MIN_GAP_CLOSED, f"SAP closed {100 * closed:.0f}% of the gap; {_describe(runs)}"


@pytest.mark.parametrize("rate", RATES)
def test_sap_never_clearly_below_vanilla(results, rate):
    runs = results[rate]
    for r in runs:
        assert r.accuracies["sap"] >= r.accuracies["vanilla"] - MAX_DROP, _describe(runs)
