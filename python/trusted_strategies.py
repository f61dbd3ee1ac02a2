#!/usr/bin/env python3
"""Which trusted samples repair best? ``project(..., trusted=...)`` on noisy digits, side by side.

For each noise rate and seed: the digits CNN trained on noisy labels (vanilla) and on clean ones
(retrain), then ``project`` with alpha chosen on the noisy validation split and the trusted samples
ranked by per-sample loss (``"loss"``), by the published scripts' input curvature
(``"curvature"``), drawn at random (``"random"``), or given: the positions of a verified clean
subset (``--given`` samples whose labels are known to be right, the realistic case of a small
hand-checked set). Prints a markdown table of test accuracy and the share of the
vanilla -> retrain gap each closes (of the seed means).

    python python/trusted_strategies.py --noise-rate 0.25 0.4 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
from typing import Optional, Sequence

import torch

import sap_kernels
from sap_kernels.demo.data import tensor_loader
from sap_kernels.demo.experiment import ExperimentConfig, gap_closed, make_noisy_digits, train_clean, train_vanilla
from sap_kernels.demo.train import accuracy

STRATEGIES = ("loss", "curvature", "random", "given")


def given_positions(flipped: torch.Tensor, n: int, seed: int) -> list[int]:
    """``n`` positions (seeded) among the training samples whose label was not flipped."""
    clean = (~flipped).nonzero().squeeze(1)
    g = torch.Generator().manual_seed(seed)
    return sorted(clean[torch.randperm(len(clean), generator=g)[:n]].tolist())


def run(rate: float, seed: int, n_given: int) -> dict[str, float]:
    cfg = ExperimentConfig(noise_rate=rate, seed=seed)
    data = make_noisy_digits(cfg)
    s = data.splits
    vanilla, clean = train_vanilla(data, cfg), train_clean(data, cfg)
    acc = {"vanilla": accuracy(vanilla, s.x_test, s.y_test), "retrain": accuracy(clean, s.x_test, s.y_test)}
    train = tensor_loader(s.x_train, data.train_noise.labels)
    val = tensor_loader(s.x_val, data.val_noise.labels)
    for name in STRATEGIES:
        trusted = given_positions(data.train_noise.flipped, n_given, seed) if name == "given" else name
        res = sap_kernels.project(vanilla, train, val_loader=val, trusted=trusted, progress=False)
        acc[name] = accuracy(res.model, s.x_test, s.y_test)
    return acc


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise-rate", type=float, nargs="+", default=[0.25, 0.4])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--given", type=int, default=100, help="size of the verified clean subset (default %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| noise | seeds | vanilla | retrain | " + " | ".join(STRATEGIES) + " |")
    print("|---" * (4 + len(STRATEGIES)) + "|")
    for rate in args.noise_rate:
        runs = [run(rate, seed, args.given) for seed in args.seeds]
        mean = {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}
        cells = [f"{100 * mean[k]:.1f} ({100 * gap_closed(mean, k):.0f} %)" for k in STRATEGIES]
        print(f"| {rate:.0%} symmetric | {len(runs)} | {100 * mean['vanilla']:.1f} | {100 * mean['retrain']:.1f} | "
              + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
