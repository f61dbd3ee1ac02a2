#!/usr/bin/env python3
"""Forward passes of ResNet-18/32x32 (random weights) on the CPU in the caller's (contiguous) and
in channels-last memory layout, per batch size, in one run: what ``sap_kernels.sap.runtime.layout``
decides on. Prints seconds per 1000 samples and the ratio.

    python benchmarks/bench_layout_cpu.py --threads 2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_cifar import ResNet18  # noqa: E402


@torch.no_grad()
def seconds(model: torch.nn.Module, x: torch.Tensor, batch: int, channels_last: bool) -> float:
    t0 = time.perf_counter()
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        model(xb.contiguous(memory_format=torch.channels_last) if channels_last else xb)
    return time.perf_counter() - t0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=1000, help="samples per measurement (default %(default)s)")
    ap.add_argument("--batches", type=int, nargs="+", default=[25, 100, 500])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ResNet18().eval()
    x = torch.randn(args.n, 3, 32, 32)
    seconds(model, x[:50], 50, True)  # warm-up: oneDNN primitive creation
    print(f"# ResNet-18/32x32 forward, {args.n} samples, {args.threads} threads, s per 1000 samples")
    print("| batch | contiguous | channels-last | ratio |\n|---|---|---|---|")
    for b in args.batches:
        plain = seconds(model, x, b, False) * 1000 / args.n
        last = seconds(model, x, b, True) * 1000 / args.n
        print(f"| {b} | {plain:.2f} | {last:.2f} | {plain / last:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
