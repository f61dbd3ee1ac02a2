#!/usr/bin/env python3
"""The torch backend's two conv-Gram routes side by side on CPU: im2col + block-triangular GEMM
against the shift route (stride 1, no im2col), through ``ops.conv_gram(backend="torch")``.

Prints, per conv input, the median of 5 timed calls of each route (after one warm-up), their
ratio, the multiply-add ratio the route choice uses, which route the backend picks, and the max
relative difference between the two results.

    python benchmarks/bench_shift_cpu.py --threads 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sap_kernels import ops  # noqa: E402
from sap_kernels.kernels.torch import shift_gram  # noqa: E402

CASES = [  # (samples, channels, size, kernel, padding)
    (100, 64, 32, 3, 1), (100, 128, 16, 3, 1), (100, 256, 8, 3, 1), (100, 512, 4, 3, 1),
    (100, 64, 32, 5, 2), (10, 64, 112, 3, 1), (100, 32, 8, 3, 0), (100, 3, 32, 3, 1),
]


def timed(fn) -> float:
    fn()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, median of 5 calls")
    print(f"{'conv input':<32} {'im2col ms':>9} {'shift ms':>9} {'speed-up':>8} {'MAC ratio':>9} {'picked':>7} "
          f"{'rel diff':>9}")
    preferred = shift_gram.preferred
    for n, c, h, k, pad in CASES:
        x = torch.randn(n, c, h, h)
        geom = ops.conv_geometry(x.shape, k, 1, pad)
        kk = c * k * k
        results, times = {}, {}
        for route in ("im2col", "shift"):
            shift_gram.preferred = (lambda g: shift_gram.applicable(g)) if route == "shift" else (lambda g: False)
            out = torch.zeros(1, kk, kk)

            def call(out=out):
                out.zero_()
                ops.conv_gram(x, k, padding=pad, out=out, backend="torch")

            try:
                times[route] = timed(call)
            finally:
                shift_gram.preferred = preferred
            results[route] = out.clone()
        diff = float((results["shift"] - results["im2col"]).abs().max() / results["im2col"].abs().max())
        gain = shift_gram.im2col_cost(geom) / shift_gram.shift_cost(geom)
        picked = "shift" if preferred(geom) else "im2col"
        name = f"{n} x {c} ch, {h}x{h}, {k}x{k}, pad {pad}"
        print(f"{name:<32} {1e3 * times['im2col']:>9.0f} {1e3 * times['shift']:>9.0f} "
              f"{times['im2col'] / times['shift']:>7.2f}x {gain:>9.2f} {picked:>7} {diff:>9.1e}")


if __name__ == "__main__":
    main()
