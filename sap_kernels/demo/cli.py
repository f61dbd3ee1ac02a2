"""The ``demo`` command: SAP on noisy digits, compared with the baselines, as a table."""
from __future__ import annotations

import enum
import time
from typing import Annotated, Optional

import torch
import typer

from ..cli.common import CLIError, one_line_errors, require_matplotlib
from .experiment import ExperimentConfig, ExperimentResult, run_experiment
from .noise import NoiseType
from .report import format_single
from .train import TrainConfig

DEFAULTS = ExperimentConfig()

NoiseRateOpt = Annotated[float, typer.Option(
    "--noise-rate", metavar="RATE", min=0.0, max=1.0,
    help="share of training and validation labels flipped.")]


class NoiseChoice(str, enum.Enum):
    """``--noise-type`` (``noise.NOISE_TYPES``); an Enum: typer takes Enum choices in every version."""

    symmetric = "symmetric"
    asymmetric = "asymmetric"


NoiseTypeOpt = Annotated[NoiseChoice, typer.Option(
    "--noise-type", help="symmetric: to a random other class; asymmetric: c -> c+1.")]
SeedOpt = Annotated[int, typer.Option(
    "--seed", metavar="S", help="seed of the split, the noise, the initialisation and the batch order.")]
NTrustedOpt = Annotated[Optional[int], typer.Option(
    "--n-trusted", metavar="N", min=1,
    help="lowest-loss training samples SAP uses. [default: project()'s, a quarter of the training set here]")]
BalancedOpt = Annotated[Optional[bool], typer.Option(
    "--class-balanced/--no-class-balanced",
    help="pick the trusted samples per class. [default: project()'s, per class]")]
EpochsOpt = Annotated[int, typer.Option(
    "--epochs", metavar="N", min=1, help="training epochs of the vanilla and clean models.")]
AlphasOpt = Annotated[Optional[list[float]], typer.Option(
    "--alphas", metavar="A1 A2 ...", help="alpha grid for SAP. [default: sap_kernels.project's grid]")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", metavar="N", min=1,
    help="torch CPU threads. [default: torch's setting, printed at the start; on a loaded 2-core machine "
         "1 thread ran 2x faster than 2]")]
ReportOpt = Annotated[Optional[str], typer.Option(
    "--report", metavar="DIR",
    help="also write the report page of the SAP run that chose alpha on the noisy validation split (the "
         "'sap' row; not the plain call without validation data) into DIR (index.html, figures, "
         "report.json, the label-issues section with the top flagged digits; needs matplotlib). "
         "[default: no report]")]


def config_from_options(noise_rate: float = DEFAULTS.noise_rate, noise_type: NoiseType = DEFAULTS.noise_type,
                        seed: int = DEFAULTS.seed, n_trusted: Optional[int] = DEFAULTS.n_trusted,
                        class_balanced: Optional[bool] = DEFAULTS.class_balanced,
                        epochs: int = DEFAULTS.train.epochs,
                        alphas: Optional[list[float]] = None) -> ExperimentConfig:
    """The :class:`ExperimentConfig` the options describe (the rest is the embedded configuration)."""
    return ExperimentConfig(
        noise_rate=noise_rate,
        noise_type=noise_type,
        seed=seed,
        n_trusted=n_trusted,
        class_balanced=class_balanced,
        alphas=tuple(alphas) if alphas else None,
        train=TrainConfig(
            epochs=epochs,
            batch_size=DEFAULTS.train.batch_size,
            lr=DEFAULTS.train.lr,
            weight_decay=DEFAULTS.train.weight_decay,
        ),
    )


def run(config: ExperimentConfig, report: Optional[str] = None) -> ExperimentResult:
    """Run the demo for ``config``, print the table and, with ``report``, write the report page."""
    print(
        f"Training a small CNN on scikit-learn digits with {config.noise_rate:.0%} "
        f"{config.noise_type} label noise, then repairing it with SAP "
        f"({torch.get_num_threads()} CPU threads; --threads N to change)...",
        flush=True,
    )
    start = time.perf_counter()
    result = run_experiment(config, progress=True)
    print()
    print(format_single(result))
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items() if k != "data")
    print(f"\nwall time {time.perf_counter() - start:.1f}s ({stages})")
    if report is not None and result.sap_result is not None:
        try:
            found = result.label_issues
            page = result.sap_result.save_report(report, issues=None if found is None else found.issues,
                                                 samples=None if found is None else found.samples)
        except OSError as exc:
            raise CLIError(f"--report {report}: cannot write the report: {exc}") from exc
        print(f"report of the SAP run with validation data: {page}")
    return result


def demo(
    noise_rate: NoiseRateOpt = DEFAULTS.noise_rate, noise_type: NoiseTypeOpt = NoiseChoice(DEFAULTS.noise_type),
    seed: SeedOpt = DEFAULTS.seed, n_trusted: NTrustedOpt = DEFAULTS.n_trusted,
    class_balanced: BalancedOpt = DEFAULTS.class_balanced, epochs: EpochsOpt = DEFAULTS.train.epochs,
    alphas: AlphasOpt = None, threads: ThreadsOpt = None, report: ReportOpt = None,
) -> None:
    """SAP on scikit-learn digits with noisy labels: vanilla vs SAP vs finetune vs retrain.

    Trains a small CNN on noisily labelled digits (it memorises the noise), repairs it with
    sap_kernels.project (alpha chosen on the noisy validation split, and the plain call without
    validation data), and prints test accuracies against fine-tuning on the trusted samples and
    retraining on clean labels, then which training labels the corrected model flags (precision
    and recall against the labels the demo flipped). About a minute on 2 CPU cores; needs scikit-learn.
    """
    with one_line_errors("demo"):
        if report is not None:
            require_matplotlib("--report")
        if threads is not None:
            torch.set_num_threads(threads)
        run(config_from_options(noise_rate, noise_type.value, seed, n_trusted, class_balanced, epochs, alphas), report)
