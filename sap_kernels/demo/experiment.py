"""One seed of the digits experiment: noisy data, vanilla model, SAP, and the baselines."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

import torch
from torch import nn

import sap_kernels

from .baselines import finetune_on_trusted, retrain_on_clean
from .data import NUM_CLASSES, DigitsSplits, load_digits_splits, tensor_loader
from .models import make_model
from .noise import NoiseType, NoisyLabels, add_label_noise
from .train import TrainConfig, accuracy, train

_T = TypeVar("_T")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run depends on.

    ``seed`` fixes the split, the noise (training and validation labels get independent noise
    of the same kind and rate), the model initialisation and the batch order. ``alphas=None``,
    ``n_trusted=None`` and ``class_balanced=None`` use :func:`sap_kernels.project`'s defaults.
    The retrain-on-clean model depends only on ``seed``, ``train`` and ``width``, so it can be
    shared between noise settings.
    """

    noise_rate: float = 0.25
    noise_type: NoiseType = "symmetric"
    seed: int = 0
    n_trusted: int | None = None
    class_balanced: bool | None = None
    alphas: tuple[float, ...] | None = None
    width: int = 32
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=1e-4))
    loader_batch_size: int = 256


@dataclass(frozen=True)
class NoisyDigits:
    """The clean splits plus noisy training labels and noisy validation labels."""

    splits: DigitsSplits
    train_noise: NoisyLabels
    val_noise: NoisyLabels


@dataclass
class IssuesFound:
    """What ``SAPResult.label_issues`` found on the noisy training labels, against the flips the
    demo made: ``n_flagged`` of ``n_samples`` flagged, ``n_flipped`` labels really flipped,
    ``precision`` (share of the flagged that were flipped; nan when none flagged), ``recall``
    (share of the flipped that were flagged), ``top_pairs`` ``(given, predicted, count)``;
    ``issues`` the ``LabelIssues`` and ``samples`` the training loader they were read from."""

    n_samples: int
    n_flagged: int
    n_flipped: int
    precision: float
    recall: float
    top_pairs: list[tuple[int, int, int]]
    issues: sap_kernels.LabelIssues | None = field(default=None, repr=False, compare=False)
    samples: Iterable[Any] | None = field(default=None, repr=False, compare=False)


def issues_found(issues: sap_kernels.LabelIssues, flipped: torch.Tensor, samples: Iterable[Any] | None = None,
                 pairs: int = 5) -> IssuesFound:
    """``issues`` scored against ``flipped`` (bool ``[N]`` in dataset order)."""
    truth = flipped[issues.positions]
    hits = int((issues.is_issue & truth).sum())
    n_flagged, n_flipped = issues.n_issues, int(truth.sum())
    return IssuesFound(len(issues), n_flagged, n_flipped, hits / n_flagged if n_flagged else math.nan,
                       hits / n_flipped if n_flipped else math.nan, issues.summary()[:pairs], issues, samples)


@dataclass
class ExperimentResult:
    """Test accuracies in ``[0, 1]`` keyed ``vanilla``, ``sap`` (alpha chosen on the noisy
    validation split), ``sap_default`` (the plain call ``project(model, train_loader)``, no
    validation data), ``finetune``, ``retrain``.

    ``alpha``/``alpha_default`` are the alphas the two SAP calls chose (``math.inf``: model left
    unchanged); ``val_scores`` maps each alpha tried to its accuracy on the noisy validation
    split; ``noise_rate`` is the actual share of flipped training labels; ``seconds`` times
    each stage; ``sap_result`` is the ``SAPResult`` of the call with validation data (its model
    and report; None where a result was built by hand); ``label_issues`` what that corrected
    model flags among the training labels, against the flips (one extra forward pass).
    """

    config: ExperimentConfig
    accuracies: dict[str, float]
    alpha: float
    val_scores: dict[float, float]
    noise_rate: float
    seconds: dict[str, float]
    alpha_default: float = math.nan
    default_rule: str = ""
    default_warnings: tuple[str, ...] = ()
    default_notices: tuple[str, ...] = ()
    sap_result: sap_kernels.SAPResult | None = field(default=None, repr=False, compare=False)
    label_issues: IssuesFound | None = None

    @property
    def gap_closed(self) -> float:
        """``(sap - vanilla) / (retrain - vanilla)``: the share of the gap SAP closed."""
        return gap_closed(self.accuracies)


def gap_closed(acc: dict[str, float], key: str = "sap") -> float:
    """Share of the vanilla -> retrain gap closed by ``acc[key]``; ``nan`` when there is no gap."""
    gap = acc["retrain"] - acc["vanilla"]
    return (acc[key] - acc["vanilla"]) / gap if gap > 0 else math.nan


