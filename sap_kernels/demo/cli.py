"""The ``demo`` subcommand: SAP on noisy digits, compared with the baselines, as a table."""
from __future__ import annotations

import argparse
import time
from typing import Sequence

import torch

from .experiment import ExperimentConfig, run_experiment
from .noise import NOISE_TYPES
from .report import format_single
from .train import TrainConfig

DEFAULTS = ExperimentConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``demo`` subcommand (every default is the embedded configuration)."""
    parser.add_argument("--noise-rate", type=float, default=DEFAULTS.noise_rate,
                        help="share of training and validation labels flipped (default %(default)s)")
    parser.add_argument("--noise-type", choices=NOISE_TYPES, default=DEFAULTS.noise_type,
                        help="symmetric: to a random other class; asymmetric: c -> c+1 (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="default %(default)s")
    parser.add_argument("--n-trusted", type=int, default=DEFAULTS.n_trusted,
                        help="lowest-loss training samples SAP uses (default: project()'s, a quarter of "
                             "the training set here)")
    parser.add_argument("--class-balanced", action=argparse.BooleanOptionalAction,
                        default=DEFAULTS.class_balanced,
                        help="pick the trusted samples per class (default: project()'s, per class)")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.train.epochs,
                        help="training epochs of the vanilla and clean models (default %(default)s)")
    parser.add_argument("--alphas", type=float, nargs="+", default=None,
                        help="alpha grid for SAP (default: sap_kernels.project's grid)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's setting, printed at the start; on a "
                             "loaded 2-core machine 1 thread ran 2x faster than 2)")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The :class:`ExperimentConfig` the parsed options describe."""
    return ExperimentConfig(
        noise_rate=args.noise_rate,
        noise_type=args.noise_type,
        seed=args.seed,
        n_trusted=args.n_trusted,
        class_balanced=args.class_balanced,
        alphas=None if args.alphas is None else tuple(args.alphas),
        train=TrainConfig(
            epochs=args.epochs,
            batch_size=DEFAULTS.train.batch_size,
            lr=DEFAULTS.train.lr,
            weight_decay=DEFAULTS.train.weight_decay,
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo for parsed options and print the table; returns the exit status."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sap_kernels demo`` with its own parser."""
    parser = argparse.ArgumentParser(prog="sap_kernels demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
