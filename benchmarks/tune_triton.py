#!/usr/bin/env python3
"""Search the Triton ``conv_gram`` tiling on a GPU: block sizes, warps and pipeline stages.

For a few ResNet conv shapes (3x3 layers of width K = 576 / 2304 / 4608 and a 1x1 of K = 1024),
with a batch sized so that every shape does about the same work, each candidate configuration
``(BLOCK_K, BLOCK_M, num_warps, num_stages)`` is timed with ``triton.testing.do_bench`` in TF32
(the tensor-core path the GPU goals are stated in) and checked against the default
configuration's result (a configuration that disagrees beyond rounding is reported, never
picked). Prints a table per shape with the time relative to the default and writes
``tune_triton.csv`` under ``--out``; the best configuration per K is what
``sap_kernels/kernels/triton/_common.py::default_config`` should return.

``--smoke`` runs two tiny shapes and two configurations on CPU under the Triton interpreter, so
the script itself is tested without a GPU.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import torch

if "--smoke" in sys.argv and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # read when the kernels are first imported

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gram import ConvShape, bench  # noqa: E402

from sap_kernels import ops  # noqa: E402
from sap_kernels.kernels.triton import conv_gram as tconv  # noqa: E402

SHAPES = [  # (label, shape): ResNet-18/32x32 layer1, layer3, layer4 3x3 convs; ResNet-50 1x1
    ("r18.layer1 3x3", ConvShape(64, 32, 3, 1, 1)),
    ("r18.layer3 3x3", ConvShape(256, 8, 3, 1, 1)),
    ("r18.layer4 3x3", ConvShape(512, 4, 3, 1, 1)),
    ("r50.layer3 1x1", ConvShape(1024, 14, 1, 1, 0)),
]
# (BLOCK_K, BLOCK_M, num_warps, num_stages); the first is the shipped default for K > 32.
CONFIGS = [
    (64, 32, 4, 2), (64, 32, 4, 3), (64, 64, 4, 3), (64, 64, 8, 3), (64, 32, 4, 4), (64, 16, 4, 4),
    (32, 64, 4, 3), (128, 32, 8, 2), (128, 32, 8, 3), (128, 64, 8, 2), (128, 16, 8, 4), (128, 32, 4, 3),
]
SMOKE_SHAPES = [("tiny 3x3", ConvShape(5, 6, 3, 1, 1)), ("tiny 1x1", ConvShape(40, 3, 1, 1, 0))]
SMOKE_CONFIGS = [(32, 32, 4, 1), (16, 16, 4, 1)]


def batch_for(s: ConvShape, target_flop: float) -> int:
    """Samples giving about ``target_flop`` of Gram work (2 M K^2) for this shape."""
    rows_per_sample = s.out_size() ** 2
    return max(1, round(target_flop / (2 * rows_per_sample * s.width**2)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (tests the script)")
    ap.add_argument("--out", default=os.environ.get("OUT") or ".", help="directory for tune_triton.csv")
    ap.add_argument("--flop", type=float, default=2e12, help="Gram work per timed call")
    ap.add_argument("--precision", default="tf32", choices=["ieee", "tf32", "bf16"])
    ap.add_argument("--budget-s", type=float, default=75.0, help="stop starting new configurations after this")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        print("tune_triton.py needs a CUDA GPU (or --smoke for the CPU interpreter)")
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    shapes, configs = (SHAPES, CONFIGS) if cuda else (SMOKE_SHAPES, SMOKE_CONFIGS)
    start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "tune_triton.csv")
    name = torch.cuda.get_device_name() if cuda else "cpu (interpreter)"
    fields = ["shape", "K", "batch", "block_k", "block_m", "num_warps", "num_stages", "median_ms", "p10_ms",
              "p90_ms", "tflops", "vs_default", "rel_diff", "status"]
    with open(path, "w", newline="") as f:
        f.write(f"# device: {name}; torch {torch.__version__}; precision {args.precision}\n")
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for label, s in shapes:
            n = 2 if args.smoke else batch_for(s, args.flop)
            gen = torch.Generator(device=device).manual_seed(0)
            x = torch.randn(n, s.c, s.h, s.h, device=device, generator=gen)
            geom = ops.conv_geometry(x.shape, s.k, s.stride, s.pad)
            flop = 2 * n * geom.rows_per_sample * s.width**2
            reference = None
            base_ms = None
            print(f"\n{label}: K={s.width}, batch {n}, {flop / 1e12:.2f} TFLOP per call")
            print(f"  {'BK':>4} {'BM':>4} {'warps':>5} {'stages':>6} {'median ms':>10} {'TFLOP/s':>8} "
                  f"{'vs default':>10} {'rel diff':>9} status")
            for bk, bm, warps, stages in configs:
                row = dict(shape=label, K=s.width, batch=n, block_k=bk, block_m=bm, num_warps=warps, num_stages=stages)
                if time.perf_counter() - start > args.budget_s:
                    row["status"] = "not run (time budget)"
                    w.writerow(row)
                    continue
                out = torch.zeros(1, s.width, s.width, device=device)

                def run(out=out, bk=bk, bm=bm, warps=warps, stages=stages):
                    out.zero_()
                    tconv.conv_gram_triton_launch(x, geom, out, args.precision, block_k=bk, block_m=bm,
                                                  num_warps=warps, num_stages=stages)

                try:
                    run()
                    med, p10, p90 = bench(run, device, args.smoke)
                except Exception as exc:  # e.g. out of shared memory for this tiling
                    row["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                    w.writerow(row)
                    print(f"  {bk:>4} {bm:>4} {warps:>5} {stages:>6} {row['status']}")
                    continue
                if reference is None:
                    reference, base_ms = out.clone(), med
                diff = float((out - reference).norm() / reference.norm().clamp_min(1e-30))
                # TF32 rounds operands to 10-bit mantissas; tilings sum in different orders.
                ok = diff < (1e-5 if args.precision == "ieee" else 1e-2)
                row.update(median_ms=f"{med:.4f}", p10_ms=f"{p10:.4f}", p90_ms=f"{p90:.4f}",
                           tflops=f"{flop / (med * 1e-3) / 1e12:.2f}", vs_default=f"{base_ms / med:.2f}",
                           rel_diff=f"{diff:.2e}", status="ok" if ok else "WRONG RESULT")
                w.writerow(row)
                f.flush()
                print(f"  {bk:>4} {bm:>4} {warps:>5} {stages:>6} {med:>10.3f} {row['tflops']:>8} "
                      f"{row['vs_default']:>9}x {diff:>9.1e} {row['status']}")
    print(f"\nwrote {path} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