def make_noisy_digits(config: ExperimentConfig) -> NoisyDigits:
    """Split digits by ``config.seed`` and corrupt the training and validation labels."""
    splits = load_digits_splits(config.seed)
    base = 1000 * config.seed
    train_noise = add_label_noise(
        splits.y_train, config.noise_rate, config.noise_type, NUM_CLASSES, base + 1
    )
    val_noise = add_label_noise(
        splits.y_val, config.noise_rate, config.noise_type, NUM_CLASSES, base + 2
    )
    return NoisyDigits(splits, train_noise, val_noise)


def train_vanilla(data: NoisyDigits, config: ExperimentConfig, progress: bool = False) -> nn.Module:
    """Train a fresh model on the noisy training labels (the model SAP repairs)."""
    model = make_model(config.seed, NUM_CLASSES, config.width)
    return train(model, data.splits.x_train, data.train_noise.labels, config.train, config.seed,
                 "training on noisy labels" if progress else None)


def train_clean(data: NoisyDigits, config: ExperimentConfig, progress: bool = False) -> nn.Module:
    """The retrain-on-clean upper bound: same recipe and seed, true labels."""
    s = data.splits
    return retrain_on_clean(
        s.x_train, s.y_train, config.train, config.seed, num_classes=NUM_CLASSES, width=config.width,
        progress="retraining on clean labels" if progress else None
    )


def apply_sap(model: nn.Module, data: NoisyDigits, config: ExperimentConfig, *, progress: bool = False,
              with_val: bool = True) -> sap_kernels.SAPResult:
    """Run :func:`sap_kernels.project` on the noisy training set, alpha chosen on the noisy
    validation split (``with_val``) or, as a new user calls it, without validation data.

    Returns the ``SAPResult``; ``model`` is not modified.
    """
    s = data.splits
    val = tensor_loader(s.x_val, data.val_noise.labels, config.loader_batch_size) if with_val else None
    return sap_kernels.project(
        model,
        tensor_loader(s.x_train, data.train_noise.labels, config.loader_batch_size),
        val_loader=val,
        alphas=None if config.alphas is None else list(config.alphas),
        n_trusted=config.n_trusted,
        class_balanced=config.class_balanced,
        progress=progress,
    )


def run_experiment(
    config: ExperimentConfig,
    *,
    clean_model: nn.Module | None = None,
    with_finetune: bool = True,
    progress: bool = False,
) -> ExperimentResult:
    """Run one seed end to end and measure test accuracies.

    Args:
        config: the run's settings.
        clean_model: a retrain-on-clean model already trained for this ``seed`` and recipe
            (reused instead of training another).
        with_finetune: also run the fine-tune-on-trusted baseline.
        progress: forwarded to :func:`sap_kernels.project`.
    """
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], _T]) -> _T:
        t0 = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - t0
        return out

    data = timed("data", lambda: make_noisy_digits(config))
    s = data.splits
    vanilla = timed("vanilla", lambda: train_vanilla(data, config, progress))
    sap = timed("sap", lambda: apply_sap(vanilla, data, config, progress=progress))
    train_loader = tensor_loader(s.x_train, data.train_noise.labels, config.loader_batch_size)
    issues = timed("label_issues", lambda: sap.label_issues(train_loader, progress=progress))
    plain = timed("sap_default", lambda: apply_sap(vanilla, data, config, progress=progress, with_val=False))
    acc = {"vanilla": accuracy(vanilla, s.x_test, s.y_test), "sap": accuracy(sap.model, s.x_test, s.y_test),
           "sap_default": accuracy(plain.model, s.x_test, s.y_test)}
    if with_finetune:
        idx = torch.as_tensor(sap.trusted_indices, dtype=torch.long)
        tuned = timed(
            "finetune",
            lambda: finetune_on_trusted(
                vanilla, s.x_train[idx], data.train_noise.labels[idx], config.finetune, config.seed,
                progress="fine-tuning on trusted samples" if progress else None,
            ),
        )
        acc["finetune"] = accuracy(tuned, s.x_test, s.y_test)
    if clean_model is None:
        clean_model = timed("retrain", lambda: train_clean(data, config, progress))
    acc["retrain"] = accuracy(clean_model, s.x_test, s.y_test)
    return ExperimentResult(
        config, acc, float(sap.alpha), dict(sap.scores), data.train_noise.rate, seconds, float(plain.alpha),
        plain.rule, tuple(plain.warnings), tuple(plain.notices), sap,
        issues_found(issues, data.train_noise.flipped, train_loader),
    )
