#!/usr/bin/env python3
"""Reproduce the paper's comparison on scikit-learn digits: mean ± std over seeds.

For every noise rate and seed: split digits, corrupt the training and validation labels, train
a small CNN to fit the noisy labels (vanilla), repair it with ``sap_kernels.project`` (alpha
chosen on the noisy validation split), fine-tune it on SAP's trusted samples (the paper's
baseline), and retrain on the clean labels (upper bound). Prints test accuracy per method.

    python python/reproduce_digits.py --noise-rate 0.25 0.4 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Sequence

import torch

from sap_kernels.demo.experiment import ExperimentConfig, make_noisy_digits, run_experiment, train_clean
from sap_kernels.demo.noise import NOISE_TYPES
from sap_kernels.demo.report import format_summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    d = ExperimentConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise-rate", type=float, nargs="+", default=[d.noise_rate],
                   help="one or more noise rates (default %(default)s)")
    p.add_argument("--noise-type", choices=NOISE_TYPES, default=d.noise_type)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default %(default)s")
    p.add_argument("--n-trusted", type=int, default=d.n_trusted, help="default %(default)s")
    p.add_argument("--class-balanced", action=argparse.BooleanOptionalAction, default=d.class_balanced)
    p.add_argument("--epochs", type=int, default=d.train.epochs,
                   help="epochs of the vanilla and clean models (default %(default)s)")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune.epochs, help="default %(default)s")
    p.add_argument("--alphas", type=float, nargs="+", default=None,
                   help="alpha grid (default: sap_kernels.project's grid)")
    p.add_argument("--no-finetune", action="store_true", help="skip the finetune-on-trusted baseline")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    base = ExperimentConfig()
    train_cfg = replace(base.train, epochs=args.epochs)
    print(f"{torch.get_num_threads()} CPU threads, {args.epochs} epochs, alphas "
          f"{'default' if args.alphas is None else args.alphas}", flush=True)
    start = time.perf_counter()
    clean_models = {}  # seed -> retrain-on-clean model (it does not depend on the noise)
    for rate in args.noise_rate:
        results = []
        for seed in args.seeds:
            config = replace(
                base, noise_rate=rate, noise_type=args.noise_type, seed=seed,
                n_trusted=args.n_trusted, class_balanced=args.class_balanced,
                alphas=None if args.alphas is None else tuple(args.alphas),
                train=train_cfg, finetune=replace(base.finetune, epochs=args.finetune_epochs),
            )
            if seed not in clean_models:
                clean_models[seed] = train_clean(make_noisy_digits(config), config)
            r = run_experiment(config, clean_model=clean_models[seed], with_finetune=not args.no_finetune)
            acc = "  ".join(f"{k} {100 * v:.1f}" for k, v in r.accuracies.items())
            print(f"  noise {rate:.0%} seed {seed}: {acc}  alpha {r.alpha:.4g}  "
                  f"gap closed {100 * r.gap_closed:.0f}%", flush=True)
            results.append(r)
        print()
        print(format_summary(results))
        print(flush=True)
    print(f"total wall time {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
